"""`ablate status`: progress of a study from its files alone (running or finished).

Completed and failed come from trials/*.parquet; the trial list and labels from the manifest
(results/manifest.py, or the previous layout's plan.json); running trials from the running
markers the driver writes when a trial starts (study_files.py) while the study's run lock is
held. Without the lock, a trial with a marker or a checkpoint but no trial file is
"interrupted": it resumes on the next run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ablate.orchestrate.lock import StudyLock
from ablate.orchestrate.study_files import latest_checkpoints, running_markers, trial_statuses
from ablate.results.layout import LOCAL_CHECKPOINTS, StudyDir
from ablate.results.manifest import ManifestError
from ablate.results.read import study_manifest
from ablate.results.search import search_records, search_trials


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
    active: bool  # an `ablate run` (or `ablate trial`) holds the lock
    in_progress: dict[str, int] = field(default_factory=dict)  # trial_id → last epoch done
    labels: dict[str, str] = field(default_factory=dict)  # trial_id → "variant seed s"
    problem: str = ""  # why the trial list comes from the trial files alone
    unreadable: list[str] = field(default_factory=list)  # trial files that do not read (the
    #   trials count as pending: the next run runs them again)
    stopped: int = 0  # ended early on purpose (ASHA of `ablate search`): neither done nor failed
    searches: list["SearchStatus"] = field(default_factory=list)  # the study's `ablate search`es
    apart: list[str] = field(default_factory=list)  # completed trials the manifest does not
    #   plan and no search sampled: an earlier configuration's (orchestrate/changes.py)


@dataclass
class SearchStatus:
    """One `ablate search` of the study: its sampled trials (not in the manifest) by status."""

    name: str
    num_samples: int
    completed: int
    stopped: int  # by ASHA
    failed: int


def checkpoint_epochs(study_dir: StudyDir) -> dict[str, int]:
    """trial_id → latest checkpointed epoch (local checkpoints, Ray's default storage)."""
    out: dict[str, int] = {}
    for found in (latest_checkpoints(study_dir.root, LOCAL_CHECKPOINTS),
                  latest_checkpoints(study_dir.ray_storage)):
        for tid, (epoch, _) in found.items():
            out[tid] = max(out.get(tid, 0), epoch)
    return out


def resume_points(study_dir: StudyDir, storage: str | Path | None = None) -> dict[str, int]:
    """Trials a stopped run left unfinished (started, no trial file) → the epoch of their
    latest checkpoint (0: none yet, the trial starts over). `storage`: Ray's storage path when
    it is not the study's own (`ablate run --storage`)."""
    epochs = checkpoint_epochs(study_dir)
    if storage is not None and Path(storage).resolve() != study_dir.ray_storage.resolve() \
            and Path(storage).exists():
        for tid, (epoch, _) in latest_checkpoints(Path(storage)).items():
            epochs[tid] = max(epochs.get(tid, 0), epoch)
    done = trial_statuses(study_dir)
    return {tid: epochs.get(tid, 0) for tid in running_markers(study_dir) if tid not in done}


def study_status(study_dir: StudyDir) -> StudyStatus:
    every = trial_statuses(study_dir)
    statuses = {tid: st for tid, st in every.items() if st != "unreadable"}
    unreadable = sorted(set(every) - set(statuses))
    problem = ""
    try:
        manifest = study_manifest(study_dir)
    except ManifestError as e:
        manifest, problem = None, str(e)
    planned = [t.trial_id for t in manifest.trials] if manifest else []
    planned = planned or list(statuses)
    labels = {t.trial_id: t.describe() for t in manifest.trials} if manifest else {}
    active = StudyLock(study_dir).is_held()
    started = running_markers(study_dir)
    epochs = checkpoint_epochs(study_dir)
    if active:  # this run's trials: those it started (a checkpoint alone is not running)
        in_progress = {tid: max(ep, epochs.get(tid, 0)) for tid, ep in started.items()
                       if tid not in statuses}
    else:  # a stopped run's: started, or checkpointed (also by runs before the markers)
        in_progress = {tid: max(started.get(tid, 0), epochs.get(tid, 0))
                       for tid in [*started, *epochs] if tid not in statuses}
    in_progress = {tid: in_progress[tid] for tid in planned if tid in in_progress}
    completed = sum(1 for t in planned if statuses.get(t) == "completed")
    failed = sum(1 for t in planned if statuses.get(t) == "failed")
    stopped = sum(1 for t in planned if statuses.get(t) == "stopped")
    running = len(in_progress) if active else 0
    interrupted = 0 if active else len(in_progress)
    searches = search_statuses(study_dir)
    apart: list[str] = []
    if manifest is not None and manifest.trials:
        sampled = {t.trial_id for r in search_records(study_dir).values()
                   for t in search_trials(study_dir, r)}
        planned_ids = set(planned)
        apart = sorted(t for t, st in statuses.items()
                       if st == "completed" and t not in planned_ids and t not in sampled)
    return StudyStatus(name=manifest.study if manifest else study_dir.name, root=study_dir.root,
                       total=len(planned), completed=completed, failed=failed, running=running,
                       interrupted=interrupted,
                       pending=len(planned) - completed - failed - stopped - running
                       - interrupted,
                       active=active, in_progress=in_progress, labels=labels, problem=problem,
                       unreadable=unreadable, stopped=stopped, searches=searches, apart=apart)


def search_statuses(study_dir: StudyDir) -> list[SearchStatus]:
    """Per search of the study (search/<name>/search.json): its finished sampled trials."""

    out = []
    for name, record in search_records(study_dir).items():
        n = Counter(t.status for t in search_trials(study_dir, record))
        out.append(SearchStatus(name, record.num_samples, n["completed"], n["stopped"],
                                n["failed"]))
    return out
