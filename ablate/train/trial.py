"""One trial, as a plain function of its resolved config: train, checkpoint, evaluate.

    result = run_trial(cfg, device="cpu", checkpoint_dir=Path("ckpt"), on_epoch=print_progress)
    result.rows        # one dict per eval resolution (ablate.schema.TRIAL_COLUMNS)
    result.history     # one dict per epoch (HISTORY_COLUMNS)
    result.evaluation  # metrics, per-image values, spectra and held-out predictions (EvalResult)

`run_trial` is five named steps, each short enough to read at once:

    setup = build(cfg, device)                   # data, model, optimiser, schedule, generators
    state = restore(setup, resume_from)          # the training state of a checkpoint (or fresh)
    report = train_epoch(setup, state, epoch)    # one epoch; its history row appended to state
    save(setup, state, checkpoint_dir)           # the epoch-end checkpoint
    evaluation = evaluate_model(setup)           # every eval resolution, beside bicubic

Ray-free: the Ray executor calls this inside a Tune function trainable, the local executor and
`ablate trial` call it directly. Same config, seed and device → the same numbers (CPU). A
checkpoint is written at the end of every epoch when `checkpoint_dir` is given, and a trial
given `resume_from` continues from it, losing at most the epoch in progress.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ablate.data.dataset import TestData, TrainData, build_data

from ablate.imaging import downsample
from ablate.metrics.evaluate import EvalResult, evaluate
from ablate.metrics.image import psnr
from ablate.model.inr import SRModel, build_model
from ablate.results.rows import RunFacts, completed_rows
from ablate.schema import QUICK_PSNR_IMAGES
from ablate.spec.config import TrialConfig
from ablate.spec.source import resolved_data
from ablate.train import checkpoint as ckpt
from ablate.train.schedule import BatchMaker, lr_lambda, resolutions_for_epoch

Log = Callable[[str], None]


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


@dataclass
class Setup:
    """What a trial trains with (`build`)."""

    cfg: TrialConfig
    device: torch.device
    model: SRModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    train_data: TrainData
    test_data: TestData
    cpu_gen: torch.Generator  # control flow (resolution per batch)
    dev_gen: torch.Generator  # crops, noise, pixel samples
    batches: BatchMaker
    use_bf16: bool


@dataclass
class TrainingState:
    """Where training stands: what a checkpoint holds besides the weights."""

    epoch: int = 0  # the last epoch finished
    history: list[dict] = field(default_factory=list)  # HISTORY_COLUMNS rows
    train_seconds: float = 0.0
    resumed: bool = False  # the next epoch is the first after a resume


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


# ---------------------------------------------------------------------------------------------
# the steps
# ---------------------------------------------------------------------------------------------


def build(cfg: TrialConfig, device: str | torch.device = "auto", log: Log = lambda m: None) -> Setup:
    """Seed everything, then build the data, the model, AdamW over `SRModel.param_groups` and
    the warmup-cosine schedule."""
    dev = resolve_device(device)
    torch.manual_seed(cfg.seed)
    cpu_gen = torch.Generator().manual_seed(cfg.seed)
    dev_gen = torch.Generator(device=dev).manual_seed(cfg.seed + 7919)
    t0 = time.perf_counter()
    train_data, test_data = build_data(resolved_data(cfg), dev)
    model = build_model(cfg.model, cfg.data.input_size, dev)
    opt = torch.optim.AdamW(model.param_groups(cfg.train.weight_decay), lr=cfg.train.lr)
    steps = math.ceil(cfg.data.train_samples / cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.train, steps))
    precision = cfg.train.precision
    use_bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
    log(f"setup {time.perf_counter() - t0:.1f}s: {len(train_data)} training photos, "
        f"{len(test_data)} test crops on {dev}, scan backend {model.scan_backend}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    return Setup(cfg, dev, model, opt, sched, train_data, test_data, cpu_gen, dev_gen,
                 BatchMaker(cfg.data, cfg.train, dev_gen, cpu_gen, downsample), use_bf16)


def restore(setup: Setup, resume_from: str | Path | Sequence[str | Path] | None,
            log: Log = lambda m: None) -> TrainingState:
    """The training state of the first checkpoint in `resume_from` (one directory, or several,
    newest first) that loads (weights, optimiser, schedule and generators loaded into `setup`),
    or a fresh one when there is none. A checkpoint that does not load is set aside
    (`checkpoint.set_aside`, named in a warning) and the next one is tried."""
    candidates = ([] if resume_from is None else [resume_from]
                  if isinstance(resume_from, (str, Path)) else list(resume_from))
    tid = setup.cfg.trial_id
    for i, directory in enumerate(candidates):
        try:
            state = ckpt.load(directory)
        except ckpt.CheckpointUnreadable as e:
            moved = ckpt.set_aside(directory)
            then = ("an earlier checkpoint" if i + 1 < len(candidates)
                    else "a fresh start (epoch 1)")
            log(f"warning: trial {tid}: {e}; moved aside to {moved}; falling back to {then}")
            continue
        if state is None:
            continue
        if state.get("trial_id") != tid:
            raise TrialFailed(f"checkpoint in {directory} belongs to trial "
                              f"{state.get('trial_id')}, not {tid}")
        try:
            setup.model.load_state_dict(state["model"])
            setup.optimizer.load_state_dict(state["optimizer"])
            setup.scheduler.load_state_dict(state["scheduler"])
            ckpt.restore_rng(state["rng"], setup.cpu_gen, setup.dev_gen)
            restored = TrainingState(epoch=int(state["epoch"]), history=list(state["history"]),
                                     train_seconds=float(state["train_seconds"]), resumed=True)
        except (RuntimeError, KeyError, ValueError, TypeError) as e:  # saved by other code
            raise TrialFailed(f"checkpoint in {directory} does not fit this code "
                              f"({type(e).__name__}: {str(e)[:200]}); delete that folder to "
                              "restart the trial from scratch") from None
        log(f"resumed at epoch {restored.epoch + 1} from the checkpoint of epoch "
            f"{restored.epoch} ({directory})")
        return restored
    return TrainingState()


def train_epoch(setup: Setup, state: TrainingState, epoch: int) -> EpochReport:
    """Train one epoch over `data.train_samples` fresh crops; record it in `state`."""
    s, cfg = setup, setup.cfg
    n, bs = cfg.data.train_samples, cfg.train.batch_size
    t0 = time.perf_counter()
    s.model.train()
    s.batches.jitter.new_epoch()
    choices = resolutions_for_epoch(cfg.train, cfg.data, epoch)
    loss_sum = torch.zeros((), device=s.device)
    for i in range(0, n, bs):
        # crops are gathered on the device batch by batch: memory stays O(batch), not
        # O(train_samples) (4096 HR crops of 128² are 800 MB of float32)
        hr = s.train_data.epoch(s.dev_gen, n=min(bs, n - i))  # (B, 3, H, H)
        batch = s.batches.make(hr, downsample(hr, cfg.data.input_size), choices)
        with torch.autocast(s.device.type, dtype=torch.bfloat16, enabled=s.use_bf16):
            pred = s.model(batch.inputs, batch.coords, batch.resolution)  # (B, Q, 3)
        loss = F.mse_loss(pred.float(), batch.targets)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.train.grad_clip)
        s.optimizer.step()
        s.scheduler.step()
        loss_sum += loss.detach() * batch.inputs.shape[0]
    epoch_loss = (loss_sum / n).item()  # one device sync per epoch
    if not math.isfinite(epoch_loss):
        raise TrialFailed(f"training loss became {epoch_loss} in epoch {epoch} "
                          f"(variant {cfg.variant}, seed {cfg.seed}); lower train.lr "
                          f"(now {cfg.train.lr:g}) or set train.grad_clip")
    seconds = time.perf_counter() - t0
    quick = _quick_psnr(s.model, s.test_data.inputs[:QUICK_PSNR_IMAGES], cfg.data.input_size)
    report = EpochReport(epoch=epoch, epochs=cfg.train.epochs, loss=epoch_loss,
                         lr=s.scheduler.get_last_lr()[0], quick_psnr=quick, img_per_s=n / seconds,
                         seconds=seconds, resolutions=choices, resumed=state.resumed)
    state.epoch, state.resumed = epoch, False
    state.train_seconds += seconds
    state.history.append(_history_row(cfg, report))
    return report


def save(setup: Setup, state: TrainingState, directory: str | Path) -> Path:
    """The epoch-end checkpoint of `state` into `directory` (train/checkpoint.py)."""
    return ckpt.save(directory, {
        "trial_id": setup.cfg.trial_id, "epoch": state.epoch,
        "model": setup.model.state_dict(), "optimizer": setup.optimizer.state_dict(),
        "scheduler": setup.scheduler.state_dict(),
        "rng": ckpt.rng_state(setup.cpu_gen, setup.dev_gen), "history": state.history,
        "train_seconds": state.train_seconds}, device=device_name(setup.device))


def evaluate_model(setup: Setup, log: Log = lambda m: None) -> EvalResult:
    """The trained model on the held-out crops at every eval resolution (metrics/evaluate.py)."""
    t0 = time.perf_counter()
    model = setup.model
    model.eval()

    @torch.no_grad()
    def render(x, r):
        return model.render(x, r).float().clamp(0, 1)

    evaluation = evaluate(render, setup.test_data, setup.cfg.data)
    log(f"evaluation {time.perf_counter() - t0:.1f}s")
    return evaluation


# ---------------------------------------------------------------------------------------------
# the trial
# ---------------------------------------------------------------------------------------------


def run_trial(
    cfg: TrialConfig,
    *,
    device: str | torch.device = "auto",
    checkpoint_dir: str | Path | None = None,
    resume_from: str | Path | Sequence[str | Path] | None = None,
    on_epoch: Callable[[EpochReport, Path | None], None] | None = None,
    log: Log = lambda msg: None,
) -> TrialResult:
    """Train and evaluate one trial. Raises on failure (callers record the failed row)."""
    setup = build(cfg, device, log)
    state = restore(setup, resume_from, log)
    for epoch in range(state.epoch + 1, cfg.train.epochs + 1):
        report = train_epoch(setup, state, epoch)
        saved = save(setup, state, checkpoint_dir) if checkpoint_dir is not None else None
        if on_epoch is not None:
            on_epoch(report, saved)
    evaluation = evaluate_model(setup, log)
    images = cfg.data.train_samples * len(state.history)
    facts = RunFacts(
        epochs=len(state.history), train_seconds=state.train_seconds,
        train_img_per_s=images / state.train_seconds if state.train_seconds > 0 else math.nan,
        device=device_name(setup.device), mamba_backend=setup.model.scan_backend,
        node=platform.node())  # the Ray executor replaces it with the Ray node
    return TrialResult(config=cfg, rows=completed_rows(cfg, evaluation.rows, facts),
                       history=state.history, evaluation=evaluation)


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
