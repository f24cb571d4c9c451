"""One trial, as a plain function of its resolved config: train, checkpoint, evaluate.

    result = run_trial(cfg, device="cpu", checkpoint_dir=Path("ckpt"), on_epoch=print_progress)
    result.rows        # one dict per eval resolution (ablate.results.schema.TRIAL_COLUMNS)
    result.history     # one dict per epoch (HISTORY_COLUMNS)
    result.evaluation  # spectra and held-out predictions (EvalResult)

Ray-free: the Ray executor calls this inside a Tune function trainable, the local executor and
`ablate trial` call it directly. Same config, seed and device → the same numbers (CPU). A
checkpoint is written at the end of every epoch when `checkpoint_dir` is given, and a trial
given `resume_from` continues from it, losing at most the epoch in progress.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ablate.data.dataset import build_data, downsample
from ablate.metrics.evaluate import EvalResult, empty_row, evaluate
from ablate.metrics.image import psnr
from ablate.model.inr import build_model
from ablate.results.write import code_version
from ablate.spec.config import TrialConfig
from ablate.spec.ids import trial_to_dict
from ablate.train import checkpoint as ckpt
from ablate.train.schedule import BatchMaker, lr_lambda, resolutions_for_epoch

QUICK_PSNR_IMAGES = 8  # held-out images for the per-epoch PSNR at the input resolution


class TrialFailed(RuntimeError):
    """A trial that cannot go on (diverged loss, …); the message says what to change."""


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    lr: float
    quick_psnr: float
    img_per_s: float
    seconds: float
    resolutions: tuple[int, ...]
    resumed: bool

    def metrics(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrialResult:
    config: TrialConfig
    rows: list[dict]
    history: list[dict]
    evaluation: EvalResult | None


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrialFailed(f"device {device!r} asked for, but CUDA is not available here; "
                          "use --device cpu (or auto)")
    return dev


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return f"{dev.type}:{torch.cuda.get_device_name(dev)}"
    return dev.type


def resolve_data_source(cfg: TrialConfig):
    """The data config with a relative folder/cifar10 PATH made absolute against the spec's
    directory (the id keeps the path as written)."""
    kind, sep, path = cfg.data.source.partition(":")
    if sep and path and not Path(path).expanduser().is_absolute() and cfg.spec_dir:
        return dataclasses.replace(cfg.data, source=f"{kind}:{Path(cfg.spec_dir) / path}")
    if sep and path:
        return dataclasses.replace(cfg.data, source=f"{kind}:{Path(path).expanduser()}")
    return cfg.data


def run_trial(
    cfg: TrialConfig,
    *,
    device: str | torch.device = "auto",
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    on_epoch: Callable[[EpochReport, Path | None], None] | None = None,
    log: Callable[[str], None] = lambda msg: None,
) -> TrialResult:
    """Train and evaluate one trial. Raises on failure (callers record the failed row)."""
    dev = resolve_device(device)
    train_cfg, data_cfg = cfg.train, cfg.data
    torch.manual_seed(cfg.seed)
    cpu_gen = torch.Generator().manual_seed(cfg.seed)
    dev_gen = torch.Generator(device=dev).manual_seed(cfg.seed + 7919)

    t_setup = time.perf_counter()
    train_data, test_data = build_data(resolve_data_source(cfg), dev)
    model = build_model(cfg.model, data_cfg.input_size, dev)
    # mamba's A_log and D are marked _no_weight_decay (as in mamba_ssm): their own group
    decay = [p for p in model.parameters() if not getattr(p, "_no_weight_decay", False)]
    no_decay = [p for p in model.parameters() if getattr(p, "_no_weight_decay", False)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": train_cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=train_cfg.lr)
    n_train = data_cfg.train_samples
    steps_per_epoch = math.ceil(n_train / train_cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(train_cfg, steps_per_epoch))
    log(f"setup {time.perf_counter() - t_setup:.1f}s: {len(train_data)} training photos, "
        f"{len(test_data)} test crops on {dev}, scan backend {model.scan_backend}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    start_epoch, history, train_seconds, resumed = 1, [], 0.0, False
    state = ckpt.load(resume_from) if resume_from else None
    if state is not None:
        if state.get("trial_id") != cfg.trial_id:
            raise TrialFailed(f"checkpoint in {resume_from} belongs to trial "
                              f"{state.get('trial_id')}, not {cfg.trial_id}")
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            ckpt.restore_rng(state["rng"], cpu_gen, dev_gen)
        except (RuntimeError, KeyError, ValueError) as e:  # saved by other code (ids ignore it)
            raise TrialFailed(f"checkpoint in {resume_from} does not fit this code "
                              f"({type(e).__name__}: {str(e)[:200]}); delete that folder to "
                              "restart the trial from scratch") from None
        start_epoch, history = state["epoch"] + 1, list(state["history"])
        train_seconds, resumed = state["train_seconds"], True
        log(f"resumed from epoch {state['epoch']} ({resume_from})")

    use_bf16 = train_cfg.precision == "bf16" or (train_cfg.precision == "auto" and dev.type == "cuda")
    maker = BatchMaker(data_cfg, train_cfg, dev_gen, cpu_gen, downsample)
    quick_inputs = test_data.inputs[:QUICK_PSNR_IMAGES]
    bs = train_cfg.batch_size

    for epoch in range(start_epoch, train_cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        maker.jitter.new_epoch()
        choices = resolutions_for_epoch(train_cfg, data_cfg, epoch)
        loss_sum = torch.zeros((), device=dev)
        for i in range(0, n_train, bs):
            # crops are gathered on the device batch by batch: memory stays O(batch), not
            # O(train_samples) (4096 HR crops of 128² are 800 MB of float32)
            hr = train_data.epoch(dev_gen, n=min(bs, n_train - i))  # (B, 3, H, H)
            inputs = downsample(hr, data_cfg.input_size)  # (B, 3, s, s)
            batch = maker.make(hr, inputs, choices)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                pred = model(batch.inputs, batch.coords)  # (B, Q, 3)
            loss = F.mse_loss(pred.float(), batch.targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if train_cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            opt.step()
            sched.step()
            loss_sum += loss.detach() * batch.inputs.shape[0]
        epoch_loss = (loss_sum / n_train).item()  # one device sync per epoch
        if not math.isfinite(epoch_loss):
            raise TrialFailed(f"training loss became {epoch_loss} in epoch {epoch} "
                              f"(variant {cfg.variant}, seed {cfg.seed}); lower train.lr "
                              f"(now {train_cfg.lr:g}) or set train.grad_clip")
        seconds = time.perf_counter() - t0
        quick = _quick_psnr(model, quick_inputs, data_cfg.input_size)
        train_seconds += seconds
        report = EpochReport(epoch=epoch, epochs=train_cfg.epochs, loss=epoch_loss,
                             lr=sched.get_last_lr()[0], quick_psnr=quick,
                             img_per_s=n_train / seconds, seconds=seconds,
                             resolutions=choices, resumed=resumed)
        history.append(_history_row(cfg, report))
        resumed = False
        saved = None
        if checkpoint_dir is not None:
            saved = ckpt.save(checkpoint_dir, {
                "trial_id": cfg.trial_id, "epoch": epoch, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "rng": ckpt.rng_state(cpu_gen, dev_gen), "history": history,
                "train_seconds": train_seconds})
        if on_epoch is not None:
            on_epoch(report, saved)

    t_eval = time.perf_counter()
    model.eval()

    @torch.no_grad()
    def render(x, r):
        return model.render(x, r).float().clamp(0, 1)

    evaluation = evaluate(render, test_data, data_cfg)
    log(f"evaluation {time.perf_counter() - t_eval:.1f}s")
    done_images = n_train * len(history)
    common = trial_columns(cfg) | {
        "status": "completed", "error": "", "epochs": len(history),
        "train_seconds": train_seconds,
        "train_img_per_s": done_images / train_seconds if train_seconds > 0 else float("nan"),
        "device": device_name(dev), "mamba_backend": model.scan_backend,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rows = [common | row for row in evaluation.rows]
    return TrialResult(config=cfg, rows=rows, history=history, evaluation=evaluation)


@torch.no_grad()
def _quick_psnr(model, inputs, size: int) -> float:
    was_training = model.training
    model.eval()
    pred = model.render(inputs, size).float().clamp(0, 1)
    model.train(was_training)
    return float(psnr(pred, inputs).mean())


def _history_row(cfg: TrialConfig, r: EpochReport) -> dict:
    return {"study": cfg.study, "trial_id": cfg.trial_id, "variant": cfg.variant,
            "seed": cfg.seed, "epoch": r.epoch, "loss": r.loss, "lr": r.lr,
            "quick_psnr": r.quick_psnr, "img_per_s": r.img_per_s, "seconds": r.seconds,
            "resolutions": ",".join(map(str, r.resolutions)), "resumed": r.resumed}


def trial_columns(cfg: TrialConfig) -> dict:
    """The columns every row of a trial shares, from its config alone."""
    return {"study": cfg.study, "trial_id": cfg.trial_id, "variant": cfg.variant,
            "label": cfg.label, "variant_order": cfg.variant_order, "grid": cfg.grid_key(),
            "seed": cfg.seed, **cfg.axes(), "code_version": code_version(),
            "config_json": json.dumps(trial_to_dict(cfg), sort_keys=True)}


def failure_rows(cfg: TrialConfig, error: str, *, device: str = "", epochs: int = 0,
                 train_seconds: float = float("nan")) -> list[dict]:
    """`status = failed` rows (one per eval resolution, metrics NaN) carrying the error."""
    nan = float("nan")
    common = trial_columns(cfg) | {
        "status": "failed", "error": error, "epochs": epochs, "train_seconds": train_seconds,
        "train_img_per_s": nan, "device": device, "mamba_backend": "",
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return [common | empty_row(r) for r in cfg.data.eval_resolutions]
