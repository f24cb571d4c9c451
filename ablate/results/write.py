"""Writing results: Parquet files with a fixed schema, atomically (temporary file, rename).

A reader never sees a half-written file: each file is written beside its final name and
renamed into place, which is atomic on one filesystem.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ablate.results.schema import (HISTORY_COLUMNS, IMAGE_COLUMNS, TRIAL_COLUMNS, history_path,
                                   images_path, trial_path)

_STR, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
TRIAL_SCHEMA = pa.schema([(name, {
    "variant_order": _I, "seed": _I, "resolution": _I, "epochs": _I,
    "jitter_std": _F, "psnr": _F, "ssim": _F, "psnr_bicubic": _F, "ssim_bicubic": _F,
    "psnr_y": _F, "psnr_y_bicubic": _F,
    "hf_energy_ratio": _F, "band_error_ratio": _F, "band_coherence": _F,
    "band_coherence_bicubic": _F, "psnr_lr_consistency": _F, "psnr_lr_floor": _F,
    "train_seconds": _F, "train_img_per_s": _F,
}.get(name, _STR)) for name in TRIAL_COLUMNS])
IMAGE_SCHEMA = pa.schema([(name, {"trial_id": _STR, "resolution": _I, "image": _I,
                                   "photo": _STR}.get(name, _F)) for name in IMAGE_COLUMNS])
HISTORY_SCHEMA = pa.schema([(name, {
    "seed": _I, "epoch": _I, "loss": _F, "lr": _F, "quick_psnr": _F, "img_per_s": _F,
    "seconds": _F, "resumed": _B,
}.get(name, _STR)) for name in HISTORY_COLUMNS])


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    missing = [c for c in schema.names if any(c not in r for r in rows)]
    if missing:
        raise ValueError(f"result rows lack columns {missing}")
    cols = {c: [r[c] for r in rows] for c in schema.names}
    return pa.Table.from_pydict(cols, schema=schema)


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_trial(study_root: Path, trial_id: str, rows: list[dict]) -> Path:
    return write_parquet_atomic(_table(rows, TRIAL_SCHEMA), trial_path(study_root, trial_id))


def write_history(study_root: Path, trial_id: str, rows: list[dict]) -> Path:
    return write_parquet_atomic(_table(rows, HISTORY_SCHEMA), history_path(study_root, trial_id))


def write_images(study_root: Path, trial_id: str, rows: list[dict],
                 path: Path | None = None) -> Path:
    """images/<trial_id>.parquet (or `path`): the per-image rows of `EvalResult.images`."""
    table = _table([{"trial_id": trial_id, **r} for r in rows], IMAGE_SCHEMA)
    return write_parquet_atomic(table, path or images_path(study_root, trial_id))


OVERRIDES_MARK = "# ablate --set (json): "


def write_spec_copy(study_root: Path, spec_path: str, overrides=()) -> None:
    """results/<study>/study.toml: the spec that ran (+ the --set overrides, as a comment)."""
    study_root.mkdir(parents=True, exist_ok=True)
    dst = study_root / "study.toml"
    tmp = dst.with_name(f".study.toml.{os.getpid()}.tmp")
    shutil.copyfile(spec_path, tmp)
    if overrides:  # one JSON line, replayed by ablate.results.read with the spec's own --set
        with open(tmp, "a") as f:
            f.write(f"\n{OVERRIDES_MARK}{json.dumps(list(overrides))}\n")
    os.replace(tmp, dst)


@functools.cache
def code_version() -> str:
    """ablate's version and, inside a git checkout, the commit (+dirty)."""
    from ablate import __version__

    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    if not sha:
        return __version__
    return f"{__version__}+g{sha}" + (".dirty" if dirty else "")
