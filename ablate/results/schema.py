"""The result contract: directory layout and Parquet columns (design.md, "Results layout").

```
<results>/<study>/study.toml                       copy of the spec that ran
<results>/<study>/trials/<trial_id>.parquet        one row per eval resolution (TRIAL_COLUMNS)
<results>/<study>/history/<trial_id>.parquet       one row per epoch (HISTORY_COLUMNS)
<results>/<study>/images/<trial_id>.parquet        one row per eval resolution × held-out crop
        (IMAGE_COLUMNS): the per-image metrics the trial row averages (completed trials only;
        results written before ablate kept them have none)
<results>/<study>/artifacts/<trial_id>/predictions.npz   held-out images at the top resolution:
        input (n,3,s,s), bicubic, prediction, truth (n,3,R,R), float32 in [0, 1]
<results>/<study>/artifacts/<trial_id>/spectra.parquet   radially averaged power spectra
        (SPECTRA_COLUMNS): kind ∈ {truth, bicubic, model}, per eval resolution above input
```

A reader needs only pandas or pyarrow. Everything here is Ray-free.
"""

from __future__ import annotations

from pathlib import Path

# Column name → meaning. Order is the order written.
TRIAL_COLUMNS: dict[str, str] = {
    "study": "study name",
    "trial_id": "stable hash of the resolved trial config",
    "variant": "variant name",
    "label": "variant label (table row)",
    "variant_order": "index of the variant in the spec (table order)",
    "grid": "grid point, e.g. 'sigmas=[128,32]' ('' without a grid)",
    "seed": "training seed",
    "status": "completed | failed",
    "error": "error message of a failed trial ('' otherwise)",
    "jitter": "jitter placement",
    "jitter_dist": "gaussian | uniform | none",
    "jitter_std": "gaussian std in coordinate units",
    "multiscale": "multi-scale mode and resolutions",
    "curriculum": "curriculum stages ('none')",
    "sigmas": "decoder band sigmas, comma separated",
    "resolution": "eval resolution r (side, pixels)",
    "psnr": "model PSNR (dB) vs HR downsampled to r; NaN where no ground truth exists",
    "ssim": "model SSIM vs ground truth at r",
    "psnr_bicubic": "bicubic upsampling of the input, PSNR; NaN at r = input size",
    "ssim_bicubic": "bicubic SSIM; NaN at r = input size",
    "psnr_y": "model Y-PSNR (dB): BT.601 luma, ceil(r / input size) px border shaved (SR papers)",
    "psnr_y_bicubic": "bicubic Y-PSNR; NaN at r = input size",
    "hf_energy_ratio": "in-band (f > input Nyquist) power, model / bicubic",
    "band_error_ratio": "in-band error power vs truth, model / bicubic",
    "band_coherence": "in-band magnitude-squared coherence of model with truth",
    "band_coherence_bicubic": "same, for bicubic",
    "psnr_lr_consistency": "the fitness gate: model output at r downsampled to the input size "
    "(the input's own downsampler), PSNR vs the input; NaN below the input size",
    "psnr_lr_floor": "the gate's threshold: PSNR of the input's quarter-resolution copy (down 4×, "
    "bicubic back up) vs the input; below it the verdict is unfit",
    "verdict": "unfit | true_sr | resampling | hallucination | n/a (ablate.metrics.verdict)",
    "epochs": "epochs trained",
    "train_seconds": "training wall time, seconds",
    "train_img_per_s": "training throughput, images per second",
    "device": "device the trial trained on",
    "mamba_backend": "selective-scan backend used",
    "code_version": "ablate version + git commit",
    "config_json": "the fully resolved trial config (JSON)",
    "finished_at": "UTC ISO time the trial finished",
}

HISTORY_COLUMNS: dict[str, str] = {
    "study": "study name",
    "trial_id": "trial id",
    "variant": "variant name",
    "seed": "training seed",
    "epoch": "1-based epoch",
    "loss": "mean training MSE of the epoch",
    "lr": "learning rate at the end of the epoch",
    "quick_psnr": "PSNR at the input resolution on a few held-out images",
    "img_per_s": "training images per second in this epoch",
    "seconds": "wall time of the epoch",
    "resolutions": "training resolutions of this epoch, comma separated",
    "resumed": "True for the first epoch run after resuming from a checkpoint",
}

IMAGE_COLUMNS: dict[str, str] = {
    "trial_id": "trial id",
    "resolution": "eval resolution r",
    "image": "index of the crop in the held-out set (the same crop in every trial of a data config)",
    "photo": "the held-out photo the crop comes from (the table resamples photos)",
    "psnr": "model PSNR (dB) of this crop",
    "psnr_y": "model Y-PSNR (dB) of this crop",
    "ssim": "model SSIM of this crop",
    "psnr_bicubic": "bicubic PSNR; NaN at r ≤ input size",
    "psnr_y_bicubic": "bicubic Y-PSNR; NaN at r ≤ input size",
    "ssim_bicubic": "bicubic SSIM; NaN at r ≤ input size",
}

SPECTRA_COLUMNS: dict[str, str] = {
    "resolution": "eval resolution",
    "kind": "truth | bicubic | model",
    "frequency": "radial frequency, cycles per image",
    "power": "mean radially averaged power",
}


def study_dir(results: str | Path, study: str) -> Path:
    return Path(results) / study


def trial_path(study_root: Path, trial_id: str) -> Path:
    return study_root / "trials" / f"{trial_id}.parquet"


def history_path(study_root: Path, trial_id: str) -> Path:
    return study_root / "history" / f"{trial_id}.parquet"


def images_path(study_root: Path, trial_id: str) -> Path:
    return study_root / "images" / f"{trial_id}.parquet"


def artifacts_dir(study_root: Path, trial_id: str) -> Path:
    return study_root / "artifacts" / trial_id
