"""The worker side of a Tune trial: what runs in a Ray worker process.

    job = job_of(cfg, device, study_dir.work_dir, resume_from, storage_uri)  # plain data
    train_job(job)          # in the worker: run_trial, a report + checkpoint per epoch, then
                            # the staged result files in the last report's checkpoint
    trial_actor(trainable, {"cpu": 1, "gpu": 0}, "AblateTrial")   # Tune's actor class

Each epoch reports metrics with `tune.report(..., checkpoint=tune.Checkpoint.from_directory(
...))` (the epoch checkpoint: checkpoint.pt, meta.json, history.parquet); a trial resumes from
`tune.get_checkpoint()` when Tune retries it, or from an earlier run's checkpoint (`resume_from`,
fetched from an object store when the storage is one). The last report's checkpoint holds the
training state at the end and the trial's result files, staged by `stage_result` exactly as the
local executor stages them; the driver commits them (driver.py). Reports carry numbers only,
and the Ray node the trial runs on (`node`: "<ip>/<node id>").
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import ray
from ray import tune

from ablate.orchestrate.ray_internals import wrap_function
from ablate.orchestrate.storage import fetch_checkpoint
from ablate.results.checkpoint_meta import CheckpointMeta
from ablate.results.layout import CHECKPOINT_FILE
from ablate.spec.config import TrialConfig
from ablate.spec.ids import trial_from_dict, trial_to_dict


def node_label() -> str:
    """This Ray node, as the `node` column names it: "<ip>/<first 12 hex of the node id>"."""
    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:12]}"


def trainable(config: dict) -> None:
    """`ablate run`'s function trainable: Tune's config holds the job (`job_of`)."""
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
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # one line per checkpoint otherwise
    # torch and the trial core: imported in the worker, not by the driver importing this module
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
        CheckpointMeta(cfg.trial_id, epochs, result.rows[0]["device"], final=True).write(final)
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
