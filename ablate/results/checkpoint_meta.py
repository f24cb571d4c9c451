"""A checkpoint directory's `meta.json`: which trial, which epoch, on which device; read
without torch (by `ablate status`, the resume lookup, a failed trial's record, on any node).

    CheckpointMeta(trial_id, epoch=3, device="cpu").write(directory)   # written last
    meta = CheckpointMeta.read(directory / CHECKPOINT_META)            # None: not one

`final` marks the Ray worker's last checkpoint of a trial: the training state at its end and
the staged result files beside it (orchestrate/worker.py). One type for every writer (the
epoch checkpoint, train/checkpoint.py; the final one) and every reader (study_files.py, the
object-store listing in storage.py, results/commit.py). Ray-free, torch-free.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ablate.results.atomic import atomic_write_text
from ablate.results.layout import CHECKPOINT_META


@dataclass(frozen=True)
class CheckpointMeta:
    trial_id: str
    epoch: int
    device: str = ""
    final: bool = False

    def write(self, directory: str | Path) -> Path:
        """`directory`/meta.json, atomically (the last file of a checkpoint written)."""
        doc = asdict(self)
        if not self.final:
            del doc["final"]  # as epoch checkpoints have always been written
        return atomic_write_text(Path(directory) / CHECKPOINT_META, json.dumps(doc))

    @classmethod
    def parse(cls, text: str | bytes) -> "CheckpointMeta | None":
        """The meta of a meta.json's text; None when it does not read as
        {"trial_id": non-empty str, "epoch": int, …}."""
        try:
            m = json.loads(text)
            tid, epoch = m.get("trial_id"), int(m.get("epoch") or 0)
            device, final = str(m.get("device") or ""), bool(m.get("final", False))
        except (ValueError, AttributeError, TypeError):
            return None
        if not isinstance(tid, str) or not tid:
            return None
        return cls(tid, epoch, device, final)

    @classmethod
    def read(cls, path: str | Path) -> "CheckpointMeta | None":
        """The meta.json at `path` (a file), or None when it is absent or does not read."""
        try:
            return cls.parse(Path(path).read_bytes())
        except OSError:
            return None
