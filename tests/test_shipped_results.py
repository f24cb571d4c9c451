"""The results shipped in docs/results/ stay readable by the current code.

docs/results/ holds real runs of studies/jitter_vs_multiscale_cpu.toml and
studies/locality.toml (trials, history, per-image metrics; no checkpoints), and the README
quotes their tables (between <!-- NAME --> markers). If a change of the results format or of
the readers orphans those files, or the README's figures stop being what the files say, these
tests fail.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.read import load_results
from ablate.table.build import load_tables

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "docs" / "results"
# shipped study → the README marker around its table
STUDIES = {"jitter_vs_multiscale_cpu": "flagship-table", "locality": "locality-table"}
each_study = pytest.mark.parametrize("study", sorted(STUDIES))

runner = CliRunner()


def _spec(study: str) -> dict:
    return tomllib.loads((ROOT / "studies" / f"{study}.toml").read_text())


@each_study
def test_shipped_study_is_complete_and_builds_its_table(study):
    spec = _spec(study)
    variants = [v["name"] for v in spec["variant"]]
    seeds = spec["study"]["seeds"]
    resolutions = spec["data"]["eval_resolutions"]

    [s] = load_results(SHIPPED, study)
    assert s.skipped_count == 0, s.skipped
    assert s.manifest is not None, s.manifest_problem
    [t] = load_tables(SHIPPED, study=study)
    assert t.completed == t.expected == len(variants) * len(seeds)
    assert not t.failed
    assert t.resolutions == resolutions and t.input_size == spec["data"]["input_size"]
    assert t.baseline == spec["study"]["baseline"]

    rows = [r for r in t.rows if r.kind == "variant"]
    assert [r.name for r in rows] == variants
    for row in rows:
        assert row.completed == len(seeds), row.name
        for r in resolutions:
            assert row.cells[r].n == len(seeds) and row.cells[r].mean is not None, (row.name, r)
        for r in t.verdict_resolutions:
            assert sum(row.verdicts[r].values()) == len(seeds), (row.name, r)
        if not row.is_baseline:  # intervals over seeds and held-out images: both files read
            for r in resolutions:
                c = row.deltas[r]
                assert c.n == len(seeds) and c.ci_low is not None and c.ci_low <= c.ci_high


@each_study
def test_shipped_files_are_the_documented_ones_and_hold_no_checkpoints(study):
    spec = _spec(study)
    study = SHIPPED / study
    trials = sorted(p.stem for p in (study / "trials").glob("*.parquet"))
    assert len(trials) == len(spec["variant"]) * len(spec["study"]["seeds"])
    for kind in ("history", "images"):
        assert sorted(p.stem for p in (study / kind).glob("*.parquet")) == trials, kind
    assert not (study / "checkpoints").exists() and not (study / "ray").exists()
    assert not list(study.rglob("*.pt")) and not list(study.rglob("checkpoint*"))


@each_study
def test_the_readme_quotes_the_shipped_table(study):
    """Every PSNR mean in the README's table of the study is what the shipped files give."""
    marker = STUDIES[study]
    readme = (ROOT / "README.md").read_text()
    m = re.search(rf"<!-- {marker} -->(.*?)<!-- /{marker} -->", readme, re.S)
    assert m, f"README: the {marker} markers are missing"
    quoted = {line.split("|")[1].strip().strip("*"): line for line in m.group(1).splitlines()
              if line.startswith("| ") and not line.startswith("| Variant")}
    [t] = load_tables(SHIPPED, study=study)
    rows = [r for r in t.rows if r.kind == "variant"]
    assert set(quoted) >= {r.label for r in rows}
    for row in rows:
        cells = [c.strip() for c in quoted[row.label].split("|")[2:-1]]
        for r in t.resolutions:
            mean = f"{row.cells[r].mean:.2f}"
            assert any(c.startswith(mean) for c in cells), (row.label, r, mean, cells)


def test_table_and_report_commands_on_the_shipped_results(tmp_path):
    res = runner.invoke(app, ["table", str(SHIPPED), "--format", "markdown"])
    assert res.exit_code == 0, res.output
    assert "Progressive multi-scale" in res.output and "2-D, α = 3" in res.output
    out = tmp_path / "report"
    res = runner.invoke(app, ["report", str(SHIPPED), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").is_file()
    pngs = list(out.rglob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)


@each_study
@pytest.mark.parametrize("name", ["psnr_y", "ssim"])
def test_other_metrics_read_from_the_shipped_results(study, name):
    [t] = load_tables(SHIPPED, study=study, metric=name)
    assert all(r.cells[32].mean is not None for r in t.rows if r.kind == "variant")
