"""What the files of a study directory say: which trials finished, which are running, which
checkpoints exist. Paths come from `ablate.results.layout.StudyDir`.

Running markers (`running/<trial_id>.json`: variant, seed, start time, latest epoch) are
written by the driver when a trial starts and at each epoch, and removed when the trial is
committed, so `ablate status` shows a trial as running from its start, not from its first
checkpoint; a marker left behind by a stopped run marks the trial interrupted.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ablate.results.atomic import atomic_write_text
from ablate.results.checkpoint_meta import CheckpointMeta
from ablate.results.trial_file import read_trial_file
from ablate.results.layout import CHECKPOINT_FILE, RAY_CHECKPOINTS, STAGING_PREFIX, StudyDir
from ablate.spec.config import TrialConfig


def trial_statuses(study_dir: StudyDir) -> dict[str, str]:
    """trial_id → 'completed' | 'failed' | 'stopped' | 'unreadable' from trials/*.parquet, by the one rule
    of results/trial_file.py (an unreadable file's trial is run again)."""
    return {f.stem: read_trial_file(f).state
            for f in sorted(study_dir.trials_dir.glob("*.parquet"))}


def completed_ids(study_dir: StudyDir) -> set[str]:
    return {tid for tid, s in trial_statuses(study_dir).items() if s == "completed"}


def all_checkpoints(root: Path, pattern: str = RAY_CHECKPOINTS) -> dict[str, list[tuple[int, Path]]]:
    """trial_id → [(epoch, directory), …] of every complete checkpoint under `root`, newest
    first (`pattern`: a glob of meta.json files, results/layout.py). A meta.json that does not
    read as {"trial_id": str, "epoch": int} is ignored."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for path in Path(root).glob(pattern):
        meta = CheckpointMeta.read(path)
        if meta is None or not (path.parent / CHECKPOINT_FILE).is_file():
            continue
        out.setdefault(meta.trial_id, []).append((meta.epoch, path.parent))
    return {tid: sorted(found, key=lambda x: (-x[0], str(x[1]))) for tid, found in out.items()}


def latest_checkpoints(root: Path, pattern: str = RAY_CHECKPOINTS) -> dict[str, tuple[int, Path]]:
    """trial_id → (epoch, directory) of the newest complete checkpoint under `root`."""
    return {tid: found[0] for tid, found in all_checkpoints(root, pattern).items()}


# -- running markers -------------------------------------------------------------------------


def mark_running(study_dir: StudyDir, cfg: TrialConfig, epoch: int = 0, node: str = "") -> None:
    """The trial has started (epoch 0) or finished `epoch` (on Ray `node`, when known);
    removed by `results.commit`."""
    path = study_dir.running(cfg.trial_id)
    started = _started(path) or datetime.now(timezone.utc).isoformat(timespec="seconds")
    atomic_write_text(path, json.dumps({"trial_id": cfg.trial_id, "variant": cfg.variant,
                                        "seed": cfg.seed, "started": started, "epoch": epoch,
                                        "node": node}))


def _started(path: Path) -> str:
    try:
        return str(json.loads(path.read_text()).get("started") or "")
    except (OSError, ValueError, AttributeError):
        return ""


def running_markers(study_dir: StudyDir) -> dict[str, int]:
    """trial_id → latest epoch of every trial marked running (started, not committed)."""
    out = {}
    for p in sorted(study_dir.running_dir.glob("*.json")):
        try:
            out[p.stem] = int(json.loads(p.read_text()).get("epoch") or 0)
        except (OSError, ValueError, AttributeError, TypeError, RecursionError):
            out[p.stem] = 0  # being rewritten: it exists, so the trial has started
    return out


def remove_empty(study_dir: StudyDir) -> None:
    """Drop the run's own folders when nothing is left in them (running markers, Ray's work
    folders): a finished run leaves only what it wrote. Called with the run lock held."""
    for d in (study_dir.running_dir, study_dir.work_dir):
        try:
            d.rmdir()  # only when empty
        except OSError:
            pass


def clear_stale(study_dir: StudyDir) -> None:
    """Drop what a previous, stopped run left: running markers, staging and work folders, and
    temporary files of interrupted writes (called with the run lock held, so nothing else is
    writing them)."""
    for p in study_dir.running_dir.glob("*.json"):
        p.unlink(missing_ok=True)
    for p in study_dir.root.glob(f"{STAGING_PREFIX}*"):
        shutil.rmtree(p, ignore_errors=True)
    shutil.rmtree(study_dir.work_dir, ignore_errors=True)  # killed Ray workers' work folders
    for p in study_dir.root.rglob(".*.*"):  # atomic_write's temporaries (".<name>.<pid>.tmp")
        if p.name.endswith((".tmp", ".old")) and p.name.count(".") >= 3:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
