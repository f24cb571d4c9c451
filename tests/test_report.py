"""`ablate report`: valid PNGs and an index.html that references them all, from synthetic
result directories (complete, gridded, and without histories or artifacts yet)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ablate.cli.app import app
from synthetic_results import Variant, make_study

runner = CliRunner()


def _referenced(index: Path) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', index.read_text())


def _check_pngs(out: Path) -> list[Path]:
    pngs = sorted(out.glob("*.png"))
    for p in pngs:
        with Image.open(p) as im:
            im.verify()  # a complete, valid PNG
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 200
    return pngs


@pytest.fixture(scope="module")
def gridded_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    variants = (Variant("original_bug", "Original (bug)", 0.0, "resampling"),
                Variant("per_batch", "Per-batch σ_q $jitter", 0.4, "true_sr"),  # odd text
                Variant("upsampled", "Upsampled-input targets", -0.2, "hallucination"))
    make_study(root, "sigmas", variants, seeds=(0, 1), resolutions=(32, 64, 128),
               grid=("sigmas=[128,32]", "sigmas=[64,16]"),
               failed={("upsampled", 1)})
    out = root / "out"
    res = runner.invoke(app, ["report", str(root / "sigmas"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_report_writes_valid_pngs_and_an_index_that_references_them_all(gridded_report):
    out = gridded_report
    pngs = _check_pngs(out)
    names = {p.name for p in pngs}
    assert names == {"psnr_vs_resolution.png", "ssim_vs_resolution.png", "spectra.png",
                     "samples_0.png", "samples_1.png", "training.png"}
    index = out / "index.html"
    refs = _referenced(index)
    assert sorted(refs) == sorted(names)  # every PNG shown, nothing dangling
    html = index.read_text()
    assert html.count('<table class="ablate">') == 3  # PSNR and SSIM tables, verdict basis
    assert "what the verdicts were decided from" in html and "LR PSNR (floor)" in html
    assert "unfit when the LR PSNR" in html  # the rule beside the figures
    assert "Bicubic" in html and "sigmas=[64,16]" in html
    assert "2 failed trial(s)" in html and "CUDA out of memory" in html  # one per grid point


def test_report_of_a_study_without_history_or_artifacts(tmp_path):
    make_study(tmp_path, "early", seeds=(0,), history=False, artifacts=False)
    out = tmp_path / "out"
    res = runner.invoke(app, ["report", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert {p.name for p in _check_pngs(out)} == {"psnr_vs_resolution.png",
                                                 "ssim_vs_resolution.png"}
    assert sorted(_referenced(out / "index.html")) == ["psnr_vs_resolution.png",
                                                       "ssim_vs_resolution.png"]
    assert "Not drawn (no data yet): spectra, samples, training" in (out / "index.html").read_text()


def test_report_exit_2_without_results(tmp_path):
    res = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "no results" in res.output


def test_study_name_read_from_results_never_leads_outside_out(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    results = tmp_path / "deep" / "results"
    make_study(results, "a", seeds=(0,), history=False, artifacts=False)
    hostile = make_study(results, "b", seeds=(0,), history=False, artifacts=False, manifest=False)
    for f in (hostile / "trials").glob("*.parquet"):  # a study column crafted to escape
        t = pq.read_table(f)
        i = t.column_names.index("study")
        pq.write_table(t.set_column(i, "study", pa.array(["../../escape"] * t.num_rows)), f)
    out = tmp_path / "deep" / "results" / "out"
    res = runner.invoke(app, ["report", str(results), "--out", str(out)])
    assert res.exit_code == 0, res.output
    written = sorted(p for p in tmp_path.rglob("*") if p.suffix in (".png", ".html"))
    assert written and all(p.parent == out for p in written), written
    assert {p.name for p in written} >= {"a-psnr_vs_resolution.png", "b-psnr_vs_resolution.png"}
