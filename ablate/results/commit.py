"""One path from a finished trial to its study's files, for every executor.

    outcome = stage(work, cfg.trial_id, rows, history, images, samples, spectra)  # completed
    outcome = stage_failure(work, cfg, error, device="cpu", checkpoint=ckpt_dir)   # failed
    commit(study_dir, outcome)

A trial's files are first put together in one directory (`TrialFiles`): the local executor
stages them in a temporary folder of the study; a Ray worker stages them in its final
checkpoint directory, which Tune hands to the driver, so results need no shared filesystem.
`commit` then copies them into the study, each atomically: artifacts, per-image metrics and
history first, the trial file last (its presence means the trial finished), and drops the
trial's running marker. Same trial → same files, whichever executor ran it.

A failed trial keeps the history of the epochs it finished: its latest checkpoint directory
holds `history.parquet` (written at every epoch), copied as is; nothing here loads a
checkpoint. Torch-free, Ray-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ablate.results.atomic import atomic_copy
from ablate.results.checkpoint_meta import CheckpointMeta
from ablate.results.layout import CHECKPOINT_META, StudyDir, TrialFiles
from ablate.results.rows import failure_rows
from ablate.schema import HISTORY_COLUMNS, IMAGE_COLUMNS, TRIAL_COLUMNS
from ablate.results.write import write_artifacts, write_rows
from ablate.spec.config import TrialConfig


@dataclass(frozen=True)
class Outcome:
    """A finished trial's files, staged and ready to commit."""

    trial_id: str
    files: TrialFiles

    def rows(self) -> list[dict]:
        """The staged trial rows."""
        return pq.read_table(self.files.trial).to_pylist()


def stage(dir: Path, trial_id: str, rows: list[dict], history: list[dict],
          images: list[dict] = (), samples: dict[str, np.ndarray] | None = None,
          spectra: list[dict] | None = None) -> Outcome:
    """Write a trial's files into `dir`: trial rows, history, per-image rows (trial_id added)
    and, when given, the artifacts (predictions and spectra)."""
    files = TrialFiles(dir)
    if history:
        write_rows(files.history, history, HISTORY_COLUMNS)
    if images:
        write_rows(files.images, [{"trial_id": trial_id, **r} for r in images], IMAGE_COLUMNS)
    if spectra is not None:
        write_artifacts(files.artifacts, samples or {}, spectra)
    write_rows(files.trial, rows, TRIAL_COLUMNS)
    return Outcome(trial_id, files)


def stage_failure(dir: Path, cfg: TrialConfig, error: str, *, device: str,
                  checkpoint: Path | None = None, node: str = "",
                  status: str = "failed") -> Outcome:
    """A failed trial's files: `status = failed` rows with `error`, and the history of its
    latest checkpoint directory when there is one (its device too: the one it trained on)."""
    files = TrialFiles(dir)
    epochs = 0
    if checkpoint is not None:
        kept = TrialFiles(checkpoint)
        epochs = _readable_rows(kept.history)
        if epochs is not None:
            atomic_copy(kept.history, files.history)
        epochs = epochs or 0
        device = _checkpoint_device(Path(checkpoint)) or device
    write_rows(files.trial, failure_rows(cfg, error, device=device, epochs=epochs, node=node,
                                            status=status),
               TRIAL_COLUMNS)
    return Outcome(cfg.trial_id, files)


def _readable_rows(history: Path) -> int | None:
    """Rows of a checkpoint's history.parquet, or None when it is absent or does not read (a
    damaged file is left out of the failed trial's record, not copied)."""
    if not history.is_file():
        return None
    try:
        return pq.read_table(history).num_rows
    except Exception:  # noqa: BLE001 — truncated or foreign
        return None


def _checkpoint_device(checkpoint: Path) -> str:
    meta = CheckpointMeta.read(checkpoint / CHECKPOINT_META)
    return meta.device if meta is not None else ""


def commit(study_dir: StudyDir, outcome: Outcome) -> None:
    """Copy the staged files into the study, the trial file last."""
    tid, files = outcome.trial_id, outcome.files
    if files.artifacts.is_dir():
        atomic_copy(files.artifacts, study_dir.artifacts(tid))
    if files.images.is_file():
        atomic_copy(files.images, study_dir.images(tid))
    if files.history.is_file():
        atomic_copy(files.history, study_dir.history(tid))
    atomic_copy(files.trial, study_dir.trial(tid))
    study_dir.running(tid).unlink(missing_ok=True)
