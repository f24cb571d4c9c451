"""`ablate run --mlflow URI` / `--wandb PROJECT`: experiment trackers, through Ray Tune's own
logger callbacks (`ray.air.integrations.mlflow.MLflowLoggerCallback`,
`ray.air.integrations.wandb.WandbLoggerCallback`), beside the TensorBoard event files Tune
writes under RESULTS/<study>/ray/run-*/<trial id>/ on every run (`tensorboard --logdir
RESULTS/<study>/ray`). Importing this module imports neither Ray nor the trackers."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ablate.orchestrate.preflight import RunError
from ablate.results.layout import StudyDir


@dataclass(frozen=True)
class Tracking:
    """Experiment trackers fed by Ray Tune's own logger callbacks (besides the TensorBoard
    event files Tune always writes under the storage path)."""

    mlflow: str | None = None  # tracking URI: sqlite:///mlflow.db (local), http://host:5000
    wandb: str | None = None  # W&B project (offline unless WANDB_API_KEY or WANDB_MODE say)

    def check(self) -> None:
        """RunError, before anything runs, when a tracker's package is not installed."""
        import importlib.util

        for flag, module, extra in (("--mlflow", "mlflow", "mlflow"),
                                    ("--wandb", "wandb", "wandb")):
            if getattr(self, module) and importlib.util.find_spec(module) is None:
                raise RunError(f"{flag} needs the {module} package: pip install "
                               f"'ablate[{extra}]' (or pip install {module})")
        if self.mlflow:
            from mlflow.tracking import MlflowClient

            try:  # the store, opened once here: a URI it refuses is an input error
                MlflowClient(tracking_uri=self.mlflow)._tracking_client.store
            except Exception as e:  # noqa: BLE001 — MlflowException, or a bad sqlite path
                raise RunError(f"--mlflow {self.mlflow}: {str(e).splitlines()[0]} (a local "
                               "store: --mlflow sqlite:///mlflow.db)") from None

    def callbacks(self, study: str, study_dir: StudyDir) -> list:
        """One run per trial, named study/variant/seed N, in an experiment (MLflow) or group
        (W&B) named after the study: its config as parameters, its per-epoch reports as
        metrics (loss, quick_psnr, img_per_s, lr… stepped by epoch)."""
        out = []
        if self.mlflow:
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            out.append(MLflowLoggerCallback(tracking_uri=self.mlflow, experiment_name=study,
                                            tags={"study": study}, save_artifact=False))
        if self.wandb:
            from ray.air.integrations.wandb import WandbLoggerCallback

            if not (os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE")):
                os.environ["WANDB_MODE"] = "offline"  # no account, no network: `wandb sync` later
            # the mode also goes to wandb.init in Ray's logging actors (the env var does not)
            mode = {"mode": os.environ["WANDB_MODE"]} if os.environ.get("WANDB_MODE") else {}
            out.append(WandbLoggerCallback(project=self.wandb, group=study,
                                           dir=str(study_dir.root.resolve()),
                                           excludes=["warning"], **mode))
        return out
