"""Checkpoints that must not be trusted or cannot be read: refused, set aside, never fatal."""

from __future__ import annotations

import json
import pathlib

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.spec import expand, load_study
from ablate.train import checkpoint as ckpt
from ablate.train.trial import run_trial

from conftest import write_tiny_study

runner = CliRunner()


class _Payload:
    """Unpickling this creates `marker`: what a hostile checkpoint on shared storage could do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_checkpoint_carrying_code_is_refused_and_never_unpickled(tmp_path):
    cfg = expand(load_study(write_tiny_study(tmp_path, seeds=(0,), epochs=1)))[0]
    marker = tmp_path / "code-ran"
    d = tmp_path / "ck"
    d.mkdir()
    torch.save({"trial_id": cfg.trial_id, "epoch": 1, "payload": _Payload(marker)},
               d / ckpt.FILE)
    try:
        ckpt.load(d)
        raised = None
    except Exception as e:  # noqa: BLE001 — checked below, after the marker
        raised = e
    assert not marker.exists()  # the payload never ran
    assert isinstance(raised, ckpt.CheckpointUnreadable) and "refused" in str(raised), raised
    # a trial given it starts afresh, with the file set aside and named in a warning
    logs = []
    result = run_trial(cfg, device="cpu", checkpoint_dir=d, resume_from=d, log=logs.append)
    assert not marker.exists()
    assert [h["resumed"] for h in result.history] == [False]
    assert (d / (ckpt.FILE + ".unreadable")).is_file()
    assert any(m.startswith("warning") and str(d / ckpt.FILE) in m for m in logs), logs
    assert ckpt.load(d)["epoch"] == 1  # its own, written with weights_only in mind


def _garbage_checkpoint(d: pathlib.Path, trial_id: str, epoch: int) -> None:
    d.mkdir(parents=True)
    (d / ckpt.FILE).write_bytes(b"PK\x03\x04 truncated zip" + bytes(200))
    (d / "history.parquet").write_bytes(b"PAR1 not really")
    (d / "meta.json").write_text(json.dumps({"trial_id": trial_id, "epoch": epoch}))


def test_corrupt_local_checkpoint_is_set_aside_and_the_trial_restarts(tmp_path):
    study = write_tiny_study(tmp_path, name="corrupt", seeds=(0,), epochs=2)
    trials = expand(load_study(study))
    out = tmp_path / "res"
    bad = out / "corrupt" / "checkpoints" / trials[0].trial_id
    _garbage_checkpoint(bad, trials[0].trial_id, 1)
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and str(bad / ckpt.FILE) in r.output
    assert (bad / (ckpt.FILE + ".unreadable")).is_file()
    for t in trials:  # both completed, the first from scratch
        rows = pd.read_parquet(out / "corrupt" / "trials" / f"{t.trial_id}.parquet")
        assert set(rows["status"]) == {"completed"}
        hist = pd.read_parquet(out / "corrupt" / "history" / f"{t.trial_id}.parquet")
        assert list(hist["epoch"]) == [1, 2] and not hist["resumed"].any()


def test_corrupt_ray_checkpoint_falls_back_to_the_previous_one(tmp_path, ray_address):
    study = write_tiny_study(tmp_path, name="corray", seeds=(0,), epochs=2)
    trials = expand(load_study(study))
    cfg = trials[0]
    out = tmp_path / "res"
    storage = out / "corray" / "ray"
    good = storage / "run-a" / cfg.trial_id / "checkpoint_000000"

    class Stop(Exception):
        pass

    def stop(report, _saved):
        raise Stop

    with pytest.raises(Stop):  # a real epoch-1 checkpoint of an earlier run
        run_trial(cfg, device="cpu", checkpoint_dir=good, on_epoch=stop)
    bad = storage / "run-b" / cfg.trial_id / "checkpoint_000001"
    _garbage_checkpoint(bad, cfg.trial_id, 2)  # newer, and unreadable
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--address", ray_address])
    assert r.exit_code == 0, r.output
    assert "warning" in r.output and str(bad / ckpt.FILE) in r.output, r.output
    assert (bad / (ckpt.FILE + ".unreadable")).is_file()
    hist = pd.read_parquet(out / "corray" / "history" / f"{cfg.trial_id}.parquet")
    assert list(hist["epoch"]) == [1, 2] and list(hist["resumed"]) == [False, True]
    rows = pd.read_parquet(out / "corray" / "trials" / f"{cfg.trial_id}.parquet")
    assert set(rows["status"]) == {"completed"}
