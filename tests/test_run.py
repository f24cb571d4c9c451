"""`ablate run` and `ablate status` with a real local Ray (shared by the test session)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.checkpoint_meta import CheckpointMeta
from ablate.schema import IMAGE_COLUMNS, TRIAL_COLUMNS
from ablate.spec import expand, load_study

from conftest import write_tiny_study

runner = CliRunner()


def trial_files(root: Path) -> list[Path]:
    return sorted((root / "trials").glob("*.parquet"))


def check_images(root: Path, files: list[Path]) -> None:
    """Each completed trial has its per-image metrics, which average to its trial row."""
    for f in files:
        trial = pd.read_parquet(f)
        images = pd.read_parquet(root / "images" / f.name)
        assert list(images.columns) == list(IMAGE_COLUMNS)
        assert set(images["trial_id"]) == {f.stem} and len(images) == 2 * 4  # 2 res × 4 crops
        means = images.groupby("resolution")[["psnr", "psnr_y", "ssim"]].mean()
        for _, row in trial.iterrows():
            for k in ("psnr", "psnr_y", "ssim"):
                assert means.loc[row["resolution"], k] == pytest.approx(row[k], rel=1e-9)
    assert not list((root / "images").glob(".*"))  # no temporary leftovers


def test_study_through_ray_then_rerun_skips(tmp_path, ray_address):
    study = write_tiny_study(tmp_path)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--address", ray_address])
    assert r.exit_code == 0, r.output
    files = trial_files(out / "tiny")
    assert len(files) == 4
    ids = {t.trial_id for t in expand(load_study(study))}
    assert {f.stem for f in files} == ids
    for f in files:
        df = pd.read_parquet(f)
        assert list(df.columns) == list(TRIAL_COLUMNS)
        assert set(df["status"]) == {"completed"} and list(df["resolution"]) == [16, 32]
    assert len(list((out / "tiny" / "history").glob("*.parquet"))) == 4
    assert (out / "tiny" / "study.toml").exists() and (out / "tiny" / "manifest.json").exists()
    assert not (out / "tiny" / "plan.json").exists()
    check_images(out / "tiny", files)
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    t0 = time.monotonic()
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--address", ray_address])
    took = time.monotonic() - t0
    assert r.exit_code == 0, r.output
    assert "4 already completed, 0 to run" in r.output
    assert took < 10, took
    assert {f: f.stat().st_mtime_ns for f in trial_files(out / "tiny")} == mtimes

    # changing one variant re-runs only its trials
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--address", ray_address,
                            "--set", "variant.multiscale.jitter.std=0.02"])
    assert r.exit_code == 0, r.output
    assert "2 already completed, 2 to run" in r.output
    assert len(trial_files(out / "tiny")) == 6

    r = runner.invoke(app, ["status", str(out)])
    assert r.exit_code == 0 and "tiny (done): 4/4 completed" in r.output

    # the seed-0 trials again, with the local executor: one commit path, so the same files with
    # the same contents as Ray's (only wall-clock columns differ). One CPU thread, as in a Ray
    # worker of cpus_per_trial = 1 (OMP_NUM_THREADS=1): float sums split over threads differ in
    # the last bit, and the comparison is exact.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "local"),
                                "--executor", "local", "--set", "study.seeds=[0]"])
    finally:
        torch.set_num_threads(threads)
    assert r.exit_code == 0, r.output
    same_files(tmp_path / "local" / "tiny", out / "tiny")


# when and where it ran: wall clock, and the node (a Ray node "<ip>/<id>" or the host name)
WALL_CLOCK = {"train_seconds", "train_img_per_s", "finished_at", "seconds", "img_per_s", "node"}


def same_files(local: Path, ray: Path) -> None:
    """Every result file of `local` exists in `ray` with the same contents (wall clock and node
    aside)."""
    names = sorted(str(p.relative_to(local)) for sub in ("trials", "history", "images", "artifacts")
                   for p in (local / sub).rglob("*") if p.is_file())
    assert len(names) == 2 * 5  # 2 trials: trial, history, images, predictions, spectra
    for name in names:
        if name.endswith(".npz"):
            with np.load(local / name) as a, np.load(ray / name) as b:
                assert a.files == b.files
                for k in a.files:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")
            continue
        a, b = pq.read_table(local / name), pq.read_table(ray / name)
        assert a.schema == b.schema, name
        keep = [c for c in a.column_names if c not in WALL_CLOCK]
        pd.testing.assert_frame_equal(a.select(keep).to_pandas(), b.select(keep).to_pandas(),
                                      check_exact=True, obj=name)


def test_failing_variant_is_retried_then_recorded_with_its_history(tmp_path, ray_address,
                                                                   ray_said):
    # "broken" trains epoch 1 normally, then diverges in epoch 2: its "cosine" schedule rises
    # to min_lr ≫ lr from the second step on (the loss of epoch 1 is computed before that)
    extra = ('\n[[variant]]\nname = "broken"\njitter = "per_sample"\n'
             'train = { epochs = 2, lr = 1e-3, min_lr = 1e30, grad_clip = 0 }\n')
    study = write_tiny_study(tmp_path, name="fails", seeds=(0,), epochs=1, max_failures=1,
                             extra=extra)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--address",
                            ray_address])
    assert r.exit_code == 1, r.output
    assert "retrying broken seed 0" in r.output  # one retry (max_failures = 1)
    assert "FAILED" in r.output and "loss became nan in epoch 2" in r.output
    # ablate's lines say it; Tune's traceback of the same TrialFailed is not printed as well
    assert not [m for m in ray_said() if "TrialFailed" in m or "did not complete" in m
                or "Trial task failed" in m], ray_said()
    rows = pd.concat(pd.read_parquet(f) for f in trial_files(out / "fails"))
    by_variant = rows.groupby("variant")["status"].agg(set).to_dict()
    assert by_variant == {"plain": {"completed"}, "multiscale": {"completed"}, "broken": {"failed"}}
    broken = rows[rows.variant == "broken"]
    err = broken["error"].iloc[0]
    assert "TrialFailed" in err and "loss became" in err
    # the epoch it finished is kept, as the local executor keeps it; the device is recorded
    assert set(broken["epochs"]) == {1} and set(broken["device"]) == {"cpu"}
    hist = pd.read_parquet(out / "fails" / "history" / f"{broken['trial_id'].iloc[0]}.parquet")
    assert list(hist["epoch"]) == [1] and np.isfinite(hist["loss"]).all()
    assert not (out / "fails" / "images" / f"{broken['trial_id'].iloc[0]}.parquet").exists()
    assert not list((out / "fails" / "running").glob("*"))  # every trial committed


def test_rays_reports_of_failures_ablate_explains_are_dropped_and_others_kept():
    """The filter on Ray's loggers: a TrialFailed or a full disk (told once, by ablate) is
    dropped, anywhere in the exception's chain or named in Ray's one-line report; any other
    exception (a bug) keeps Tune's traceback."""
    from ablate.orchestrate.driver import _QuietExplained
    from ablate.results.atomic import DiskFull
    from ablate.train.trial import TrialFailed

    def record(message, exc=None):
        return logging.LogRecord("ray.tune.execution.tune_controller", logging.ERROR, "f", 1,
                                 message, None, (type(exc), exc, None) if exc else None)

    def chained(outer, inner):
        try:
            try:
                raise inner
            except Exception as e:
                raise outer from e
        except Exception as e:
            return e

    keep = _QuietExplained().filter
    assert not keep(record("Trial task failed for trial t", TrialFailed("loss became nan")))
    assert not keep(record("Trial task failed for trial t", DiskFull("/x")))
    assert not keep(record("Trial task failed for trial t",
                           chained(RuntimeError("wrapped"), TrialFailed("nan"))))
    assert not keep(record("Unhandled error (suppress with …): ablate.train.trial.TrialFailed: "
                           "training loss became nan"))
    assert not keep(record("Trials did not complete: [s/v/seed 0]"))
    assert keep(record("Trial task failed for trial t", KeyError("a bug")))
    assert keep(record("Trial task failed for trial t", chained(RuntimeError("x"), ValueError())))
    assert keep(record("Unhandled error (suppress with …): KeyError: 'a bug'"))
    assert keep(record("something else entirely"))


def test_missing_data_path_is_invalid_input_not_failed_trials(tmp_path):
    study = write_tiny_study(tmp_path, name="nodata", seeds=(0,), epochs=1)
    out = tmp_path / "res"
    for executor in ("ray", "local"):
        r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", executor,
                                "--set", 'variant.plain.data.source="folder:no/such/dir"'])
        assert r.exit_code == 2, r.output
        assert "no/such/dir does not exist" in r.output and "relative paths resolve" in r.output
    assert not (out / "nodata" / "trials").exists()


def test_unreachable_address_is_a_clear_error(tmp_path):
    study = write_tiny_study(tmp_path)
    t0 = time.monotonic()
    r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "r"),
                            "--address", "127.0.0.1:9"])
    assert r.exit_code == 2, r.output
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in r.output
    assert time.monotonic() - t0 < 15


def test_local_executor_and_lock(tmp_path):
    from ablate.orchestrate.lock import StudyLock

    study = write_tiny_study(tmp_path, name="loc", seeds=(0,), epochs=1)
    out = tmp_path / "res"
    with StudyLock(out / "loc"):
        r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
        assert r.exit_code == 2 and f"pid {os.getpid()}" in r.output
    # left by a killed run: a staging folder and a running marker, cleared by the next run
    (out / "loc" / ".stage-dead-x").mkdir()
    (out / "loc" / ".stage-dead-x" / "trial.parquet").write_bytes(b"half")
    (out / "loc" / "running").mkdir()
    (out / "loc" / "running" / "dead.json").write_text("{}")
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
    assert r.exit_code == 0, r.output
    assert len(trial_files(out / "loc")) == 2
    check_images(out / "loc", trial_files(out / "loc"))
    assert not list((out / "loc").glob(".stage-*"))
    assert not (out / "loc" / "running").exists()  # emptied, then removed


def test_run_only_some_variants(tmp_path):
    study = write_tiny_study(tmp_path, name="part", seeds=(0,), epochs=1)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local",
                            "--variant", "multiscal"])
    assert r.exit_code == 2 and "did you mean 'multiscale'" in r.output, r.output
    assert "variants: plain, multiscale" in r.output
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local",
                            "--variant", "multiscale"])
    assert r.exit_code == 0, r.output
    assert "1 trials of variant multiscale (of 2 in the study)" in r.output
    [f] = trial_files(out / "part")
    assert set(pd.read_parquet(f)["variant"]) == {"multiscale"}
    # the manifest keeps the whole study: status counts the other variant as pending
    r = runner.invoke(app, ["status", str(out / "part")])
    assert "1/2 completed, 0 failed, 0 running, 0 interrupted, 1 pending" in r.output, r.output
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local",
                            "--variant", "plain", "--variant", "multiscale"])
    assert r.exit_code == 0 and "1 already completed, 1 to run" in r.output, r.output
    assert len(trial_files(out / "part")) == 2


def test_sigkill_mid_study_then_rerun_completes_each_trial_once(tmp_path, ray_address):
    study = write_tiny_study(tmp_path, name="killed", seeds=(0, 1), epochs=12)
    out = tmp_path / "res"
    root = out / "killed"
    cmd = [sys.executable, "-m", "ablate.cli.app", "run", str(study), "--results", str(out),
           "--address", ray_address]
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    # wait until some trial has checkpointed an epoch ≥ 2 but the study is not finished
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        metas = [CheckpointMeta.read(m) for m in root.glob("ray/*/*/checkpoint_*/meta.json")]
        if any(m is not None and 2 <= m.epoch <= 10 for m in metas):  # mid-trial, not the end
            break
        assert proc.poll() is None, (tmp_path / "first.log").read_text()
        time.sleep(0.2)
    else:
        pytest.fail("no checkpoint appeared: " + (tmp_path / "first.log").read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {f.stem for f in trial_files(root)}
    assert len(done_before) < 4

    r = runner.invoke(app, ["status", str(root)])
    assert r.exit_code == 0 and "interrupted" in r.output

    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--address", ray_address])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output
    files = trial_files(root)
    ids = {t.trial_id for t in expand(load_study(study))}
    assert {f.stem for f in files} == ids  # each trial exactly once, no stray files
    assert not list((root / "trials").glob(".*"))  # no temporary leftovers
    resumed_any = False
    for f in files:
        df = pd.read_parquet(f)
        assert set(df["status"]) == {"completed"} and len(df) == 2
        hist = pd.read_parquet(root / "history" / f.name)
        assert list(hist["epoch"]) == list(range(1, 13))  # no epoch lost or repeated
        if hist["resumed"].any():
            resumed_any = True
            first = int(hist[hist["resumed"]]["epoch"].iloc[0])
            assert first > 1
    assert resumed_any


def test_resource_requests_that_can_never_run():
    from ablate.orchestrate.cluster import Cluster, RunError, trial_resources
    from ablate.spec.config import ResourcesConfig

    cpu_only = Cluster(address="", cpus=2, gpus=0, dashboard_url="", started_here=False)
    notes = []
    # GPUs asked on a machine without any: CPU fallback with a warning, never PENDING forever
    assert trial_resources(ResourcesConfig(gpus_per_trial=0.25), cpu_only, notes.append) == (1.0, 0.0)
    assert "no GPU" in notes[0]
    assert trial_resources(ResourcesConfig(gpus_per_trial="auto"), cpu_only, notes.append) == (1.0, 0.0)
    with pytest.raises(RunError, match="only 2 CPUs"):
        trial_resources(ResourcesConfig(cpus_per_trial=4), cpu_only, notes.append)
    gpu_node = Cluster(address="", cpus=16, gpus=1, dashboard_url="", started_here=False)
    assert trial_resources(ResourcesConfig(gpus_per_trial="auto"), gpu_node, notes.append) == (1.0, 0.25)
    with pytest.raises(RunError, match="whole number"):
        trial_resources(ResourcesConfig(gpus_per_trial=1.5), gpu_node, notes.append)


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_running_from_its_start_then_ctrl_c_leaves_trials_interrupted(tmp_path, ray_address,
                                                                    executor):
    from ablate.orchestrate.status import study_status
    from ablate.results.layout import StudyDir

    study = write_tiny_study(tmp_path, name="stop", seeds=(0,), epochs=30)
    out = tmp_path / "res"
    root = StudyDir(out / "stop")
    cmd = [sys.executable, "-m", "ablate.cli.app", "run", str(study), "--results", str(out),
           "--executor", executor, "--address", ray_address]
    log_path = tmp_path / "run.log"
    proc = subprocess.Popen(cmd, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    try:
        # `ablate status` shows a trial as running from its start, before any checkpoint
        seen_at_start = None
        deadline = time.monotonic() + 120
        while seen_at_start is None and time.monotonic() < deadline:
            if root.manifest.exists():
                s = study_status(root)
                if s.running:
                    seen_at_start = s
                    break
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.05)
        assert seen_at_start is not None, log_path.read_text()
        assert seen_at_start.active and seen_at_start.interrupted == 0
        assert 0 in seen_at_start.in_progress.values(), seen_at_start  # no epoch done yet
        # Ctrl-C once a trial has checkpointed an epoch
        while time.monotonic() < deadline and not any(study_status(root).in_progress.values()):
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log_path.read_text()
    assert rc == 130, text
    assert "interrupted" in text and "resume" in text
    # the message counts the checkpoints that exist (one trial had finished an epoch)
    from ablate.orchestrate.status import resume_points

    points = resume_points(root)
    assert any(points.values()), points
    resumable = sorted(ep for ep in points.values() if ep)
    assert f"{len(resumable)} resume" in text and \
        f"(at epoch {', '.join(str(ep + 1) for ep in resumable)})" in text, text  # the next
    assert not list(root.trials_dir.glob("*.parquet"))  # nothing recorded as failed
    r = runner.invoke(app, ["status", str(root.root)])
    assert r.exit_code == 0, r.output
    assert "stop (idle): 0/2 completed, 0 failed, 0 running" in r.output, r.output
    s = study_status(root)
    assert s.interrupted >= 1 and s.interrupted + s.pending == 2 and not s.active, s
    assert "interrupted" in r.output


def test_a_refused_run_writes_nothing(tmp_path, ray_address):
    study = write_tiny_study(tmp_path, name="kept", seeds=(0,), epochs=1)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
    assert r.exit_code == 0, r.output
    root = out / "kept"

    def snapshot():
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                if p.is_file() and p.name != ".run.lock"}

    before = snapshot()
    status_before = runner.invoke(app, ["status", str(root)]).output
    refused = [  # each with a change that makes trials pending, so that the check is reached
        ["--executor", "local", "--set", 'variant.plain.data.source="folder:no/such/dir"'],
        ["--set", "train.epochs=2", "--address", "127.0.0.1:9"],
        ["--set", "train.epochs=2", "--set", "resources.cpus_per_trial=64",
         "--address", ray_address],
        ["--set", "train.epochs=2", "--storage", "s3://bucket/x", "--address", ray_address],
    ]
    for extra in refused:
        r = runner.invoke(app, ["run", str(study), "--results", str(out), *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert snapshot() == before, extra
    assert runner.invoke(app, ["status", str(root)]).output == status_before


def test_leftovers_of_killed_processes_are_swept_by_the_next_run(tmp_path):
    study = write_tiny_study(tmp_path, name="swept", seeds=(0,), epochs=1)
    root = tmp_path / "res" / "swept"
    left = [root / ".work" / "ablate-0123456789ab-x1" / "ckpt" / "checkpoint.pt",  # a worker's
            root / "trials" / ".0123456789ab.parquet.4242.tmp",  # interrupted atomic writes
            root / "checkpoints" / "0123456789ab" / ".checkpoint.pt.4242.tmp",
            root / "artifacts" / ".0123456789ab.4242.old" / "spectra.parquet"]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"left by a SIGKILL")
    r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "res"),
                            "--executor", "local"])
    assert r.exit_code == 0, r.output
    assert not [p for p in left if p.exists()]
    assert not (root / ".work").exists() and not (root / "artifacts" / ".0123456789ab.4242.old").exists()
    assert len(trial_files(root)) == 2
