"""`--executor ray`: a study's pending trials on Ray Tune (embedded local Ray or a cluster).

    connect(address)                     # embedded local Ray, or join a cluster
    run_ray(pending, study_root, ...)    # one Tune experiment over the pending trials

How the pieces fit (Ray 2.60 APIs):

* The trainable is a plain function (`_trainable`) around the Ray-free `run_trial`; each epoch
  it reports metrics with `tune.report(..., checkpoint=tune.Checkpoint.from_directory(...))`,
  and it resumes from `tune.get_checkpoint()` when Tune retries it (`FailureConfig(
  max_failures)`). Its last report carries the result rows and history as JSON, and a final
  checkpoint holding the evaluation artifacts and the per-image metrics (images.parquet: one
  row per held-out crop and resolution, too many for a metric on large test sets).
* The DRIVER writes results (a Tune `Callback`): trials/, history/, images/, artifacts/ under
  the study directory, atomically, so results need no shared filesystem. Checkpoints live under Ray's
  `storage_path` (<study>/ray by default); a multi-node cluster needs a storage path every node
  reaches (NFS, or a pyarrow filesystem URI).
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

from ablate.orchestrate.preflight import RunError
from ablate.orchestrate.progress import Progress
from ablate.orchestrate.study_files import latest_checkpoints
from ablate.results.schema import artifacts_dir, images_path
from ablate.results.write import write_history, write_images, write_trial
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
    started = False
    url = ""
    if address:
        _check_reachable(address)
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
            ctx = ray.init(num_cpus=num_cpus, include_dashboard=True, dashboard_host="127.0.0.1",
                           logging_level="WARNING", log_to_driver=False)
            started = True
        url = getattr(ctx, "dashboard_url", "") or ""
    res = ray.cluster_resources()
    return Cluster(address=address or "", cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0),
                   dashboard_url=url and (url if url.startswith("http") else f"http://{url}"),
                   started_here=started)


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


def _trainable(config: dict) -> None:
    import logging

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one line per checkpoint otherwise
    from ablate.train.trial import run_trial

    job = config["job"]
    cfg = trial_from_dict(job["trial"])
    work = Path(tempfile.mkdtemp(prefix=f"ablate-{cfg.trial_id}-"))
    try:
        resume = None
        checkpoint = tune.get_checkpoint()  # Tune retrying this trial in this run
        if checkpoint is not None:
            resume = Path(checkpoint.to_directory(str(work / "resume")))
        elif job.get("resume_from"):  # an earlier run's latest checkpoint
            resume = Path(job["resume_from"])
        ckpt_dir = work / "ckpt"

        def on_epoch(report, saved):  # `saved` holds checkpoint.pt and meta.json
            tune.report({**report.metrics(), "final": False},
                        checkpoint=tune.Checkpoint.from_directory(str(saved)))

        result = run_trial(cfg, device=job["device"], checkpoint_dir=ckpt_dir,
                           resume_from=resume, on_epoch=on_epoch)
        final = work / "final"
        final.mkdir()
        source = ckpt_dir if (ckpt_dir / "checkpoint.pt").exists() else resume
        if source is not None and (Path(source) / "checkpoint.pt").exists():
            shutil.copy(Path(source) / "checkpoint.pt", final / "checkpoint.pt")
        epochs = len(result.history)
        (final / "meta.json").write_text(json.dumps({"trial_id": cfg.trial_id, "epoch": epochs,
                                                     "final": True}))
        result.evaluation.write_artifacts(final / "artifacts")
        write_images(final, cfg.trial_id, result.evaluation.images, path=final / IMAGES_FILE)
        tune.report({"final": True, "epoch": epochs, "rows_json": json.dumps(result.rows),
                     "history_json": json.dumps(result.history)},
                    checkpoint=tune.Checkpoint.from_directory(str(final)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


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


class _Recorder(tune.Callback):
    """Driver-side: progress lines, and the result files of every finished trial."""

    def __init__(self, by_tid: dict[str, TrialConfig], study_root: Path, progress: Progress,
                 failures: dict[str, str], completed: set[str]):
        self.by_tid, self.study_root, self.progress = by_tid, study_root, progress
        self.failures, self.completed = failures, completed

    # Tune pickles its run config (tuner.pkl) for Tuner.restore, which ablate does not use:
    # the live terminal and file handles held here are left out of that copy.
    def __getstate__(self):
        return {}

    def _cfg(self, trial) -> TrialConfig:
        return self.by_tid[trial.config["job"]["trial"]["trial_id"]]

    def on_trial_start(self, iteration, trials, trial, **info):
        self.progress.start(self._cfg(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not result.get("final"):
            self.progress.epoch(self._cfg(trial), result["epoch"], result["loss"],
                                result["quick_psnr"], result["img_per_s"])

    def on_trial_recover(self, iteration, trials, trial, **info):
        cfg = self._cfg(trial)
        self.progress.note(f"retrying {cfg.variant} seed {cfg.seed} ({cfg.trial_id}) after "
                           f"failure {trial.num_failures}: {_error_text(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        cfg = self._cfg(trial)
        res = trial.last_result or {}
        if not res.get("final"):
            return  # stopped before the end (Ctrl-C): its checkpoint stays for the next run
        rows, history = json.loads(res["rows_json"]), json.loads(res["history_json"])
        if trial.checkpoint is not None:
            with trial.checkpoint.as_directory() as d:
                _copy_artifacts(Path(d) / "artifacts", artifacts_dir(self.study_root, cfg.trial_id))
                _copy_file(Path(d) / IMAGES_FILE, images_path(self.study_root, cfg.trial_id))
        write_history(self.study_root, cfg.trial_id, history)
        write_trial(self.study_root, cfg.trial_id, rows)  # last: its presence means completed
        self.completed.add(cfg.trial_id)
        self.progress.finish(cfg, True)

    def on_trial_error(self, iteration, trials, trial, **info):
        from ablate.train.trial import failure_rows

        from ablate.train import checkpoint as ckpt

        cfg = self._cfg(trial)
        error = _error_text(trial)
        history = []
        if trial.checkpoint is not None:  # the epochs it did finish, as the local path keeps
            with trial.checkpoint.as_directory() as d:
                state = ckpt.load(d)
                history = list(state["history"]) if state else []
        if history:
            write_history(self.study_root, cfg.trial_id, history)
        write_trial(self.study_root, cfg.trial_id,
                    failure_rows(cfg, error, epochs=len(history)))
        self.failures[cfg.trial_id] = error
        self.progress.finish(cfg, False, error)


IMAGES_FILE = "images.parquet"  # the per-image metrics inside the final checkpoint


def _copy_file(src: Path, dst: Path) -> None:
    """Copy one file into place atomically (temporary file beside it, then rename)."""
    if not src.is_file():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _copy_artifacts(src: Path, dst: Path) -> None:
    if not src.is_dir():
        return
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)


def run_ray(pending: list[TrialConfig], study_root: Path, resources: ResourcesConfig,
            cluster: Cluster, progress: Progress, *, storage: str | None = None,
            max_concurrent: int = 0) -> tuple[dict[str, str], set[str]]:
    """Run `pending` as one Tune experiment. Returns (failures: id → error, completed ids)."""
    cpus, gpus = trial_resources(resources, cluster, progress.note)
    device = "cuda" if gpus > 0 else "cpu"
    if storage and "://" in storage:
        raise RunError(f"--storage {storage!r}: filesystem URIs are not supported yet (resuming "
                       "across runs lists checkpoints on a mounted path); give a directory every "
                       "node mounts, e.g. an NFS path")
    storage_path = Path(storage) if storage else study_root / "ray"
    storage_path = storage_path.resolve()
    previous = latest_checkpoints(storage_path) if storage_path.exists() else {}
    jobs = []
    for cfg in pending:
        resume = previous.get(cfg.trial_id)
        if resume:
            progress.note(f"resuming {cfg.variant} seed {cfg.seed} ({cfg.trial_id}) from epoch "
                          f"{resume[0]}")
        jobs.append({"trial": trial_to_dict(cfg), "device": device,
                     "resume_from": str(resume[1]) if resume else ""})
    by_tid = {cfg.trial_id: cfg for cfg in pending}
    failures: dict[str, str] = {}
    completed: set[str] = set()
    name = "run-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    max_conc = max_concurrent or resources.max_concurrent or None
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": cpus, "gpu": gpus}),
        param_space={"job": tune.grid_search(jobs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_conc,
            trial_dirname_creator=lambda t: t.config["job"]["trial"]["trial_id"],
            trial_name_creator=lambda t: f"{t.config['job']['trial']['variant']}"
                                         f"-s{t.config['job']['trial']['seed']}"
                                         f"-{t.config['job']['trial']['trial_id']}"),
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage_path),
            failure_config=tune.FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[_Recorder(by_tid, study_root, progress, failures, completed)],
            verbose=0),
    )
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # ablate prints its own progress
    # keeping one checkpoint per trial snapshots the experiment at every epoch: expected here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ablate reports progress, failures and how to resume itself; Tune's warnings (e.g.
    # "Resume experiment with: Tuner.restore(...)" on Ctrl-C) would point users the wrong way
    tune_log = logging.getLogger("ray.tune")
    level = tune_log.level
    tune_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
    finally:
        tune_log.setLevel(level)
    return failures, completed
