"""`ablate search`: the [search] table, Optuna on Ray Tune over tiny trials, resume, tables.

Real Ray (the session's), real Optuna, real files, the tiny study of conftest.py (studies/smoke.toml).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.layout import StudyDir
from ablate.results.search import search_records, search_trials
from ablate.spec import SpecError, expand, load_study
from conftest import write_tiny_study

SEARCH = """
[search]
metric = "band_error_ratio"
resolution = 32
mode = "min"
num_samples = {samples}
max_concurrent = {concurrent}
algorithm = "{algorithm}"
scheduler = "{scheduler}"
variant = "multiscale"
seed = 0
{more}
[search.space]
"model.sigmas" = {{ choice = [[32, 8], [16, 4]] }}
"train.lr" = {{ loguniform = [1e-4, 2e-3] }}
"""


def search_study(tmp_path, name="srch", samples=2, concurrent=2, algorithm="tpe",
                 scheduler="none", more="", epochs=2, seeds=(0, 1)) -> Path:
    extra = SEARCH.format(samples=samples, concurrent=concurrent, algorithm=algorithm,
                          scheduler=scheduler, more=more)
    return write_tiny_study(tmp_path, name=name, epochs=epochs, seeds=seeds, extra=extra)


def problems_of(tmp_path, extra: str) -> list[str]:
    p = write_tiny_study(tmp_path, name="bad", extra=extra)
    with pytest.raises(SpecError) as e:
        load_study(p)
    return [f"{x.key}: {x.message}" for x in e.value.problems]


# ---------------------------------------------------------------------------------------------
# the [search] table
# ---------------------------------------------------------------------------------------------


def test_search_table_parses_and_a_sampled_point_is_a_normal_trial(tmp_path):
    from ablate.spec.search import decode, sampled_trial
    from ablate.spec.parse import build_study

    study = load_study(search_study(tmp_path))
    s = study.search
    assert (s.variant, s.resolution, s.metric, s.num_samples) == ("multiscale", 32,
                                                                  "band_error_ratio", 2)
    assert [k for k, _ in s.space] == ["model.sigmas", "train.lr"]
    point = decode(s, {"model.sigmas": "[16,4]", "train.lr": 1e-3})
    cfg = sampled_trial(study, s, point)
    # the same trial as a --set override of the starting variant would give
    doc = dict(study.raw)
    doc.pop("search")
    plain = build_study(doc, "x", ["model.sigmas=[16, 4]", "train.lr=1e-3"])
    twin = next(t for t in expand(plain) if t.variant == "multiscale" and t.seed == 0)
    assert cfg.trial_id == twin.trial_id
    assert cfg.model.sigmas == (16.0, 4.0) and cfg.train.lr == 1e-3
    assert cfg.train.multiscale.mode == "random_res"  # the rest is the starting variant's
    assert cfg.grid_key() == "model.sigmas=[16,4], train.lr=0.001"
    # an inner key (a dotted path three deep) works like the others
    nested = SEARCH.format(samples=2, concurrent=1, algorithm="random", scheduler="none",
                           more="").replace('"train.lr"', '"train.jitter.std"') \
        .replace("1e-4, 2e-3", "0.001, 0.05")
    st = load_study(write_tiny_study(tmp_path / "n", extra=nested))
    c = sampled_trial(st, st.search, decode(st.search, {"model.sigmas": "[32,8]",
                                                       "train.jitter.std": 0.02}))
    assert c.train.jitter.std == 0.02 and c.train.jitter.placement == "per_batch"


CURRICULUM_VARIANT = """
[[variant]]
name = "staged"
label = "Staged"
jitter = { placement = "per_batch", std = 0.02 }
multiscale = { mode = "random_res", resolutions = [16, 32] }
curriculum = { stages = [ { from_fraction = 0.0, resolutions = [16] },
                          { from_fraction = 0.5, resolutions = [16, 32] } ] }
"""


@pytest.mark.parametrize("sets", [(), ("train.epochs=2",)])
def test_a_search_point_equal_to_a_study_trial_is_that_trial(tmp_path, sets):
    """One trial factory (spec.expand.make_trial): a point that sets nothing new gets the
    study's own trial id and the same schedule, curriculum scaled to the epochs included
    (before: the search trial trained its last stage from epoch 1, under another id, and
    failed outright with --set train.epochs=2)."""
    from ablate.spec.search import sampled_trial
    from ablate.train.schedule import resolutions_for_epoch

    extra = CURRICULUM_VARIANT + SEARCH.format(
        samples=2, concurrent=1, algorithm="random", scheduler="none", more="").replace(
        'variant = "multiscale"', 'variant = "staged"')
    study = load_study(write_tiny_study(tmp_path, epochs=4, seeds=(0,), extra=extra), sets)
    twin = next(t for t in expand(study) if t.variant == "staged")
    point = (("model.sigmas", twin.model.sigmas),)
    cfg = sampled_trial(study, study.search, point, seed=0)
    assert cfg.trial_id == twin.trial_id
    assert cfg.train.curriculum == twin.train.curriculum
    epochs = twin.train.epochs
    schedule = [resolutions_for_epoch(cfg.train, cfg.data, e) for e in range(1, epochs + 1)]
    assert schedule == [resolutions_for_epoch(twin.train, twin.data, e)
                        for e in range(1, epochs + 1)]
    assert schedule[0] == (16,) and schedule[-1] == (16, 32)


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.replace('seed = 0', 'seed = 0\nsamples = 3'),
     'search.samples: unknown key'),
    (lambda t: t.replace('"band_error_ratio"', '"band_eror_ratio"'),
     "search.metric: 'band_eror_ratio' is not a column of the trial rows (did you mean "
     "'band_error_ratio'?)"),
    (lambda t: t.replace('"band_error_ratio"', '"verdict"'),
     "search.metric: 'verdict' is not a numeric metric column"),
    (lambda t: t.replace("resolution = 32", "resolution = 64"),
     "search.resolution: 64 is not an eval resolution"),
    (lambda t: t.replace('mode = "min"', 'mode = "minimum"'), "search.mode: expected one of"),
    (lambda t: t.replace('"multiscale"', '"multi"'), "search.variant: names no variant"),
    (lambda t: t.replace("1e-4, 2e-3", "2e-3, 1e-4"),
     'search.space."train.lr".loguniform: expected low < high'),
    (lambda t: t.replace("1e-4, 2e-3", "0, 2e-3"),
     'search.space."train.lr".loguniform: loguniform needs low > 0'),
    (lambda t: t.replace("1e-4, 2e-3", "-1e-3, 2e-3").replace("loguniform", "uniform"),
     'search.space."train.lr".uniform[1]: must be > 0.0'),
    (lambda t: t.replace('"train.lr"', '"train.lrr"'),
     'search.space."train.lrr": unknown key \'lrr\' of train (did you mean \'lr\'?)'),
    (lambda t: t.replace('"train.lr"', '"train.epochs"'),
     'search.space."train.epochs".loguniform: train.epochs is an integer'),
    (lambda t: t.replace("[[32, 8], [16, 4]]", "[[32, 8], [32, 8]]"),
     'search.space."model.sigmas".choice: values repeat'),
    (lambda t: t.replace('"model.sigmas" = { choice = [[32, 8], [16, 4]] }',
                         '"data.input_size" = { choice = [16, 18] }'),
     'search.space."data.input_size".choice[2]: model.patch_size: must divide '
     'data.input_size (18)'),
    (lambda t: t.replace("{ choice = [[32, 8], [16, 4]] }", "{ pick = [1] }"),
     'search.space."model.sigmas": expected one of { choice = [...] }'),
    (lambda t: t.split("[search.space]")[0] + "[search.space]\n", "search.space: empty"),
    (lambda t: t.replace('"multiscale"', '"plain"').replace('"train.lr"', '"train.jitter.std"'),
     'search.space."train.jitter.std": changes nothing in the trials of the starting variant '
     "'plain': its jitter placement is \"none\""),
])
def test_bad_search_tables_are_reported_with_their_key_path(tmp_path, edit, expected):
    text = SEARCH.format(samples=2, concurrent=1, algorithm="tpe", scheduler="none", more="")
    found = problems_of(tmp_path, edit(text))
    assert any(expected in p for p in found), found


def test_ablate_search_exits_2_with_the_key_path(tmp_path):
    text = SEARCH.format(samples=2, concurrent=1, algorithm="tpe", scheduler="none",
                         more="").replace("1e-4, 2e-3", "2e-3, 1e-4")
    p = write_tiny_study(tmp_path, name="bad", extra=text)
    r = CliRunner().invoke(app, ["search", str(p), "--results", str(tmp_path / "r")])
    assert r.exit_code == 2
    assert 'search.space."train.lr".loguniform: expected low < high' in r.output
    assert not (tmp_path / "r").exists()
    plain = write_tiny_study(tmp_path, name="plain")  # no [search] at all
    r = CliRunner().invoke(app, ["search", str(plain), "--results", str(tmp_path / "r")])
    assert r.exit_code == 2 and "no [search] table" in r.output


# ---------------------------------------------------------------------------------------------
# searching on Ray Tune
# ---------------------------------------------------------------------------------------------


def _search_rows(study_dir: StudyDir) -> dict[str, list[dict]]:
    out = {}
    for f in sorted(study_dir.trials_dir.glob("*.parquet")):
        rows = pq.read_table(f).to_pylist()
        if rows[0].get("search"):
            out[f.stem] = rows
    return out


def test_search_completes_stops_with_asha_lists_the_best_and_confirms_them(tmp_path,
                                                                          ray_address):
    """One search (random sampler at seed 0, ASHA with reduction_factor 100, 3 samples one at a
    time: the later trials below the first one's quick PSNR at epoch 1 are stopped) checks the
    sampled trials' files, the `stopped` path, --confirm, `ablate table --search`, the normal
    table, `ablate status` and the report."""
    from ablate.orchestrate.search import run_search

    results = tmp_path / "results"
    study = load_study(search_study(tmp_path, samples=3, concurrent=1, epochs=1,
                                    algorithm="random", scheduler="asha",
                                    more="reduction_factor = 100\ngrace_period = 1"))
    summary = run_search(study, results, address=ray_address, confirm=1,
                         progress_stream=open(os.devnull, "w"))
    assert summary.exit_code == 0 and summary.ran == 3, summary
    d = StudyDir.of(results, "srch")
    rows = _search_rows(d)
    sampled = {tid: r for tid, r in rows.items() if r[0]["search"] == "search"}
    assert len(sampled) == 3 and len({r[0]["grid"] for r in sampled.values()}) == 3
    statuses = {tid: {r["status"] for r in trial_rows} for tid, trial_rows in sampled.items()}
    assert sorted(map(sorted, statuses.values())) == [["completed"], ["completed"],
                                                      ["stopped"]], statuses
    for tid, trial_rows in sampled.items():
        assert {r["variant"] for r in trial_rows} == {"multiscale"}
        assert {r["seed"] for r in trial_rows} == {0}
        cfg = json.loads(trial_rows[0]["config_json"])
        assert cfg["trial_id"] == tid and cfg["search"] == "search"
        assert d.history(tid).is_file()  # the same files as any trial
    # the trial ASHA stopped: status stopped (not failed), why in `error`, its epoch kept
    [stopped] = [tid for tid, st in statuses.items() if st == {"stopped"}]
    assert all(r["error"].startswith("stopped by ASHA after epoch 1: quick_psnr")
               for r in sampled[stopped])
    assert all(math.isnan(r["psnr"]) for r in sampled[stopped])
    assert pq.read_table(d.history(stopped)).column("epoch").to_pylist() == [1]
    assert [t.status for t in summary.trials] == ["completed", "completed", "stopped"]
    ranked = [t.value for t in summary.trials[:2]]
    assert ranked == sorted(ranked) and not any(math.isnan(v) for v in ranked)
    assert math.isnan(summary.trials[2].value)
    [record] = search_records(d).values()
    assert len(search_trials(d, record)) == 3  # the confirm re-run is not a sampled trial

    # --confirm 1: the best configuration with the study's other seed (seed 0 is the sampled
    # trial itself: same config, same id, not run again)
    best = summary.trials[0]
    assert len(summary.confirmed) == 2 and best.trial_id in summary.confirmed
    [other] = [tid for tid in summary.confirmed if tid != best.trial_id]
    assert rows[other][0]["seed"] == 1 and rows[other][0]["search"] == "search:confirm"
    assert rows[other][0]["grid"] == best.grid

    # the table lists the best configurations, best first, with every resolution and verdicts;
    # the stopped trial last, said to be stopped
    r = CliRunner().invoke(app, ["table", str(results), "--search", "--format", "json"])
    assert r.exit_code == 0, r.output
    [table] = json.loads(r.output)
    assert table["counts"] == {"completed": 2, "stopped": 1}
    assert table["header"][:3] == ["#", "band_error_ratio@32 (min)", "configuration"]
    assert "psnr@16" in table["header"] and "verdict@32" in table["header"]
    assert [row[0] for row in table["rows"]][:2] == ["1", "2"]
    assert float(table["rows"][0][1]) == pytest.approx(ranked[0], rel=1e-3)
    assert table["rows"][0][-1] == best.trial_id
    assert table["rows"][0][-2] == "completed (confirmed)"
    assert table["rows"][-1][-2:] == ["stopped", stopped]
    r = CliRunner().invoke(app, ["table", str(results), "--search"])
    assert r.exit_code == 0 and "2 completed, 1 stopped" in r.output, r.output
    # the normal table: the grid's rows and the confirmed configuration, no other sampled one
    r = CliRunner().invoke(app, ["table", str(results), "--format", "csv"])
    assert r.exit_code == 0, r.output
    assert f"search #1: {best.grid}" in r.output
    assert summary.trials[1].grid not in r.output and summary.trials[2].grid not in r.output
    # status: stopped is its own status, per search
    r = CliRunner().invoke(app, ["status", str(results)])
    assert r.exit_code == 0, r.output
    assert ("search 'search': 3/3 sampled trials finished: 2 completed, 1 stopped (ASHA), "
            "0 failed") in r.output

    # the report adds the optimisation history and Optuna's parameter importances
    r = CliRunner().invoke(app, ["report", str(results), "--out", str(tmp_path / "report")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "report" / "index.html").read_text()
    for name in ("search_search_history.png", "search_search_importance.png"):
        assert (tmp_path / "report" / name).stat().st_size > 5000 and name in page

    # a study with sampled trials only: the report shows its search alone, the table says why
    # it has no rows (the files of the search above, without the confirmed seed's)
    lone = tmp_path / "lone" / "srch"
    shutil.copytree(d.root, lone, ignore=shutil.ignore_patterns("ray", ".work"))
    (lone / "trials" / f"{other}.parquet").unlink()
    (lone / "search" / "search" / "confirm.json").unlink()
    r = CliRunner().invoke(app, ["report", str(lone), "--out", str(tmp_path / "lone_report")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "lone_report" / "index.html").read_text()
    assert "No grid trial results yet" in page and "search_search_history.png" in page
    r = CliRunner().invoke(app, ["table", str(lone)])
    assert r.exit_code == 2 and "ablate table --search" in r.output, r.output


def _wait(what, until, proc, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = until()
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"ablate search ended (exit {proc.returncode}) before {what}:\n"
                        + log.read_text())
        time.sleep(0.05)
    pytest.fail(f"no {what} after {timeout:.0f} s:\n" + log.read_text())


def test_sigkilled_search_resumes_without_repeating_finished_configs(tmp_path, ray_address):
    """`ablate search` (a subprocess in its own process group, on the session's Ray) killed
    with SIGKILL once its first trial is committed and the second has checkpointed epoch 1;
    run again, it finishes the search: the finished trial is not trained or written again, the
    interrupted one resumes from its checkpoint (no epoch twice), and every one of the
    num_samples configurations is distinct."""
    from ablate.orchestrate.search import run_search
    from ablate.orchestrate.study_files import all_checkpoints

    study_file = search_study(tmp_path, name="killed", samples=3, concurrent=1, epochs=2)
    results = tmp_path / "results"
    d = StudyDir.of(results, "killed")
    log = tmp_path / "first.log"
    with open(log, "w") as out:  # a file, not a pipe: nothing blocks on a full pipe
        proc = subprocess.Popen(
            [sys.executable, "-m", "ablate.cli.app", "search", str(study_file), "--results",
             str(results), "--address", ray_address],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        def first_done_second_checkpointed():
            done = {p.stem for p in d.trials_dir.glob("*.parquet")} if d.root.exists() else set()
            if not done:
                return None
            # a whole checkpoint (meta.json beside checkpoint.pt) of a trial not committed
            others = set(all_checkpoints(d.ray_storage) if d.ray_storage.exists() else ()) - done
            return done if others else None

        done = _wait("first trial committed and a second checkpointed",
                     first_done_second_checkpointed, proc, log, timeout=150)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

        # what the interrupted trial had checkpointed, its epochs' wall times: they stay as they
        # are unless the trial is wrongly trained again. Its worker, on the session's Ray, can
        # outlive the driver a moment (and checkpoint again, or finish): read once it is quiet.
        def checkpointed():
            try:
                return {tid: {h["epoch"]: h["seconds"] for h in
                              pq.read_table(found[0][1] / "history.parquet").to_pylist()}
                        for tid, found in all_checkpoints(d.ray_storage).items()
                        if tid not in done}
            except OSError:  # a checkpoint replaced while read
                return None

        interrupted, deadline = checkpointed(), time.monotonic() + 20
        while time.monotonic() < deadline:
            time.sleep(1.0)
            again = checkpointed()
            if again is not None and again == interrupted:
                break
            interrupted = again
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = {p.stem: (p.stat().st_mtime_ns, pq.read_table(p).column("finished_at")
                       .to_pylist()) for p in d.trials_dir.glob("*.parquet")}
    assert len(before) == 1, before  # the second trial was cut mid-training

    notes = io.StringIO()
    summary = run_search(load_study(study_file), results, address=ray_address,
                         progress_stream=notes, live=False)
    assert summary.exit_code == 0, notes.getvalue()
    assert summary.finished_before == 1 and summary.ran == 2, notes.getvalue()
    assert "resuming 1 interrupted trial(s) of the search first" in notes.getvalue()
    files = {p.stem: p for p in d.trials_dir.glob("*.parquet")}
    assert len(files) == 3 and not list(d.trials_dir.glob(".*"))
    for tid, (mtime, finished_at) in before.items():  # finished before: never written again
        assert files[tid].stat().st_mtime_ns == mtime
        assert pq.read_table(files[tid]).column("finished_at").to_pylist() == finished_at
    grids, resumed = set(), []
    for tid, f in files.items():
        trial_rows = pq.read_table(f).to_pylist()
        assert {r["status"] for r in trial_rows} == {"completed"}
        assert {r["search"] for r in trial_rows} == {"search"}
        grids.add(trial_rows[0]["grid"])
        hist = pq.read_table(d.history(tid)).to_pylist()
        assert [h["epoch"] for h in hist] == [1, 2]  # no epoch lost or trained twice
        if any(h["resumed"] for h in hist):
            resumed.append(tid)
            assert [h["epoch"] for h in hist if h["resumed"]] == [2]
        if tid in interrupted:  # resumed, not started over: its checkpointed epochs kept
            assert {h["epoch"]: h["seconds"] for h in hist
                    if h["epoch"] in interrupted[tid]} == interrupted[tid], (tid, hist)
    assert len(grids) == 3  # num_samples distinct configurations, none trained twice
    assert len(interrupted) == 1 and not set(interrupted) & set(before), interrupted
    # it resumed from epoch 1 and trained epoch 2 (or, when its worker outlived the driver long
    # enough to checkpoint epoch 2, from that final checkpoint, training nothing again)
    assert set(resumed) <= set(interrupted), (resumed, interrupted)
