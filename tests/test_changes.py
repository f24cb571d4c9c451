"""A study re-run with changed settings (issue 28 §1): the run says what changed (key, old →
new) and which finished trials no longer belong; `table`, `status` and `report` use the
manifest's trials only and name the others apart; extending a study stays silent. Real runs
(local executor, tiny trials), real files."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.read import load_results
from conftest import write_tiny_study

runner = CliRunner()


def run(study, res, *extra):
    r = runner.invoke(app, ["run", str(study), "--results", str(res), "--executor", "local",
                            "--device", "cpu", *extra])
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())


def test_a_changed_setting_is_said_and_the_old_trials_are_kept_apart(tmp_path):
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=2)
    res = tmp_path / "res"
    first = run(study, res)
    assert "no longer belong" not in first and "changed against" not in first
    old = sorted(p.stem for p in (res / "tiny" / "trials").glob("*.parquet"))

    out = run(study, res, "--variant", "plain", "--set", "train.epochs=1")
    assert "changed against the study's finished trials: train.epochs: 2 → 1" in out, out
    assert "2 finished trial(s) no longer belong to the study" in out, out
    assert all(tid in out for tid in old), out
    new = sorted({p.stem for p in (res / "tiny" / "trials").glob("*.parquet")} - set(old))
    assert len(new) == 1 and len(old) == 2  # the old files stay

    # the table: the 1-epoch Plain row alone, Multi-scale not run yet, the old ones named
    r = runner.invoke(app, ["table", str(res), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)["studies"][0]
    plain = next(row for row in doc["rows"] if row["variant"] == "plain")
    psnr16 = pq.read_table(res / "tiny" / "trials" / f"{new[0]}.parquet").to_pylist()[0]["psnr"]
    assert plain["completed"] == 1 and plain["cells"][0]["mean"] == psnr16
    multi = next(row for row in doc["rows"] if row["variant"] == "multiscale")
    assert multi["completed"] == 0
    text = " ".join(runner.invoke(app, ["table", str(res)]).output.split())
    assert "2 finished trial(s) of an earlier configuration" in text and old[0] in text, text

    status = " ".join(runner.invoke(app, ["status", str(res)]).output.split())
    assert "1/2 completed" in status and "2 completed trial(s) of an earlier configuration" \
        in status, status

    # the library gives everything when asked
    (s,) = load_results(res)
    assert sorted(s.apart) == sorted(next(a for a in s.apart if t in a) for t in old)
    (every,) = load_results(res, every_trial=True)
    assert set(every.columns()["trial_id"]) == set(old) | set(new)

    # extending the study (another seed, nothing else changed) stays silent
    out = run(study, res, "--variant", "plain", "--set", "train.epochs=1",
              "--set", "study.seeds=[0, 1]")
    assert "no longer belong" not in out and "changed against" not in out, out


def test_ablate_trial_says_it_too(tmp_path):
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=1)
    res = tmp_path / "res"
    run(study, res, "--variant", "plain")
    r = runner.invoke(app, ["trial", str(study), "--variant", "plain", "--seed", "0",
                            "--results", str(res), "--device", "cpu", "--set",
                            "train.lr=0.001"])
    assert r.exit_code == 0, r.output
    out = " ".join(r.output.split())
    assert "changed against the study's finished trials: train.lr: 0.002 → 0.001" in out, out
    assert "1 finished trial(s) no longer belong to the study: plain seed 0" in out, out


def test_table_and_report_on_a_running_study_with_nothing_finished_say_so(tmp_path):
    import subprocess
    import sys
    import time

    study = write_tiny_study(tmp_path, seeds=(0,), epochs=400)  # still training when asked
    res = tmp_path / "res"
    proc = subprocess.Popen([sys.executable, "-m", "ablate.cli.app", "run", str(study),
                             "--results", str(res), "--executor", "local", "--device", "cpu",
                             "--variant", "plain"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (res / "tiny" / "manifest.json").is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None
        for args in (["table", str(res)], ["report", str(res), "--out", str(tmp_path / "r")]):
            r = runner.invoke(app, args)
            assert r.exit_code == 2, r.output
            assert r.output.startswith("error: ") and "tiny running, no trial finished yet" \
                in r.output and "ablate status" in r.output, r.output
    finally:
        proc.kill()
        proc.wait()
    r = runner.invoke(app, ["table", str(res)])  # the run is gone: no results, as before
    assert r.exit_code == 2 and "running" not in r.output, r.output


def test_a_finished_run_leaves_no_empty_folders_of_its_own(tmp_path):
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=1)
    res = tmp_path / "res"
    run(study, res)
    r = runner.invoke(app, ["trial", str(study), "--variant", "plain", "--seed", "0",
                            "--results", str(res), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    left = {p.name for p in (res / "tiny").iterdir()}
    assert not left & {"running", ".work"}, left


def test_a_study_far_too_big_for_this_machine_is_warned_about_first(tmp_path):
    """Issue 28 §2-3: the first line comes before any slow start-up, and a GPU-sized study on a
    CPU gets a measured estimate and a warning before it trains (here the shipped GPU study,
    whose one measured step takes seconds; the run is killed once warned)."""
    import subprocess
    import sys
    import time

    from pathlib import Path

    study = Path(__file__).resolve().parents[1] / "studies" / "jitter_vs_multiscale.toml"
    proc = subprocess.Popen([sys.executable, "-m", "ablate.cli.app", "run", str(study),
                             "--results", str(tmp_path / "res"), "--executor", "local",
                             "--device", "cpu"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        t0 = time.monotonic()
        first = proc.stdout.readline()
        first_after = time.monotonic() - t0
        second = proc.stdout.readline()
    finally:
        proc.kill()
        proc.wait()
    assert first.startswith("jitter_vs_multiscale: 18 trials, 0 already completed"), first
    assert first_after < 3, first_after  # ~0.3 s idle: before torch, Ray and the estimate
    assert second.startswith("warning: estimate: ≥ ") and "far too big for this machine" \
        in second and "img/s per trial measured" in second, second
