"""`ablate report`: valid PNGs and an index.html that references them all, from synthetic
result directories (complete, gridded, and without histories or artifacts yet)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
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
    # PSNR and SSIM tables, verdict basis; what each row is and the shared settings
    assert html.count('<table class="ablate">') == 5
    assert "what the verdicts were decided from" in html
    assert "Fit at input: PSNR (floor) margin" in html
    assert "unfit (at every r) when the margin at the input" in html  # the rule beside them
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


def _captured(monkeypatch):
    """The figures' Figure objects, in the order drawn (instead of PNGs)."""
    from ablate.report import figures

    figs = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: figs.append(fig) or path)
    return figs


def test_figures_keep_overlaps_visible_and_say_only_what_they_draw(monkeypatch, tmp_path):
    from ablate.report import figures

    figs = _captured(monkeypatch)
    variants = [("a", "A"), ("b", "B")]
    rows = [dict(grid="", variant=v, resolution=r, psnr=20.0 + r / 16, psnr_bicubic=19.0)
            for v in ("a", "b") for r in (16, 32, 64)]  # a and b coincide; one seed each
    done = pd.DataFrame(rows)
    figures.metric_vs_resolution(done, variants, [""], "psnr", 16, "s", tmp_path / "p.png")
    fig = figs[-1]
    assert "95 %" not in fig._suptitle.get_text() and "no confidence band" in fig._suptitle.get_text()
    ax_abs, ax_gain = fig.axes[:2]
    assert ax_abs.get_xlim() == ax_gain.get_xlim()  # the gain panel shares the x-range
    lines = {ln.get_label(): ln for ln in ax_abs.get_lines() if ln.get_label() in ("A", "B")}
    assert lines["A"].get_marker() != lines["B"].get_marker()
    assert list(lines["A"].get_xdata()) != list(lines["B"].get_xdata())  # dodged side by side
    # with seeds, the band is drawn and named
    done2 = pd.concat([done, done.assign(psnr=done["psnr"] + 0.5)])
    figures.metric_vs_resolution(done2, variants, [""], "psnr", 16, "s", tmp_path / "p.png")
    assert "95 % bootstrap CI" in figs[-1]._suptitle.get_text()

    # the Nyquist marking has a colour no variant has
    spec = pd.DataFrame([dict(trial_id=t, resolution=64, kind=k, frequency=f, power=1.0 / (f + 1))
                         for t in ("ta", "tb") for k in ("truth", "bicubic", "model")
                         for f in range(33)])
    meta = pd.DataFrame([dict(trial_id="ta", variant="a", grid=""),
                         dict(trial_id="tb", variant="b", grid="")])
    figures.spectra(spec, meta, variants, [""], 16, "s", tmp_path / "s.png")
    from matplotlib.colors import to_rgba

    nyq = [ln for ln in figs[-1].axes[0].get_lines() if list(ln.get_xdata()) == [8, 8]]
    assert nyq and to_rgba(nyq[0].get_color()) not in {
        to_rgba(c) for c in figures.variant_colors(["a", "b"]).values()}

    # reconstructions carry their PSNR against the truth
    rng = np.random.default_rng(0)
    truth = rng.random((1, 3, 16, 16))
    arrays = {"input": truth[:, :, ::2, ::2], "bicubic": truth * 0.9, "truth": truth,
              "prediction": np.clip(truth + 0.1, 0, 1)}
    figures.samples({"a": arrays}, variants, "s", "", tmp_path / "x.png", n_images=1)
    labels = [ax.get_xlabel() for ax in figs[-1].axes[:4]]
    assert labels[0] == "" and labels[1].startswith("PSNR ") and labels[1].endswith(" dB")
    mse = ((arrays["prediction"] - truth) ** 2).mean()
    assert labels[2] == f"PSNR {10 * np.log10(1 / mse):.2f} dB"


def test_the_report_explains_the_study_it_shows(tmp_path):
    """Issue 28 §6: the study's description, what sets each row apart (from the trials'
    configs), the settings every row shares, the code that wrote the rows; and progress on
    stderr while it draws. A real run of the tiny study."""
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path, seeds=(0,), epochs=1)
    res = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(res), "--executor", "local",
                            "--device", "cpu"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", str(res), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert "tiny: drawing figures" in r.stderr and "tiny: training curves" in r.stderr
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Checks an install, a cluster or a storage" in page  # the spec's description
    rows = page.split("<h3>What each row is</h3>")[1].split("</table>")[0]
    plain = rows.split("<tr><td>Plain</td>")[1].split("</tr>")[0]
    multi = rows.split("<tr><td>Multi-scale</td>")[1].split("</tr>")[0]
    assert "train.jitter.placement = none" in plain and "train.multiscale.mode = off" in plain
    assert "train.multiscale.mode = random_res" in multi
    assert rows.index("Plain") < rows.index("Multi-scale")  # the table's order
    shared = page.split("settings every row shares")[1].split("</details>")[0]
    assert "<td>data.input_size</td><td>16</td>" in shared and "model.dim" in shared
    assert "Rows written by ablate 0." in page


def test_a_one_seed_report_promises_no_band(tmp_path):
    make_study(tmp_path, "one", seeds=(0,))
    r = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "bootstrap band" not in page and "one seed per variant: no confidence band" in page
    make_study(tmp_path / "three", "three", seeds=(0, 1, 2))
    r = runner.invoke(app, ["report", str(tmp_path / "three"), "--out", str(tmp_path / "r3")])
    assert "95 % bootstrap band" in (tmp_path / "r3" / "index.html").read_text()
