"""CPU training throughput of one real trial, end to end, and its ratio against another commit.

    python benchmarks/bench_trial.py                          # this tree, 1 and 2 threads
    python benchmarks/bench_trial.py --against 762024a        # … and a worktree of 762024a

Trains one epoch of the shipped quickstart's trial (`studies/quickstart.toml`, variant
corrected_jitter, seed 0) through `ablate trial` in a fresh process — data, jitter, model,
AdamW, schedule, the epoch's quick PSNR — with `--set data.train_samples=N` (default 320 crops =
20 steps of batch 16), at each thread count (OMP_NUM_THREADS), and prints the epoch's img/s and
loss as the command reports them. With `--against REV` the same command runs from a git
worktree of REV (made under /tmp, removed after) with the same study file, interleaved with
this tree's runs (REV, this, REV, this, …) so that both meet the same machine; it prints the
best img/s of each and their ratio, and whether the losses agree (same crops, same model: they
should, to float rounding). Nothing is timed inside a test; this prints figures.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EPOCH = re.compile(r"epoch\s+1/1\s+loss ([0-9.]+).*?([0-9.]+) img/s")


def run_once(tree: Path, study: Path, threads: int, samples: int, sets: list[str]) -> tuple:
    """(img/s, loss) of one epoch of the trial, run by the `ablate` of `tree`."""
    with tempfile.TemporaryDirectory(prefix="bench-trial-") as out:
        cmd = [sys.executable, "-m", "ablate.cli.app", "trial", str(study), "--variant",
               "corrected_jitter", "--seed", "0", "--device", "cpu", "--results", out,
               "--set", "train.epochs=1", "--set", f"data.train_samples={samples}",
               "--set", "data.test_samples=8"]
        for s in sets:
            cmd += ["--set", s]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONPATH": str(tree)}
        r = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    m = EPOCH.search(r.stdout)
    if not m:
        raise SystemExit(f"no epoch line from {tree} (exit {r.returncode}):\n"
                         f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return float(m.group(2)), float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", metavar="REV", help="also run a git worktree of REV")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--samples", type=int, default=320, help="crops in the epoch (÷16 steps)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--study", default=str(ROOT / "studies" / "quickstart.toml"))
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    study = Path(args.study).resolve()
    trees = {"this tree": ROOT}
    worktree = None
    if args.against:
        worktree = Path(tempfile.mkdtemp(prefix="bench-against-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree),
                        args.against], check=True, capture_output=True)
        trees = {args.against: worktree, "this tree": ROOT}
    try:
        print(f"{study.name} corrected_jitter seed 0, one epoch of {args.samples} crops "
              f"({args.samples // 16} steps), best of {args.repeats}")
        for t in args.threads:
            best: dict[str, tuple] = {}
            for _ in range(args.repeats):
                for name, tree in trees.items():  # interleaved: both meet the same machine
                    ips, loss = run_once(tree, study, t, args.samples, args.sets)
                    if name not in best or ips > best[name][0]:
                        best[name] = (ips, loss)
            line = "  ".join(f"{n}: {v[0]:.1f} img/s (loss {v[1]:.5f})" for n, v in best.items())
            print(f"threads {t}: {line}")
            if args.against:
                old, new = best[args.against], best["this tree"]
                same = abs(old[1] - new[1]) <= 1e-5 * max(abs(old[1]), 1e-12) + 5e-6
                print(f"threads {t}: ratio {new[0] / old[0]:.2f}× "
                      f"(losses {'agree' if same else 'DIFFER'}: {old[1]:.5f} vs {new[1]:.5f}; "
                      "the command prints 5 decimals)")
    finally:
        if worktree is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(worktree)], capture_output=True)
            shutil.rmtree(worktree, ignore_errors=True)


if __name__ == "__main__":
    main()
