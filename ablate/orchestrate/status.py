"""`ablate status`: progress of a study from its files alone (running or finished).

Completed and failed come from trials/*.parquet; the trial list from plan.json (written by
`ablate run`); running trials from checkpoints newer than any trial file, while the study's run
lock is held — without the lock they are "interrupted" and resume on the next run.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ablate.orchestrate.study_files import (LOCAL_CHECKPOINTS, RAY_CHECKPOINTS,
                                             latest_checkpoints, trial_statuses)


@dataclass
class StudyStatus:
    name: str
    root: Path
    total: int
    completed: int
    failed: int
    running: int
    interrupted: int
    pending: int
    active: bool  # an `ablate run` holds the lock
    in_progress: dict[str, int] = field(default_factory=dict)  # trial_id → last epoch
    labels: dict[str, str] = field(default_factory=dict)  # trial_id → "variant seed s"


def _locked(study_root: Path) -> bool:
    p = study_root / ".run.lock"
    if not p.exists():
        return False
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:  # held by a running `ablate run`
        return True
    except OSError:  # no flock on this filesystem: cannot tell
        return False
    finally:
        os.close(fd)


def checkpoint_epochs(study_root: Path) -> dict[str, int]:
    """trial_id → latest checkpointed epoch (Ray storage and local checkpoints)."""
    out: dict[str, int] = {}
    for found in (latest_checkpoints(study_root, LOCAL_CHECKPOINTS),
                  latest_checkpoints(study_root / "ray", RAY_CHECKPOINTS)):
        for tid, (epoch, _) in found.items():
            out[tid] = max(out.get(tid, 0), epoch)
    return out


def study_dirs(path: Path) -> list[Path]:
    path = Path(path)
    if (path / "trials").is_dir() or (path / "plan.json").exists():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_dir()
                  and ((p / "trials").is_dir() or (p / "plan.json").exists())) if path.is_dir() else []


def study_status(study_root: Path) -> StudyStatus:
    statuses = trial_statuses(study_root)
    plan = {}
    if (study_root / "plan.json").exists():
        try:
            plan = json.loads((study_root / "plan.json").read_text())
        except ValueError:
            plan = {}
    planned = [t["trial_id"] for t in plan.get("trials", [])] or list(statuses)
    labels = {t["trial_id"]: f"{t['variant']} seed {t['seed']}" + (f" [{t['grid']}]" if t.get("grid") else "")
              for t in plan.get("trials", [])}
    active = _locked(study_root)
    epochs = checkpoint_epochs(study_root)
    in_progress = {tid: epochs[tid] for tid in planned if tid not in statuses and tid in epochs}
    completed = sum(1 for t in planned if statuses.get(t) == "completed")
    failed = sum(1 for t in planned if statuses.get(t) == "failed")
    running = len(in_progress) if active else 0
    interrupted = 0 if active else len(in_progress)
    return StudyStatus(name=plan.get("study", study_root.name), root=study_root,
                       total=len(planned), completed=completed, failed=failed, running=running,
                       interrupted=interrupted,
                       pending=len(planned) - completed - failed - running - interrupted,
                       active=active, in_progress=in_progress, labels=labels)
