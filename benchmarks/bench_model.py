"""Training-step throughput of the model: forward + backward + AdamW, MSE on full-grid targets.

    python benchmarks/bench_model.py                       # quickstart and default, batch 16, CPU
    python benchmarks/bench_model.py --model default --device cuda --precision bf16 --batch 128

Random 32×32 images are both the input and the target (the full 32×32 pixel grid is queried),
which costs what a real `multiscale = off` step costs. Prints ms/step and img/s (and peak GPU
memory on CUDA). Needs only torch, einops and numpy, with the checkout on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from einops import rearrange  # noqa: E402

from ablate.data.coords import make_coord  # noqa: E402
from ablate.model.inr import build_model  # noqa: E402
from ablate.spec.config import ModelConfig  # noqa: E402

# The proposed quickstart model: the default architecture at a size that trains a few epochs of
# a few hundred crops in seconds on a laptop CPU: 4×4 patches (8×8 = 64 patch and LP tokens,
# a sequence of 128), width 64, two blocks; every other field at its default.
QUICKSTART = dict(
    patch_size=4, num_latents=64, dim=64, depth=2, mlp_dim=128, head_dim=32, feature_dim=32,
)
MODELS = {"quickstart": QUICKSTART, "default": {}}


def model_config(name: str, backend: str) -> ModelConfig:
    return dataclasses.replace(ModelConfig(**MODELS[name]), mamba_backend=backend)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train_step(cfg: ModelConfig, batch: int, device, precision: str = "fp32",
                     steps: int = 3, warmup: int = 1, input_size: int = 32) -> dict:
    """Time `steps` training steps after `warmup` ones; returns figures as a dict."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(cfg, input_size, device)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=1e-4)
    img = torch.rand(batch, 3, input_size, input_size, device=device)
    coords = make_coord(input_size, device=device).expand(batch, -1, -1)
    target = rearrange(img, "b c h w -> b (h w) c")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            loss = F.mse_loss(model(img, coords).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        sync(device)
        times.append(time.perf_counter() - t0)
    best = min(times)
    out = dict(
        ms_per_step=1e3 * best,
        ms_median=1e3 * sorted(times)[len(times) // 2],
        img_per_s=batch / best,
        loss=loss.item(),
        params=sum(p.numel() for p in model.parameters()),
        backend=model.scan_backend,
    )
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=[*MODELS, "both"], default="both")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backend", default="auto", choices=["auto", "torch", "fused", "reference"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=0,
                    help="timed steps (0: 10 for quickstart, 2 for default)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(MODELS) if args.model == "both" else [args.model]
    print(f"device {args.device}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}")
    print(f"{'model':<11} {'backend':<8} {'prec':<5} {'batch':>5} {'params':>9} "
          f"{'ms/step':>9} {'median':>9} {'img/s':>8}")
    for name in names:
        cfg = model_config(name, args.backend)
        steps = args.steps or (10 if name == "quickstart" else 2)
        r = bench_train_step(cfg, args.batch, args.device, args.precision, steps, args.warmup)
        peak = f"  peak {r['peak_gib']:.2f} GiB" if "peak_gib" in r else ""
        print(f"{name:<11} {r['backend']:<8} {args.precision:<5} {args.batch:>5} "
              f"{r['params']:>9,} {r['ms_per_step']:>9.1f} {r['ms_median']:>9.1f} "
              f"{r['img_per_s']:>8.1f}{peak}", flush=True)
    if args.device == "cpu":
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
        print(f"peak resident memory of this process: {rss:.2f} GiB")


if __name__ == "__main__":
    main()
