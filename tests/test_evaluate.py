"""`evaluate` end to end on real held-out crops, with renderers whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from data_fixtures import write_cifar

from ablate.data.dataset import build_data
from ablate.imaging import bicubic_upsample, downsample
from ablate.metrics.evaluate import evaluate
from ablate.metrics.image import psnr
from ablate.metrics.verdict import lr_floor, margin_lower_bound
from ablate.schema import METRIC_KEYS, SPECTRA_COLUMNS, TRIAL_COLUMNS
from ablate.results.write import write_artifacts

CFG_KW = dict(
    hr_size=64, input_size=16, eval_resolutions=(16, 32, 64), test_samples=10, train_samples=8
)


@pytest.fixture(scope="module")
def setup():
    from ablate.spec.config import DataConfig

    cfg = DataConfig(**CFG_KW)
    _, test = build_data(cfg, "cpu")
    return cfg, test


class Recorder:
    """A renderer that records its calls and delegates to `fn(inputs, r)`."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, x, r):
        self.calls.append((x.shape[0], r))
        return self.fn(x, r)


def oracle(test, noise: float = 0.0):
    """Returns the ground truth of whichever test inputs it is given (plus, above the input
    size, optional white noise: a model that fits its input and invents detail above it)."""

    def render(x, r):
        d = (x[:, None] - test.inputs[None]).pow(2).flatten(2).sum(-1)
        idx = d.argmin(1)
        out = test.truth(r)[idx]
        if noise and r > test.input_size:
            g = torch.Generator().manual_seed(r)
            out = out + noise * torch.randn(out.shape, generator=g)
        return out

    return render


def test_bicubic_model_rows(setup):
    cfg, test = setup
    render = Recorder(bicubic_upsample)
    res = evaluate(render, test, cfg, batch_size=4)
    assert [row["resolution"] for row in res.rows] == [16, 32, 64]
    assert all(list(row) == list(METRIC_KEYS) for row in res.rows)
    assert set(METRIC_KEYS) <= set(TRIAL_COLUMNS)
    assert max(n for n, _ in render.calls) <= 4
    assert sum(n for n, r in render.calls if r == 64) == 10

    at_input = res.row(16)  # nothing to upsample: bicubic and band metrics are not applicable
    assert at_input["psnr"] == 100.0 and at_input["ssim"] == pytest.approx(1.0)
    not_applicable = [k for k in METRIC_KEYS if k.endswith("_bicubic") or k.startswith(("hf_", "band_"))]
    assert len(not_applicable) == 7 and at_input["psnr_y"] == 100.0
    assert all(math.isnan(at_input[k]) for k in not_applicable) and at_input["verdict"] == "n/a"
    assert at_input["psnr_lr_consistency"] == 100.0  # the input reproduced exactly: fit

    for r in (32, 64):
        row = res.row(r)
        assert row["psnr"] == row["psnr_bicubic"] and 15 < row["psnr"] < 40
        assert row["ssim"] == row["ssim_bicubic"] and row["psnr_y"] == row["psnr_y_bicubic"]
        assert row["hf_energy_ratio"] == pytest.approx(1) and row["band_error_ratio"] == pytest.approx(1)
        assert row["verdict"] == "resampling"
    assert res.row(64)["psnr"] < res.row(32)["psnr"]  # more missing detail at 4× than at 2×


def test_oracle_is_true_sr_and_noise_is_hallucination(setup):
    cfg, test = setup
    good = evaluate(oracle(test), test, cfg)
    for r in (32, 64):
        assert good.row(r)["verdict"] == "true_sr"
        assert good.row(r)["psnr"] == 100.0 and good.row(r)["psnr"] > good.row(r)["psnr_bicubic"]
        assert good.row(r)["band_coherence"] == pytest.approx(1.0)
    bad = evaluate(oracle(test, noise=0.05), test, cfg)
    assert bad.row(16)["verdict"] == "n/a" and bad.row(16)["fit_margin"] > 10  # fits its input
    assert bad.row(64)["verdict"] == "hallucination"
    assert bad.row(64)["psnr"] < bad.row(64)["psnr_bicubic"]


def test_fitness_gate_against_the_inputs_half_resolution_copy(setup):
    cfg, test = setup
    s = cfg.input_size
    # the floor, computed independently: 16 → 8 (antialiased bicubic) → 16 (bicubic), PSNR
    half = torch.nn.functional.interpolate(test.inputs, size=(s // 2, s // 2), mode="bicubic",
                                           align_corners=False, antialias=True).clamp(0, 1)
    up = torch.nn.functional.interpolate(half, size=(s, s), mode="bicubic",
                                         align_corners=False).clamp(0, 1)
    per_image = psnr(up, test.inputs)
    floor = float(per_image.mean())
    assert torch.allclose(lr_floor(test.inputs), per_image)
    assert 15 < floor < 45

    # exactly the floor's own copy does not clear it (margin ≤ 0): unfit at every resolution,
    # whatever its spectrum would say
    def copy(x, r):
        return bicubic_upsample(bicubic_upsample(downsample(x, s // 2), s), r)

    same = evaluate(copy, test, cfg)
    assert same.row(16)["fit_margin"] == pytest.approx(0.0, abs=1e-6)
    for r in (16, 32, 64):
        row = same.row(r)
        assert row["psnr_lr_floor"] == pytest.approx(floor) and row["verdict"] == "unfit"
        assert row["fit_margin"] == same.row(16)["fit_margin"]  # decided once, at the input
    # the ground truth passes with a wide margin and is true_sr (as bicubic passes and is
    # resampling: test_bicubic_model_rows)
    good = evaluate(oracle(test), test, cfg)
    for r in (32, 64):
        assert good.row(r)["fit_margin"] > 10 and good.row(r)["lr_margin"] > 10
        assert good.row(r)["verdict"] == "true_sr"
    # fits at the input, but between the pixel centres it is something else: its output at r,
    # brought back to the input grid, no longer reproduces the input → inconsistent, not unfit
    def wild(x, r):
        if r == s:
            return oracle(test)(x, r)
        return 1 - oracle(test)(x, r)

    res = evaluate(wild, test, cfg)
    assert res.row(16)["fit_margin"] > 10
    assert res.row(32)["lr_margin"] < 0 and res.row(32)["verdict"] == "inconsistent"
    assert res.row(64)["verdict"] == "inconsistent"


def test_margin_is_the_lower_bound_over_photos():
    rng = np.random.default_rng(0)
    d = rng.normal(1.0, 0.5, size=40)
    photos = [f"p{i % 5}" for i in range(40)]
    lo = margin_lower_bound(d, photos)
    assert lo < d.mean() and lo == margin_lower_bound(d, photos)  # below the mean; repeatable
    assert margin_lower_bound(d + 10, photos) == pytest.approx(lo + 10)
    # photos with different mean differences widen the interval against crops as independent
    clustered = d + np.array([2.0 * (i % 5) for i in range(40)])
    assert (clustered.mean() - margin_lower_bound(clustered, photos)
            > clustered.mean() - margin_lower_bound(clustered, None))
    assert math.isnan(margin_lower_bound([math.nan, math.nan]))
    assert margin_lower_bound([3.0]) == 3.0


def test_predictions_are_clamped_and_shapes_checked(setup):
    cfg, test = setup
    res = evaluate(lambda x, r: 2.0 + bicubic_upsample(x, r), test, cfg)
    assert res.samples["prediction"].max() == 1.0
    mse_white = (1 - test.truth(64).double()).pow(2).flatten(1).mean(1)  # clamped: all white
    assert res.row(64)["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse_white)).mean()))
    expected = r"returned \(10, 3, 17, 17\) for 10 images at 16, expected \(10, 3, 16, 16\)"
    with pytest.raises(ValueError, match=expected):
        evaluate(lambda x, r: torch.zeros(x.shape[0], 3, r + 1, r + 1), test, cfg)


def test_artifacts_written_as_documented(setup, tmp_path):
    cfg, test = setup
    res = evaluate(bicubic_upsample, test, cfg, n_samples=3)
    out = tmp_path / "artifacts" / "abc123"
    write_artifacts(out, res.samples, res.spectra)
    with np.load(out / "predictions.npz") as z:
        assert sorted(z.files) == ["bicubic", "input", "prediction", "truth"]
        assert z["input"].shape == (3, 3, 16, 16)
        for k in ("bicubic", "prediction", "truth"):
            assert z[k].shape == (3, 3, 64, 64) and z[k].dtype == np.float32
            assert 0 <= z[k].min() and z[k].max() <= 1
        np.testing.assert_array_equal(z["truth"], test.truth(64)[:3].numpy())
    spectra = pd.read_parquet(out / "spectra.parquet")
    assert list(spectra.columns) == list(SPECTRA_COLUMNS)
    assert set(spectra["resolution"]) == {32, 64}  # only resolutions above the input
    assert set(spectra["kind"]) == {"truth", "bicubic", "model"}
    at64 = spectra[(spectra.resolution == 64) & (spectra.kind == "truth")]
    assert at64["frequency"].tolist() == list(range(33))
    assert (at64["power"] > 0).all()
    assert not list(out.glob(".*tmp"))  # no temporary files left behind


def test_no_ground_truth_is_missing_not_faked(tmp_path):
    from ablate.spec.config import DataConfig

    write_cifar(tmp_path, n_train=16, n_test=20, batches=1)
    # min_texture 0: the fixture's images are smooth ramps
    cfg = DataConfig(source=f"cifar10:{tmp_path}", hr_size=128, input_size=32, min_texture=0.0,
                     eval_resolutions=(32, 64, 128), test_samples=6)
    _, test = build_data(cfg, "cpu")
    render = Recorder(bicubic_upsample)
    res = evaluate(render, test, cfg)
    assert {r for _, r in render.calls} == {32}  # the model is never asked for 64 or 128
    for r in (64, 128):
        row = res.row(r)
        assert all(math.isnan(row[k]) for k in METRIC_KEYS[1:-1]) and row["verdict"] == "n/a"
    assert res.row(32)["psnr"] == 100.0
    assert res.sample_resolution == 32 and res.samples["truth"].shape == (4, 3, 32, 32)
    assert res.spectra == []
    write_artifacts(tmp_path / "art", res.samples, res.spectra)
    assert pd.read_parquet(tmp_path / "art" / "spectra.parquet").empty


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    from ablate.data.sources import load_source
    from ablate.spec.config import DataConfig

    cfg = DataConfig(**CFG_KW)
    photos = load_source(cfg.source, cfg.hr_size)
    train_c, test_c = build_data(cfg, "cpu", photos=photos)
    train_g, test_g = build_data(cfg, "cuda", photos=photos)
    assert train_g.pixels.is_cuda and test_g.inputs.is_cuda
    a = train_c.epoch(torch.Generator().manual_seed(0))
    b = train_g.epoch(torch.Generator().manual_seed(0))  # CPU generator: the same crops
    # the same crops; uint8 → float division may differ by an ulp between CPU and CUDA
    assert b.is_cuda and torch.allclose(a, b.cpu(), rtol=0, atol=1e-6)
    c = train_g.epoch(torch.Generator(device="cuda").manual_seed(0))
    assert c.is_cuda and c.shape == a.shape
    assert torch.allclose(test_c.hr, test_g.hr.cpu(), rtol=0, atol=1e-6)
    assert torch.allclose(test_c.inputs, test_g.inputs.cpu(), atol=1e-5)
    res_c = evaluate(bicubic_upsample, test_c, cfg)
    res_g = evaluate(bicubic_upsample, test_g, cfg)
    for rc, rg in zip(res_c.rows, res_g.rows):
        assert rc["verdict"] == rg["verdict"]
        for k in METRIC_KEYS[1:-1]:
            assert rc[k] == pytest.approx(rg[k], rel=1e-3, abs=1e-6, nan_ok=True)


def test_per_image_rows_average_to_the_trial_row(setup):
    cfg, test = setup
    res = evaluate(oracle(test, noise=0.05), test, cfg)
    from ablate.schema import IMAGE_COLUMNS

    assert len(res.images) == 3 * len(test)  # every resolution × held-out crop
    assert all(set(row) == set(IMAGE_COLUMNS) - {"trial_id"} for row in res.images)
    assert [row["photo"] for row in res.images[: len(test)]] == test.photos
    for r in (16, 32, 64):
        mine = [row for row in res.images if row["resolution"] == r]
        assert [row["image"] for row in mine] == list(range(len(test)))
        for k in ("psnr", "psnr_y", "ssim", "psnr_bicubic", "psnr_y_bicubic", "ssim_bicubic"):
            vals = np.array([row[k] for row in mine])
            if r == 16 and k.endswith("_bicubic"):
                assert np.isnan(vals).all()
            else:
                assert vals.mean() == pytest.approx(res.row(r)[k], rel=1e-12)
    # the luma PSNR is its own figure: not the RGB one
    assert res.row(64)["psnr_y"] != pytest.approx(res.row(64)["psnr"], abs=0.05)
