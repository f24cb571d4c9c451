"""Checks on a study directory after faults (a full disk, SIGKILLs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ablate.train import checkpoint as ckpt


def check_every_file_complete(root: Path) -> None:
    """No temporary files; every file that exists reads completely."""
    for p in root.rglob("*"):
        if not p.is_file() or p.name == ".run.lock":
            continue
        assert not p.name.endswith((".tmp", ".old")), p
        if p.suffix == ".parquet":
            pq.read_table(p)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".npz":
            with np.load(p) as z:
                [z[k] for k in z.files]
        elif p.name == ckpt.FILE:
            assert ckpt.load(p.parent) is not None
    assert not [p for p in root.rglob(".stage-*")]


def trained_whole_and_resumed(cfg, ckpt_dir: Path):
    """The trial trained in one go, and the same trial killed after epoch 2 and resumed from
    its checkpoint in `ckpt_dir`: (full, resumed) TrialResults."""
    import pytest

    from ablate.train.trial import run_trial

    full = run_trial(cfg, device="cpu")

    class Killed(Exception):
        pass

    def die_after_2(report, _saved):
        if report.epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        run_trial(cfg, device="cpu", checkpoint_dir=ckpt_dir, on_epoch=die_after_2)
    return full, run_trial(cfg, device="cpu", checkpoint_dir=ckpt_dir, resume_from=ckpt_dir)
