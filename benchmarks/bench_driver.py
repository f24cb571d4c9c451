"""The driver's cost per trial: `ablate run` over many tiny trials (1 epoch of 16 crops, one
eval resolution), so that nearly all the wall time is orchestration, not training.

    python benchmarks/bench_driver.py [N_TRIALS] [--address HOST:PORT]

Prints: wall time, the trials' own training time, the per-trial overhead (wall × concurrent
slots / trials − training), and what each trial leaves: result files the driver writes,
the checkpoint bytes in Ray's storage, Tune's experiment state. Figures in docs/scaling.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

SMOKE = Path(__file__).resolve().parents[1] / "studies" / "smoke.toml"
# the smoke study cut down to 1 epoch of 16 crops, 2 held-out crops, one eval resolution
OVERHEAD = ['study.name="overhead"', "data.eval_resolutions=[16]", "data.train_samples=16",
            "data.test_samples=2", "train.epochs=1"]


def du(path: Path, pattern: str = "**/*") -> int:
    return sum(p.stat().st_size for p in path.glob(pattern) if p.is_file())


def main() -> None:
    args = sys.argv[1:]
    n = int(args[0]) if args and args[0].isdigit() else 24
    extra = args[args.index("--address"):args.index("--address") + 2] if "--address" in args else []
    sets = [*OVERHEAD, f"study.seeds={list(range(n))}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "res"
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "ablate.cli.app", "run", str(SMOKE),
                            "--variant", "plain", *(a for s in sets for a in ("--set", s)),
                            "--results", str(out), *extra], capture_output=True, text=True)
        wall = time.monotonic() - t0
        if r.returncode != 0:
            sys.exit(r.stdout + r.stderr)
        root = out / "overhead"
        rows = pd.concat(pd.read_parquet(f) for f in (root / "trials").glob("*.parquet"))
        cpus = next((float(ln.split(", ")[1].split()[0]) for ln in r.stdout.splitlines()
                     if ln.startswith("Ray:")), 1.0)
        train = rows["train_seconds"].sum()
        ray_dir = root / "ray"
        state = du(ray_dir, "*/experiment_state-*.json") + du(ray_dir, "*/*.pkl")
        ckpt = du(ray_dir, "*/*/checkpoint_*/**/*")
        results = sum(du(root / d) for d in ("trials", "history", "images", "artifacts"))
        print(f"{n} trials, {cpus:g} concurrent slots: wall {wall:.1f} s (Ray start included), "
              f"training {train:.1f} s in all")
        print(f"  per trial: {wall / n:.2f} s wall, {wall * cpus / n - train / n:.2f} s of "
              f"slot time not training (driver, Tune, worker start, evaluation, commit)")
        print(f"  per trial on disk: results {results / n / 1024:.1f} KiB (driver writes), "
              f"final checkpoint {ckpt / n / 1024:.1f} KiB, Tune experiment state "
              f"{state / 1024:.1f} KiB for the run ({state / n / 1024:.2f} KiB per trial)")


if __name__ == "__main__":
    main()
