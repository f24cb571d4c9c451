"""Writes that publish a file by renaming it: fsynced first (ablate/results/atomic.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ablate.results.atomic import atomic_copy, atomic_write_text
from ablate.train import checkpoint as ckpt


@pytest.fixture
def events(monkeypatch):
    """('fsync', path) and ('replace', src, dst) in the order they happen."""
    log: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        log.append(("replace", str(src), str(dst)))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def synced_before_publish(log, final: Path) -> None:
    """Every file under the temporary name that becomes `final` was fsynced before the rename,
    and the folder holding `final` after it."""
    i = next(i for i, e in enumerate(log) if e[0] == "replace" and e[2] == str(final))
    tmp = log[i][1]
    before = [e[1] for e in log[:i] if e[0] == "fsync"]
    if Path(final).is_dir():
        for f in Path(final).rglob("*"):
            if f.is_file():
                assert str(Path(tmp) / f.relative_to(final)) in before, (f, before)
    else:
        assert tmp in before, (tmp, log)
    assert ("fsync", str(Path(final).parent)) in log[i + 1:], log


def test_files_and_folders_are_fsynced_before_the_rename_that_publishes_them(tmp_path, events):
    atomic_write_text(tmp_path / "a" / "meta.json", "{}")
    synced_before_publish(events, tmp_path / "a" / "meta.json")
    tree = tmp_path / "src"
    (tree / "sub").mkdir(parents=True)
    (tree / "x.bin").write_bytes(b"x" * 100)
    (tree / "sub" / "y.bin").write_bytes(b"y" * 100)
    atomic_copy(tree, tmp_path / "copy")
    synced_before_publish(events, tmp_path / "copy")


def test_checkpoints_are_fsynced_before_they_replace_the_previous_one(tmp_path, events):
    state = {"trial_id": "t", "epoch": 1, "model": {"w": torch.ones(3)}, "optimizer": {},
             "scheduler": {}, "rng": {}, "history": [], "train_seconds": 0.0}
    ckpt.save(tmp_path / "ck", state)
    for name in (ckpt.FILE, "history.parquet", "meta.json"):
        synced_before_publish(events, tmp_path / "ck" / name)
