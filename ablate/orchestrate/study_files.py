"""What the files of a study directory say: which trials completed, failed, are running."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

RAY_CHECKPOINTS = "*/*/checkpoint_*/meta.json"  # <storage>/<experiment>/<trial_id>/checkpoint_N
LOCAL_CHECKPOINTS = "checkpoints/*/meta.json"  # <study>/checkpoints/<trial_id> (local, trial)


def trial_statuses(study_root: Path) -> dict[str, str]:
    """trial_id → 'completed' | 'failed' from trials/*.parquet (unreadable files skipped)."""
    out = {}
    for f in sorted((Path(study_root) / "trials").glob("*.parquet")):
        try:
            statuses = pq.read_table(f, columns=["status"]).column("status").to_pylist()
        except Exception:  # a foreign or damaged file: treated as not done, rewritten later
            continue
        out[f.stem] = "completed" if statuses and all(s == "completed" for s in statuses) else "failed"
    return out


def completed_ids(study_root: Path) -> set[str]:
    return {tid for tid, s in trial_statuses(study_root).items() if s == "completed"}


def latest_checkpoints(root: Path, pattern: str = RAY_CHECKPOINTS) -> dict[str, tuple[int, Path]]:
    """trial_id → (epoch, directory) of the newest complete checkpoint under `root`."""
    out: dict[str, tuple[int, Path]] = {}
    for meta in Path(root).glob(pattern):
        try:
            m = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if not (meta.parent / "checkpoint.pt").is_file():
            continue
        tid, epoch = m.get("trial_id"), int(m.get("epoch") or 0)
        if tid and (tid not in out or epoch > out[tid][0]):
            out[tid] = (epoch, meta.parent)
    return out
