"""Epoch-end checkpoints: everything needed to continue a trial as if it had not stopped.

A checkpoint is a directory holding `checkpoint.pt` (and `meta.json`: trial id and epoch): model, optimiser, scheduler, the trial's
generators, torch's global RNG states, the epoch just finished, the history so far and the
training time spent. Written atomically (temporary file, then rename), so a process killed
while saving leaves the previous checkpoint intact. Ray-free: the Ray executor hands these
directories to `tune.Checkpoint.from_directory`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

FILE = "checkpoint.pt"


def save(directory: str | Path, state: dict) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f".{FILE}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, d / FILE)
    # a small sidecar so that status and resume can find the epoch without loading the state
    meta_tmp = d / f".meta.json.{os.getpid()}.tmp"
    meta_tmp.write_text(json.dumps({"trial_id": state.get("trial_id"), "epoch": state.get("epoch")}))
    os.replace(meta_tmp, d / "meta.json")
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
