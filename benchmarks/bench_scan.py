"""Selective scan, forward + backward: the chunked torch scan against the sequential loops.

    python benchmarks/bench_scan.py                  # B 2, D 512, N 16, L 512, float32, CPU
    python benchmarks/bench_scan.py --device cuda    # adds the fused kernel where it imports

Variants: `torch` (ablate's chunked scan), `reference` (ablate's sequential loop, which walks
the steps with unbind), `reference-indexing` (the same loop written as mamba_ssm's
selective_scan_ref writes it, deltaA[:, :, i]: indexing's backward writes a full-size zero
tensor per step, which is what makes that reference slow), and `fused` (mamba_ssm, CUDA only).

Each variant runs in its own process (after a warm-up on a tiny input) so that its figures are
its own:
  peak: the most memory held at once during one forward + backward, beyond the inputs. On CPU
        glibc's count of bytes in use (mallinfo2: heap + mmap), read after every aten op by a
        TorchDispatchMode, so allocator caching and lazy library set-up do not count; on CUDA
        max_memory_allocated.
  saved: bytes autograd keeps between forward and backward (saved_tensors_hooks).
Both are also given as multiples of the inputs' bytes (u, delta, A, B, C). Times are the best
of --reps further runs.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

import torch  # noqa: E402

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from ablate.model import scan  # noqa: E402


def scan_indexing(u, delta, A, B, C, delta_softplus=False):
    """mamba_ssm's selective_scan_ref loop (no D, z): one deltaA[:, :, i] slice per step."""
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)
    deltaA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))
    deltaB_u = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)
    x = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for i in range(u.shape[2]):
        x = deltaA[:, :, i] * x + deltaB_u[:, :, i]
        ys.append(torch.einsum("bdn,bn->bd", x, C[:, :, i]))
    return torch.stack(ys, dim=2)


def variant_fn(name):
    if name == "torch":
        return scan.selective_scan_torch
    if name == "reference":
        return scan.selective_scan_ref
    if name == "reference-indexing":
        return scan_indexing
    if name == "fused":
        return lambda *a, **k: scan.selective_scan(*a, backend="fused", **k)
    raise ValueError(name)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost").split()]


try:
    _mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    _mallinfo2.restype = _MallInfo2
except (OSError, AttributeError):  # not glibc, or glibc < 2.33: no CPU peak figure
    _mallinfo2 = None


def heap_in_use() -> int:
    """Bytes malloc has handed out and not taken back (glibc ≥ 2.33; 0 elsewhere)."""
    if _mallinfo2 is None:
        return 0
    m = _mallinfo2()
    return m.uordblks + m.hblkhd


class PeakHeap(TorchDispatchMode):
    """Highest heap_in_use() seen after any aten op, relative to when the mode was entered."""

    def __enter__(self):
        self.base = heap_in_use()
        self.peak = 0
        return super().__enter__()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, heap_in_use() - self.base)
        return out


def make_inputs(b, d, n, L, device):
    g = torch.Generator().manual_seed(0)
    ts = [
        torch.randn(b, d, L, generator=g),  # u
        torch.randn(b, d, L, generator=g) - 2,  # delta (before softplus)
        -torch.rand(d, n, generator=g) * 4 - 0.5,  # A
        torch.randn(b, n, L, generator=g),  # B
        torch.randn(b, n, L, generator=g),  # C
    ]
    return [t.to(device).requires_grad_() for t in ts]


def worker(args) -> dict:
    """One variant, in this process: memory of the first run, then timings."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fn = variant_fn(args.variant)
    cuda = device.type == "cuda"
    with PeakHeap():  # warm up, the dispatch mode too (its first use allocates ~20 MiB)
        fn(*make_inputs(1, 4, args.state, 8, device), delta_softplus=True).sum().backward()
    ts = make_inputs(args.batch, args.dim, args.state, args.length, device)
    input_bytes = sum(t.numel() * t.element_size() for t in ts)

    def run():
        for t in ts:
            t.grad = None
        fn(*ts, delta_softplus=True).square().sum().backward()
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        run()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        with PeakHeap() as mode:
            run()
        peak = mode.peak

    saved = 0

    def pack(t):
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*ts, delta_softplus=True)
    del out

    times = []
    for _ in range(args.reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return dict(variant=args.variant, ms=1e3 * min(times), peak=peak, saved=saved,
                input_bytes=input_bytes, threads=torch.get_num_threads())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--dim", type=int, default=512, help="D (Mamba's inner width)")
    ap.add_argument("--state", type=int, default=16, help="N")
    ap.add_argument("--length", type=int, default=512, help="L")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--variants", default="", help="comma-separated (default: all that run)")
    ap.add_argument("--variant", help=argparse.SUPPRESS)  # worker mode
    args = ap.parse_args(argv)

    if args.variant:
        print(json.dumps(worker(args)))
        return

    if args.variants:
        variants = args.variants.split(",")
    else:
        variants = ["torch", "reference", "reference-indexing"]
        if args.device.startswith("cuda") and scan.fused_available():
            variants.insert(0, "fused")
    b, d, n, L = args.batch, args.dim, args.state, args.length
    full = b * d * L * n * 4
    print(f"selective scan fwd+bwd, float32, B {b}, D {d}, N {n}, L {L}, device {args.device}; "
          f"one (B, D, L, N) tensor = {full / 2**20:.1f} MiB")
    rows = []
    for v in variants:
        cmd = [sys.executable, __file__, "--variant", v] + [
            f"--{k}={getattr(args, k)}" for k in
            ("batch", "dim", "state", "length", "device", "threads")
        ] + [f"--reps={1 if v == 'reference-indexing' else args.reps}"]  # that one is slow
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(f"{v}: failed\n{res.stderr[-2000:]}")
            continue
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    if not rows:
        return
    ref = next((r for r in rows if r["variant"] == "reference"), rows[0])
    inp = rows[0]["input_bytes"]
    print(f"inputs (u, delta, A, B, C): {inp / 2**20:.2f} MiB; "
          f"{rows[0]['threads']} CPU threads")
    print(f"{'variant':<20} {'ms':>9} {'vs reference':>13} {'peak MiB':>9} {'×inputs':>8} "
          f"{'saved MiB':>10} {'×inputs':>8}")
    for r in rows:
        speed = ref["ms"] / r["ms"]
        print(f"{r['variant']:<20} {r['ms']:>9.1f} {speed:>12.{1 if speed >= 1 else 3}f}× "
              f"{r['peak'] / 2**20:>9.1f} {r['peak'] / inp:>8.1f} "
              f"{r['saved'] / 2**20:>10.1f} {r['saved'] / inp:>8.1f}")
    ms = {r["variant"]: r["ms"] for r in rows}
    if "torch" in ms and len(ms) > 1:
        print("torch scan speed-up: " + ", ".join(
            f"{ms[v] / ms['torch']:.1f}× vs {v}" for v in ms if v != "torch"))


if __name__ == "__main__":
    main()
