"""`ablate run` and `ablate trial`: a study (or one of its trials), skipping what is done.

    summary = run_study(study, results="results", executor=Executor.ray)
    one = run_one(study, variant="plain", seed=0, results="results", device="cpu")

Steps of `run_study`: lock the study directory; check everything (data paths, the Ray
address, storage and resources) before writing anything; write its manifest (results/manifest.py: the
resolved study and this run's trials, which `ablate status` and `ablate table` read) and a
copy of the spec; drop every trial that already has a completed row; run the rest on the
chosen executor; report failures. Interrupted trials resume from their latest checkpoint on
the next run. `run_one` does the same for one trial, in this process.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ablate.orchestrate.changes import study_changes
from ablate.orchestrate.estimate import ESTIMATE_FROM_HOURS, estimate
from ablate.orchestrate.cluster import connect, dashboard_line, trial_resources
from ablate.orchestrate.executor import Executor
from ablate.orchestrate.lock import StudyLock
from ablate.orchestrate.preflight import (RunError, check_data, check_device, check_results,
                                          refused_leaves_nothing)
from ablate.orchestrate.progress import Progress
from ablate.orchestrate.study_files import (clear_stale, completed_ids, mark_running,
                                            remove_empty)
from ablate.results.atomic import atomic_copy
from ablate.results.layout import StudyDir
from ablate.results.manifest import Manifest, write_manifest
from ablate.spec import Study, TrialConfig, expand
from ablate.spec.convert import suggest


@dataclass
class RunSummary:
    study_root: Path
    total: int
    skipped: int
    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # trial_id → error
    unfinished: list[str] = field(default_factory=list)  # interrupted (Ctrl-C)

    @property
    def exit_code(self) -> int:
        """0 all completed; 1 some failed; 130 stopped early (Ctrl-C) with none failed."""
        if self.failed:
            return 1
        return 130 if self.unfinished else 0


def start_study(study_dir: StudyDir, study: Study, trials: list[TrialConfig]) -> None:
    """With the study's lock held: its manifest and spec copy; what a stopped run left (running
    markers, staging folders) cleared."""
    write_manifest(study_dir, Manifest.from_study(study, trials))
    study_dir.legacy_plan.unlink(missing_ok=True)  # an earlier version's; the manifest says it
    if study.path and Path(study.path).is_file():
        atomic_copy(study.path, study_dir.spec_copy)
    clear_stale(study_dir)


def run_study(study: Study, results: str | Path = "results", *,
              executor: Executor | str = Executor.ray, address: str | None = None,
              max_concurrent: int = 0, storage: str | None = None, device: str = "auto",
              progress_stream=None, live: bool | None = None, on_connect=None,
              variants: list[str] | tuple[str, ...] = (), tracking=None) -> RunSummary:
    """Run every trial of `study` (of `variants` only, when given) that has no completed row
    under RESULTS/<study>/. The manifest lists the whole study either way, so the table and
    `ablate status` count the other variants' trials as not run yet. `tracking`: a
    `tracking.Tracking` (MLflow / W&B through Ray Tune's logger callbacks; Ray executor only)."""
    try:
        executor = Executor(executor)
    except ValueError:
        raise RunError(f"--executor {executor!r}: expected "
                       + " or ".join(e.value for e in Executor)) from None
    study_dir = StudyDir.of(results, study.name)
    all_trials = expand(study)
    trials = [t for t in all_trials if t.variant in select_variants(study, variants)]
    if executor is Executor.local:
        check_device(device)
    if tracking is not None and (tracking.mlflow or tracking.wandb):
        if executor is Executor.local:
            raise RunError("--mlflow / --wandb log through Ray Tune's callbacks: drop "
                           "--executor local")
        tracking.check()
    stream = progress_stream or sys.stdout

    def say(line: str) -> None:  # before the progress display starts (and Ray with it)
        print(line, file=stream, flush=True)

    with refused_leaves_nothing(study_dir.root):  # a refusal leaves no folder behind
        check_results(study_dir.root)
        with StudyLock(study_dir):
            done = completed_ids(study_dir)
            pending = [t for t in trials if t.trial_id not in done]
            # every check before anything is written: a refused run leaves the study as it was
            check_data(pending)
            only = (f" of variant{'s' if len(set(variants)) > 1 else ''} "
                    f"{', '.join(dict.fromkeys(variants))} (of {len(all_trials)} in the study)"
                    if variants else "")
            # the first line, within a second of the command: Ray takes seconds to start
            say(f"{study.name}: {len(trials)} trials{only}, {len(trials) - len(pending)} "
                f"already completed, {len(pending)} to run ({executor.value}) → "
                f"{study_dir.root}")
            changes = study_changes(study_dir, all_trials)  # against the finished trials
            for line in changes.lines():
                say(line)
            _say_estimate(pending, study, executor, address, device, max_concurrent, say)
            cluster, trial_res, notes = None, None, []
            if executor is Executor.ray and pending:
                from ablate.orchestrate.driver import check_storage  # Ray (~0.7 s): when used

                check_storage(storage, study_dir.ray_storage)
                if not (address or os.environ.get("RAY_ADDRESS")):
                    say("starting an embedded local Ray (a few seconds) …")
                cluster = connect(address)
                trial_res = trial_resources(study.resources, cluster, notes.append)
            start_study(study_dir, study, all_trials)  # the manifest lists the whole study
            summary = RunSummary(study_root=study_dir.root, total=len(trials),
                                 skipped=len(trials) - len(pending))
            with Progress(total=len(pending), skipped=summary.skipped, stream=progress_stream,
                          live=live, trials=pending) as progress:
                if not pending:
                    remove_empty(study_dir)  # what a killed run left is swept: nothing else to do
                    return summary
                if executor is Executor.local:
                    from ablate.orchestrate.local import run_local  # the trial core: torch (~1 s)

                    summary.failed = run_local(pending, study_dir, progress, device=device)
                else:
                    from ablate.orchestrate.driver import run_ray  # Ray, as above

                    if on_connect:
                        on_connect(cluster)
                    progress.note(dashboard_line(cluster))
                    for note in notes:
                        progress.note(note)
                    summary.failed, _ = run_ray(pending, study_dir, study.resources, cluster,
                                                progress, storage=storage,
                                                max_concurrent=max_concurrent, trial_res=trial_res,
                                                tracking=tracking)
                finished = completed_ids(study_dir)
            remove_empty(study_dir)
            summary.completed = [t.trial_id for t in pending if t.trial_id in finished]
            summary.unfinished = [t.trial_id for t in pending if t.trial_id not in finished
                                  and t.trial_id not in summary.failed]
            return summary


def _say_estimate(pending: list[TrialConfig], study: Study, executor: Executor,
                  address: str | None, device: str, max_concurrent: int, say) -> None:
    """Where the trials will train on this machine's CPUs (the local executor on the CPU, or an
    embedded Ray on a machine without an NVIDIA GPU), say how long they would take, measured
    (orchestrate/estimate.py) — a warning when far too long. Elsewhere nothing is said: a
    cluster's or a GPU's speed cannot be measured from here."""
    if not pending or Path("/proc/driver/nvidia/gpus").is_dir():
        return
    cpus = os.cpu_count() or 1
    if executor is Executor.local:
        if device not in ("cpu", "auto"):
            return
        threads, slots = cpus, 1
    elif address or os.environ.get("RAY_ADDRESS"):
        return
    else:
        per_trial = study.resources.cpus_per_trial
        threads = max(1, int(per_trial))
        slots = max(1, int(cpus // per_trial))
        if max_concurrent or study.resources.max_concurrent:
            slots = min(slots, max_concurrent or study.resources.max_concurrent)
    est = estimate(pending, threads=threads, slots=slots)
    if est is not None and est.hours >= ESTIMATE_FROM_HOURS:
        say(est.line())


def select_variants(study: Study, names) -> set[str]:
    """The variant names to run: `names` (every variant when empty); RunError naming the
    study's variants for a name it does not have."""
    known = [v.name for v in study.variants]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RunError(f"{study.path}: no variant {unknown[0]!r}{suggest(unknown[0], known)}; "
                       f"variants: {', '.join(known)}")
    return set(names) if names else set(known)


# ---------------------------------------------------------------------------------------------
# one trial
# ---------------------------------------------------------------------------------------------


@dataclass
class TrialRun:
    trial: TrialConfig
    study_dir: StudyDir
    completed: bool
    rows: list[dict]


def pick_trial(study: Study, variant: str, seed: int, trial_id: str | None = None) -> TrialConfig:
    """The study's trial of `variant` and `seed` (and `trial_id` among grid points); RunError
    saying what to give otherwise."""
    names = [v.name for v in study.variants]
    if variant not in names:
        raise RunError(f"{study.path}: no variant {variant!r}{suggest(variant, names)}; "
                       f"variants: {', '.join(names)}")
    if seed not in study.study.seeds:
        raise RunError(f"{study.path}: seed {seed} is not among the study's seeds "
                       f"{list(study.study.seeds)} (add it to study.seeds or --set "
                       "study.seeds=[...])")
    trials = [t for t in expand(study) if t.variant == variant and t.seed == seed]
    matches = [t for t in trials if trial_id is None or t.trial_id == trial_id]
    if len(matches) != 1:
        listing = "\n".join(f"  {t.trial_id}  {t.grid_key()}" for t in trials)
        raise RunError(f"{len(matches)} trials match variant {variant!r}, seed {seed}; pick "
                       f"one with --trial-id:\n{listing}")
    return matches[0]


def run_one(study: Study, variant: str, seed: int, *, results: str | Path = "results",
            trial_id: str | None = None, device: str = "auto",
            on_start: Callable[[TrialConfig, StudyDir], None] = lambda cfg, d: None,
            on_epoch=None, log: Callable[[str], None] = lambda m: None) -> TrialRun:
    """One trial of `study`, in this process, committed like any other (`ablate trial`).
    Raises RunError (bad input, found before training) and StudyLocked."""
    from ablate.orchestrate.record import record_trial  # the trial core: torch (~1 s)

    cfg = pick_trial(study, variant, seed, trial_id)
    check_device(device)
    check_data([cfg])
    study_dir = StudyDir.of(results, study.name)
    with refused_leaves_nothing(study_dir.root):  # a refusal leaves no folder behind
        check_results(study_dir.root)
        with StudyLock(study_dir):  # not beside an `ablate run` of the same study
            everything = expand(study)
            for line in study_changes(study_dir, everything).lines():
                log(line)
            start_study(study_dir, study, everything)
            mark_running(study_dir, cfg)
            on_start(cfg, study_dir)

            def epoch_done(report, saved):
                mark_running(study_dir, cfg, report.epoch)
                if on_epoch is not None:
                    on_epoch(report, saved)

            ok, rows = record_trial(cfg, study_dir, device=device, on_epoch=epoch_done, log=log)
            remove_empty(study_dir)
        return TrialRun(cfg, study_dir, ok, rows)
