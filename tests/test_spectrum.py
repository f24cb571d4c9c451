"""Known answers of the spectrum analysis, on gratings and on real held-out photo crops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ablate.data.dataset import build_data
from ablate.imaging import bicubic_upsample, downsample
from ablate.metrics.spectrum import (
    band_energy,
    band_mask,
    band_metrics,
    band_sums,
    hann2d,
    pool,
    radial_spectrum,
    spectrum,
)
from ablate.metrics.verdict import (
    HALLUCINATION_MIN_ENERGY_RATIO,
    HALLUCINATION_MIN_ERROR_RATIO,
    TRUE_SR_MAX_ERROR_RATIO,
    TRUE_SR_MIN_COHERENCE_GAIN,
)
from ablate.metrics.verdict import verdict as _verdict


def verdict(e, h, c, cb, fit=math.nan, lr=math.nan):
    """The band rule (NaN margins skip the gates; they are tested below and in
    test_evaluate.py)."""
    return _verdict(e, h, c, cb, fit_margin=fit, lr_margin=lr)
from ablate.spec.config import DataConfig

S = 32  # input size: Nyquist 16 cycles/image


def grating(r: int, ky: int, kx: int, amp: float = 0.3, n: int = 2) -> torch.Tensor:
    y = torch.arange(r, dtype=torch.float64).view(r, 1)
    x = torch.arange(r, dtype=torch.float64).view(1, r)
    img = 0.5 + amp * torch.cos(2 * math.pi * (ky * y + kx * x) / r + 0.3)
    return img.expand(n, 3, r, r).contiguous()


@pytest.mark.parametrize("ky,kx", [(0, 24), (20, 0), (21, 9)])
def test_grating_above_nyquist_has_its_energy_in_band(ky, kx):
    g = grating(64, ky, kx)
    assert band_energy(g, S) == pytest.approx(0.3**2 / 2, rel=0.03)  # variance A²/2
    freqs, power = radial_spectrum(g)
    assert freqs[int(power[1:].argmax()) + 1] == round(math.hypot(ky, kx))


def test_grating_below_nyquist_is_out_of_band():
    assert band_energy(grating(64, 0, 10), S) < 1e-3 * 0.3**2 / 2
    # diagonal (12, 12): radius 17 > 16, yet a 32×32 image holds it, so it is not "new" detail
    diag = grating(64, 12, 12)
    assert round(float(radial_spectrum(diag)[1][1:].argmax()) + 1) == 17
    assert band_energy(diag, S) < 1e-3 * 0.3**2 / 2


def test_power_sums_to_windowed_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64)
    w = hann2d(32, dtype=torch.float64)
    xc = x - x.mean(dim=(-2, -1), keepdim=True)
    expected = ((xc * w) ** 2).sum(dim=(-2, -1)) / (w**2).sum()
    got = spectrum(x).abs().pow(2).sum(dim=(-2, -1))
    assert torch.allclose(got, expected)
    m = band_mask(64, S)
    assert m.sum() == 64 * 64 - 33 * 33  # outside the input square, |fy|, |fx| ≤ 16


# --- verdicts on real photo crops ----------------------------------------------------------------


@pytest.fixture(scope="module")
def photos():
    cfg = DataConfig(hr_size=128, input_size=S, test_samples=12, split_seed=0)
    _, test = build_data(cfg, "cpu")
    return test


def _band_noise(shape, r, std, seed):
    g = torch.Generator().manual_seed(seed)
    n = torch.randn(shape, generator=g)
    n = torch.fft.ifft2(torch.fft.fft2(n) * band_mask(r, S)).real
    return std * n / n.std()


def _judge(pred, test, r):
    bic = bicubic_upsample(test.inputs, r)
    m = band_metrics(pred, bic, test.truth(r), S)
    return m, verdict(m["band_error_ratio"], m["hf_energy_ratio"], m["band_coherence"],
                      m["band_coherence_bicubic"])


@pytest.mark.parametrize("r", [64, 128])
def test_known_answers_on_photos(photos, r):
    truth = photos.truth(r)
    bic = bicubic_upsample(photos.inputs, r)

    m, v = _judge(bic, photos, r)
    assert v == "resampling"
    assert m["hf_energy_ratio"] == pytest.approx(1) and m["band_error_ratio"] == pytest.approx(1)
    assert m["band_coherence"] == pytest.approx(m["band_coherence_bicubic"])

    m, v = _judge(truth, photos, r)
    assert v == "true_sr"
    assert m["band_error_ratio"] == pytest.approx(0, abs=1e-12)
    assert m["band_coherence"] == pytest.approx(1)
    assert m["hf_energy_ratio"] > 5  # bicubic has little in-band energy on real photos

    noisy = (truth + _band_noise(truth.shape, r, 0.1, seed=r)).clamp(0, 1)
    m, v = _judge(noisy, photos, r)
    assert v == "hallucination"
    assert m["hf_energy_ratio"] > 10 and m["band_error_ratio"] > 2

    # detail recovered up to 3r/8 cycles/image (HR only down to ¾·r): real, partial SR
    partial = bicubic_upsample(downsample(photos.hr, r * 3 // 4), r)
    assert _judge(partial, photos, r)[1] == "true_sr"

    # other resamplers: bilinear is resampling; nearest's blocks are wrong in-band energy
    bilinear = F.interpolate(photos.inputs, size=(r, r), mode="bilinear", align_corners=False)
    assert _judge(bilinear, photos, r)[1] == "resampling"
    nearest = F.interpolate(photos.inputs, size=(r, r), mode="nearest")
    assert _judge(nearest, photos, r)[1] == "hallucination"


def test_flat_prediction_is_resampling_not_na(photos):
    flat = torch.full_like(photos.truth(64), 0.5)  # empty band
    m, v = _judge(flat, photos, 64)
    assert m["band_coherence"] == 0.0 and m["hf_energy_ratio"] == 0.0
    assert v == "resampling"


def test_band_metrics_refuses_without_band(photos):
    x = photos.inputs
    with pytest.raises(ValueError, match="no band"):
        band_metrics(x, x, x, S)


def test_verdict_rule_thresholds():
    cb = 0.1
    ok_coh = cb + TRUE_SR_MIN_COHERENCE_GAIN
    assert verdict(TRUE_SR_MAX_ERROR_RATIO, 3.0, ok_coh, cb) == "true_sr"
    assert verdict(TRUE_SR_MAX_ERROR_RATIO + 0.01, 3.0, ok_coh, cb) == "resampling"
    # lower error but no better agreement (a smoother resampler): not SR
    assert verdict(0.5, 0.2, cb, cb) == "resampling"
    h, e = HALLUCINATION_MIN_ENERGY_RATIO, HALLUCINATION_MIN_ERROR_RATIO
    assert verdict(e, h, 0.0, cb) == "hallucination"
    assert verdict(e - 0.01, h, 0.0, cb) == "resampling"  # energy added, error no worse
    assert verdict(5.0, h - 0.01, 0.0, cb) == "resampling"  # error up, but nothing added
    assert verdict(math.nan, 1.0, 0.5, cb) == "n/a"
    assert verdict(1.0, 1.0, math.nan, cb) == "n/a"


def test_gates_are_decided_first_unfit_then_inconsistent():
    cb = 0.1
    sr = (0.1, 3.0, 0.9, cb)  # band figures of a clear true_sr
    assert verdict(*sr, fit=0.5, lr=0.2) == "true_sr"
    assert verdict(*sr, fit=0.0, lr=0.2) == "unfit"  # the margin must clear 0
    assert verdict(*sr, fit=-0.1, lr=5.0) == "unfit"  # whatever the spectrum and r say
    assert verdict(math.nan, math.nan, math.nan, math.nan, fit=-1.0) == "unfit"  # at r = s too
    assert verdict(math.nan, math.nan, math.nan, math.nan, fit=1.0, lr=1.0) == "n/a"
    # fit at the input, but the output at r no longer reproduces it: its own verdict
    assert verdict(*sr, fit=0.5, lr=-0.2) == "inconsistent"
    assert verdict(*sr, fit=0.5, lr=0.0) == "inconsistent"
    assert verdict(*sr, fit=-0.5, lr=-0.2) == "unfit"  # unfit is decided before


def test_signed_coherence_counts_flipped_detail_against(photos):
    r = 64
    truth, bic = photos.truth(r), bicubic_upsample(photos.inputs, r)
    detail = truth - bic
    flipped = (bic - detail).clamp(0, 1)  # the in-band content with its sign flipped
    m = band_metrics(flipped, bic, truth, S)
    assert m["band_coherence"] < -0.5  # a squared coherence would call this agreement
    assert _judge(flipped, photos, r)[1] != "true_sr"
    assert m["truth_energy_ratio"] == pytest.approx(band_metrics(truth, bic, truth, S)
                                                    ["hf_energy_ratio"])


def test_pooled_metrics_are_the_per_image_sums_pooled(photos):
    r = 64
    truth, bic = photos.truth(r), bicubic_upsample(photos.inputs, r)
    pred = (bic + 0.3 * (truth - bic)).clamp(0, 1)
    sums = band_sums(pred, bic, truth, S)
    assert all(v.shape == (len(photos),) for v in sums.values())
    half = {k: v[: len(photos) // 2].numpy() for k, v in sums.items()}
    whole = pool({k: v.numpy() for k, v in sums.items()})
    assert whole == pytest.approx(band_metrics(pred, bic, truth, S))
    assert pool(half) != pytest.approx(whole)  # a subset pools to its own figures
