"""`ablate table`: figures against a hand computation, every format, partial/failed/running
studies, and the CLI's exit codes. Synthetic result directories only (no training)."""

from __future__ import annotations

import io
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.read import load_results
from ablate.table.build import build_table, load_tables
from ablate.table.format import CSV_COLUMNS, header, render
from ablate.table.stats import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci, holm,
                                paired_t_pvalue, significance_mark, t_two_sided)
from synthetic_results import Variant, make_study

runner = CliRunner()

# ---------------------------------------------------------------------------------------------
# A small study whose every figure is computed by hand below.
#   A (baseline), B = A + 0.5 ± noise at 64 and + ~0.22 at 32 (two small, distinct p-values,
#   so Holm differs from Bonferroni), C = A + noise; seeds 0, 1, 2.
# ---------------------------------------------------------------------------------------------

A = {32: [30.0, 30.2, 29.9], 64: [26.0, 26.3, 25.8]}
B = {32: [30.2, 30.45, 30.12], 64: [26.45, 26.80, 26.35]}  # Δ64 = 0.5 + (−0.05, 0, +0.05)
C = {32: [30.0, 30.25, 29.88], 64: [25.9, 26.6, 25.9]}
VALUES = {"A": A, "B": B, "C": C}
VERDICTS_B64 = ["true_sr", "true_sr", "unfit"]
# the verdict basis of B at 64, per seed (its means are checked by --detail)
BASIS_B64 = {"fit_margin": [2.0, 2.5, -0.5], "psnr_lr_consistency": [31.0, 32.0, 27.0],
             "psnr_lr_floor": [28.0, 28.0, 28.0], "lr_margin": [2.5, 3.5, -1.5],
             "hf_energy_ratio": [3.0, 4.0, 8.0], "truth_energy_ratio": [5.0, 5.0, 5.0],
             "band_error_ratio": [0.5, 0.6, 1.3], "band_coherence": [0.6, 0.7, 0.2],
             "band_coherence_bicubic": [0.3, 0.3, 0.3]}
HAND_VARIANTS = (Variant("A", "Alpha"), Variant("B", "Beta"), Variant("C", "Gamma"))


def _hand_values(variant, grid, seed, r):
    out = {"psnr": VALUES[variant][r][seed], "psnr_bicubic": 27.0 if r == 64 else float("nan")}
    if variant == "B" and r == 64:
        out["verdict"] = VERDICTS_B64[seed]
        out.update({c: v[seed] for c, v in BASIS_B64.items()})
    return out


@pytest.fixture(scope="module")
def hand_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hand")
    make_study(root, "hand", HAND_VARIANTS, seeds=(0, 1, 2), resolutions=(32, 64),
               values=_hand_values, history=False, artifacts=False)
    return root / "hand"


@pytest.fixture(scope="module")
def hand_table(hand_dir):
    (s,) = load_results(hand_dir)
    return build_table(s, "psnr")


def _row(t, name, grid=""):
    return next(r for r in t.rows if r.name == name and r.grid == grid)


def test_means_and_stds_equal_a_hand_computation(hand_table):
    t = hand_table
    assert [r.label for r in t.rows] == ["Bicubic", "Alpha", "Beta", "Gamma"]
    for name, vals in VALUES.items():
        for r in (32, 64):
            cell = _row(t, name).cells[r]
            assert cell.n == 3
            assert cell.mean == pytest.approx(statistics.mean(vals[r]), abs=1e-12)
            assert cell.std == pytest.approx(statistics.stdev(vals[r]), abs=1e-12)  # ddof=1
    bic = _row(t, "bicubic")
    assert bic.cells[64].mean == pytest.approx(27.0) and bic.cells[32].mean is None


def test_paired_delta_interval_and_p_equal_a_hand_computation(hand_table):
    t = hand_table
    c = _row(t, "B").deltas[64]
    d = np.array(B[64]) - np.array(A[64])
    assert c.n == 3
    assert c.delta == pytest.approx(statistics.mean(d), abs=1e-12) == pytest.approx(0.5)
    # the interval covers the true difference (0.5) and excludes 0
    assert c.ci_low <= 0.5 <= c.ci_high and c.ci_low > 0
    # … and is the percentile bootstrap of the documented resamples
    idx = np.random.default_rng(BOOTSTRAP_SEED).integers(0, 3, size=(BOOTSTRAP_RESAMPLES, 3))
    lo, hi = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    assert (c.ci_low, c.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    assert c.p == pytest.approx(sps.ttest_rel(B[64], A[64]).pvalue, rel=1e-9)
    assert _row(t, "A").deltas == {}  # the baseline is not compared with itself


def test_holm_adjusted_p_values_equal_a_hand_computation(hand_table):
    t = hand_table
    keys = [("B", 32), ("B", 64), ("C", 32), ("C", 64)]
    p = {k: sps.ttest_rel(VALUES[k[0]][k[1]], A[k[1]]).pvalue for k in keys}
    order = sorted(keys, key=p.get)  # step-down: m·p(1), (m−1)·p(2), … kept monotone
    adjusted, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (4 - i) * p[k]))
        adjusted[k] = running
    for name, r in keys:
        c = _row(t, name).deltas[r]
        assert c.p == pytest.approx(p[(name, r)], rel=1e-9)
        assert c.p_holm == pytest.approx(adjusted[(name, r)], rel=1e-9)
    # B64: p ≈ 0.0033 → ×4 ≈ 0.013; B32: p ≈ 0.0042 → ×3, raised to 0.013 (monotone)
    assert _row(t, "B").deltas[32].p_holm == pytest.approx(_row(t, "B").deltas[64].p_holm)
    assert _row(t, "B").deltas[64].mark == "*" and _row(t, "C").deltas[64].mark == ""


def test_holm_and_marks_on_a_textbook_example():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert [significance_mark(p) for p in (0.0005, 0.005, 0.02, 0.2, None)] == \
        ["***", "**", "*", "", ""]


def test_paired_t_pvalue_is_ttest_rel():
    rng = np.random.default_rng(3)
    for n in (2, 3, 4, 5, 7, 12, 40, 300):
        for shift in (0.0, 0.05, 0.3, 1.0, 3.0):
            a, b = rng.normal(size=n), rng.normal(size=n)
            a = a + shift
            assert paired_t_pvalue(a - b) == pytest.approx(sps.ttest_rel(a, b).pvalue,
                                                           rel=1e-9, abs=1e-300)
    assert paired_t_pvalue([0.4]) is None
    assert paired_t_pvalue([0.25, 0.25, 0.25]) == 0.0  # ttest_rel: t = inf, p = 0
    assert paired_t_pvalue([0.0, 0.0]) == 1.0  # ttest_rel: NaN; no evidence of a difference
    assert bootstrap_ci([0.4]) is None
    for t in (0.0, 0.5, 2.0, 10.0, 1e3):  # the t tail itself, over degrees of freedom
        for df in (1, 2, 3, 10, 99, 1000):
            assert t_two_sided(t, df) == pytest.approx(2 * sps.t.sf(t, df), rel=1e-9,
                                                       abs=1e-300)


def test_verdict_counts_across_seeds(hand_table):
    assert _row(hand_table, "B").verdicts[64] == {"true_sr": 2, "unfit": 1}
    text = render([hand_table], "text")
    assert "true_sr 2/3, unfit 1/3" in text  # unfit counts like the other verdicts
    assert 32 not in _row(hand_table, "B").verdicts  # no verdict at the input size


def test_detail_shows_each_verdicts_basis_in_every_format(hand_dir, hand_table):
    means = {c: statistics.mean(v) for c, v in BASIS_B64.items()}
    basis = _row(hand_table, "B").basis[64]
    assert basis == pytest.approx(means)
    out = {}
    for fmt in ("text", "markdown", "csv", "json", "latex"):
        res = runner.invoke(app, ["table", str(hand_dir), "--format", fmt, "--detail"])
        assert res.exit_code == 0, res.output
        out[fmt] = res.stdout
    # the human formats: a second table, one line per variant at 64, with the means; the fit
    # at the input (32) beside them
    fit = _row(hand_table, "B").basis[32]
    beta = (f"| Beta | 64 | true_sr 2/3, unfit 1/3 | {fit['psnr_lr_consistency']:.2f} (28.00) "
            f"{fit['fit_margin']:+.2f} | {means['psnr_lr_consistency']:.2f} "
            f"({means['lr_margin']:+.2f}) | {means['hf_energy_ratio']:.3g} "
            f"({means['truth_energy_ratio']:.3g}) | {means['band_error_ratio']:.3f} | "
            f"{means['band_coherence']:+.3f} (+0.300) |")
    assert beta in out["markdown"]
    assert "what the verdicts were decided from" in out["text"]
    assert "half-resolution copy" in out["text"] and "inconsistent when" in out["text"]
    assert f"{means['band_error_ratio']:.3f}" in out["text"]
    assert out["latex"].count("\\begin{tabular}") == 2
    detail_tex = out["latex"].split("--detail")[1]
    body = [ln for ln in detail_tex.splitlines() if ln.endswith("\\\\")]
    assert len(body) == 1 + 3 and all(_unescaped(ln, "&") == 7 for ln in body)
    # machine formats: the same figures as fields
    df = pd.read_csv(io.StringIO(out["csv"]))
    b64 = df[(df.variant == "B") & (df.resolution == 64)].iloc[0]
    for c, m in means.items():
        assert b64[c] == pytest.approx(m)
    cell = next(c for row in json.loads(out["json"])["studies"][0]["rows"]
                if row["variant"] == "B" for c in row["cells"] if c["resolution"] == 64)
    assert cell["basis"] == pytest.approx(means)
    # without --detail, none of it
    plain = runner.invoke(app, ["table", str(hand_dir), "--format", "markdown"]).stdout
    assert "decided from" not in plain


def test_baseline_option_changes_the_reference(hand_dir):
    (t,) = load_tables(hand_dir, baseline="B")
    assert _row(t, "B").is_baseline and _row(t, "B").deltas == {}
    assert _row(t, "A").deltas[64].delta == pytest.approx(-0.5)
    (t,) = load_tables(hand_dir, baseline="Gamma")  # a label works too
    assert t.baseline == "C"


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory) -> Path:
    """Two grid points, a failed trial, a missing seed and a missing resolution."""
    root = tmp_path_factory.mktemp("grid")
    make_study(root, "grid", seeds=(0, 1, 2), resolutions=(32, 64, 128),
               grid=("sigmas=[128,32]", "sigmas=[64,16]"),
               failed={("upsampled", 2)}, missing={("per_batch", 1)},
               drop_resolutions={("upsampled", 0): {128}, ("upsampled", 1): {128}},
               history=False, artifacts=False)
    return root / "grid"


def _unescaped(line: str, ch: str) -> int:
    return len(re.findall(r"(?<!\\)" + re.escape(ch), line))


def test_every_format_parses(grid_dir):
    (t,) = load_tables(grid_dir)
    ncol = len(header(t))
    outputs = {}
    for fmt in ("text", "markdown", "csv", "json", "latex"):
        res = runner.invoke(app, ["table", str(grid_dir), "--format", fmt])
        assert res.exit_code == 0, res.output
        outputs[fmt] = res.stdout

    df = pd.read_csv(io.StringIO(outputs["csv"]))
    assert list(df.columns) == list(CSV_COLUMNS)
    assert len(df) == len(t.rows) * len(t.resolutions)
    assert set(df["kind"]) == {"bicubic", "variant"}

    doc = json.loads(outputs["json"])
    (study,) = doc["studies"]
    assert study["study"] == "grid" and study["baseline"] == "original_bug"
    assert len(study["rows"]) == len(t.rows) and len(study["failed"]) == 2

    table_lines = [ln for ln in outputs["markdown"].splitlines() if ln.startswith("|")]
    assert len(table_lines) == 2 + len(t.rows) + 2  # header, rule, rows, 2 grid headings
    assert all(_unescaped(ln, "|") == ncol + 1 for ln in table_lines)

    tex = outputs["latex"]
    assert "\\begin{tabular}" in tex and "\\end{tabular}" in tex
    body = [ln for ln in tex.splitlines() if ln.endswith("\\\\") and "multicolumn" not in ln]
    assert len(body) == 1 + len(t.rows) and all(_unescaped(ln, "&") == ncol - 1 for ln in body)

    for fmt in ("text", "markdown", "latex"):
        assert "sigmas=[64,16]" in outputs[fmt] and "Per-batch jitter" in outputs[fmt]


def test_grid_blocks_in_spec_order_and_variant_order(grid_dir):
    (t,) = load_tables(grid_dir)
    assert t.grids == ["sigmas=[128,32]", "sigmas=[64,16]"]  # spec order, not string order
    labels = [r.label for r in t.rows if r.grid == "sigmas=[64,16]"]
    assert labels == ["Original (bug)", "Per-batch jitter", "Upsampled-input targets"]
    assert t.rows[0].kind == "bicubic" and t.rows[0].grid == ""  # one shared Bicubic row


def test_partial_and_failed_trials_appear(grid_dir):
    (t,) = load_tables(grid_dir)
    text = render([t], "text")
    # missing seed → n shown; missing resolution → "—"
    pb = _row(t, "per_batch", "sigmas=[64,16]")
    assert pb.cells[64].n == 2 and "(n=2)" in text
    up = _row(t, "upsampled", "sigmas=[64,16]")
    assert up.cells[128].mean is None and up.deltas[128].delta is None
    assert up.cells[64].n == 2
    line = next(ln for ln in render([t], "markdown").splitlines()
                if ln.startswith("| Upsampled-input targets"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[5] == "—" and cells[6] == "—"  # PSNR@128 and Δ@128
    # failed trials: counted and listed with variant, seed and error; partial counts
    assert t.completed == 14 and t.expected == 18 and len(t.failed) == 2
    assert "partial study: 14/18 trials completed, 2 failed, 2 not finished" in text
    assert re.search(r"Upsampled-input targets \[sigmas=\[64,16\]\], seed 2 .*CUDA out of memory",
                     text)
    res = runner.invoke(app, ["table", str(grid_dir), "--format", "csv"])
    assert "2 failed trial(s)" in res.stderr and "failed" not in res.stdout


def test_single_seed_says_no_interval_is_possible(tmp_path):
    make_study(tmp_path, "one", seeds=(0,), history=False, artifacts=False)
    (t,) = load_tables(tmp_path)
    c = _row(t, "per_batch").deltas[64]
    assert c.n == 1 and c.ci_low is None and c.p is None and c.mark == ""
    text = render([t], "text")
    line = next(ln for ln in text.splitlines() if "Per-batch jitter" in ln)
    assert "no interval" not in line and "[" not in line  # said once, in the legend:
    assert text.count("(n=1: no interval)") == 1
    assert "p<0.05" not in text  # no significance mark appears, so none is explained
    assert any("no interval or significance test is possible" in n for n in t.notes)
    doc = json.loads(render([t], "json"))
    cell = doc["studies"][0]["rows"][2]["cells"][1]
    assert cell["delta"]["ci_low"] is None and cell["std"] is None


def test_running_study_with_unreadable_files_and_unstarted_variants(tmp_path):
    root = make_study(tmp_path, "live", seeds=(0, 1), history=False, artifacts=False,
                      missing={("upsampled", 0), ("upsampled", 1)})
    good = next((root / "trials").glob("*.parquet"))
    (root / "trials" / "garbage.parquet").write_bytes(b"not parquet at all")
    (root / "trials" / "truncated.parquet").write_bytes(good.read_bytes()[:200])
    pd.DataFrame({"x": [1]}).to_parquet(root / "trials" / "foreign.parquet")
    (root / "trials" / ".x.parquet.123.tmp").write_bytes(b"half")  # atomic-write temp: ignored
    res = runner.invoke(app, ["table", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "3 unreadable trial file(s) skipped" in res.stdout
    assert "partial study: 4/6 trials completed, 2 not finished" in res.stdout
    (t,) = load_tables(tmp_path)
    up = _row(t, "upsampled")  # in the spec, not started: an empty row, not a missing one
    assert up.completed == 0 and up.cells[64].mean is None


@pytest.mark.parametrize("manifest", [True, False])
def test_an_older_trial_of_the_same_point_never_counts(tmp_path, manifest):
    """With a manifest the older trial is not in it (its settings differ: another id) and is
    named apart; without one (results of an ablate before manifests) the latest completed
    trial of a variant, grid point and seed supersedes the others."""
    root = make_study(tmp_path, "rerun", seeds=(0,), history=False, artifacts=False,
                      variants=(Variant("a", "A"),), manifest=manifest)
    old = pd.read_parquet(next((root / "trials").glob("*.parquet")))
    old["trial_id"] = "oldid"
    old["psnr"] = 1.0
    old["finished_at"] = "2000-01-01T00:00:00+00:00"
    old.to_parquet(root / "trials" / "oldid.parquet")
    (t,) = load_tables(tmp_path)
    assert _row(t, "a").cells[64].mean > 20 and _row(t, "a").cells[64].n == 1
    if manifest:
        assert any("1 finished trial(s) of an earlier configuration" in n and "(oldid)" in n
                   for n in t.notes), t.notes
    else:
        assert any("superseded" in n for n in t.notes), t.notes


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def test_cli_exit_codes_and_messages(tmp_path, hand_dir):
    res = runner.invoke(app, ["table", str(hand_dir)])
    assert res.exit_code == 0 and "Beta" in res.stdout and "Bicubic" in res.stdout

    res = runner.invoke(app, ["table", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no results" in res.output

    (tmp_path / "empty" / "trials").mkdir(parents=True)
    res = runner.invoke(app, ["table", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no trial results yet" in res.output

    res = runner.invoke(app, ["table", str(hand_dir), "--baseline", "nope"])
    assert res.exit_code == 2 and "unknown baseline 'nope'" in res.output
    assert "A, B, C" in res.output  # the message lists the variants

    res = runner.invoke(app, ["table", str(hand_dir), "--format", "html"])
    assert res.exit_code == 2 and "--format" in res.output

    res = runner.invoke(app, ["table", str(hand_dir), "--metric", "lpips"])
    assert res.exit_code == 2 and "--metric" in res.output

    res = runner.invoke(app, ["table", str(hand_dir), "--metric", "ssim", "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["studies"][0]["metric"] == "ssim"


def test_cli_several_studies_and_study_option(tmp_path):
    make_study(tmp_path, "first", seeds=(0, 1), history=False, artifacts=False)
    make_study(tmp_path, "second", seeds=(0, 1), history=False, artifacts=False)
    res = runner.invoke(app, ["table", str(tmp_path), "--format", "json"])
    assert res.exit_code == 0
    assert [s["study"] for s in json.loads(res.stdout)["studies"]] == ["first", "second"]
    res = runner.invoke(app, ["table", str(tmp_path), "--study", "second", "--format", "csv"])
    assert res.exit_code == 0 and set(pd.read_csv(io.StringIO(res.stdout))["study"]) == {"second"}
    res = runner.invoke(app, ["table", str(tmp_path), "--study", "third"])
    assert res.exit_code == 2 and "no study named 'third'" in res.output and "first" in res.output


def test_table_path_imports_no_heavy_modules(hand_dir):
    """The CLI path of `ablate table` stays light: no matplotlib, scipy.stats, torch or Ray."""
    code = (
        "import sys\n"
        "from ablate.cli.app import app\n"
        f"try:\n    app(['table', {str(hand_dir)!r}])\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "heavy = ('matplotlib', 'scipy.stats', 'torch', 'ray')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_text_table_fits_80_columns_and_explains_only_what_appears(tmp_path):
    from rich.console import Console

    from ablate.table.format import print_text

    make_study(tmp_path, "narrow", history=False, artifacts=False)
    (t,) = load_tables(tmp_path)
    buf = io.StringIO()
    print_text([t], Console(file=buf, width=80, color_system=None))
    text = buf.getvalue()
    body = text.split("mean ± std")[0]
    assert max(len(ln) for ln in body.splitlines()) <= 80
    # the compact layout: a row per variant × resolution, whole numbers and intervals intact
    # (the interval stacked under its value)
    assert re.search(r"Per-batch jitter\s+64\s+\d+\.\d\d ± \d\.\d\d\s+\+\d\.\d\d( \*+)?[^\n]*\n"
                     r"\s+\[\+\d\.\d\d, \+\d\.\d\d\]", text), text
    assert "…" not in body
    # the wide layout where it fits, the same cells
    wide = render([t], "text")
    assert "PSNR@64" in wide and "PSNR@64" not in body
    # bicubic at the input size is the input; the legend says so, and nothing is missing here
    md = render([t], "markdown")
    assert "| Bicubic | input |  |" in md and "Bicubic input: at the input size" in md
    assert "no result" not in md and "(n = seeds when fewer)" not in md


def test_the_table_and_its_detail_read_at_80_columns():
    """Issue 28 §5: at 80 columns each Δ stacks its interval under the value and its stars
    (no "***" alone on a line), verdicts are abbreviated with a key, and --detail lists each
    figure by name instead of truncating columns ("hallu…")."""
    from pathlib import Path

    from ablate.table.format import to_text

    shipped = Path(__file__).resolve().parents[1] / "docs" / "results"
    tables = load_tables(shipped, study="jitter_vs_multiscale_cpu", detail=True)
    out = to_text(tables, width=80, detail=True)
    legends = ("mean ± std", "means over seeds")  # one long line each, wrapped by a terminal
    lines = [line for line in out.splitlines() if not line.startswith(legends)]
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in out, [line for line in lines if "…" in line]
    assert not [line for line in lines if line.strip() in ("*", "**", "***")]
    assert re.search(r"\+\d+\.\d\d \*+\s*$", out, re.M)  # a value with its stars
    assert re.search(r"^\s+\[[+-]\d+\.\d\d, [+-]\d+\.\d\d\]\s*$", out, re.M)  # its CI below
    assert "halluc. = hallucination" in out
    assert "Original (bug) @32: unfit 3/3" in out and "    Error × bicubic [CI]: " in out
