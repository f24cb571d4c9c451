"""Synthetic result directories, written exactly per the result contract: the column tables of
``ablate.schema`` (names and Arrow types), the paths of ``ablate.results.layout`` and
the study's ``manifest.json`` (``ablate.results.manifest``).

The table and the report are built from the result contract alone, so their tests (and the
table benchmark) do not train anything: they write the Parquet files and artifacts a study
would write, with values chosen by the test. Import it from a test module (pytest puts
``tests/`` on ``sys.path``):

    from synthetic_results import Variant, make_study

A study here: variants × grid points × seeds trials, each one Parquet file of one row per eval
resolution. By default the values are a plausible, deterministic function of the variant's
``effect`` (dB over the baseline), the resolution and the seed; ``values`` overrides any column
of any row, so a test can pin exact numbers and compute the table by hand.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ablate.results.layout import PREDICTIONS_FILE, SPECTRA_FILE, StudyDir
from ablate.results.manifest import Manifest, PlannedTrial, PlannedVariant, write_manifest
from ablate.schema import HISTORY_COLUMNS, IMAGE_COLUMNS, SPECTRA_COLUMNS, TRIAL_COLUMNS

# Bicubic of the same 32×32 inputs: identical for every variant and seed (per resolution).
BICUBIC_PSNR = {64: 27.0, 96: 25.6, 128: 24.5}
BICUBIC_SSIM = {64: 0.82, 96: 0.76, 128: 0.70}
MODEL_PSNR = {32: 33.0, 64: 27.3, 96: 25.8, 128: 24.6}
MODEL_SSIM = {32: 0.95, 64: 0.83, 96: 0.77, 128: 0.71}


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    effect: float = 0.0  # dB added to the model's PSNR (SSIM: effect / 100)
    verdict: str = "resampling"  # verdict of its rows above the input size


# The Arrow schemas, from the column tables (as the writers use them).
TRIAL_SCHEMA = TRIAL_COLUMNS.schema
HISTORY_SCHEMA = HISTORY_COLUMNS.schema
SPECTRA_SCHEMA = SPECTRA_COLUMNS.schema
IMAGE_SCHEMA = IMAGE_COLUMNS.schema


def trial_id_of(study: str, variant: str, grid: str, seed: int) -> str:
    return hashlib.sha1(f"{study}|{variant}|{grid}|{seed}".encode()).hexdigest()[:12]


def _seed_noise(variant: str, grid: str, seed: int, resolution: int) -> float:
    """A deterministic, roughly N(0, 0.1²) offset per (variant, grid, seed, resolution)."""
    h = hashlib.sha1(f"{variant}|{grid}|{seed}|{resolution}".encode()).digest()
    return (int.from_bytes(h[:4], "little") / 2**32 - 0.5) * 0.35


def trial_rows(
    study: str, variant: Variant, order: int, grid: str, seed: int, resolutions, input_size: int,
    *, failed: bool = False, values: Callable | None = None, epochs: int = 4,
) -> dict[str, list]:
    """The rows one trial writes (column → list), every TRIAL_COLUMNS column filled."""
    tid = trial_id_of(study, variant.name, grid, seed)
    cols: dict[str, list] = {c: [] for c in TRIAL_COLUMNS}
    config = {"study": study, "variant": variant.name, "seed": seed,
              "data": {"input_size": input_size, "eval_resolutions": list(resolutions)}}
    for r in resolutions:
        noise = _seed_noise(variant.name, grid, seed, r)
        above = r > input_size
        row = {
            "study": study, "trial_id": tid, "variant": variant.name, "label": variant.label,
            "variant_order": order, "grid": grid, "seed": seed, "search": "",
            "status": "failed" if failed else "completed",
            "error": "RuntimeError: CUDA out of memory" if failed else "",
            "jitter": "per_batch", "jitter_dist": "gaussian", "jitter_std": 0.01,
            "multiscale": "off", "curriculum": "none", "sigmas": "128,32", "resolution": r,
            "psnr": MODEL_PSNR.get(r, 25.0) + variant.effect + noise,
            "ssim": MODEL_SSIM.get(r, 0.75) + variant.effect / 100 + noise / 100,
            "psnr_bicubic": BICUBIC_PSNR.get(r, 25.0) if above else float("nan"),
            "ssim_bicubic": BICUBIC_SSIM.get(r, 0.75) if above else float("nan"),
            "psnr_y": MODEL_PSNR.get(r, 25.0) + 1.0 + variant.effect + noise,
            "psnr_y_bicubic": BICUBIC_PSNR.get(r, 25.0) + 1.0 if above else float("nan"),
            "hf_energy_ratio": 1.0 + variant.effect / 4 if above else float("nan"),
            "band_error_ratio": 1.0 - variant.effect / 4 if above else float("nan"),
            "band_coherence": 0.3 + variant.effect / 10 if above else float("nan"),
            "band_coherence_bicubic": 0.3 if above else float("nan"),
            "psnr_lr_consistency": (MODEL_PSNR.get(input_size, 30.0) + variant.effect
                                    if r >= input_size else float("nan")),
            "psnr_lr_floor": 28.0 if r >= input_size else float("nan"),
            "truth_energy_ratio": 4.0 if above else float("nan"),
            "fit_margin": MODEL_PSNR.get(input_size, 30.0) + variant.effect - 28.5,
            "lr_margin": (MODEL_PSNR.get(input_size, 30.0) + variant.effect - 28.5
                          if r >= input_size else float("nan")),
            "verdict": variant.verdict if above else "n/a",
            "epochs": epochs, "train_seconds": 12.5, "train_img_per_s": 800.0,
            "device": "cpu", "mamba_backend": "torch", "node": "synthetic",
            "code_version": "0.1.0+synthetic",
            "config_json": json.dumps(config), "finished_at": "2025-01-01T00:00:00+00:00",
        }
        if failed:
            for c in ("psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "psnr_y", "psnr_y_bicubic",
                      "hf_energy_ratio", "band_error_ratio", "band_coherence",
                      "band_coherence_bicubic", "psnr_lr_consistency", "psnr_lr_floor"):
                row[c] = float("nan")
            row["verdict"] = "n/a"
        if values is not None:
            row.update(values(variant.name, grid, seed, r) or {})
        for c in TRIAL_COLUMNS:
            cols[c].append(row[c])
    return cols


def write_trial(study_root: Path, cols: dict[str, list]) -> Path:
    path = StudyDir(study_root).trial(cols["trial_id"][0])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(cols, schema=TRIAL_SCHEMA), path)
    return path


def write_images(study_root: Path, tid: str, rows: list[dict]) -> Path:
    """images/<tid>.parquet: rows with resolution, image, photo and any metric columns
    (the others NaN)."""
    cols = {c: [] for c in IMAGE_COLUMNS}
    for row in rows:
        full = {"trial_id": tid, **{c: float("nan") for c in list(IMAGE_COLUMNS)[4:]}, **row}
        for c in IMAGE_COLUMNS:
            cols[c].append(full[c])
    path = StudyDir(study_root).images(tid)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(cols, schema=IMAGE_SCHEMA), path)
    return path


def write_history(study_root: Path, study: str, tid: str, variant: Variant, seed: int,
                  epochs: int) -> None:
    e = np.arange(1, epochs + 1)
    loss = 0.02 * np.exp(-e / (epochs / 2)) / (1 + variant.effect) + 0.002
    noise = np.array([_seed_noise(variant.name, "h", seed, int(k)) for k in e]) / 10
    cols = {
        "study": [study] * epochs, "trial_id": [tid] * epochs,
        "variant": [variant.name] * epochs, "seed": [seed] * epochs, "epoch": e.tolist(),
        "loss": (loss * (1 + noise)).tolist(),
        "lr": (5e-4 * 0.5 * (1 + np.cos(np.pi * e / epochs))).tolist(),
        "quick_psnr": (-10 * np.log10(loss) + variant.effect + noise).tolist(),
        "img_per_s": [800.0] * epochs, "seconds": [1.3] * epochs,
        "resolutions": ["32"] * epochs, "resumed": [False] * epochs,
    }
    path = StudyDir(study_root).history(tid)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(cols, schema=HISTORY_SCHEMA), path)


def _images(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Test images with detail at every scale: (n, 3, size, size) in [0, 1]."""
    c = (np.arange(size) + 0.5) / size
    y, x = np.meshgrid(c, c, indexing="ij")
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        f = rng.uniform(3, 40, size=3)
        ang = rng.uniform(0, np.pi, size=3)
        for ch in range(3):
            phase = x * np.cos(ang[ch]) + y * np.sin(ang[ch])
            img = 0.5 + 0.25 * np.sin(2 * np.pi * f[ch] * phase)
            img += 0.2 * ((x - 0.5) ** 2 + (y - 0.5 + 0.1 * ch) ** 2 < 0.08)
            out[i, ch] = img
    return np.clip(out, 0, 1)


def _down(img: np.ndarray, factor: int) -> np.ndarray:
    n, c, h, w = img.shape
    return img.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def _up_smooth(img: np.ndarray, factor: int) -> np.ndarray:
    """A smooth upsampling (nearest, then a separable box blur): bicubic's stand-in."""
    up = img.repeat(factor, axis=2).repeat(factor, axis=3)
    k = np.ones(factor) / factor
    for ax in (2, 3):
        def blur(v):
            return np.convolve(np.pad(v, factor, mode="edge"), k, "same")[factor:-factor]
        up = np.apply_along_axis(blur, ax, up)
    return up.astype(np.float32)


def write_artifacts(study_root: Path, tid: str, variant: Variant, seed: int, resolutions,
                    input_size: int, n_images: int = 3) -> None:
    top = max(resolutions)
    rng = np.random.default_rng(1234)  # the same held-out images for every trial
    truth = _images(n_images, top, rng)
    inp = _down(truth, top // input_size)
    bic = _up_smooth(inp, top // input_size)
    gain = float(np.clip(0.3 + variant.effect / 2, 0, 0.95))
    noise = np.random.default_rng(seed).normal(0, 0.02, truth.shape).astype(np.float32)
    pred = np.clip(bic + gain * (truth - bic) + noise, 0, 1).astype(np.float32)
    adir = StudyDir(study_root).artifacts(tid)
    adir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(adir / PREDICTIONS_FILE, input=inp, bicubic=bic, prediction=pred,
                        truth=truth)
    rows = {"resolution": [], "kind": [], "frequency": [], "power": []}
    for r in resolutions:
        if r <= input_size:
            continue
        f = np.arange(1, r // 2 + 1, dtype=float)
        base = 1.0 / f**2
        nyq = input_size / 2
        cut = np.where(f > nyq, np.exp(-(f - nyq) / 10), 1.0)
        spectra = {"truth": base, "bicubic": base * cut,
                   "model": base * (cut + (1 - cut) * gain) * (1 + 0.05 * seed)}
        for kind, p in spectra.items():
            rows["resolution"] += [r] * len(f)
            rows["kind"] += [kind] * len(f)
            rows["frequency"] += f.tolist()
            rows["power"] += p.tolist()
    pq.write_table(pa.Table.from_pydict(rows, schema=SPECTRA_SCHEMA), adir / SPECTRA_FILE)


def write_study_manifest(study_root: Path, study: str, variants, seeds, resolutions,
                         input_size: int, baseline: str = "", grid=("",),
                         epochs: int = 6) -> Manifest:
    """manifest.json of the study `make_study` writes (every variant × grid point × seed)."""
    m = Manifest(
        study=study, baseline=baseline or variants[0].name, seeds=tuple(seeds),
        variants=tuple(PlannedVariant(v.name, v.label) for v in variants),
        grid=tuple(g for g in grid if g), input_size=input_size,
        eval_resolutions=tuple(sorted(resolutions)),
        trials=tuple(PlannedTrial(trial_id_of(study, v.name, g, s), v.name, s, g, epochs)
                     for v in variants for g in grid for s in seeds),
        written_by="synthetic")
    write_manifest(StudyDir(study_root), m)
    return m


def make_study(
    results: Path,
    name: str = "toy",
    variants: tuple[Variant, ...] = (
        Variant("original_bug", "Original (bug)", 0.0, "resampling"),
        Variant("per_batch", "Per-batch jitter", 0.4, "true_sr"),
        Variant("upsampled", "Upsampled-input targets", -0.2, "hallucination"),
    ),
    seeds=(0, 1, 2),
    resolutions=(32, 64, 128),
    input_size: int = 32,
    grid: tuple[str, ...] = ("",),
    *,
    baseline: str = "",
    manifest: bool = True,
    missing: set[tuple[str, int]] = frozenset(),  # (variant, seed) not run yet
    failed: set[tuple[str, int]] = frozenset(),  # (variant, seed) that failed
    drop_resolutions: dict[tuple[str, int], set[int]] | None = None,  # rows left out
    values: Callable | None = None,  # (variant, grid, seed, r) -> {column: value}
    history: bool = True,
    artifacts: bool = True,
    epochs: int = 6,
    images: Callable | None = None,  # (variant, grid, seed, r) -> [{image, photo, psnr, …}]
) -> Path:
    """Write a study under ``results/<name>/``; returns the study root."""
    root = Path(results) / name
    (root / "trials").mkdir(parents=True, exist_ok=True)
    if manifest:  # grid points in the order given (the spec's order)
        write_study_manifest(root, name, variants, seeds, resolutions, input_size, baseline,
                             grid, epochs)
    for g in grid:
        for order, v in enumerate(variants):
            for s in seeds:
                if (v.name, s) in missing:
                    continue
                res = [r for r in resolutions
                       if r not in (drop_resolutions or {}).get((v.name, s), set())]
                cols = trial_rows(name, v, order, g, s, res, input_size,
                                  failed=(v.name, s) in failed, values=values, epochs=epochs)
                write_trial(root, cols)
                tid = cols["trial_id"][0]
                if images is not None and (v.name, s) not in failed:
                    write_images(root, tid, [dict(row, resolution=r) for r in res
                                             for row in images(v.name, g, s, r) or []])
                if history and (v.name, s) not in failed:
                    write_history(root, name, tid, v, s, epochs)
                if artifacts and (v.name, s) not in failed:
                    write_artifacts(root, tid, v, s, res, input_size)
    return root
