"""GPU training throughput of the default model: batch × precision × scan backend.

On a GPU node with the checkout on PYTHONPATH (needs only torch, einops and numpy; no Ray):

    bash shared/gpu/build-mamba-ssm.sh shared/gpu/mamba_ssm-*.tar.gz 90   # optional: fused
    PYTHONPATH=. python benchmarks/gpu_bench.py

Loops the default ModelConfig over batch {16, 128} × {fp32, bf16} × backend {fused, torch}
(fused skipped when mamba_ssm does not import) and prints ms/step, img/s and peak GPU memory
of a training step (forward + backward + AdamW, MSE on the full 32×32 grid), as
benchmarks/bench_model.py measures it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ablate.model import scan  # noqa: E402
from bench_model import bench_train_step, model_config  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "")
    ap.add_argument("--model", default="default", choices=["default", "quickstart"])
    ap.add_argument("--batches", default="16,128")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--backends", default="fused,torch")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args(argv)

    if not args.device:
        print("gpu_bench: no CUDA device here; nothing to measure (--device cpu forces a run)")
        return
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, mamba_ssm fused: "
          f"{'yes' if scan.fused_available() else 'no (' + scan._FUSED_IMPORT_ERROR + ')'}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32
        torch.backends.cudnn.allow_tf32 = False
    backends = [b for b in args.backends.split(",") if b != "fused" or scan.fused_available()]
    print(f"{'model':<10} {'backend':<7} {'prec':<5} {'batch':>5} {'ms/step':>9} {'img/s':>8} "
          f"{'peak GiB':>9}", flush=True)
    for batch in (int(b) for b in args.batches.split(",")):
        for precision in args.precisions.split(","):
            for backend in backends:
                row = f"{args.model:<10} {backend:<7} {precision:<5} {batch:>5}"
                try:
                    r = bench_train_step(model_config(args.model, backend), batch, device,
                                         precision, args.steps, args.warmup)
                except torch.cuda.OutOfMemoryError:
                    print(f"{row} {'OOM':>9}", flush=True)
                    torch.cuda.empty_cache()
                    continue
                peak = r.get("peak_gib", float("nan"))
                print(f"{row} {r['ms_per_step']:>9.1f} {r['img_per_s']:>8.1f} {peak:>9.2f}",
                      flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
