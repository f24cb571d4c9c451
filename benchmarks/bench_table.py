"""Benchmark: `ablate table` on a synthetic study of 10,000 trial rows must answer in < 2 s.

    .venv/bin/python benchmarks/bench_table.py [--rows 10000] [--resolutions 32,64,128]
                                               [--dir DIR] [--repeat 3]

Writes the study (one Parquet file per trial, one row per eval resolution, exactly per
``ablate.schema``: 20 variants × 4 grid points × as many seeds as it takes, the last
seeds left unfinished like a running study), then times

1. in-process: read + build + render the text table (imports already paid), and
2. the full CLI path in a fresh subprocess: `python -m ablate.cli.app table DIR` — Python
   start-up and every import included, output to a pipe,

and reports the best of `--repeat` runs. Exit 1 when the CLI path takes 2 s or more.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the synthetic result writer lives with the tests
sys.path.insert(0, str(REPO))

from synthetic_results import Variant, trial_rows, write_study_manifest, write_trial  # noqa: E402

LIMIT_S = 2.0
N_VARIANTS, GRID = 20, ("sigmas=[128,32]", "sigmas=[64,16]", "sigmas=[256,64]", "sigmas=[32,8]")


def write_study(results: Path, rows: int, resolutions: tuple[int, ...]) -> tuple[Path, int]:
    """A study of at least `rows` trial rows; returns its folder and the trial count."""
    trials = math.ceil(rows / len(resolutions))
    seeds = math.ceil(trials / (N_VARIANTS * len(GRID)))
    variants = [Variant(f"v{i:02d}", f"Variant {i:02d}", 0.04 * i,
                        ("true_sr", "resampling", "hallucination")[i % 3])
                for i in range(N_VARIANTS)]
    root = results / "bench"
    root.mkdir(parents=True, exist_ok=True)
    write_study_manifest(root, "bench", variants, range(seeds), resolutions, min(resolutions),
                         grid=GRID)
    n = 0
    for seed in range(seeds):  # seed-major: an unfinished study lacks its last seeds
        for g in GRID:
            for order, v in enumerate(variants):
                if n == trials:
                    return root, n
                failed = (n % 97 == 5)  # a few failures, as in real studies
                write_trial(root, trial_rows("bench", v, order, g, seed, resolutions,
                                             min(resolutions), failed=failed))
                n += 1
    return root, n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--resolutions", default="32,64,128")
    ap.add_argument("--dir", default=None, help="write the study here (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    resolutions = tuple(int(r) for r in args.resolutions.split(","))

    tmp = tempfile.TemporaryDirectory() if args.dir is None else None
    results = Path(args.dir or tmp.name)
    t0 = time.perf_counter()
    root, trials = write_study(results, args.rows, resolutions)
    print(f"wrote {trials} trial files ({trials * len(resolutions)} rows, resolutions "
          f"{list(resolutions)}) in {time.perf_counter() - t0:.1f} s → {root}")

    from ablate.table.build import load_tables
    from ablate.table.format import render

    best_lib = math.inf
    for _ in range(args.repeat):
        t = time.perf_counter()
        tables = load_tables(root)
        text = render(tables, "text")
        best_lib = min(best_lib, time.perf_counter() - t)
    print(f"in-process read + build + render: {best_lib:.3f} s "
          f"({len(tables[0].rows)} table rows, {len(tables[0].comparisons)} comparisons, "
          f"{len(text.splitlines())} lines)")

    best_cli = math.inf
    for _ in range(args.repeat):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "ablate.cli.app", "table", str(root)],
                             cwd=REPO, capture_output=True, text=True)
        best_cli = min(best_cli, time.perf_counter() - t)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 1
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ablate.cli.app"], cwd=REPO, check=True)
    startup = time.perf_counter() - t
    load = os.getloadavg()[0]
    print(f"CLI `ablate table` in a fresh process: {best_cli:.3f} s "
          f"(of which Python start-up + `import ablate.cli.app`: {startup:.3f} s); "
          f"limit {LIMIT_S:.1f} s → {'OK' if best_cli < LIMIT_S else 'TOO SLOW'} "
          f"(load average {load:.2f} on {os.cpu_count()} CPUs)")
    if tmp is not None:
        tmp.cleanup()
    return 0 if best_cli < LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
