"""What the files of a study directory say: which trials completed, failed, are running."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


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
