"""The rows of a trial file (TRIAL_COLUMNS), from the trial's config and its outcome.

    completed_rows(cfg, evaluation.rows, RunFacts(...))   # one row per eval resolution
    failure_rows(cfg, error, device="cpu", epochs=3)      # status = failed, metrics NaN

The config columns come from the `TrialConfig` alone (`config_columns`), the outcome columns
from the run, the metric columns (`METRIC_KEYS`) from the evaluation. Torch-free, Ray-free.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from ablate.schema import METRIC_KEYS
from ablate.spec.config import TrialConfig
from ablate.spec.ids import trial_to_dict
from ablate.version import code_version


@dataclass(frozen=True)
class RunFacts:
    """The outcome columns of a completed trial."""

    epochs: int
    train_seconds: float
    train_img_per_s: float
    device: str
    mamba_backend: str
    node: str = ""  # where it trained (see TRIAL_COLUMNS["node"]); the executor sets it


def empty_metrics(resolution: int) -> dict:
    """The metric columns of resolution r with nothing measured: NaN, verdict n/a."""
    row = {k: math.nan for k in METRIC_KEYS}
    row.update(resolution=int(resolution), verdict="n/a")
    return row


def config_columns(cfg: TrialConfig) -> dict:
    """The columns every row of a trial shares, from its config alone."""
    return {"study": cfg.study, "trial_id": cfg.trial_id, "variant": cfg.variant,
            "label": cfg.label, "variant_order": cfg.variant_order, "grid": cfg.grid_key(),
            "seed": cfg.seed, "search": cfg.search, **cfg.axes(), "code_version": code_version(),
            "config_json": json.dumps(trial_to_dict(cfg), sort_keys=True)}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def completed_rows(cfg: TrialConfig, metric_rows: list[dict], facts: RunFacts) -> list[dict]:
    """`status = completed` rows: one per metric row (eval resolution)."""
    common = config_columns(cfg) | {
        "status": "completed", "error": "", "epochs": facts.epochs,
        "train_seconds": facts.train_seconds, "train_img_per_s": facts.train_img_per_s,
        "device": facts.device, "mamba_backend": facts.mamba_backend, "node": facts.node,
        "finished_at": _now()}
    return [common | row for row in metric_rows]


def failure_rows(cfg: TrialConfig, error: str, *, device: str = "", epochs: int = 0,
                 train_seconds: float = math.nan, node: str = "",
                 status: str = "failed") -> list[dict]:
    """`status = failed` rows (one per eval resolution, metrics NaN) carrying the error;
    `status = "stopped"`: a trial ended early on purpose (ASHA), `error` saying why."""
    common = config_columns(cfg) | {
        "status": status, "error": error, "epochs": epochs, "train_seconds": train_seconds,
        "train_img_per_s": math.nan, "device": device, "mamba_backend": "", "node": node,
        "finished_at": _now()}
    return [common | empty_metrics(r) for r in cfg.data.eval_resolutions]
