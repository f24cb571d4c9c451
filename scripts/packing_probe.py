"""How many trials to pack on one GPU, and how many epochs fit: the packing warm-up of
scripts/gpu_study.sh.

    python scripts/packing_probe.py STUDY.toml --out packing.json --env-out choice.env \
        --study-deadline UNIX_TIME [--candidates 1,2,4,6,9] [--window 6] [--set KEY=VALUE]...

Starts max(candidates) worker processes, each building one trial of the study exactly as a
trial does (`ablate.train.trial.build`: the study's data, model and optimiser, on the GPU when
there is one) and training one warm-up epoch; each also times one evaluation and one
checkpoint save, the per-trial costs outside training. Then, in phases of `--window` seconds,
the first N workers train at once (N = each candidate in turn, the others idle), each counting
the images of the epochs it finished inside the window: the study's own `train_epoch`, so
images/s is what a trial gets with N-1 others beside it on the same GPU.

From those figures it predicts the study's wall time for each N (waves of N trials; per
trial: start-up + evaluation + epochs × (train_samples / its img/s + checkpoint)) and picks
the N whose prediction fits the time left until `--study-deadline` with the most epochs (at most the study's own;
fewer only when the study's epochs would not fit), the faster on a tie. It writes every figure
and the arithmetic to --out (JSON) and the choice as shell assignments to --env-out:
CONCURRENT, GPUS_PER_TRIAL (1/N, rounded down to Ray's 1e-4), CPUS_PER_TRIAL, EPOCHS,
EPOCHS_CUT (1 when fewer than the study's), PREDICTED_S.

Needs only the trial core (torch, no Ray). Workers exit when the probe does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a bare checkout

# what a trial costs beyond what the probe measures: its Ray actor's start and the commit of
# its files (seconds); and the embedded Ray's own start, once per study
ACTOR_S = 5.0
RAY_START_S = 10.0
SAFETY = 0.9  # a prediction fits when it takes at most this share of the time left


# ---------------------------------------------------------------------------------------------
# a worker: one trial's setup, then the phases it is part of
# ---------------------------------------------------------------------------------------------


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.rename(path)


def _parent_alive(ppid: int) -> bool:
    return os.getppid() == ppid


def worker(args) -> None:
    import torch

    from ablate.orchestrate.run import pick_trial
    from ablate.spec import load_study
    from ablate.train.trial import TrainingState, build, evaluate_model, save, train_epoch

    d, i, ppid = Path(args.dir), args.index, os.getppid()
    t_spawn = args.spawned
    study = load_study(args.study, [*args.set, f"data.train_samples={args.probe_samples}",
                                    "train.epochs=100000"])  # the schedule stays near its peak
    names = [v.name for v in study.variants]
    cfg = pick_trial(study, args.variant if args.variant in names else names[0],
                     study.study.seeds[0])
    setup = build(cfg, args.device)
    state = TrainingState()
    epoch = 1
    train_epoch(setup, state, epoch)  # warm-up: kernels, allocator, autotuning
    built_s = time.time() - t_spawn
    t0 = time.perf_counter()
    evaluate_model(setup)
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    save(setup, state, d / f"ckpt-{i}")
    save_s = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated(setup.device) / 2**30
            if setup.device.type == "cuda" else None)
    _write_json(d / f"ready-{i}.json", {"built_s": built_s, "eval_s": eval_s, "save_s": save_s,
                                        "peak_gib": peak, "backend": setup.model.scan_backend,
                                        "device": str(setup.device), "trial": cfg.trial_id})
    go = d / "go.json"
    while not go.exists():
        if not _parent_alive(ppid):
            return
        time.sleep(0.05)
    plan = json.loads(go.read_text())
    if i not in plan["ranks"]:
        return
    rank = plan["ranks"].index(i)
    phases = []
    for k, n in enumerate(plan["phases"]):
        start = plan["t0"] + k * (plan["window"] + plan["gap"])
        end = start + plan["window"]
        if rank >= n:
            phases.append(None)
            continue
        while time.time() < start:
            time.sleep(min(0.01, max(0.0, start - time.time())))
        # an epoch is started only when it should end inside the window (at the mean epoch
        # time so far), so that none overruns into the next phase; the first always runs
        done, last = 0, time.time()
        while done == 0 or last + (last - start) / done <= end:
            epoch += 1
            train_epoch(setup, state, epoch)  # ends with a device sync (the epoch's loss)
            done += 1
            last = time.time()
        images = done * args.probe_samples
        phases.append({"images": images, "seconds": last - start,
                       "img_per_s": images / (last - start)})
        if not _parent_alive(ppid):
            return
    _write_json(d / f"result-{i}.json", {"phases": phases})


# ---------------------------------------------------------------------------------------------
# the probe: spawn, synchronise, add up, choose
# ---------------------------------------------------------------------------------------------


def _predict(n: int, rate: float, over_s: float, save_s: float, trials: int, epochs: int,
             samples: int) -> float:
    """Predicted study wall time (s): ceil(trials / n) waves of n trials, each trial
    over_s + epochs × (samples / rate + 2 × save_s) (Tune copies each checkpoint once more)."""
    waves = math.ceil(trials / n)
    return RAY_START_S + waves * (over_s + epochs * (samples / rate + 2 * save_s))


def choose(measured: dict[int, dict], over_s: float, save_s: float, trials: int, epochs: int,
           samples: int, seconds_left: float, fit: bool) -> dict:
    """The candidate N and epochs: the most epochs (≤ the study's) whose predicted wall time
    fits SAFETY × seconds_left, the faster N on a tie; with fit=False the study's epochs, the
    faster N."""
    options = []
    for n, m in measured.items():
        rate = m["per_trial_img_per_s"]
        if not rate or rate <= 0:
            continue
        e, budget = epochs, SAFETY * seconds_left
        if fit:
            while e > 1 and _predict(n, rate, over_s, save_s, trials, e, samples) > budget:
                e -= 1
        t = _predict(n, rate, over_s, save_s, trials, e, samples)
        options.append({"n": n, "epochs": e, "predicted_s": round(t, 1), "fits": t <= budget})
    if not options:
        return {}
    best = max(options, key=lambda o: (o["fits"], o["epochs"], -o["predicted_s"]))
    return {**best, "options": options}


def probe(args) -> int:
    from ablate.spec import expand, load_study

    t_begin = time.time()
    deadline = t_begin + args.max_seconds
    study = load_study(args.study, args.set)
    trials = expand(study)
    epochs = max(t.train.epochs for t in trials)
    samples = max(t.data.train_samples for t in trials)
    ncpu = args.cpus or os.cpu_count() or 1
    cands = sorted({int(c) for c in args.candidates.split(",") if c.strip()})
    cands = [c for c in cands if c <= ncpu] or [1]
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    for f in d.glob("*.json"):
        f.unlink()
    k = max(cands)
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, ncpu // k)))  # as Ray sets it per trial
    procs = []
    for i in range(k):
        cmd = [sys.executable, __file__, "worker", args.study, "--dir", str(d), "--index", str(i),
               "--spawned", repr(time.time()), "--device", args.device,
               "--probe-samples", str(args.probe_samples),
               *(["--variant", args.variant] if args.variant else []),
               *[x for s in args.set for x in ("--set", s)]]
        procs.append(subprocess.Popen(cmd, env=env, stdout=open(d / f"worker-{i}.log", "w"),
                                      stderr=subprocess.STDOUT))
    doc: dict = {"study": study.study.name, "trials": len(trials), "epochs_in_spec": epochs,
                 "train_samples": samples, "probe_samples": args.probe_samples, "cpus": ncpu,
                 "candidates": cands, "window_s": args.window}
    try:
        ready = {}
        setup_limit = min(deadline - len(cands) * (args.window + args.gap) - 10,
                          time.time() + args.setup_timeout)
        while time.time() < setup_limit:
            for i in range(k):
                f = d / f"ready-{i}.json"
                if i not in ready and f.exists():
                    ready[i] = json.loads(f.read_text())
            if len(ready) == k or all(p.poll() is not None for i, p in enumerate(procs)
                                      if i not in ready):
                break
            time.sleep(0.2)
        doc["setup_wall_s"] = round(time.time() - t_begin, 1)
        doc["workers"] = {str(i): r for i, r in sorted(ready.items())}
        failed = [i for i in range(k) if i not in ready]
        for i in failed:
            tail = (d / f"worker-{i}.log").read_text(errors="replace")[-1500:]
            print(f"packing probe: worker {i} not ready: {tail}", flush=True)
        doc["workers_not_ready"] = failed
        ranks = sorted(ready)
        phases = [n for n in cands if n <= len(ranks)]
        if not phases:
            doc["error"] = "no worker got ready"
            return _finish(doc, args, {})
        t0 = time.time() + 0.5
        _write_json(d / "go.json", {"t0": t0, "ranks": ranks, "phases": phases,
                                    "window": args.window, "gap": args.gap})
        end = t0 + len(phases) * (args.window + args.gap) + args.window + 15
        results = {}
        while time.time() < min(end, deadline):
            for i in ranks:
                f = d / f"result-{i}.json"
                if i not in results and f.exists():
                    results[i] = json.loads(f.read_text())["phases"]
            if len(results) == len(ranks) or all(procs[i].poll() is not None for i in ranks
                                                 if i not in results):
                break
            time.sleep(0.2)
        measured = {}
        for k_, n in enumerate(phases):
            rates = [results[i][k_]["img_per_s"] for i in ranks[:n]
                     if i in results and results[i][k_]]
            if len(rates) == n:
                measured[n] = {"total_img_per_s": round(sum(rates), 1),
                               "per_trial_img_per_s": round(statistics.mean(rates), 1),
                               "per_worker": [round(r, 1) for r in rates]}
        doc["measured"] = {str(n): m for n, m in measured.items()}
        over = [r["built_s"] + r["eval_s"] for r in ready.values()]
        over_s = (max(over) if over else 30.0) + ACTOR_S
        save_s = max((r["save_s"] for r in ready.values()), default=1.0)
        doc["per_trial_overhead_s"] = round(over_s, 1)
        doc["checkpoint_save_s"] = round(save_s, 2)
        doc["model"] = ("predicted study wall = %g + ceil(trials/N) × (overhead + epochs × "
                        "(train_samples / per-trial img/s + 2 × checkpoint_save_s)); overhead = "
                        "worker start-up to a trained warm-up epoch + one evaluation + %g s "
                        "(Ray actor, commit); it fits when ≤ %g × seconds_left" % (RAY_START_S, ACTOR_S, SAFETY))
        seconds_left = args.study_deadline - time.time() - 2  # 2 s: the study's own start
        doc["seconds_left"] = round(seconds_left, 1)
        choice = choose(measured, over_s, save_s, len(trials), epochs, samples,
                        seconds_left, fit=not args.no_fit)
        return _finish(doc, args, choice)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
        for c in d.glob("ckpt-*"):
            for f in c.iterdir():
                f.unlink()
            c.rmdir()


def _finish(doc: dict, args, choice: dict) -> int:
    ncpu = doc["cpus"]
    if choice:
        n = choice["n"]
        on_gpu = any(str(r.get("device", "")).startswith("cuda")
                     for r in doc.get("workers", {}).values())
        gpus = math.floor(1e4 / n) / 1e4 if on_gpu else 0
        cpus = max(1, min(4, ncpu // n))
        doc["choice"] = {**choice, "gpus_per_trial": gpus, "cpus_per_trial": cpus,
                         "epochs_cut": choice["epochs"] < doc["epochs_in_spec"]}
        env = {"CONCURRENT": n, "GPUS_PER_TRIAL": gpus, "CPUS_PER_TRIAL": cpus,
               "EPOCHS": choice["epochs"], "EPOCHS_CUT": int(doc["choice"]["epochs_cut"]),
               "PREDICTED_S": choice["predicted_s"]}
    else:
        env = {}
    Path(args.out).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    if args.env_out:
        Path(args.env_out).write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    for n, m in doc.get("measured", {}).items():
        print(f"packing probe: {n} at once: {m['total_img_per_s']:.0f} img/s in all, "
              f"{m['per_trial_img_per_s']:.0f} per trial", flush=True)
    if choice:
        c = doc["choice"]
        print(f"packing probe: choose {c['n']} at once (gpus_per_trial {c['gpus_per_trial']:g}, "
              f"cpus_per_trial {c['cpus_per_trial']}), {c['epochs']} epochs"
              + (f" (cut from {doc['epochs_in_spec']}: the study's would not fit)"
                 if c["epochs_cut"] else "")
              + f", predicted {c['predicted_s']:.0f} s of {doc['seconds_left']:.0f} s left",
              flush=True)
        return 0
    print("packing probe: nothing measured; no choice", flush=True)
    return 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("study")
    w.add_argument("--dir", required=True)
    w.add_argument("--index", type=int, required=True)
    w.add_argument("--spawned", type=float, required=True)
    w.add_argument("--device", default="auto")
    w.add_argument("--variant", default="")
    w.add_argument("--probe-samples", type=int, default=512)
    w.add_argument("--set", action="append", default=[])
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        worker(ap.parse_args(argv))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study")
    p.add_argument("--out", required=True, help="packing.json")
    p.add_argument("--env-out", default="", help="the choice as KEY=VALUE lines")
    p.add_argument("--dir", default="", help="scratch folder (default: beside --out)")
    p.add_argument("--candidates", default="1,2,4,6,9", help="trials at once to try")
    p.add_argument("--window", type=float, default=6.0, help="seconds each candidate trains")
    p.add_argument("--gap", type=float, default=1.0)
    p.add_argument("--study-deadline", type=float, required=True,
                   help="the time (Unix seconds) by which the study must have finished")
    p.add_argument("--max-seconds", type=float, default=90.0, help="the probe's own limit")
    p.add_argument("--setup-timeout", type=float, default=60.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--cpus", type=int, default=0, help="CPUs Ray will have (default: all)")
    p.add_argument("--variant", default="multiscale",
                   help="the trial to probe with (a middle-cost row)")
    p.add_argument("--no-fit", action="store_true", help="keep the study's epochs")
    p.add_argument("--probe-samples", type=int, default=512,
                   help="images per probe epoch (short: an epoch ends often in a window)")
    p.add_argument("--set", action="append", default=[])
    args = p.parse_args(argv)
    args.dir = args.dir or str(Path(args.out).with_suffix("")) + "-work"
    return probe(args)


if __name__ == "__main__":
    sys.exit(main())
