"""The trial core end to end on a tiny model: training, determinism, checkpoint/resume,
failures, and `ablate trial` writing the result files (ablate/results/layout.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from study_checks import trained_whole_and_resumed
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.schema import HISTORY_COLUMNS, TRIAL_COLUMNS
from ablate.spec import expand, load_study
from ablate.train.trial import TrialFailed, run_trial

runner = CliRunner()


def trials_of(path, *sets):
    return expand(load_study(path, list(sets)))


def metrics(rows):
    return [(r["resolution"], r["psnr"], r["ssim"], r["hf_energy_ratio"]) for r in rows]


def test_same_config_and_seed_give_identical_metrics(tiny_study):
    cfg = trials_of(tiny_study)[2]  # multiscale, seed 0
    a = run_trial(cfg, device="cpu")
    b = run_trial(cfg, device="cpu")
    assert metrics(a.rows) == metrics(b.rows)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    other = run_trial(trials_of(tiny_study)[3], device="cpu")  # seed 1
    assert metrics(other.rows) != metrics(a.rows)


def test_resume_from_checkpoint_continues_exactly(tiny_study, tmp_path):
    cfg = trials_of(tiny_study, "train.epochs=3")[2]
    full, resumed = trained_whole_and_resumed(cfg, tmp_path / "ck")
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert [h["resumed"] for h in resumed.history] == [False, False, True]
    assert metrics(resumed.rows) == metrics(full.rows)  # RNG, optimiser, schedule restored


def test_diverging_loss_fails_with_a_clear_message(tiny_study):
    cfg = trials_of(tiny_study, "train.lr=1e30", "train.grad_clip=0")[0]
    with pytest.raises(TrialFailed, match="loss became"):
        run_trial(cfg, device="cpu")


def test_rows_have_design_columns_and_bicubic_beside_model(tiny_study):
    cfg = trials_of(tiny_study)[0]
    res = run_trial(cfg, device="cpu")
    assert [r["resolution"] for r in res.rows] == [16, 32]
    for r in res.rows:
        assert set(TRIAL_COLUMNS) <= set(r)
        assert r["status"] == "completed" and r["epochs"] == 2 and r["device"] == "cpu"
        assert r["mamba_backend"] == "torch"
    at_input, above = res.rows
    assert math.isnan(at_input["psnr_bicubic"])  # nothing to upsample at the input size
    assert not math.isnan(above["psnr_bicubic"]) and not math.isnan(above["psnr"])
    # a 2-epoch tiny model: the gate decides first, and the verdict follows from the row
    assert above["psnr_lr_floor"] == at_input["psnr_lr_floor"] > 10
    fit = above["psnr_lr_consistency"] >= above["psnr_lr_floor"]
    assert (above["verdict"] == "unfit") == (not fit)
    assert above["verdict"] in ("unfit", "true_sr", "resampling", "hallucination")
    assert set(HISTORY_COLUMNS) <= set(res.history[0])


def test_cli_trial_writes_results(tiny_study, tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, ["trial", str(tiny_study), "--variant", "multiscale", "--seed", "1",
                            "--results", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "epoch   2/2" in r.output and "img/s" in r.output and "verdict" in r.output
    tid = trials_of(tiny_study)[3].trial_id
    rows = pd.read_parquet(out / "tiny" / "trials" / f"{tid}.parquet")
    assert list(rows.columns) == list(TRIAL_COLUMNS)
    assert list(rows["resolution"]) == [16, 32] and set(rows["status"]) == {"completed"}
    hist = pd.read_parquet(out / "tiny" / "history" / f"{tid}.parquet")
    assert list(hist["epoch"]) == [1, 2]
    npz = np.load(out / "tiny" / "artifacts" / tid / "predictions.npz")
    assert npz["prediction"].shape[-1] == 32
    assert (out / "tiny" / "artifacts" / tid / "spectra.parquet").exists()
    images = pd.read_parquet(out / "tiny" / "images" / f"{tid}.parquet")
    assert sorted(set(images["resolution"])) == [16, 32] and len(images) == 2 * 4
    assert (out / "tiny" / "study.toml").exists() and (out / "tiny" / "manifest.json").exists()
    assert not list((out / "tiny").glob(".stage-*"))  # the staging folder is gone
    assert not list((out / "tiny" / "running").glob("*"))  # committed: no longer running
    r = runner.invoke(app, ["status", str(out)])
    assert r.exit_code == 0 and "tiny (idle): 1/4 completed" in r.output, r.output


def test_cli_failed_trial_writes_failed_row_and_exits_1(tiny_study, tmp_path):
    out = tmp_path / "res"
    r = runner.invoke(app, ["trial", str(tiny_study), "--variant", "plain", "--seed", "0",
                            "--results", str(out), "--device", "cpu",
                            "--set", "train.lr=1e30", "--set", "train.grad_clip=0"])
    assert r.exit_code == 1
    files = list((out / "tiny" / "trials").glob("*.parquet"))
    assert len(files) == 1
    rows = pd.read_parquet(files[0])
    assert set(rows["status"]) == {"failed"} and "loss became" in rows["error"][0]


@pytest.mark.parametrize("args,fragment", [
    (["--set", "data.source=folder:does/not/exist"], "does/not/exist does not exist"),
    (["--device", "gpu"], "expected cpu, cuda"),
])
def test_cli_trial_bad_machine_input_exits_2_before_training(tiny_study, tmp_path, args, fragment):
    out = tmp_path / "res"
    r = runner.invoke(app, ["trial", str(tiny_study), "--variant", "plain", "--seed", "0",
                            "--results", str(out), *args])
    assert r.exit_code == 2 and fragment in r.output
    assert not (out / "tiny" / "trials").exists()  # nothing recorded as a failed trial


def test_cli_trial_bad_variant_exit_2(tiny_study):
    r = runner.invoke(app, ["trial", str(tiny_study), "--variant", "plian", "--seed", "0"])
    assert r.exit_code == 2 and "did you mean 'plain'" in r.output


def test_cifar10_has_no_truth_above_32_and_records_it_missing(tmp_path):
    from data_fixtures import write_cifar

    from conftest import write_tiny_study

    root = write_cifar(tmp_path / "data", n_train=40, n_test=8)
    study = write_tiny_study(tmp_path, name="cifar", seeds=(0,), epochs=1)
    cfg = trials_of(study, f'data.source="cifar10:{root}"', "data.hr_size=32",
                    "data.input_size=32", "data.eval_resolutions=[32, 64]",
                    "data.min_texture=0",  # the fixture's images are smooth ramps
                    "model.num_latents=64")[0]
    res = run_trial(cfg, device="cpu")
    at32, at64 = res.rows
    assert not math.isnan(at32["psnr"])
    for k in ("psnr", "ssim", "psnr_bicubic", "hf_energy_ratio", "band_error_ratio"):
        assert math.isnan(at64[k]), k  # missing, never faked
    assert at64["verdict"] == "n/a"


def test_folder_source_relative_to_the_study_file(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        d = tmp_path / "imgs" / split
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / f"{i}.png")
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path, name="folder", seeds=(0,), epochs=1)
    cfg = trials_of(study, 'data.source="folder:imgs"')[0]  # relative to the study's folder
    res = run_trial(cfg, device="cpu")
    assert res.rows[1]["resolution"] == 32 and not math.isnan(res.rows[1]["psnr"])
