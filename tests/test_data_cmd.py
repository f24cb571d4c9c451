"""`ablate data`: what a study's data are, for bundled, folder: and cifar10: sources."""

from __future__ import annotations

import json

import pytest
import torch
from data_fixtures import write_cifar, write_image
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.data.dataset import build_data
from ablate.metrics.describe import band_energy_fraction, describe_data
from ablate.data.sources import BUNDLED_TEST
from ablate.metrics.image import psnr_y
from ablate.imaging import bicubic_upsample
from ablate.metrics.verdict import lr_floor
from ablate.spec.config import DataConfig

from conftest import write_tiny_study

runner = CliRunner()


def test_bundled_figures_equal_a_direct_computation():
    cfg = DataConfig(hr_size=64, input_size=16, eval_resolutions=(16, 32, 64), test_samples=20)
    facts = describe_data(cfg)
    assert facts.prescale == 1.5 and facts.hr_size == 64 and facts.test_crops == 20
    assert set(facts.test_photos) == set(BUNDLED_TEST) and sum(facts.test_photos.values()) == 20
    assert facts.train_odds == pytest.approx([1 / 8] * 8)
    assert set(facts.train_photos).isdisjoint(facts.test_photos)
    usable = dict(zip(facts.train_photos, facts.train_usable))
    assert usable["retina"] < 0.5 and usable["astronaut"] > 0.95  # retina is mostly flat
    _, test = build_data(cfg, "cpu")
    by_r = {f.resolution: f for f in facts.resolutions}
    assert by_r[16].psnr_y_bicubic is None and by_r[16].energy_above_nyquist == 0.0
    bic = bicubic_upsample(test.inputs, 64)
    assert by_r[64].psnr_y_bicubic == pytest.approx(float(psnr_y(bic, test.truth(64), 4).mean()))
    assert by_r[32].psnr_y_bicubic > by_r[64].psnr_y_bicubic  # ×2 is easier than ×4
    assert 0 < by_r[32].energy_above_nyquist < by_r[64].energy_above_nyquist < 0.5
    assert facts.fit_floor == pytest.approx(float(lr_floor(test.inputs).mean()))
    assert 15 < facts.fit_floor < 45


def test_band_energy_fraction_of_known_images():
    x = (torch.arange(64, dtype=torch.float64) + 0.5) / 64
    low = 0.5 + 0.2 * torch.cos(2 * torch.pi * 5 * x)  # 5 cycles/image: below 8 (input 16)
    high = 0.5 + 0.2 * torch.cos(2 * torch.pi * 20 * x)  # 20 cycles/image: above
    img = lambda row: row.expand(1, 3, 64, 64).contiguous()  # noqa: E731
    assert band_energy_fraction(img(low), 16) < 0.01
    assert band_energy_fraction(img(high), 16) > 0.99
    both = img(low) + img(high) - 0.5
    assert band_energy_fraction(both, 16) == pytest.approx(0.5, abs=0.02)


def test_cli_text_and_json_for_the_bundled_tiny_study(tmp_path):
    study = write_tiny_study(tmp_path)
    r = runner.invoke(app, ["data", str(study)])
    assert r.exit_code == 0, r.output
    assert "bundled, prescale 1.5, HR 32×32, input 16×16" in r.output
    assert "8 photos, each photo equally likely; crops with texture < 0.0002 rejected" in r.output
    assert "7 photos" not in r.output and "held out   4 photos, 4 crops" in r.output
    assert "bicubic Y-PSNR" in r.output and "×2" in r.output
    assert "fitness floor" in r.output and "16 → 8 → 16" in r.output
    r = runner.invoke(app, ["data", str(study), "--json", "--set", "data.test_samples=14"])
    assert r.exit_code == 0, r.output
    (doc,) = json.loads(r.output)["studies"]
    (facts,) = doc["data"]
    assert doc["study"] == "tiny" and facts["test_crops"] == 14
    assert len(facts["test_photos"]) == 7 and facts["variants"] == ["plain", "multiscale"]
    at32 = next(x for x in facts["resolutions"] if x["resolution"] == 32)
    assert 15 < at32["psnr_y_bicubic"] < 45 and 0 < at32["energy_above_nyquist"] < 1


def test_cli_folder_and_cifar_sources(tmp_path):
    for i in range(6):
        write_image(tmp_path / "imgs" / f"img{i}.png", 48, 64, seed=i)
    study = write_tiny_study(tmp_path, name="folder")
    r = runner.invoke(app, ["data", str(study), "--json", "--set", 'data.source="folder:imgs"'])
    assert r.exit_code == 0, r.output
    (facts,) = json.loads(r.output)["studies"][0]["data"]
    assert facts["prescale"] == 1.0  # "auto" is 1 outside bundled
    assert len(facts["train_photos"]) + len(facts["test_photos"]) == 6
    assert set(facts["train_photos"]).isdisjoint(facts["test_photos"])

    root = write_cifar(tmp_path / "c", n_train=30, n_test=10, batches=1)
    study = write_tiny_study(tmp_path, name="cifar")
    r = runner.invoke(app, ["data", str(study), "--set", f'data.source="cifar10:{root}"',
                            "--set", "data.hr_size=32", "--set", "data.input_size=32",
                            "--set", "data.eval_resolutions=[32, 64]", "--set",
                            "model.num_latents=64", "--set", "data.min_texture=0"])
    assert r.exit_code == 0, r.output
    assert "cifar10" in r.output and "HR 32×32" in r.output
    assert "held out   4 photos, 4 crops" in r.output  # test_samples = 4 whole images
    line64 = next(ln for ln in r.output.splitlines() if ln.strip().startswith("64 "))
    assert line64.count("—") == 3  # no ground truth above 32


def test_cli_several_studies(tmp_path):
    a = write_tiny_study(tmp_path, name="a")
    b = write_tiny_study(tmp_path / "b", name="b")
    r = runner.invoke(app, ["data", str(a), str(b)])
    assert r.exit_code == 0, r.output
    assert f"a ({a})" in r.output and f"b ({b})" in r.output
    r = runner.invoke(app, ["data", str(a), str(tmp_path / "nope.toml")])
    assert r.exit_code == 2 and "nope.toml" in r.output and "a (" not in r.output


def test_cli_errors_exit_2(tmp_path):
    study = write_tiny_study(tmp_path)
    r = runner.invoke(app, ["data", str(study), "--set", "data.prescale=0.5"])
    assert r.exit_code == 2 and "data.prescale" in r.output
    r = runner.invoke(app, ["data", str(study), "--set", 'data.source="folder:no/such"'])
    assert r.exit_code == 2 and "no/such does not exist" in r.output
    r = runner.invoke(app, ["data", str(tmp_path / "missing.toml")])
    assert r.exit_code == 2 and "file not found" in r.output
    cifar = ["--set", f'data.source="cifar10:{tmp_path}"', "--set", "data.hr_size=32",
             "--set", "data.input_size=32", "--set", "data.prescale=2"]
    r = runner.invoke(app, ["data", str(study), *cifar])
    assert r.exit_code == 2 and "cannot be prescaled" in r.output
