"""Run one trial in this process and record it: the path `ablate trial` and `--executor local`
share. Ray-free.

Checkpoints go to <study>/checkpoints/<trial_id>/ (the latest epoch only); a trial that finds
one there resumes from it. Results are written atomically: trials/<id>.parquet,
history/<id>.parquet, images/<id>.parquet (per-image metrics) and artifacts/<id>/. A failure is recorded as `status = failed` rows with
the error, never lost.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

from ablate.results.schema import artifacts_dir
from ablate.results.write import write_history, write_images, write_trial
from ablate.spec.config import TrialConfig
from ablate.train import checkpoint as ckpt
from ablate.train.trial import (EpochReport, TrialResult, device_name, failure_rows,
                                resolve_device, run_trial)


def checkpoint_dir(study_root: Path, trial_id: str) -> Path:
    return study_root / "checkpoints" / trial_id


def write_result(study_root: Path, result: TrialResult) -> None:
    """Artifacts, per-image metrics and history first, the trial file last: its presence
    means 'completed'."""
    tid = result.config.trial_id
    if result.evaluation is not None:
        result.evaluation.write_artifacts(artifacts_dir(study_root, tid))
        write_images(study_root, tid, result.evaluation.images)
    if result.history:
        write_history(study_root, tid, result.history)
    write_trial(study_root, tid, result.rows)


def record_trial(cfg: TrialConfig, study_root: Path, *, device: str = "auto",
                 on_epoch: Callable[[EpochReport, Path | None], None] | None = None,
                 log: Callable[[str], None] = lambda m: None) -> tuple[bool, list[dict]]:
    """Run `cfg` with checkpoints under `study_root` and write its files.
    Returns (completed?, rows)."""
    cdir = checkpoint_dir(study_root, cfg.trial_id)
    resume = cdir if (cdir / ckpt.FILE).is_file() else None
    try:
        result = run_trial(cfg, device=device, checkpoint_dir=cdir, resume_from=resume,
                           on_epoch=on_epoch, log=log)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # recorded, with the traceback's last line kept in the message
        error = f"{type(e).__name__}: {e}"
        log("trial failed: " + error)
        log("".join(traceback.format_exception(e)).rstrip())
        state = ckpt.load(cdir) if cdir.exists() else None
        history = state["history"] if state else []
        if history:
            write_history(study_root, cfg.trial_id, history)
        try:
            where = device_name(resolve_device(device))
        except Exception:  # the device itself was the problem
            where = str(device)
        rows = failure_rows(cfg, error, device=where, epochs=len(history))
        write_trial(study_root, cfg.trial_id, rows)
        return False, rows
    write_result(study_root, result)
    return True, result.rows
