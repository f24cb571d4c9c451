"""The verdict of one trial at one resolution, and the two gates it checks first.

    unfit | inconsistent | true_sr | resampling | hallucination | n/a

A function of the trial row's columns (`verdict`), so a reader can recompute it from a results
file; the thresholds are the constants below.

## Gate 1, fitness (`unfit`): decided once, at the input resolution

A model that cannot reproduce its own input says nothing about super-resolution: its in-band
content at 64 or 128 is noise on top of a wrong image, and the band metrics would call it
`hallucination` or `resampling` for reasons that have nothing to do with the trick under study.

The model's output at r = s (the input size) is compared with the input, per held-out image
(`psnr_lr_consistency` at r = s, the mean). The trivial reference is the input's
**half-resolution copy**: the input downsampled by FIT_FLOOR_FACTOR (2: 32 → 16, with the very
downsampler that made the input, `ablate.data.dataset.downsample`) and bicubic upsampled back to
s (`psnr_lr_floor`, the mean over images). It keeps everything of the input but its top octave:
a model no better than that has not learnt the detail its input holds, and nothing it renders
above the input can be read as super-resolution. The margin: per image, d_i = PSNR of the model
at s − PSNR of the half-resolution copy; `fit_margin` is the lower end of the 95 % interval of
the mean of d over the held-out images (a cluster bootstrap over their photos, as the table's
intervals: `margin_lower_bound`). The model is **unfit when `fit_margin` ≤ 0**, and then `unfit`
at every resolution: `fit_margin` is decided at r = s and repeated on every row of the trial.

Being relative to the same images, the rule holds on any data set (easy photos have a high
floor, textured ones a low one) and needs no tuned dB figure. (Until this version the floor was
the *quarter*-resolution copy, which every control, even white noise, cleared by 10 dB, and
which models far from fitting their input passed: docs/fit.md.)

## Gate 2, consistency (`inconsistent`): above the input

A model that fits its input at its pixel centres can still be wild between them (trained only
at those centres, nothing constrains it there). Its output at r > s, brought back to the input
grid with the same downsampler, then no longer reproduces the input. `lr_margin` at r is the
same lower bound as `fit_margin`, with the PSNR of downsample(output at r, s) against the input
in place of the PSNR at s. A fit model is **inconsistent at r when `lr_margin` ≤ 0**. This is
not a statement about fitness (the row fits its input), so it has its own verdict.

## The band rule (models that pass both gates)

Thresholds are module constants. In order:
  n/a            any input is NaN (no band: r ≤ input size, or no ground truth).
  true_sr        band_error_ratio ≤ TRUE_SR_MAX_ERROR_RATIO (0.9)
                 and band_coherence ≥ band_coherence_bicubic + TRUE_SR_MIN_COHERENCE_GAIN
                 (0.05): the in-band error is clearly below bicubic's *and* the in-band content
                 agrees with the truth better than bicubic's does.
  hallucination  hf_energy_ratio ≥ HALLUCINATION_MIN_ENERGY_RATIO (1.5)
                 and band_error_ratio ≥ HALLUCINATION_MIN_ERROR_RATIO (1.05): extra in-band
                 energy that moves the prediction *away* from the truth.
  resampling     otherwise: no clear in-band gain over bicubic (nor clear harm).

Energy alone cannot tell recovery from noise: a model that adds noise above the input's Nyquist
raises hf_energy_ratio exactly as one that adds the right detail does. Only the comparisons with
the ground truth (error and coherence) separate them, which is why both true_sr and
hallucination are decided by the error ratio, with energy only saying whether anything was
added. The coherence (`ablate.metrics.spectrum`: signed, the real part of the in-band
cross-spectrum over the energies, so detail with its sign flipped counts against, not for)
guards true_sr against a subtler case: the error ratio can fall below 1 with no new detail at
all when a resampler has *less* spurious in-band energy than bicubic; its coherence stays at or
below bicubic's.

Calibration (tests/test_verdict_calibration.py, held-out bundled crops at 16 → 32/64 and
32 → 64/128): the truth, the truth low-passed to keep a quarter of the band, and bicubic plus
k = 0.1 of the in-band difference to the truth are `true_sr`; bicubic, k = 0.02 and unsharp
masking are not; white noise, the truth with its in-band phases randomised and another crop's
detail are `hallucination`. `true_sr` switches on at about 5 % in-band recovery (k ≈ 0.05,
≈ +0.3 dB over bicubic): read a verdict beside its ΔPSNR.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # the rule and its constants stay importable without torch (ablate table)
    from torch import Tensor

# The gates (see the module docstring).
FIT_FLOOR_FACTOR = 2  # the floor is the input at 1/2 its resolution, bicubic back up
MARGIN_CONFIDENCE = 0.95  # the margin is the lower end of this two-sided interval
MARGIN_RESAMPLES = 2000  # bootstrap resamples of the held-out photos
MARGIN_SEED = 0  # fixed: the same images give the same margin

# The band rule.
TRUE_SR_MAX_ERROR_RATIO = 0.9  # in-band error at most 90% of bicubic's ("clearly below")
TRUE_SR_MIN_COHERENCE_GAIN = 0.05  # and coherence with the truth at least 0.05 above bicubic's
HALLUCINATION_MIN_ENERGY_RATIO = 1.5  # in-band energy ≥ 1.5 × bicubic's counts as "extra"
HALLUCINATION_MIN_ERROR_RATIO = 1.05  # … and it disagrees: in-band error ≥ 1.05 × bicubic's


def lr_consistency(pred: Tensor, inputs: Tensor) -> Tensor:
    """Per-image PSNR of the prediction brought back to the input grid, against the input:
    pred (N, 3, r, r), inputs (N, 3, s, s), r ≥ s -> (N,)."""
    from ablate.imaging import downsample  # torch: only where a tensor is measured
    from ablate.metrics.image import psnr

    s = inputs.shape[-1]
    if pred.shape[-1] < s:
        raise ValueError(f"lr_consistency: prediction {pred.shape[-1]} below the input {s}")
    return psnr(downsample(pred, s), inputs)


def lr_floor(inputs: Tensor) -> Tensor:
    """Per-image PSNR of the input's half-resolution copy (FIT_FLOOR_FACTOR) against the
    input: (N, 3, s, s) -> (N,). The gates' reference (module docstring)."""
    from ablate.imaging import bicubic_upsample, downsample  # torch: as above
    from ablate.metrics.image import psnr

    s = inputs.shape[-1]
    small = downsample(inputs, max(1, s // FIT_FLOOR_FACTOR))
    return psnr(bicubic_upsample(small, s), inputs)


def margin_lower_bound(diff: Sequence[float], groups: Sequence[str] | None = None) -> float:
    """The lower end of the MARGIN_CONFIDENCE interval of mean(diff) over held-out images:
    a percentile bootstrap that resamples the images' groups (their photos: crops of one photo
    share content) with replacement, each resample's mean taken over the crops of the drawn
    photos; every image its own group when `groups` is None or has one group. Deterministic
    (MARGIN_SEED). NaN for no finite values; the value itself for one."""
    d = np.asarray(diff, dtype=np.float64)
    keep = np.isfinite(d)
    d = d[keep]
    if d.size == 0:
        return math.nan
    if d.size == 1:
        return float(d[0])
    g = (np.arange(d.size) if groups is None
         else np.unique(np.asarray(list(groups), dtype=object)[keep].astype(str),
                        return_inverse=True)[1])
    if g.max() == 0:  # one photo: its crops as if independent
        g = np.arange(d.size)
    n_groups = int(g.max()) + 1
    sums = np.bincount(g, weights=d, minlength=n_groups)
    counts = np.bincount(g, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(MARGIN_SEED)
    draws = rng.integers(0, n_groups, size=(MARGIN_RESAMPLES, n_groups))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    return float(np.quantile(means, (1 - MARGIN_CONFIDENCE) / 2))


def is_unfit(fit_margin: float) -> bool:
    """Gate 1: the model does not clear its input's half-resolution copy with a margin."""
    return fit_margin <= 0


def is_inconsistent(lr_margin: float) -> bool:
    """Gate 2: brought back to the input grid, the output at r no longer clears it."""
    return lr_margin <= 0


def _finite(*values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def verdict(
    band_error_ratio: float,
    hf_energy_ratio: float,
    band_coherence: float,
    band_coherence_bicubic: float,
    *,
    fit_margin: float,
    lr_margin: float,
) -> str:
    """unfit | inconsistent | true_sr | resampling | hallucination | n/a, for one trial at one
    resolution (rule and thresholds in the module docstring). `unfit` is decided first, from
    the trial's fitness at its input (`fit_margin`, the same on every row), whenever it is
    finite; then `inconsistent` from this resolution's `lr_margin`; then the band rule."""
    if _finite(fit_margin) and is_unfit(fit_margin):
        return "unfit"
    if not _finite(band_error_ratio, hf_energy_ratio, band_coherence, band_coherence_bicubic):
        return "n/a"
    if _finite(lr_margin) and is_inconsistent(lr_margin):
        return "inconsistent"
    if (
        band_error_ratio <= TRUE_SR_MAX_ERROR_RATIO
        and band_coherence >= band_coherence_bicubic + TRUE_SR_MIN_COHERENCE_GAIN
    ):
        return "true_sr"
    if (
        hf_energy_ratio >= HALLUCINATION_MIN_ENERGY_RATIO
        and band_error_ratio >= HALLUCINATION_MIN_ERROR_RATIO
    ):
        return "hallucination"
    return "resampling"
