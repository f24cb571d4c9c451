"""`--executor ray`: a study's pending trials on Ray Tune (embedded local Ray or a cluster).

    connect(address)                     # embedded local Ray, or join a cluster
    run_ray(pending, study_root, ...)    # one Tune experiment over the pending trials

How the pieces fit (Ray 2.60 APIs):

* The trainable is a plain function (`_trainable`) around the Ray-free `run_trial`; each epoch
  it reports metrics with `tune.report(..., checkpoint=tune.Checkpoint.from_directory(...))`
  (the epoch checkpoint: checkpoint.pt, meta.json, history.parquet), and it resumes from
  `tune.get_checkpoint()` when Tune retries it (`FailureConfig(max_failures)`). Its last
  report's checkpoint also holds the trial's result files, staged by `stage_result` exactly as
  the local executor stages them (trial rows, history, per-image metrics, artifacts:
  `results.layout.TrialFiles`); metrics carry only numbers.
* The DRIVER commits them (a Tune `Callback`) with `results.commit.commit`, the function the
  local executor uses: same trial, same files. A failed trial is committed the same way from
  its latest checkpoint's history (`stage_failure`), nothing loaded with torch. So results
  need no shared filesystem. Checkpoints live under Ray's `storage_path` (<study>/ray by
  default); a multi-node cluster needs a storage every node reaches: a mounted path (NFS) or
  an object store URI (s3://…, gs://…: `storage.py`), written by the workers through Tune's
  own storage support.
* Each row records the Ray node the trial trained on (`node`: "<ip>/<node id>"); reports
  carry it too (with numbers otherwise), so the driver's running markers say where a trial
  runs.
* Every `ablate run` is a new Tune experiment (run-<UTC time>) over the trials not yet completed;
  a trial interrupted in an earlier run resumes from its latest checkpoint found under the
  storage path (by trial id). `Tuner.restore` is not used: it can neither add the trials of a
  changed spec nor drop the ones that finished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from ray import tune
from ray.tune.trainable.function_trainable import wrap_function

from ablate.orchestrate.preflight import RunError
from ablate.orchestrate.progress import Progress
from ablate.orchestrate.storage import fetch_checkpoint, resolve_storage
from ablate.orchestrate.study_files import mark_running
from ablate.orchestrate.tracking import Tracking
from ablate.results.atomic import DiskFull, atomic_write_text, is_disk_full, names_disk_full
from ablate.results.commit import Outcome, commit, stage_failure
from ablate.results.layout import CHECKPOINT_FILE, CHECKPOINT_META, StudyDir, TrialFiles
from ablate.spec.config import ResourcesConfig, TrialConfig
from ablate.spec.ids import trial_from_dict, trial_to_dict


# ---------------------------------------------------------------------------------------------
# connecting
# ---------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    address: str  # "" for the embedded local Ray
    cpus: float
    gpus: float
    dashboard_url: str
    started_here: bool
    token_auth: bool = False  # the dashboard asks the browser for Ray's token


_TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


class _Hold(logging.Filter):
    """Keeps Ray's token-auth warning (logged during ray.init) out of the terminal: ablate
    says the same, and how to open the dashboard with it, in its own Ray line."""

    def __init__(self):
        super().__init__()
        self.held: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.held.append(record.getMessage())
        return False


def token_auth_on() -> bool:
    """Whether this process's Ray uses token authentication (RAY_AUTH_MODE=token, which a new
    local Ray turns on by default unless RAY_AUTH_MODE is set)."""
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode

        return get_authentication_mode() == AuthenticationMode.TOKEN
    except Exception:  # noqa: BLE001 — an older/newer Ray without it: say nothing about tokens
        return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast on HOST:PORT that nothing answers (ray.init would wait much longer)."""
    if address in ("auto", "local") or address.startswith("ray://"):
        target = address[len("ray://"):] if address.startswith("ray://") else None
    else:
        target = address
    if not target:
        return
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise RunError(f"cannot reach a Ray cluster at {address} ({e}); start one with "
                       f"`ray start --head` there, check host and port, or drop --address to "
                       f"use an embedded local Ray") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> Cluster:
    """Join the cluster at `address` (or RAY_ADDRESS), or start an embedded local Ray sized to
    this machine with its dashboard on 127.0.0.1. Reuses a Ray already initialised here."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    hold = _Hold()
    token_log = logging.getLogger(_TOKEN_LOGGER)
    token_log.addFilter(hold)
    try:
        started, url = _init(ray, address, num_cpus)
    finally:
        token_log.removeFilter(hold)
    res = ray.cluster_resources()
    return Cluster(address=address or "", cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0),
                   dashboard_url=url and (url if url.startswith("http") else f"http://{url}"),
                   started_here=started, token_auth=token_auth_on())


def _init(ray, address: str | None, num_cpus: int | None) -> tuple[bool, str]:
    started, url = False, ""
    if ray.is_initialized():  # e.g. a test session's Ray, or a notebook's
        current = ray.get_runtime_context().gcs_address
        if address and address not in ("auto", current) and not address.startswith("ray://"):
            raise RunError(f"this process is already connected to Ray at {current}, not "
                           f"{address}")
    else:
        if address:
            try:
                ctx = ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
                raise RunError(f"cannot connect to the Ray cluster at {address}: {e}") from None
        else:
            # worker stdout stays in Ray's logs (and the dashboard): trial errors reach the
            # user through Tune's error files, progress through ablate's own lines
            ctx = _init_loopback(ray, num_cpus)
            started = True
        url = getattr(ctx, "dashboard_url", "") or ""
    return started, url


LOOPBACK = "127.0.0.1"


def _init_loopback(ray, num_cpus: int | None):
    """A new embedded local Ray whose every port (GCS, raylet, object manager, workers,
    dashboard and its agents, metrics) listens on 127.0.0.1 only.

    Ray's gRPC servers listen on all interfaces unless the node IP is the loopback address, and
    `ray.init(_node_ip_address="127.0.0.1")` alone is replaced by the machine's address
    (`services.resolve_ip_for_localhost`) unless "Ray clusters" are disabled, which is what
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 does (read by `ray_constants` at import: set here for
    the processes Ray starts, and on the imported module for this one). `address="local"`:
    always a new instance, never a `ray start` cluster found on this machine. The dashboard
    where its packages are installed (ray[default]); a minimal Ray (e.g. the one carried to a
    bare GPU node, docs/gpu.md) starts without it, as Ray's own default does, instead of
    refusing to start ("Cannot include dashboard with missing packages")."""
    from ray._private import ray_constants
    from ray._private.utils import get_dashboard_dependency_error

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    dashboard = True if get_dashboard_dependency_error() is None else None  # None: Ray's default
    try:
        return ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK,
                        include_dashboard=dashboard, dashboard_host=LOOPBACK,
                        logging_level="WARNING", log_to_driver=False)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def dashboard_line(cluster: Cluster) -> str:
    """ablate's Ray line: where the trials run, and how to open the dashboard (with the token,
    when Ray asks the browser for one)."""
    where = f"cluster {cluster.address}" if cluster.address else "embedded local Ray"
    line = f"Ray: {where}, {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs"
    if not cluster.dashboard_url:
        return line
    line += f"; dashboard {cluster.dashboard_url}"
    if cluster.token_auth:
        line += (" (Ray token auth is on: the browser asks for the token once; paste what "
                 "`ray get-auth-token` prints, the contents of ~/.ray/auth_token; "
                 "RAY_AUTH_MODE=disabled starts Ray without)")
    return line


def trial_label(trial: dict) -> str:
    """A trial's readable name in Tune and the Ray dashboard: study/variant/seed N (and its
    grid point)."""
    from ablate.spec.config import format_value

    grid = ",".join(f"{k}={format_value(v)}" for k, v in (trial.get("grid") or {}).items())
    return (f"{trial['study']}/{trial['variant']}/seed {trial['seed']}"
            + (f"/{grid}" if grid else ""))


def trial_resources(res: ResourcesConfig, cluster: Cluster, note) -> tuple[float, float]:
    """(cpus, gpus) per trial. A GPU request on a cluster without GPUs falls back to the CPU
    with a warning (never PENDING forever); a CPU request larger than the cluster is an error."""
    cpus = res.cpus_per_trial
    if cpus > cluster.cpus:
        raise RunError(f"resources.cpus_per_trial = {cpus:g} but the cluster has only "
                       f"{cluster.cpus:g} CPUs: no trial could ever start; lower it "
                       f"(--set resources.cpus_per_trial={max(1, int(cluster.cpus))})")
    gpus = res.gpus_per_trial
    if gpus == "auto":
        gpus = 0.25 if cluster.gpus > 0 else 0.0
    gpus = float(gpus)
    if gpus > 0 and cluster.gpus == 0:
        note(f"warning: resources.gpus_per_trial = {gpus:g} but the cluster has no GPU; "
             "running the trials on CPU instead")
        gpus = 0.0
    elif gpus > 1 and not gpus.is_integer():
        raise RunError(f"resources.gpus_per_trial = {gpus:g}: above 1 it must be a whole number")
    elif gpus > cluster.gpus:
        raise RunError(f"resources.gpus_per_trial = {gpus:g} but the cluster has "
                       f"{cluster.gpus:g} GPUs")
    return cpus, gpus


# ---------------------------------------------------------------------------------------------
# the trainable (runs in a Ray worker)
# ---------------------------------------------------------------------------------------------


def node_label() -> str:
    """This Ray node, as the `node` column names it: "<ip>/<first 12 hex of the node id>"."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:12]}"


def _trainable(config: dict) -> None:
    train_job(config["job"])


def job_of(cfg: TrialConfig, device: str, work_root: str | Path, resume_from=(),
           storage: str = "") -> dict:
    """What `train_job` needs to train `cfg` in a worker (plain data: Tune's config): the trial,
    its device, the study's work folder (`StudyDir.work_dir`, swept by the next run), earlier
    runs' checkpoint directories newest first, and the storage URI they are in."""
    return {"trial": trial_to_dict(cfg), "device": device, "storage": storage,
            "work_root": str(Path(work_root).resolve()),
            "resume_from": [str(d) for d in resume_from]}


def train_job(job: dict, final_metrics=lambda result: {}) -> None:
    """Train one job (`job_of`) in a Tune worker, reporting each
    epoch and, last, the staged result files; `final_metrics(result)` adds numbers to the last
    report (`ablate search`: the objective)."""
    import logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one line per checkpoint otherwise
    from ablate.orchestrate.record import stage_result
    from ablate.train.trial import run_trial

    cfg = trial_from_dict(job["trial"])
    node = node_label()
    # the work folder lives in the study (swept by the next run if a kill leaves it behind);
    # in the system's temporary folder only where the study's folder is not on this node
    try:
        root = Path(job.get("work_root") or tempfile.gettempdir())
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"ablate-{cfg.trial_id}-", dir=root))
    except OSError:
        work = Path(tempfile.mkdtemp(prefix=f"ablate-{cfg.trial_id}-"))
    try:
        # checkpoints to resume from, newest first: Tune's (retrying this trial in this run),
        # then an earlier run's; one that does not load is set aside and the next one tried
        resume: list[Path] = []
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            if getattr(checkpoint.filesystem, "type_name", "") == "local":
                resume.append(Path(checkpoint.path))  # set aside in place if it does not load
            else:
                resume.append(Path(checkpoint.to_directory(str(work / "resume"))))
        earlier = job.get("resume_from") or []  # an earlier run's, newest first
        if earlier and "://" in (job.get("storage") or ""):
            # in an object store: only the newest is downloaded (one that does not load
            # there falls back to a fresh start)
            resume.append(fetch_checkpoint(job["storage"], earlier[0], work / "earlier"))
        else:
            resume += [Path(p) for p in earlier]
        ckpt_dir = work / "ckpt"
        warnings_: list[str] = []  # reach the driver with the next report

        def log(message: str) -> None:
            if message.startswith("warning"):
                warnings_.append(message)

        def on_epoch(report, saved):  # `saved`: the epoch checkpoint directory
            tune.report({**report.metrics(), "final": False, "node": node,
                         "warning": "\n".join(warnings_)},
                        checkpoint=tune.Checkpoint.from_directory(str(saved)))
            warnings_.clear()

        result = run_trial(cfg, device=job["device"], checkpoint_dir=ckpt_dir,
                           resume_from=resume, on_epoch=on_epoch, log=log)
        for row in result.rows:
            row["node"] = node
        # the final checkpoint: the training state (a later run resumes from the end rather
        # than train again if the driver stops before committing) and the staged result files
        final = work / "final"
        final.mkdir()
        for source in (ckpt_dir, *resume):
            if (Path(source) / CHECKPOINT_FILE).is_file():
                shutil.copy(Path(source) / CHECKPOINT_FILE, final / CHECKPOINT_FILE)
                break
        stage_result(final, result)
        epochs = len(result.history)
        atomic_write_text(final / CHECKPOINT_META, json.dumps(
            {"trial_id": cfg.trial_id, "epoch": epochs, "device": result.rows[0]["device"],
             "final": True}))
        tune.report({"final": True, "epoch": epochs, "node": node,
                     "warning": "\n".join(warnings_), **final_metrics(result)},
                    checkpoint=tune.Checkpoint.from_directory(str(final)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def trial_actor(trainable, resources: dict, name: str):
    """The actor class Tune starts for each trial of the function `trainable`, asking for
    `resources` ({"cpu": …, "gpu": …}), named `name` where Ray lists its actors (the dashboard's
    Class column, the workers' process titles `ray::<name>.train`: Tune's own names read
    `ImplicitFunc` or `ResourceTrainable`), and each actor by its trial's name in the
    dashboard's Repr column (study/variant/seed N, where every trial would read the same)."""

    class Trial(wrap_function(trainable)):
        def __repr__(self):
            return self.trial_name

    cls = tune.with_resources(Trial, resources)
    cls.__name__ = cls.__qualname__ = name
    return cls


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------


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
        from ablate.train.trial import TrialFailed

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


class _Recorder(tune.Callback):
    """Driver-side: progress lines, running markers, and the commit of every finished trial."""

    def __init__(self, by_tid: dict[str, TrialConfig], study_dir: StudyDir, progress: Progress,
                 failures: dict[str, str], completed: set[str], device: str):
        self.by_tid, self.study_dir, self.progress = by_tid, study_dir, progress
        self.failures, self.completed, self.device = failures, completed, device

    # Tune pickles its run config (tuner.pkl) for Tuner.restore, which ablate does not use:
    # the live terminal and file handles held here are left out of that copy.
    def __getstate__(self):
        return {}

    def _cfg(self, trial) -> TrialConfig:
        return self.by_tid[trial.config["job"]["trial"]["trial_id"]]

    def on_trial_start(self, iteration, trials, trial, **info):
        cfg = self._cfg(trial)
        mark_running(self.study_dir, cfg)
        self.progress.start(cfg)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        for line in filter(None, str(result.get("warning") or "").split("\n")):
            self.progress.note(line)
        if not result.get("final"):
            cfg = self._cfg(trial)
            mark_running(self.study_dir, cfg, int(result["epoch"]), node=result.get("node", ""))
            self.progress.epoch(cfg, result["epoch"], result["loss"], result["quick_psnr"],
                                result["img_per_s"])

    def on_trial_recover(self, iteration, trials, trial, **info):
        if names_disk_full(_error_text(trial)):
            raise DiskFull(self.study_dir.root)  # a retry would meet the same full disk
        cfg = self._cfg(trial)
        self.progress.note(f"retrying {cfg.variant} seed {cfg.seed} ({cfg.trial_id}) after "
                           f"failure {trial.num_failures}: {_error_text(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        cfg = self._cfg(trial)
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
        cfg = self._cfg(trial)
        error = _error_text(trial)
        if names_disk_full(error):
            raise DiskFull(self.study_dir.root)  # not the trial's fault: stop, resume later
        node = str((trial.last_result or {}).get("node") or "")
        with tempfile.TemporaryDirectory(prefix=self.study_dir.staging_prefix(cfg.trial_id),
                                         dir=self.study_dir.root) as tmp:
            if trial.checkpoint is not None:  # the epochs it did finish, as the local path keeps
                with trial.checkpoint.as_directory() as d:
                    outcome = stage_failure(Path(tmp), cfg, error, device=self.device,
                                            checkpoint=Path(d), node=node)
            else:
                outcome = stage_failure(Path(tmp), cfg, error, device=self.device, node=node)
            commit(self.study_dir, outcome)
        self.failures[cfg.trial_id] = error
        self.progress.finish(cfg, False, error)


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
    cpus, gpus = trial_res or trial_resources(resources, cluster, progress.note)
    device = "cuda" if gpus > 0 else "cpu"
    store = resolve_storage(storage, study_dir.ray_storage)
    previous = store.all_checkpoints()
    jobs = []
    for cfg in pending:
        resume = previous.get(cfg.trial_id, [])
        if resume:
            progress.note(f"resuming {cfg.variant} seed {cfg.seed} ({cfg.trial_id}) from epoch "
                          f"{resume[0][0]}")
        jobs.append(job_of(cfg, device, study_dir.work_dir, [d for _, d in resume], store.uri))
    by_tid = {cfg.trial_id: cfg for cfg in pending}
    failures: dict[str, str] = {}
    completed: set[str] = set()
    name = "run-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    max_conc = max_concurrent or resources.max_concurrent or None
    tuner = tune.Tuner(
        trial_actor(_trainable, {"cpu": cpus, "gpu": gpus}, "AblateTrial"),
        param_space={"job": tune.grid_search(jobs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_conc,
            trial_dirname_creator=lambda t: t.config["job"]["trial"]["trial_id"],
            trial_name_creator=lambda t: trial_label(t.config["job"]["trial"])),
        run_config=tune.RunConfig(
            name=name, storage_path=store.path, storage_filesystem=store.fs,
            failure_config=tune.FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[_Recorder(by_tid, study_dir, progress, failures, completed, device),
                       *(tracking or Tracking()).callbacks(pending[0].study, study_dir)],
            verbose=0),
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # ablate prints its own progress
    # keeping one checkpoint per trial snapshots the experiment at every epoch: expected here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ablate reports progress, failures and how to resume itself; Tune's warnings (e.g.
    # "Resume experiment with: Tuner.restore(...)" on Ctrl-C) would point users the wrong way
    fit_quietly(tuner, study_dir)
    return failures, completed


def fit_quietly(tuner, study_dir: StudyDir) -> None:
    """`tuner.fit()` with Tune's warnings held back (ablate reports progress, failures and how
    to resume itself); a full disk met anywhere inside Tune is raised as one DiskFull."""
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
