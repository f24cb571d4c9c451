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
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ablate.results.atomic import atomic_write, atomic_write_text
from ablate.results.layout import CHECKPOINT_FILE, CHECKPOINT_META, TrialFiles
from ablate.results.schema import HISTORY_COLUMNS
from ablate.results.write import write_rows

FILE = CHECKPOINT_FILE


def save(directory: str | Path, state: dict, device: str = "") -> Path:
    d = Path(directory)
    atomic_write(d / FILE, lambda tmp: torch.save(state, tmp))
    write_rows(TrialFiles(d).history, list(state.get("history", [])), HISTORY_COLUMNS)
    atomic_write_text(d / CHECKPOINT_META, json.dumps(
        {"trial_id": state.get("trial_id"), "epoch": state.get("epoch"), "device": device}))
    return d


def load(directory: str | Path) -> dict | None:
    """The state in `directory`, or None when there is no (complete) checkpoint there."""
    p = Path(directory) / FILE
    if not p.is_file():
        return None
    return torch.load(p, map_location="cpu", weights_only=False)


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
