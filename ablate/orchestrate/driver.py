"""The driver side: one Tune experiment over a study's trials, each committed as it ends.

    failures, completed = run_ray(pending, study_dir, resources, cluster, progress)
    tuner = experiment(trainable, actor=..., name=..., recorder=Recorder(...), ...)  # search

How the pieces fit (Ray 2.60 APIs):

* `experiment` is the one `tune.Tuner` builder, used by `ablate run` (`run_ray`: a grid over
  the pending trials) and `ablate search` (a searcher, maybe a scheduler): the storage
  (storage.py: a directory, NFS, or an object store every node reaches), the trackers
  (tracking.py), Tune's retries, one checkpoint kept per trial, and a `Recorder`.
* The trainable runs in Ray workers (worker.py); its last report's checkpoint holds the trial's
  result files. The `Recorder` (a Tune Callback on the driver) commits them with
  `results.commit.commit`, the function the local executor uses: same trial, same files. A
  failed trial is committed the same way from its latest checkpoint's history
  (`stage_failure`), nothing loaded with torch; so results need no shared filesystem.
* Every `ablate run` is a new Tune experiment (run-<UTC time>) over the trials not yet
  completed; a trial interrupted in an earlier run resumes from its latest checkpoint found
  under the storage path (by trial id). `Tuner.restore` is not used: it can neither add the
  trials of a changed spec nor drop the ones that finished.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

from ray import tune

from ablate.orchestrate import signals
from ablate.orchestrate.cluster import Cluster, trial_resources
from ablate.orchestrate.progress import Progress
from ablate.orchestrate.storage import Storage, resolve_storage
from ablate.orchestrate.study_files import mark_running
from ablate.orchestrate.tracking import Tracking
from ablate.orchestrate.worker import job_of, trainable, trial_actor
from ablate.results.atomic import DiskFull, is_disk_full, names_disk_full
from ablate.results.commit import Outcome, commit, stage_failure
from ablate.results.layout import StudyDir, TrialFiles
from ablate.spec.config import ResourcesConfig, TrialConfig, format_value


def _error_text(trial) -> str:
    path = trial.error_file
    if path and os.path.exists(path):
        lines = [ln for ln in Path(path).read_text().strip().splitlines() if ln.strip()]
        # the last line of the worker's traceback is the exception itself
        if lines:
            return lines[-1].strip()
    return f"trial errored (status {trial.status})"


class _QuietExplained(logging.Filter):
    """Drops Ray's own reports of a worker exception that ablate explains itself: a full disk
    (`DiskFull`: the run stops with one message saying what to do) and a trial that cannot go
    on (`TrialFailed`: diverged loss …, its message says what to change; ablate prints it in
    its "retrying" and FAILED lines and records it in the failed row). For these, Tune's
    "Trial task failed" traceback and Ray's "Unhandled error" line (logged when a dropped
    result held the exception, after the run) only repeat it, 40 lines at a time. Any other
    exception, a bug, keeps its traceback. Tune's closing "Trials did not complete: […]" is
    dropped too: ablate's summary lists every failed trial with its error."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ablate.train.trial import TrialFailed  # torch (~1 s): the driver never imports it


        if record.exc_info and record.exc_info[1] is not None:
            seen, e = set(), record.exc_info[1]
            while e is not None and id(e) not in seen:
                if is_disk_full(e) or isinstance(e, TrialFailed):
                    return False
                seen.add(id(e))
                e = e.__cause__ or e.__context__
        message = record.getMessage()
        if message.startswith("Trials did not complete"):
            return False
        return not (message.startswith(("Trial task failed", "Unhandled error"))
                    and (names_disk_full(message) or "TrialFailed" in message))


# the loggers of Tune's controller ("Trial task failed ..."), of tune.run ("Trials did not
# complete ...") and of Ray's worker ("Unhandled error ..."); the filter stays for the
# process: Ray's line comes after `fit` has returned
_EXPLAINED_LOGGERS = ("ray.tune.execution.tune_controller", "ray.tune.tune",
                      "ray._private.worker")


def _quiet_explained() -> None:
    for name in _EXPLAINED_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _QuietExplained) for f in log.filters):
            log.addFilter(_QuietExplained())


class Recorder(tune.Callback):
    """Driver-side: progress lines, running markers, and the commit of every finished trial
    (a completed one's staged files; a failed one's rows with its error and the epochs it
    finished). `config_of(trial)`: the TrialConfig of a Tune trial. After `fit`, `failures`
    (trial id → error) and `completed` (trial ids committed as completed) say what happened."""

    def __init__(self, config_of: Callable[[object], TrialConfig], study_dir: StudyDir,
                 progress: Progress, device: str):
        self.config_of, self.study_dir, self.progress = config_of, study_dir, progress
        self.device = device
        self.failures: dict[str, str] = {}
        self.completed: set[str] = set()

    # Tune pickles its run config (tuner.pkl) for Tuner.restore, which ablate does not use:
    # the live terminal and file handles held here are left out of that copy.
    def __getstate__(self):
        return {}

    def on_step_begin(self, iteration, trials, **info):
        """Once, at the first step of the run: Tune's SIGINT handler is in place; wrap it so
        that Ctrl-C (and SIGTERM, which takes its path: orchestrate/signals.py) is acknowledged
        at once, not when Tune's loop next logs (~10 s), then handed to Tune as before."""
        if getattr(self, "_wrapped", None) is not None:
            return
        self._wrapped = False
        if threading.current_thread() is not threading.main_thread():
            return
        tune_handler = signal.getsignal(signal.SIGINT)
        if not callable(tune_handler):
            return

        def acknowledged(signum, frame):
            signal.signal(signal.SIGINT, tune_handler)  # a second Ctrl-C: Tune's own path
            self.progress.stopping(
                ("SIGTERM" if signals.terminated() else "Ctrl-C") + ": stopping the trials; "
                "each keeps its latest epoch checkpoint and resumes from it on the next run "
                "(press Ctrl-C again to skip Tune's last save of its experiment state)")
            tune_handler(signum, frame)

        signal.signal(signal.SIGINT, acknowledged)
        self._wrapped, self._tune_handler = True, tune_handler

    def on_experiment_end(self, trials, **info):
        if getattr(self, "_wrapped", False) and \
                threading.current_thread() is threading.main_thread() and \
                getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "acknowledged":
            signal.signal(signal.SIGINT, self._tune_handler)  # as Tune left it

    def on_trial_start(self, iteration, trials, trial, **info):
        cfg = self.config_of(trial)
        mark_running(self.study_dir, cfg)
        self.progress.start(cfg)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        for line in filter(None, str(result.get("warning") or "").split("\n")):
            self.progress.note(line)
        if not result.get("final"):
            cfg = self.config_of(trial)
            mark_running(self.study_dir, cfg, int(result["epoch"]), node=result.get("node", ""))
            self.progress.epoch(cfg, result["epoch"], result["loss"], result["quick_psnr"],
                                result["img_per_s"])

    def on_trial_recover(self, iteration, trials, trial, **info):
        if names_disk_full(_error_text(trial)):
            raise DiskFull(self.study_dir.root)  # a retry would meet the same full disk
        cfg = self.config_of(trial)
        self.progress.note(f"retrying {cfg.variant} seed {cfg.seed} ({cfg.trial_id}) after "
                           f"failure {trial.num_failures}: {_error_text(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        cfg = self.config_of(trial)
        if not (trial.last_result or {}).get("final") or trial.checkpoint is None:
            return  # stopped before the end (Ctrl-C): its checkpoint stays for the next run
        with trial.checkpoint.as_directory() as d:  # the worker's staged files
            commit(self.study_dir, Outcome(cfg.trial_id, TrialFiles(Path(d))))
        self.completed.add(cfg.trial_id)
        try:  # its final figures for the live view, from the file just committed
            import pyarrow.parquet as pq

            rows = pq.read_table(self.study_dir.trial(cfg.trial_id),
                                 columns=["resolution", "psnr", "verdict"]).to_pylist()
        except Exception:  # noqa: BLE001 — the view only; the file is the record
            rows = []
        self.progress.finish(cfg, True, rows=rows)

    def on_trial_error(self, iteration, trials, trial, **info):
        cfg = self.config_of(trial)
        error = _error_text(trial)
        if names_disk_full(error):
            raise DiskFull(self.study_dir.root)  # not the trial's fault: stop, resume later
        self.commit_unfinished(trial, cfg, error)
        self.failures[cfg.trial_id] = error
        self.progress.finish(cfg, False, error)

    def commit_unfinished(self, trial, cfg: TrialConfig, why: str, status: str = "failed"):
        """A trial that ended without its result (failed, or stopped by a scheduler): rows of
        `status` with `why`, and the history of the epochs its latest checkpoint holds."""
        node = str((trial.last_result or {}).get("node") or "")
        with tempfile.TemporaryDirectory(prefix=self.study_dir.staging_prefix(cfg.trial_id),
                                         dir=self.study_dir.root) as tmp:
            if trial.checkpoint is not None:  # the epochs it did finish, as the local path keeps
                with trial.checkpoint.as_directory() as d:
                    outcome = stage_failure(Path(tmp), cfg, why, device=self.device,
                                            checkpoint=Path(d), node=node, status=status)
            else:
                outcome = stage_failure(Path(tmp), cfg, why, device=self.device, node=node,
                                        status=status)
            commit(self.study_dir, outcome)


def trial_label(trial: dict) -> str:
    """A trial's readable name in Tune and the Ray dashboard: study/variant/seed N (and its
    grid point)."""
    grid = ",".join(f"{k}={format_value(v)}" for k, v in (trial.get("grid") or {}).items())
    return (f"{trial['study']}/{trial['variant']}/seed {trial['seed']}"
            + (f"/{grid}" if grid else ""))


def experiment(trainable, *, actor: str, name: str, trial_res: tuple[float, float],
               resources: ResourcesConfig, store: Storage, recorder: Recorder,
               study: str, tracking: Tracking | None = None, param_space: dict | None = None,
               **tune_config) -> "tune.Tuner":
    """The one Tune experiment builder (`ablate run` and `ablate search`): `trainable` on
    actors named `actor` asking for `trial_res` (cpus, gpus) each; checkpoints (the latest
    only) in `store`; Tune's retries (`resources.max_failures`); `recorder` committing every
    trial, and the trackers' callbacks; `tune_config`: the rest of `tune.TuneConfig` (grid or
    searcher, scheduler, names)."""
    cpus, gpus = trial_res
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # ablate prints its own progress
    # keeping one checkpoint per trial snapshots the experiment at every epoch: expected here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return tune.Tuner(
        trial_actor(trainable, {"cpu": cpus, "gpu": gpus}, actor),
        param_space=param_space or {},
        tune_config=tune.TuneConfig(**tune_config),
        run_config=tune.RunConfig(
            name=name, storage_path=store.path, storage_filesystem=store.fs,
            failure_config=tune.FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[recorder, *(tracking or Tracking()).callbacks(study, recorder.study_dir)],
            verbose=0),
    )


def experiment_name(prefix: str) -> str:
    """A new Tune experiment's name: <prefix>-<UTC time> (every run is a new experiment)."""
    return f"{prefix}-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def check_storage(storage: str | None, default: Path) -> None:
    """--storage names a directory or a filesystem URI whose store answers (RunError with what
    to fix otherwise). Run before anything is written."""
    resolve_storage(storage, default)


def run_ray(pending: list[TrialConfig], study_dir: StudyDir, resources: ResourcesConfig,
            cluster: Cluster, progress: Progress, *, storage: str | None = None,
            max_concurrent: int = 0, trial_res: tuple[float, float] | None = None,
            tracking: Tracking | None = None) -> tuple[dict[str, str], set[str]]:
    """Run `pending` as one Tune experiment. Returns (failures: id → error, completed ids).
    `trial_res`: (cpus, gpus) per trial when already checked (`trial_resources`)."""
    trial_res = trial_res or trial_resources(resources, cluster, progress.note)
    device = "cuda" if trial_res[1] > 0 else "cpu"
    store = resolve_storage(storage, study_dir.ray_storage)
    previous = store.all_checkpoints()
    jobs = []
    for cfg in pending:
        resume = previous.get(cfg.trial_id, [])
        if resume:
            progress.note(f"resuming {cfg.variant} seed {cfg.seed} ({cfg.trial_id}) at epoch "
                          f"{resume[0][0] + 1} (its checkpoint holds epoch {resume[0][0]})")
        jobs.append(job_of(cfg, device, study_dir.work_dir, [d for _, d in resume], store.uri))
    by_tid = {cfg.trial_id: cfg for cfg in pending}
    recorder = Recorder(lambda t: by_tid[t.config["job"]["trial"]["trial_id"]], study_dir,
                        progress, device)
    tuner = experiment(
        trainable, actor="AblateTrial", name=experiment_name("run"), trial_res=trial_res,
        resources=resources, store=store, recorder=recorder, study=pending[0].study,
        tracking=tracking, param_space={"job": tune.grid_search(jobs)},
        max_concurrent_trials=max_concurrent or resources.max_concurrent or None,
        trial_dirname_creator=lambda t: t.config["job"]["trial"]["trial_id"],
        trial_name_creator=lambda t: trial_label(t.config["job"]["trial"]))
    fit_quietly(tuner, study_dir)
    return recorder.failures, recorder.completed


def fit_quietly(tuner, study_dir: StudyDir) -> None:
    """`tuner.fit()` with Tune's warnings held back (ablate reports progress, failures and how
    to resume itself: Tune's "Resume experiment with: Tuner.restore(...)" on Ctrl-C would point
    users the wrong way); a full disk met anywhere inside Tune is raised as one DiskFull."""
    _quiet_explained()
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
    except Exception as e:
        seen, cause = set(), e
        while cause is not None and id(cause) not in seen:
            if is_disk_full(cause):
                raise DiskFull(getattr(cause, "path", None) or study_dir.root) from e
            seen.add(id(cause))
            cause = cause.__cause__ or cause.__context__
        raise
    finally:
        tune_log.setLevel(level)
