"""Why does a model not fit its input? The standard diagnostics, printed as figures.

    python benchmarks/fit_diagnostics.py overfit studies/quickstart.toml --steps 2000
    python benchmarks/fit_diagnostics.py overfit studies/quickstart.toml --set model.locality=raster
    python benchmarks/fit_diagnostics.py train studies/quickstart.toml --variant corrected_jitter \
        --set train.epochs=3 --set model.dim=96

`overfit`: one fixed batch of `--batch` training crops, input resolution only (the full s×s
grid of pixel centres, no jitter, no multi-scale), trained for `--steps` AdamW steps at a
constant learning rate (after a short warm-up) through the trial core's model and optimiser;
prints the PSNR of the batch's own reconstruction every `--every` steps. A model that cannot
drive this far above ~30 dB has a defect (or no capacity) that no training budget will fix.

`train`: the trial core's own training (ablate.train.trial.build/train_epoch) with the study's
schedule, then the PSNR at the input resolution on the held-out crops, mean and a 95 % interval
over held-out images (normal approximation), beside the input's half-resolution copy (the
fitness gate's floor). One `--set` per change: this is how docs/fit.md's tables were made.

Both take the study's config of `--variant` (default: the first) and seed 0, with `--set`
overrides exactly as `ablate trial` takes them. Nothing is written to disk. Without arguments
(`make bench`): 300 overfit steps of the quickstart.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from ablate.imaging import bicubic_upsample, downsample  # noqa: E402
from ablate.metrics.image import psnr  # noqa: E402
from ablate.spec.expand import expand  # noqa: E402
from ablate.spec.parse import load_study  # noqa: E402
from ablate.train.trial import build, train_epoch  # noqa: E402


def trial_config(study_path: str, variant: str | None, sets: list[str], seed: int = 0):
    study = load_study(study_path, sets)
    trials = [t for t in expand(study) if t.seed == seed or seed not in study.study.seeds]
    if variant:
        trials = [t for t in trials if t.variant == variant]
        if not trials:
            sys.exit(f"no variant {variant!r} in {study_path}")
    return trials[0]


def half_res_floor(inputs: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR of the input's half-resolution copy, bicubic back up, vs the input."""
    s = inputs.shape[-1]
    return psnr(bicubic_upsample(downsample(inputs, s // 2), s), inputs)


def mean_ci(x: torch.Tensor) -> tuple[float, float, float]:
    m = float(x.mean())
    h = 1.96 * float(x.std()) / math.sqrt(len(x)) if len(x) > 1 else math.nan
    return m, m - h, m + h


@torch.no_grad()
def render_psnr(model, inputs: torch.Tensor) -> torch.Tensor:
    was = model.training
    model.eval()
    out = model.render(inputs, inputs.shape[-1]).float().clamp(0, 1)
    model.train(was)
    return psnr(out, inputs)


def overfit(args) -> None:
    cfg = trial_config(args.study, args.variant, args.set, args.seed)
    setup = build(cfg, args.device)
    model, s = setup.model, cfg.data.input_size
    n_params = sum(p.numel() for p in model.parameters())
    hr = setup.train_data.epoch(setup.dev_gen, n=args.batch)
    x = downsample(hr, s)  # (B, 3, s, s)
    coords = setup.batches.grid(s, x.device).unsqueeze(0).expand(x.shape[0], -1, -1)
    target = x.flatten(2).transpose(1, 2)  # (B, s², 3)
    opt = torch.optim.AdamW(model.param_groups(cfg.train.weight_decay), lr=args.lr)
    warm = max(1, args.steps // 50)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm))
    print(f"overfit {cfg.variant} ({args.study}; {' '.join(args.set) or 'as written'}): "
          f"{n_params / 1e6:.3f}M params, batch {args.batch} at {s}×{s}, lr {args.lr:g}, "
          f"floor (half-res copy) {float(half_res_floor(x).mean()):.2f} dB")
    t0 = time.perf_counter()
    model.train()
    for step in range(1, args.steps + 1):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=setup.use_bf16):
            pred = model(x, coords)
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        sched.step()
        out_of_time = args.seconds and time.perf_counter() - t0 > args.seconds
        if step % args.every == 0 or step == args.steps or out_of_time:
            p = float(render_psnr(model, x).mean())
            print(f"  step {step:5d}  loss {loss.item():.5f}  batch PSNR {p:6.2f} dB  "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if out_of_time:
                print(f"  stopped at step {step}: --seconds {args.seconds:g} reached")
                break


def train(args) -> None:
    cfg = trial_config(args.study, args.variant, args.set, args.seed)
    setup = build(cfg, args.device)
    n_params = sum(p.numel() for p in setup.model.parameters())
    from ablate.train.trial import TrainingState

    state = TrainingState()
    t0 = time.perf_counter()
    for epoch in range(1, cfg.train.epochs + 1):
        rep = train_epoch(setup, state, epoch)
        print(f"  epoch {epoch}: loss {rep.loss:.5f}, quick PSNR {rep.quick_psnr:.2f} dB, "
              f"{rep.img_per_s:.0f} img/s", flush=True)
    inputs = setup.test_data.inputs
    m, lo, hi = mean_ci(render_psnr(setup.model, inputs))
    fm = float(half_res_floor(inputs).mean())
    print(f"RESULT {cfg.variant} [{' '.join(args.set) or 'as written'}] "
          f"params {n_params / 1e6:.3f}M  held-out PSNR@{cfg.data.input_size} {m:.2f} "
          f"[{lo:.2f}, {hi:.2f}]  floor {fm:.2f}  steps "
          f"{cfg.train.epochs * math.ceil(cfg.data.train_samples / cfg.train.batch_size)}  "
          f"{time.perf_counter() - t0:.0f} s", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", nargs="?", default="overfit", choices=["overfit", "train"])
    ap.add_argument("study", nargs="?", default="studies/quickstart.toml")
    ap.add_argument("--variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=0, help="overfit: stop after this long")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    (overfit if args.mode == "overfit" else train)(args)


if __name__ == "__main__":
    main()
