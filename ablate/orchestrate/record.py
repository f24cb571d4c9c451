"""Run one trial in this process and commit it: the path `ablate trial` and `--executor local`
share. Ray-free.

Checkpoints go to <study>/checkpoints/<trial_id>/ (the latest epoch only); a trial that finds
one there resumes from it. The trial's files are staged in a temporary folder of the study and
committed with `ablate.results.commit.commit`, the function the Ray driver uses too. A failure
is committed as `status = failed` rows with the error (and the history of the epochs it
finished), never lost; Ctrl-C is not a failure, nor is a full disk (`DiskFull`): both
propagate, and the trial stays interrupted.
"""

from __future__ import annotations

import tempfile
import traceback
from pathlib import Path
from typing import Callable

from ablate.results.atomic import DiskFull, is_disk_full
from ablate.results.commit import Outcome, commit, stage, stage_failure
from ablate.results.layout import CHECKPOINT_FILE, StudyDir
from ablate.spec.config import TrialConfig
from ablate.train.trial import (EpochReport, TrialResult, device_name, resolve_device,
                                run_trial)


def stage_result(dir: Path, result: TrialResult) -> Outcome:
    """A completed trial's files, staged in `dir` (shared with the Ray worker)."""
    ev = result.evaluation
    return stage(dir, result.config.trial_id, result.rows, result.history,
                 images=ev.images if ev else [], samples=ev.samples if ev else None,
                 spectra=ev.spectra if ev else None)


def device_label(device: str) -> str:
    """The device a trial asked for, as the rows name it ("cpu", "cuda:<name>")."""
    try:
        return device_name(resolve_device(device))
    except Exception:  # noqa: BLE001 — the device itself was the problem
        return str(device)


def record_trial(cfg: TrialConfig, study_dir: StudyDir, *, device: str = "auto",
                 on_epoch: Callable[[EpochReport, Path | None], None] | None = None,
                 log: Callable[[str], None] = lambda m: None) -> tuple[bool, list[dict]]:
    """Run `cfg` with checkpoints under the study and commit its files.
    Returns (completed?, rows)."""
    cdir = study_dir.checkpoint(cfg.trial_id)
    resume = cdir if (cdir / CHECKPOINT_FILE).is_file() else None
    study_dir.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=study_dir.staging_prefix(cfg.trial_id),
                                     dir=study_dir.root) as tmp:
        try:
            result = run_trial(cfg, device=device, checkpoint_dir=cdir, resume_from=resume,
                               on_epoch=on_epoch, log=log)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # recorded, with the traceback's last line kept in the message
            if is_disk_full(e):  # not the trial's fault: the run stops, the trial resumes later
                raise e if isinstance(e, DiskFull) else DiskFull(cdir, e) from e
            error = f"{type(e).__name__}: {e}"
            log("trial failed: " + error)
            log("".join(traceback.format_exception(e)).rstrip())
            outcome = stage_failure(Path(tmp), cfg, error, device=device_label(device),
                                    checkpoint=cdir if cdir.is_dir() else None)
            commit(study_dir, outcome)
            return False, outcome.rows()
        commit(study_dir, stage_result(Path(tmp), result))
    return True, result.rows

