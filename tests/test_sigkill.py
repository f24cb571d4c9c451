"""SIGKILL at 22 points of a small study, each followed by runs until it completes (issue 13).

Most kill points are study events, not times: the run is killed just before or just after the
n-th rename that publishes a file whose path (relative to the study) matches a pattern. Every
file ablate writes is published by such a rename (`results.atomic.atomic_write`), so the
events walk through a study in order: start-up (manifest, study.toml), a trial marked running,
each file of an epoch checkpoint (checkpoint.pt, history.parquet, meta.json: a kill between
them leaves a checkpoint of two epochs), a trial's files being staged, then committed one by
one (artifacts — including the middle of replacing a folder that a killed commit left —
images, history, the trial file last), the moment between two trials, and the end of the
last commit. Each run goes on in the same results folder, resuming what the last one left, and
the test checks that every kill point was reached (the run was killed, at that event). Four
more kills fall at seeded random times over the measured duration of one whole run, in a fresh
folder: mid-epoch, while a file is being written rather than renamed.

Every folder that completes is checked: each trial completed exactly once (its trial file
written once and never again), each history continuous (epochs 1..E), every file readable,
nothing temporary, stale or stray left.

The local executor: the kill hits the process that writes every file. The Ray executor's
single kill point is in test_run.py (`test_sigkill_mid_study_then_rerun_...`)."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ablate.spec import expand, load_study

from conftest import write_tiny_study
from study_checks import check_every_file_complete

EPOCHS = 3

# (pattern of the published path relative to the study, n-th match in the run, before|after
# the rename), in the order a study meets them; the comment says what the kill leaves
EVENTS = [
    ("manifest.json", 1, "before"),                      # start-up: the lock held, nothing published
    ("study.toml", 1, "after"),                          # start-up done, no trial begun
    ("running/*", 1, "before"),                          # trial 1 about to be marked running
    ("checkpoints/*/checkpoint.pt", 1, "after"),         # epoch 1: its state, no history/meta
    ("checkpoints/*/history.parquet", 1, "after"),       # next epoch: state and history, old meta
    ("checkpoints/*/meta.json", 1, "before"),            # next epoch: all but meta
    (".stage-*/images.parquet", 1, "after"),             # trained; result files half staged
    (".stage-*/trial.parquet", 1, "after"),              # staged; nothing committed
    ("artifacts/*", 1, "after"),                         # committing: artifacts only
    ("artifacts/.*.old", 1, "after"),                    # replacing those: old moved aside, new not in
    ("history/*", 1, "after"),                           # committed all but the trial file
    ("trials/*", 1, "before"),                           # the trial file written, not renamed
    ("trials/*", 1, "after"),                            # trial 1 committed: between two trials
    ("running/*", 1, "after"),                           # trial 2 marked running
    ("checkpoints/*/meta.json", 2, "after"),             # trial 2: two whole epoch checkpoints
    ("checkpoints/*/checkpoint.pt", 1, "before"),        # trial 2, last epoch: state not renamed
    ("trials/*", 1, "before"),                           # trial 2's trial file not renamed
    ("trials/*", 1, "after"),                            # all committed; killed before the summary
]
TIMED = 4  # kills at seeded random times


def small_study(directory: Path) -> Path:
    """The tiny study with one seed and half its training crops: two trials of 3 one-step
    epochs (a few seconds in all, most of it Python and torch starting)."""
    p = write_tiny_study(directory, name="kill", seeds=(0,), epochs=EPOCHS)
    p.write_text(p.read_text().replace("train_samples = 32", "train_samples = 16"))
    return p


# Each run is forked from one process that has imported what `ablate run` imports (torch,
# pyarrow, ablate: seconds of CPU a run, which 27 runs would pay again and which write
# nothing), then runs the command's own code, in a session of its own. It answers each
# "<seconds> <args…>" line with "exit <code> <seconds it ran>" or, when the run was still going after that
# many seconds, "killed" (SIGKILL to its process group).
RUNNER = r"""
import os, signal, sys, time
import torch, pandas, pyarrow.parquet  # noqa: F401
import ablate.cli.app, ablate.orchestrate.record, ablate.train.trial, ablate.metrics.evaluate

log = sys.argv[1]
print("ready", flush=True)


def kill_at(event, study_root):
    # SIGKILL this run at `event` ("PATTERN@N:before|after"): the N-th os.replace whose
    # destination, relative to the study, matches PATTERN (fnmatch)
    from fnmatch import fnmatch

    pattern, rest = event.rsplit("@", 1)
    n, when = rest.split(":")
    n, matched, replace = int(n), 0, os.replace

    def die(rel):
        print(f"KILL {event} at {rel}", flush=True)
        os.killpg(0, signal.SIGKILL)

    def hooked(src, dst, *a, **k):
        nonlocal matched
        rel = os.path.relpath(os.fspath(dst), study_root)
        matched += fnmatch(rel, pattern)
        hit = fnmatch(rel, pattern) and matched == n
        if hit and when == "before":
            die(rel)
        out = replace(src, dst, *a, **k)
        if hit:
            die(rel)
        return out

    os.replace = hooked


for line in sys.stdin:
    at, event, study_root, *args = line.split()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(fd, 1), os.dup2(fd, 2)
        if event != "-":
            kill_at(event, study_root)
        sys.argv = ["ablate", *args]
        code = 0
        try:
            ablate.cli.app.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    t0 = time.monotonic()
    deadline = t0 + float(at)
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                print("killed", flush=True)  # at its event
            else:
                print("exit", os.waitstatus_to_exitcode(status), time.monotonic() - t0,
                      flush=True)
            break
        if time.monotonic() >= deadline:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("killed", flush=True)
            break
        time.sleep(0.005)
"""


class Runs:
    """`ablate run --executor local` of one study, each run stopped by SIGKILL after a
    given time unless it ends first."""

    def __init__(self, study: Path, log: Path):
        self.study, self.log = study, log
        self.proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(log)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def run(self, out: Path, kill_after: float = 600.0, event: str = "-") -> tuple[str, float]:
        """("killed", kill_after), or ("exit <code>", the seconds it ran). `event`:
        "PATTERN@N:before|after", kill at that rename instead (see RUNNER)."""
        assert " " not in f"{event}{out}{self.study}"
        self.proc.stdin.write(f"{kill_after} {event} {out / 'kill'} run {self.study} "
                              f"--results {out} --executor local\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer, "the runner died: " + self.log.read_text()
        if answer == "killed":
            return answer, kill_after
        *status, took = answer.split()
        return " ".join(status), float(took)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def trial_stamps(root: Path) -> dict[str, tuple[int, int]]:
    """trial_id → (inode, mtime) of its trial file: a file written again changes them."""
    out = {}
    for f in (root / "trials").glob("[!.]*.parquet"):  # published ones (not a killed write's temp)
        st = f.stat()
        out[f.name] = (st.st_ino, st.st_mtime_ns)
    return out


def check_completed_once(root: Path, ids: set[str], seen: dict) -> None:
    """`seen`: the trial files' stamps after every earlier kill in this folder; none written
    twice."""
    now = trial_stamps(root)
    for name, stamp in seen.items():
        assert now.get(name) == stamp, f"{name} written again (or removed) after it completed"
    seen.update(now)


def check_study(root: Path, ids: set[str]) -> None:
    """A study that completed after kills: every trial once, continuous histories, every file
    readable, nothing temporary, stale or stray."""
    assert sorted(p.name for p in (root / "trials").iterdir()) == sorted(f"{i}.parquet" for i in ids)
    for tid in ids:
        trial = pq.read_table(root / "trials" / f"{tid}.parquet").to_pydict()
        assert trial["status"] == ["completed"] * 2 and trial["resolution"] == [16, 32], trial
        hist = pq.read_table(root / "history" / f"{tid}.parquet").column("epoch").to_pylist()
        assert hist == list(range(1, EPOCHS + 1)), (tid, hist)  # no epoch lost or repeated
        assert pq.read_table(root / "images" / f"{tid}.parquet").num_rows == 2 * 4
        assert {p.name for p in (root / "artifacts" / tid).iterdir()} == {
            "predictions.npz", "spectra.parquet"}
    for folder in ("history", "images", "artifacts", "checkpoints"):
        assert {p.name.removesuffix(".parquet") for p in (root / folder).iterdir()} <= ids, folder
    check_every_file_complete(root)  # every file reads; no .tmp/.old files, no .stage-* folders
    assert not [p for p in root.rglob("*") if p.name.endswith((".tmp", ".old", ".unreadable"))]
    assert not (root / "running").exists()  # no running markers left (the empty folder gone)
    assert not (root / ".work").exists()
    assert {p.name for p in root.iterdir()} <= {
        "manifest.json", "study.toml", ".run.lock", "trials", "history", "images", "artifacts",
        "running", "checkpoints"}, sorted(p.name for p in root.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_22_points_then_reruns_complete_each_trial_once(tmp_path):
    study = small_study(tmp_path)
    ids = {t.trial_id for t in expand(load_study(study))}
    log = tmp_path / "runs.log"
    runs = Runs(study, log)
    try:
        # one uninterrupted run: the span the timed kill points are drawn from
        answer, span = runs.run(tmp_path / "whole")
        assert answer == "exit 0", log.read_text()
        check_study(tmp_path / "whole" / "kill", ids)

        # the study events, in order, in one results folder: each run resumes what the last
        # one left and must be killed at its event (an event never reached is a failure)
        out, seen = tmp_path / "events", {}
        for pattern, n, when in EVENTS:
            event = f"{pattern}@{n}:{when}"
            answer, _ = runs.run(out, event=event)
            assert answer == "killed", (event, answer, log.read_text()[-3000:])
            check_completed_once(out / "kill", ids, seen)
        hits = re.findall(r"^KILL (\S+) at (\S+)$", log.read_text(), re.M)
        assert [e for e, _ in hits] == [f"{p}@{n}:{w}" for p, n, w in EVENTS], hits
        assert runs.run(out)[0] == "exit 0", log.read_text()[-3000:]
        check_completed_once(out / "kill", ids, seen)
        check_study(out / "kill", ids)

        # kills at seeded random times, in increasing order, in a fresh folder: mid-epoch and
        # mid-write (a kill after the study completed moves on to another fresh folder)
        rng = random.Random(13)
        points = sorted(rng.uniform(0.1, 0.95) for _ in range(TIMED))
        folders, seen, killed = [tmp_path / "timed0"], {}, 0
        for point in points:
            while True:
                out = folders[-1]
                fresh = not out.exists()
                answer, took = runs.run(out, kill_after=point * span)
                check_completed_once(out / "kill", ids, seen)
                if answer == "killed":
                    killed += 1
                    break
                assert answer == "exit 0", log.read_text()[-3000:]
                check_study(out / "kill", ids)
                folders.append(tmp_path / f"timed{len(folders)}")
                seen = {}
                if fresh:  # a whole run, faster than the measured one (a busy machine quietened)
                    span = took
        assert killed == TIMED
        out = folders[-1]  # after the last kill, the next run completes the study
        assert runs.run(out)[0] == "exit 0", log.read_text()[-3000:]
        check_completed_once(out / "kill", ids, seen)
        check_study(out / "kill", ids)
    finally:
        runs.close()
    print(f"uninterrupted run {span:.1f} s; {len(EVENTS)} kills at study events, "
          f"{killed} at times over {len(folders)} folders; events hit:")
    for event, at in hits:
        print(f"  {event:40s} {at}")
