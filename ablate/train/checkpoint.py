"""Epoch-end checkpoints: everything needed to continue a trial as if it had not stopped.

A checkpoint is a directory (``ablate.results.layout``) holding:

- `checkpoint.pt`: model, optimiser, scheduler, the trial's generators, torch's global RNG
  states, the epoch just finished, the history so far and the training time spent;
- `history.parquet`: that history as rows (HISTORY_COLUMNS), for readers that must not load
  the state (a failed trial's record, on the Ray driver too);
- `meta.json`: trial id, epoch and device, for `ablate status` and resuming, written last.

Each file is written atomically (temporary file, then rename), so a process killed while
saving leaves the previous checkpoint usable. Ray-free: the Ray executor hands these
directories to `tune.Checkpoint.from_directory`.

Checkpoints may come from a shared filesystem (`--storage` on NFS), so they are loaded with
`torch.load(weights_only=True)`: tensors and plain values only, never arbitrary pickles. A file
that does not load that way (truncated, corrupt, or carrying code) raises
`CheckpointUnreadable`; `set_aside` renames such a checkpoint's files (``*.unreadable``) so that
no reader picks it up again.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import torch

from ablate.results.atomic import atomic_write
from ablate.results.checkpoint_meta import CheckpointMeta
from ablate.results.layout import CHECKPOINT_FILE, CHECKPOINT_META, TrialFiles
from ablate.schema import HISTORY_COLUMNS
from ablate.results.write import write_rows

FILE = CHECKPOINT_FILE


def save(directory: str | Path, state: dict, device: str = "") -> Path:
    d = Path(directory)
    buf = io.BytesIO()  # serialised first: a full disk is then an OSError (ENOSPC) of the
    torch.save(state, buf)  # plain write below, which atomic_write reports as DiskFull
    atomic_write(d / FILE, lambda tmp: tmp.write_bytes(buf.getbuffer()))
    write_rows(TrialFiles(d).history, list(state.get("history", [])), HISTORY_COLUMNS)
    CheckpointMeta(str(state.get("trial_id") or ""), int(state.get("epoch") or 0),
                   device).write(d)
    return d


UNREADABLE_SUFFIX = ".unreadable"  # a checkpoint file set aside: checkpoint.pt.unreadable


class CheckpointUnreadable(Exception):
    """A checkpoint file that does not load as a training state (the message says why)."""

    def __init__(self, path: Path, reason: str):
        self.path = Path(path)
        super().__init__(f"checkpoint {path} does not load: {reason}")


def load(directory: str | Path) -> dict | None:
    """The state in `directory`, or None when there is no checkpoint there. Raises
    CheckpointUnreadable when the file does not load with `weights_only=True`."""
    p = Path(directory) / FILE
    if not p.is_file():
        return None
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — corrupt, truncated, foreign or carrying code
        text = " ".join(str(e).split())
        reason = f"{type(e).__name__}: {text[:300]}"
        if isinstance(e, pickle.UnpicklingError):
            reason = ("it holds more than tensors and plain values, so it was refused and not "
                      f"unpickled (weights_only=True; {reason})")
        raise CheckpointUnreadable(p, reason) from None
    missing = [k for k in ("trial_id", "epoch", "model", "optimizer", "scheduler", "rng",
                           "history", "train_seconds") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointUnreadable(p, f"not a training state (lacks {missing})")
    return state


def set_aside(directory: str | Path) -> Path:
    """Rename the checkpoint files of `directory` to ``*.unreadable`` (no reader looks at them
    again; a later epoch writes fresh ones beside them). Returns the checkpoint file's new path."""
    d = Path(directory)
    for name in (FILE, CHECKPOINT_META, TrialFiles(d).history.name):
        src = d / name
        if src.exists():
            os.replace(src, src.with_name(src.name + UNREADABLE_SUFFIX))
    return d / (FILE + UNREADABLE_SUFFIX)


def rng_state(cpu_gen: torch.Generator, dev_gen: torch.Generator) -> dict:
    out = {"torch": torch.get_rng_state(), "cpu_gen": cpu_gen.get_state(),
           "dev_gen": dev_gen.get_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(state: dict, cpu_gen: torch.Generator, dev_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    cpu_gen.set_state(state["cpu_gen"])
    dev_gen.set_state(state["dev_gen"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
