"""When a trial counts as completed: one rule, used by `ablate run` (what to skip), `ablate
status` and `ablate table`.

    f = read_trial_file(study_dir.trial(trial_id))
    f.state      # "completed" | "failed" | "stopped" | "unreadable"
    f.table      # every column of every row (None when unreadable)
    f.reason     # why it is unreadable

A trial is **completed** when its whole trial file reads (every column of every row, not only
`status`), has the columns a row needs, and every row says `status = completed`; **stopped**
when its rows say `stopped` (an `ablate search` trial ended early on purpose by ASHA) and none
`failed`; **failed** when it reads and says neither; **unreadable** otherwise (truncated, damaged, foreign): such a
trial is run again by the next `ablate run`, whose commit replaces the file. Torch-free,
Ray-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# Without these a trial row means nothing: a file lacking one is unreadable.
REQUIRED_COLUMNS: tuple[str, ...] = ("variant", "seed", "status", "resolution")
MAX_RESOLUTION = 8192  # no study evaluates above this; a larger one is not a trial's row


@dataclass(frozen=True)
class TrialFile:
    path: Path
    state: str  # "completed" | "failed" | "stopped" | "unreadable"
    table: pa.Table | None = None
    reason: str = ""


def read_trial_file(path: str | Path) -> TrialFile:
    path = Path(path)
    if not path.is_file():  # a FIFO or a device named like a trial file would block a read
        return TrialFile(path, "unreadable", reason="not a regular file: not opened")
    try:
        f = pq.ParquetFile(path, pre_buffer=False)
        try:
            t = f.read(use_threads=False)  # all of it: a damaged column makes it unreadable
        finally:
            f.close()
    except Exception as e:  # noqa: BLE001 — still being written, truncated, not Parquet
        return TrialFile(path, "unreadable", reason=f"{type(e).__name__}: {e}")
    lacking = [c for c in REQUIRED_COLUMNS if c not in t.column_names]
    if lacking:
        return TrialFile(path, "unreadable", reason=f"missing columns {lacking}")
    if not t.num_rows:
        return TrialFile(path, "unreadable", reason="no rows")
    resolutions = t.column("resolution").to_pylist()
    seeds = t.column("seed").to_pylist()
    if len(set(resolutions)) != len(resolutions):  # one row per eval resolution, no more
        return TrialFile(path, "unreadable", reason="rows repeat a resolution")
    if any(not isinstance(r, int) or not 1 <= r <= MAX_RESOLUTION for r in resolutions):
        return TrialFile(path, "unreadable", reason=f"a resolution outside 1…{MAX_RESOLUTION}")
    if any(not isinstance(x, int) or x < 0 for x in seeds):
        return TrialFile(path, "unreadable", reason="a seed that is not a whole number ≥ 0")
    statuses = [str(s or "").strip().lower() for s in t.column("status").to_pylist()]
    if all(s == "completed" for s in statuses):
        state = "completed"
    elif "stopped" in statuses and set(statuses) <= {"stopped", "completed"}:
        state = "stopped"
    else:
        state = "failed"
    return TrialFile(path, state, t)
