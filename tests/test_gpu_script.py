"""scripts/gpu_study.sh --rehearse: the GPU call's script, end to end on this CPU.

The same script and the same commands as on the GPU node (docs/gpu.md), at tiny settings: Ray
(the unpacking of .carry's archive where there is one), the benchmark, the CUDA tests'
selection (collected), the packing warm-up, `ablate run` of studies/jitter_vs_multiscale_gpu.toml
on an embedded Ray of its own (beside the test session's), the table and the archive, with this
Python made to look like the GPU image (no scikit-learn, no dashboard packages: see
scripts/rehearse/sitecustomize.py). A typo in any step fails here, not on the GPU.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ablate.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("ray", "build", "bench_torch", "fit_overfit", "build_wait", "cuda_tests", "bench_fused", "packing",
         "study", "table", "pack")
VARIANTS = {"original_bug", "liif", "no_jitter", "corrected_jitter", "multiscale", "progressive",
            "multiscale_upsampled"}


@pytest.mark.slow
def test_rehearsal_runs_every_step_and_ships_the_results(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OUT")}
    env.update(OUT=str(out), GPU_STUDY_WORK=str(work), GPU_STUDY_FIT="1")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_study.sh"), "--rehearse"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=480)
    log = (out / "log.txt").read_text() if (out / "log.txt").exists() else proc.stdout
    assert proc.returncode == 0, log[-6000:] + proc.stderr[-2000:]

    # what comes back: at most 8 plain files, each under 16 MiB, with names the device keeps
    files = sorted(p.name for p in out.iterdir())
    for name in ("log.txt", "bench.json", "packing.json", "table.md", "gpu_study.tar.gz"):
        assert name in files, files
    assert len(files) <= 8, files
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in files), files
    assert all((out / n).stat().st_size < 16 * 2**20 for n in files)

    for step in STEPS:  # every step begins and ends in the log
        assert f"step {step}: " in log and re.search(rf"step {step}: rc=", log), step
    assert "=== summary (rehearse)" in log

    bench = json.loads((out / "bench.json").read_text())
    assert bench["rows"] and bench["rows"][0]["img_per_s"] > 0
    packing = json.loads((out / "packing.json").read_text())
    assert packing["choice"]["n"] in (1, 2) and set(packing["measured"]) == {"1", "2"}
    assert packing["choice"]["gpus_per_trial"] == 0  # no GPU here

    # the archive: every trial completed, its files, no checkpoint or Ray storage
    with tarfile.open(out / "gpu_study.tar.gz") as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "back", filter="data")
    assert not [n for n in names if n.endswith(".pt") or "/ray/" in n or "/checkpoints/" in n
                or "/.work" in n or ".run.lock" in n], names
    study = tmp_path / "back" / "jitter_vs_multiscale_gpu"
    trials = sorted((study / "trials").glob("*.parquet"))
    assert len(trials) == len(VARIANTS)
    rows = pd.concat([pd.read_parquet(f) for f in trials])
    assert set(rows["status"]) == {"completed"} and set(rows["variant"]) == VARIANTS
    assert sorted(set(rows["resolution"])) == [32, 64, 128]
    for f in trials:
        assert (study / "history" / f.name).exists() and (study / "images" / f.name).exists()
        assert (study / "artifacts" / f.stem / "spectra.parquet").exists()
    assert (tmp_path / "back" / "packing.json").exists()

    # the held-out predictions: in the archive, or beside it in parts (rehearsing, the parts'
    # limit is 4 MiB, so that the split runs here)
    parts = sorted(out.glob("gpu_predictions.tar.*"))
    if parts:
        blob = b"".join(p.read_bytes() for p in parts)
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(tmp_path / "back", filter="data")
    for f in trials:
        assert (study / "artifacts" / f.stem / "predictions.npz").exists(), f.stem

    # the table came back, and the archive alone rebuilds it
    table = (out / "table.md").read_text()
    assert "Original (bug)" in table and "Multi-scale, upsampled targets" in table
    r = CliRunner().invoke(app, ["table", str(tmp_path / "back"), "--study",
                                 "jitter_vs_multiscale_gpu", "--format", "markdown"])
    assert r.exit_code == 0 and "Progressive multi-scale" in r.output, r.output
