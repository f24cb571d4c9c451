"""The result contract: the schema round trip (writer → files → reader), the commit path, the
manifest, and study directories written by the previous version (plan.json + study.toml)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.commit import commit, stage
from ablate.results.layout import StudyDir
from ablate.results.manifest import FORMAT, Manifest, ManifestError, write_manifest
from ablate.results.read import TABLE_COLUMNS, load_results, study_manifest
from ablate.schema import (HISTORY_COLUMNS, IMAGE_COLUMNS, IMAGE_METRICS, METRIC_KEYS,
                                   SPECTRA_COLUMNS, TRIAL_COLUMNS, Columns)
from ablate.results.write import SchemaMismatch, write_rows
from ablate.spec import expand, load_study
from ablate.table.build import load_tables
from ablate.table.choices import Metric
from synthetic_results import Variant, make_study, trial_id_of, trial_rows

from conftest import write_tiny_study

runner = CliRunner()


def _value(col, i: int):
    """A distinct value of the column's type for row i."""
    t = col.type
    if pa.types.is_string(t):
        return f"{col.name}-{i}"
    if pa.types.is_integer(t):
        return 10 * i + len(col.name)
    if pa.types.is_floating(t):
        return i + len(col.name) / 8
    if pa.types.is_boolean(t):
        return i % 2 == 0
    raise AssertionError(f"no test value for {col.name}: {t}")


def _rows(columns: Columns, n: int = 2, **fixed) -> list[dict]:
    return [{c.name: fixed.get(c.name, _value(c, i)) for c in columns.columns} for i in range(n)]


@pytest.mark.parametrize("columns", [TRIAL_COLUMNS, HISTORY_COLUMNS, IMAGE_COLUMNS,
                                     SPECTRA_COLUMNS], ids=["trials", "history", "images",
                                                            "spectra"])
def test_every_column_written_and_read_back_with_its_type(tmp_path, columns):
    rows = _rows(columns)
    path = write_rows(tmp_path / "x.parquet", rows, columns)
    t = pq.read_table(path)
    assert t.schema == columns.schema  # every column, in order, with its Arrow type
    assert t.to_pylist() == rows


def test_study_files_round_trip_through_stage_commit_and_the_reader(tmp_path):
    """Rows of every column staged, committed into a study and read by the table's reader."""
    tid = "abc123def456"
    rows = _rows(TRIAL_COLUMNS, trial_id=tid, status="completed", variant="v")
    history = _rows(HISTORY_COLUMNS, trial_id=tid)
    images = [{k: v for k, v in r.items() if k != "trial_id"}
              for r in _rows(IMAGE_COLUMNS, 3, trial_id=tid)]
    spectra = _rows(SPECTRA_COLUMNS, 4)
    samples = {k: np.full((1, 3, 4, 4), i / 4, np.float32)
               for i, k in enumerate(("input", "bicubic", "prediction", "truth"))}
    d = StudyDir(tmp_path / "res" / "s")
    commit(d, stage(tmp_path / "stage", tid, rows, history, images, samples, spectra))
    assert not list(d.root.rglob(".*tmp"))

    (s,) = load_results(tmp_path / "res", columns=None)
    assert s.rows.schema == TRIAL_COLUMNS.schema and s.rows.to_pylist() == rows
    cols = s.columns()  # what the table works with: text as str, numbers as float64
    assert set(cols) == set(TABLE_COLUMNS)
    for name in TABLE_COLUMNS:
        got = [r[name] for r in rows]
        if TRIAL_COLUMNS[name].is_text:
            assert cols[name].dtype == object and list(cols[name]) == got, name
        else:
            assert cols[name].dtype == np.float64 and cols[name].tolist() == [float(x) for x in got]
    h = s.history([tid])
    assert list(h.columns) == list(HISTORY_COLUMNS) and h.to_dict("records") == history
    sp = s.spectra([tid])
    assert list(sp.columns) == [*SPECTRA_COLUMNS, "trial_id"] and len(sp) == 4
    for metric in IMAGE_METRICS:
        got = s.images([tid], metric)[tid]
        assert got["value"].tolist() == [r[metric] for r in images]
        assert list(got["photo"]) == [r["photo"] for r in images]
    arrays = s.samples(tid)
    assert sorted(arrays) == sorted(samples) and float(arrays["truth"].max()) == 0.75


def test_rows_off_the_schema_are_refused(tmp_path):
    (row,) = _rows(TRIAL_COLUMNS, 1)
    with pytest.raises(SchemaMismatch, match=r"lacking \['verdict'\]"):
        write_rows(tmp_path / "a.parquet", [{k: v for k, v in row.items() if k != "verdict"}],
                   TRIAL_COLUMNS)
    with pytest.raises(SchemaMismatch, match=r"not in the schema \['lpips'\]"):
        write_rows(tmp_path / "b.parquet", [{**row, "lpips": 0.1}], TRIAL_COLUMNS)
    assert not list(tmp_path.iterdir())


def test_metric_keys_choices_and_fixtures_derive_from_the_column_table():
    assert METRIC_KEYS[0] == "resolution" and METRIC_KEYS[-1] == "verdict"
    assert all(TRIAL_COLUMNS[k].role == "metric" for k in METRIC_KEYS)
    for m in Metric:  # every --metric has its bicubic column, per trial and per image
        for cols in (TRIAL_COLUMNS, IMAGE_COLUMNS):
            assert m.value in cols and f"{m.value}_bicubic" in cols
    cols = trial_rows("s", Variant("a", "A"), 0, "", 0, (32, 64), 32)
    assert list(cols) == list(TRIAL_COLUMNS)  # the fixture fills exactly the schema


# ---------------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------------


def test_manifest_from_the_resolved_study_round_trips(tmp_path):
    study = load_study(write_tiny_study(tmp_path), ["variant.multiscale.label=Renamed",
                                                    "data.eval_resolutions=[16, 24, 32]"])
    trials = expand(study)
    d = StudyDir(tmp_path / "res" / "tiny")
    m = Manifest.from_study(study, trials)
    write_manifest(d, m)
    back = study_manifest(d)
    assert back == m
    assert [v.label for v in back.variants] == ["Plain", "Renamed"]
    assert back.baseline == "plain" and back.seeds == (0, 1) and back.input_size == 16
    assert back.eval_resolutions == (16, 24, 32)
    assert [t.trial_id for t in back.trials] == [t.trial_id for t in trials]
    assert back.overrides == ("variant.multiscale.label=Renamed", "data.eval_resolutions=[16, 24, 32]")


def test_unreadable_manifest_is_a_note_and_a_newer_one_says_upgrade(tmp_path):
    root = make_study(tmp_path, "m", seeds=(0, 1), history=False, artifacts=False)
    doc = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps({**doc, "format": FORMAT + 1}))
    with pytest.raises(ManifestError, match="newer ablate: upgrade ablate"):
        study_manifest(StudyDir(root))
    (t,) = load_tables(tmp_path)  # the table goes on from the rows, and says why
    assert any("upgrade ablate" in n for n in t.notes)
    (root / "manifest.json").write_text("{not json")
    r = runner.invoke(app, ["status", str(root)])
    assert r.exit_code == 0 and "note:" in r.output and "manifest.json" in r.output


def test_status_exits_2_where_there_is_no_study(tmp_path):
    r = runner.invoke(app, ["status", str(tmp_path)])
    assert r.exit_code == 2 and "no study here" in r.output
    r = runner.invoke(app, ["status", str(tmp_path / "missing")])
    assert r.exit_code == 2


# ---------------------------------------------------------------------------------------------
# the previous layout: plan.json + study.toml with the --set comment, no manifest.json
# ---------------------------------------------------------------------------------------------

OLD_SPEC = """\
[study]
name = "old"
seeds = [0, 1]
baseline = "a"

[data]
hr_size = 64
input_size = 16
eval_resolutions = [16, 32, 64]

[grid]
sigmas = [[64, 16], [128, 32]]

[[variant]]
name = "a"
label = "Alpha"

[[variant]]
name = "b"
label = "Beta"
jitter = "per_batch"

[[variant]]
name = "c"
label = "Gamma"
jitter = "per_sample"
"""


def _old_layout(tmp_path: Path, spec: str = OLD_SPEC) -> Path:
    """A study directory as the previous version wrote it: rows of variants a and b only
    (c not run yet), plan.json with every trial, study.toml ending with the --set line."""
    root = tmp_path / "res" / "old"
    variants = (Variant("a", "Alpha"), Variant("b", "Renamed by --set", 0.5),
                Variant("c", "Gamma"))
    grid = ("sigmas=[64,16]", "sigmas=[128,32]")
    make_study(tmp_path / "res", "old", variants[:2], seeds=(0, 1), resolutions=(16, 32, 64),
               input_size=16, grid=grid, manifest=False, history=False, artifacts=False)
    overrides = ['variant.b.label="Renamed by --set"', 'study.baseline="b"']
    (root / "study.toml").write_text(spec + f"\n# ablate --set (json): {json.dumps(overrides)}\n")
    plan = {"study": "old", "spec": "/somewhere/old.toml", "overrides": overrides,
            "trials": [{"trial_id": trial_id_of("old", v.name, g, s), "variant": v.name,
                        "seed": s, "grid": g, "epochs": 4}
                       for v in variants for g in grid for s in (0, 1)]}
    (root / "plan.json").write_text(json.dumps(plan))
    return root


def test_previous_layout_still_reads_in_table_status_and_report(tmp_path):
    root = _old_layout(tmp_path)
    m = study_manifest(StudyDir(root))
    assert m.baseline == "b" and m.labels["b"] == "Renamed by --set"  # the --set replayed
    assert m.grid == ("sigmas=[64,16]", "sigmas=[128,32]") and m.input_size == 16
    assert len(m.trials) == 12 and m.spec == "/somewhere/old.toml"

    (t,) = load_tables(root)
    assert t.baseline == "b" and t.input_size == 16 and t.seeds == [0, 1]
    assert t.grids == ["sigmas=[64,16]", "sigmas=[128,32]"]  # spec order, not natural order
    labels = [r.label for r in t.rows if r.kind == "variant" and r.grid == t.grids[0]]
    assert labels == ["Alpha", "Renamed by --set", "Gamma"]  # c: planned, not run yet
    assert t.completed == 8 and t.expected == 12
    assert not [n for n in t.notes if "rows alone" in n]

    r = runner.invoke(app, ["status", str(tmp_path / "res")])
    assert r.exit_code == 0, r.output
    assert "old (idle): 8/12 completed, 0 failed, 0 running, 0 interrupted, 4 pending" in r.output

    r = runner.invoke(app, ["report", str(root), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "Renamed by --set" in (tmp_path / "rep" / "index.html").read_text()


def test_previous_layout_whose_spec_no_longer_validates_falls_back_to_plan(tmp_path):
    root = _old_layout(tmp_path, OLD_SPEC.replace("[data]", "[data]\nretired_key = 1"))
    m = study_manifest(StudyDir(root))  # trials, variants, seeds and grid from plan.json
    assert [v.name for v in m.variants] == ["a", "b", "c"] and m.input_size is None
    (t,) = load_tables(root)
    assert t.expected == 12 and t.input_size == 16  # the input size from the rows
    assert t.baseline == "a"  # the spec's baseline is lost with it: the first variant
    r = runner.invoke(app, ["table", str(root)])
    assert r.exit_code == 0 and "8/12 trials completed" in r.output
    (root / "plan.json").unlink()  # nothing left that says what the study is: rows alone
    (t,) = load_tables(root)
    assert any("no longer validates" in n and "retired_key" in n for n in t.notes)
    assert math.isclose(t.rows[0].cells[32].mean, 25.0)  # Bicubic still computed


@pytest.mark.parametrize("plan", ['null', '[]', '{"overrides": null}', '{"trials": null}',
                                  '{"trials": [1]}', '{"study": ["x"]}'])
def test_plan_json_of_the_wrong_shape_is_a_note_not_a_traceback(tmp_path, plan):
    from typer.testing import CliRunner

    from ablate.cli.app import app

    root = tmp_path / "old"
    (root / "trials").mkdir(parents=True)
    (root / "plan.json").write_text(plan)
    runner = CliRunner()
    r = runner.invoke(app, ["status", str(root)])
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    assert "plan.json" in r.output and "run the study again" in r.output, r.output


@pytest.mark.parametrize("meta", ['[]', 'null', '{"trial_id": ["x"], "epoch": 1}',
                                  '{"trial_id": "abc", "epoch": "one"}'])
def test_checkpoint_meta_json_of_the_wrong_shape_is_ignored(tmp_path, meta):
    from typer.testing import CliRunner

    from ablate.cli.app import app

    root = tmp_path / "s"
    (root / "trials").mkdir(parents=True)
    for d in (root / "checkpoints" / "abc", root / "ray" / "run-1" / "abc" / "checkpoint_000000"):
        d.mkdir(parents=True)
        (d / "meta.json").write_text(meta)
        (d / "checkpoint.pt").write_bytes(b"x")
    r = CliRunner().invoke(app, ["status", str(root)])
    assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
    assert "0 interrupted" in r.output, r.output


CURRICULUM = """
[[variant]]
name = "curriculum"
label = "Curriculum"
jitter = { placement = "per_batch", std = 0.01 }
multiscale = { mode = "random_res", resolutions = [16, 24, 32] }
curriculum = { stages = [{ from_fraction = 0, resolutions = [16] },
                         { from_fraction = 0.5, resolutions = [16, 24, 32] }] }
"""


def test_load_results_in_python_every_column_typed(tmp_path):
    """A real study (trained here, local executor) read back with `ablate.load_results`;
    the curriculum, written as fractions, switched at the epoch it resolved to."""
    import ablate

    study = write_tiny_study(tmp_path, name="py", seeds=(0,), epochs=2, extra=CURRICULUM)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
    assert r.exit_code == 0, r.output
    df = ablate.load_results(out / "py")
    assert len(df) == 3 * 2  # 3 trials × eval at 16 and 32
    for c in TRIAL_COLUMNS.names:
        assert c in df.columns
    assert str(df["seed"].dtype) == "Int64" and str(df["resolution"].dtype) == "Int64"
    assert df["psnr"].dtype == np.float64 and df["verdict"].map(type).eq(str).all()
    assert all(s == [32.0, 8.0] for s in df["sigmas"])
    by = df.drop_duplicates("variant").set_index("variant")
    assert by.loc["plain", "multiscale_mode"] == "off"
    assert by.loc["multiscale", "multiscale_mode"] == "random_res"
    assert by.loc["multiscale", "multiscale_resolutions"] == [16, 24, 32]
    assert by.loc["curriculum", "curriculum_stages"] == [(1, [16]), (2, [16, 24, 32])]
    assert by.loc["plain", "curriculum_stages"] == []
    assert by.loc["plain", "model.dim"] == 16 and by.loc["plain", "train.lr"] == 2e-3
    assert by.loc["multiscale", "train.jitter.std"] == 0.01
    assert by.loc["plain", "data.input_size"] == 16
    # the history shows the curriculum's switch at epoch 1 + ⌊0.5 · 2⌋ = 2
    s = load_results(out, study="py")[0]
    tid = by.loc["curriculum", "trial_id"]
    h = s.history([tid]).sort_values("epoch")
    assert list(h["resolutions"]) == ["16", "16,24,32"]
    # columns=: only those, in that order; an unknown one names the available columns
    sub = ablate.load_results(out, columns=["variant", "resolution", "psnr"])
    assert list(sub.columns) == ["variant", "resolution", "psnr"] and len(sub) == 6
    with pytest.raises(ValueError, match="no column 'psnrr'.*columns: study, trial_id"):
        ablate.load_results(out, columns=["psnrr"])
