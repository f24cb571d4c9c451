"""Experiment tracking (`ablate run --mlflow URI`) and the dashboard's names and token line."""

from __future__ import annotations

import importlib.util
import logging

import pytest
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.orchestrate.cluster import Cluster, _Hold, dashboard_line
from ablate.orchestrate.driver import trial_label
from ablate.orchestrate.ray_internals import TOKEN_LOGGER

from conftest import write_tiny_study

runner = CliRunner()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                    reason="mlflow is not installed (pip install -e '.[test]' or "
                           "'.[mlflow]' installs it)")
def test_mlflow_gets_one_run_per_trial_with_params_and_epoch_metrics(tmp_path, ray_address):
    from mlflow.tracking import MlflowClient

    study = write_tiny_study(tmp_path, seeds=(0,), epochs=2)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # a local store: no server, no network
    r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "res"), "--address",
                            ray_address, "--variant", "plain", "--mlflow", uri])
    assert r.exit_code == 0, r.output
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("tiny")  # one experiment per study
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "tiny/plain/seed 0" and run.info.status == "FINISHED"
    assert run.data.tags["study"] == "tiny"
    p = run.data.params
    assert p["job/trial/variant"] == "plain" and p["job/trial/seed"] == "0"
    assert p["job/trial/train/epochs"] == "2"
    for metric in ("loss", "quick_psnr"):  # every epoch, stepped by epoch
        hist = client.get_metric_history(run.info.run_id, metric)
        assert [m.step for m in hist] == [1, 2], metric
        assert all(m.value == m.value for m in hist)  # numbers, not NaN


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                    reason="mlflow is not installed (pip install -e '.[test]' or "
                           "'.[mlflow]' installs it)")
def test_search_takes_storage_and_mlflow_like_run(tmp_path, ray_address):
    """`ablate search` builds its Tune experiment with `ablate run`'s builder: --storage puts
    its checkpoints there (none under RESULTS/<study>/ray) and --mlflow logs its trial."""
    from mlflow.tracking import MlflowClient

    from test_search import SEARCH

    extra = SEARCH.format(samples=1, concurrent=1, algorithm="random", scheduler="none",
                          more="")
    study = write_tiny_study(tmp_path, name="srch", seeds=(0,), epochs=1, extra=extra)
    store, uri = tmp_path / "store", f"sqlite:///{tmp_path / 'mlflow.db'}"
    res = tmp_path / "res"
    r = runner.invoke(app, ["search", str(study), "--results", str(res), "--address",
                            ray_address, "--storage", str(store), "--mlflow", uri])
    assert r.exit_code == 0, r.output
    metas = list(store.glob("search-search-*/*/checkpoint_*/meta.json"))
    assert metas, sorted(str(p) for p in store.rglob("*"))[:20]
    assert not (res / "srch" / "ray").exists()
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("srch").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    # a search trial's Tune config is its sampled point: those are its parameters
    assert set(runs[0].data.params) >= {"train.lr", "model.sigmas"}, runs[0].data.params
    hist = client.get_metric_history(runs[0].info.run_id, "quick_psnr")
    assert [m.step for m in hist] == [1]


def test_tracking_flags_are_checked_before_anything_runs(tmp_path):
    study = write_tiny_study(tmp_path)
    r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "res"),
                            "--executor", "local", "--mlflow", "sqlite:///mlflow.db"])
    assert r.exit_code == 2 and "drop --executor local" in r.output
    if importlib.util.find_spec("wandb") is None:
        r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "res"),
                                "--wandb", "proj"])
        assert r.exit_code == 2 and "pip install 'ablate[wandb]'" in r.output
    if importlib.util.find_spec("mlflow") is not None:  # MLflow 3 refuses file: stores
        r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "res"),
                                "--mlflow", (tmp_path / "mlruns").as_uri()])
        assert r.exit_code == 2 and "--mlflow file:" in r.output, r.output
    assert not (tmp_path / "res").exists()


def test_trial_names_and_dashboard_line():
    assert trial_label({"study": "s", "variant": "plain", "seed": 3}) == "s/plain/seed 3"
    assert (trial_label({"study": "s", "variant": "v", "seed": 0, "grid": {"std": 0.01}})
            == "s/v/seed 0/std=0.01")
    c = Cluster(address="", cpus=2, gpus=0, dashboard_url="http://127.0.0.1:8265",
                started_here=True, token_auth=True)
    line = dashboard_line(c)
    assert "dashboard http://127.0.0.1:8265" in line and "`ray get-auth-token`" in line
    c.token_auth = False
    assert "token" not in dashboard_line(c)
    c.dashboard_url = ""
    assert "dashboard" not in dashboard_line(c)


def test_rays_token_warning_is_held_back(capsys):
    """Ray logs its token warning in ray.init; connect() holds it (ablate's own line says it)."""
    log = logging.getLogger(TOKEN_LOGGER)
    hold, level = _Hold(), log.level
    log.addFilter(hold)
    log.setLevel(logging.WARNING)  # as ray.init(logging_level="WARNING") leaves it
    try:
        log.warning("Token authentication is enabled for this Ray cluster.")
    finally:
        log.removeFilter(hold)
        log.setLevel(level)
    assert hold.held == ["Token authentication is enabled for this Ray cluster."]
    assert "Token" not in capsys.readouterr().err
