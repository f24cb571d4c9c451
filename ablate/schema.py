"""The results schema: one table of columns (name, Arrow type, meaning) per kind of file.

Everything that writes or reads result files derives from these tables: the writers
(``results/write.py``: the Arrow schema of each file; a row with a column missing or not
listed here is an error), the reader (``results/read.py``: which columns are text and which
numbers), the metric keys of an evaluation (``METRIC_KEYS``, ``IMAGE_METRICS``) and the test
fixtures (``tests/synthetic_results.py``). Where each file lives: ``results/layout.py``.

    TRIAL_COLUMNS      trials/<trial_id>.parquet, one row per eval resolution
    HISTORY_COLUMNS    history/<trial_id>.parquet, one row per epoch
    IMAGE_COLUMNS      images/<trial_id>.parquet, one row per eval resolution × held-out crop
    SPECTRA_COLUMNS    artifacts/<trial_id>/spectra.parquet

    list(TRIAL_COLUMNS)            # the names, in the order written
    TRIAL_COLUMNS["psnr"].doc      # what a column means
    TRIAL_COLUMNS.schema           # the Arrow schema

Adding a column: add it here (older files lack it; the reader gives NaN or "" for it).
Ray-free, torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Literal

import pyarrow as pa

Role = Literal["key", "config", "outcome", "metric", ""]

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    role: Role = ""  # trial columns: config (from the trial's config) | outcome (of the run) |
    #   metric (of the evaluation, per resolution); image columns: key | metric

    @property
    def is_text(self) -> bool:
        return pa.types.is_string(self.type)

    @property
    def is_number(self) -> bool:
        return pa.types.is_integer(self.type) or pa.types.is_floating(self.type)


@dataclass(frozen=True)
class Columns:
    """An ordered table of columns; iterating gives the names."""

    columns: tuple[Column, ...]

    def __iter__(self) -> Iterator[str]:
        return (c.name for c in self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __contains__(self, name) -> bool:
        return any(c.name == name for c in self.columns)

    def __getitem__(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"no result column {name!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])

    def with_role(self, role: Role) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == role)


def _table(*cols: tuple) -> Columns:
    return Columns(tuple(Column(*c) for c in cols))


TRIAL_COLUMNS = _table(
    ("study", _S, "study name", "config"),
    ("trial_id", _S, "stable hash of the resolved trial config", "config"),
    ("variant", _S, "variant name", "config"),
    ("label", _S, "variant label (table row)", "config"),
    ("variant_order", _I, "index of the variant in the spec (table order)", "config"),
    ("grid", _S, "grid point, e.g. 'sigmas=[128,32]' ('' without a grid)", "config"),
    ("seed", _I, "training seed", "config"),
    ("search", _S, "the `ablate search` that sampled the trial ('' for the study's own trials, "
     "'<name>:confirm' for its best configurations re-run with the study's seeds; older files "
     "lack the column)", "config"),
    ("status", _S, "completed | failed | stopped (by `ablate search`'s ASHA scheduler: a "
     "poor trial ended early, metrics NaN)", "outcome"),
    ("error", _S, "error message of a failed trial ('' otherwise)", "outcome"),
    ("jitter", _S, "jitter placement", "config"),
    ("jitter_dist", _S, "gaussian | uniform | none", "config"),
    ("jitter_std", _F, "gaussian std in coordinate units", "config"),
    ("multiscale", _S, "multi-scale mode and resolutions", "config"),
    ("curriculum", _S, "curriculum stages ('none')", "config"),
    ("sigmas", _S, "decoder band sigmas, comma separated", "config"),
    ("resolution", _I, "eval resolution r (side, pixels)", "metric"),
    ("psnr", _F, "model PSNR (dB) vs HR downsampled to r; NaN where no ground truth exists",
     "metric"),
    ("ssim", _F, "model SSIM vs ground truth at r", "metric"),
    ("psnr_bicubic", _F, "bicubic upsampling of the input, PSNR; NaN at r = input size",
     "metric"),
    ("ssim_bicubic", _F, "bicubic SSIM; NaN at r = input size", "metric"),
    ("psnr_y", _F, "model Y-PSNR (dB): BT.601 luma, ceil(r / input size) px border shaved "
     "(SR papers)", "metric"),
    ("psnr_y_bicubic", _F, "bicubic Y-PSNR; NaN at r = input size", "metric"),
    ("hf_energy_ratio", _F, "in-band (f > input Nyquist) power, model / bicubic", "metric"),
    ("band_error_ratio", _F, "in-band error power vs truth, model / bicubic", "metric"),
    ("band_coherence", _F, "in-band signed coherence of model with truth: Re Σ P·T* / "
     "√(Σ|P|² Σ|T|²), in [-1, 1] (ablate.metrics.spectrum)", "metric"),
    ("band_coherence_bicubic", _F, "same, for bicubic", "metric"),
    ("truth_energy_ratio", _F, "in-band power of the truth / bicubic's (what a model that "
     "recovers the band would reach in hf_energy_ratio)", "metric"),
    ("psnr_lr_consistency", _F, "model output at r downsampled to the input size (the input's "
     "own downsampler), PSNR vs the input (at r = input: the model's fit of its input); NaN "
     "below the input size", "metric"),
    ("psnr_lr_floor", _F, "the gates' reference: PSNR of the input's half-resolution copy "
     "(down 2×, bicubic back up) vs the input", "metric"),
    ("fit_margin", _F, "gate 1 (unfit when ≤ 0): lower end of the 95% interval over held-out "
     "photos of the mean per-image PSNR at the input minus the half-resolution copy's, dB; "
     "decided at r = input, the same on every row of the trial", "metric"),
    ("lr_margin", _F, "gate 2 (inconsistent when ≤ 0): the same lower bound for "
     "psnr_lr_consistency at r, dB", "metric"),
    ("verdict", _S, "unfit | inconsistent | true_sr | resampling | hallucination | n/a "
     "(ablate.metrics.verdict)", "metric"),
    ("epochs", _I, "epochs trained", "outcome"),
    ("train_seconds", _F, "training wall time, seconds", "outcome"),
    ("train_img_per_s", _F, "training throughput, images per second", "outcome"),
    ("device", _S, "device the trial trained on", "outcome"),
    ("node", _S, "machine the trial trained on: '<ip>/<Ray node id, 12 hex>' on Ray, the host "
     "name without Ray ('' in files written before this column, and for a trial that failed "
     "before its node was known)", "outcome"),
    ("mamba_backend", _S, "selective-scan backend used", "outcome"),
    ("code_version", _S, "ablate version + git commit", "config"),
    ("config_json", _S, "the fully resolved trial config (JSON)", "config"),
    ("finished_at", _S, "UTC ISO time the trial finished", "outcome"),
)

QUICK_PSNR_IMAGES = 8  # held-out images of the per-epoch `quick_psnr` (the first 8)

HISTORY_COLUMNS = _table(
    ("study", _S, "study name"),
    ("trial_id", _S, "trial id"),
    ("variant", _S, "variant name"),
    ("seed", _I, "training seed"),
    ("epoch", _I, "1-based epoch"),
    ("loss", _F, "mean training MSE of the epoch"),
    ("lr", _F, "learning rate at the end of the epoch"),
    ("quick_psnr", _F, f"PSNR at the input resolution on the first {QUICK_PSNR_IMAGES} held-out images"),
    ("img_per_s", _F, "training images per second in this epoch"),
    ("seconds", _F, "wall time of the epoch"),
    ("resolutions", _S, "training resolutions of this epoch, comma separated"),
    ("resumed", _B, "True for the first epoch run after resuming from a checkpoint"),
)

IMAGE_COLUMNS = _table(
    ("trial_id", _S, "trial id", "key"),
    ("resolution", _I, "eval resolution r", "key"),
    ("image", _I, "index of the crop in the held-out set (the same crop in every trial of a "
     "data config)", "key"),
    ("photo", _S, "the held-out photo the crop comes from (the table resamples photos)", "key"),
    ("psnr", _F, "model PSNR (dB) of this crop", "metric"),
    ("psnr_y", _F, "model Y-PSNR (dB) of this crop", "metric"),
    ("ssim", _F, "model SSIM of this crop", "metric"),
    ("psnr_bicubic", _F, "bicubic PSNR; NaN at r ≤ input size", "metric"),
    ("psnr_y_bicubic", _F, "bicubic Y-PSNR; NaN at r ≤ input size", "metric"),
    ("ssim_bicubic", _F, "bicubic SSIM; NaN at r ≤ input size", "metric"),
    ("psnr_lr_consistency", _F, "this crop's psnr_lr_consistency (NaN below the input size)",
     "metric"),
    ("psnr_lr_floor", _F, "this crop's half-resolution copy PSNR vs its input", "metric"),
    ("band_energy", _F, "in-band Σ|P|² of the model (ablate.metrics.spectrum.band_sums); NaN at "
     "r ≤ input size", "metric"),
    ("band_energy_bicubic", _F, "in-band Σ|B|² of bicubic", "metric"),
    ("band_energy_truth", _F, "in-band Σ|T|² of the truth", "metric"),
    ("band_error", _F, "in-band Σ|P − T|²", "metric"),
    ("band_error_bicubic", _F, "in-band Σ|B − T|²", "metric"),
    ("band_cross", _F, "in-band Re Σ P·T*", "metric"),
    ("band_cross_bicubic", _F, "in-band Re Σ B·T*", "metric"),
)

SPECTRA_COLUMNS = _table(
    ("resolution", _I, "eval resolution"),
    ("kind", _S, "truth | bicubic | model"),
    ("frequency", _F, "radial frequency, cycles per image"),
    ("power", _F, "mean radially averaged power"),
)

# What an evaluation measures per eval resolution (the trial row's metric columns), and per
# held-out crop (an image row's metric columns).
METRIC_KEYS: tuple[str, ...] = TRIAL_COLUMNS.with_role("metric")
IMAGE_METRICS: tuple[str, ...] = IMAGE_COLUMNS.with_role("metric")
