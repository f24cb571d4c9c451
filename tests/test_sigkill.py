"""SIGKILL at 20 points of a small study, each followed by runs until it completes (issue 13).

The kill points are seeded random times over the measured duration of one uninterrupted run
of the same study, taken in increasing order, so they fall in every phase: start-up (lock,
manifest, sweeping what a killed run left), mid-epoch, a checkpoint being written, a trial's
files being committed, between trials. Runs go on in the same results folder after each kill
(each resuming what the last one left) until one completes; a kill point that comes after the
study has completed is moved to a fresh results folder. Every folder that completes is checked: each trial
completed exactly once (its trial file written once and never again), each history
continuous (epochs 1..E), every file readable, nothing temporary, stale or stray left.

The local executor: the kill hits the process that writes every file. The Ray executor's
single kill point is in test_run.py (`test_sigkill_mid_study_then_rerun_...`)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ablate.spec import expand, load_study

from conftest import write_tiny_study
from study_checks import check_every_file_complete

KILL_POINTS = 20
EPOCHS = 3


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
for line in sys.stdin:
    at, *args = line.split()
    pid = os.fork()
    if pid == 0:
        os.setsid()
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.dup2(fd, 1), os.dup2(fd, 2)
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
            print("exit", os.waitstatus_to_exitcode(status), time.monotonic() - t0, flush=True)
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

    def run(self, out: Path, kill_after: float = 600.0) -> tuple[str, float]:
        """("killed", kill_after), or ("exit <code>", the seconds it ran)."""
        self.proc.stdin.write(f"{kill_after} run {self.study} --results {out} "
                              "--executor local\n")
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
    for f in (root / "trials").glob("*"):
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
    assert not list((root / "running").iterdir())  # no running markers left
    assert not (root / ".work").exists()
    assert {p.name for p in root.iterdir()} <= {
        "manifest.json", "study.toml", ".run.lock", "trials", "history", "images", "artifacts",
        "running", "checkpoints"}, sorted(p.name for p in root.iterdir())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_20_points_then_reruns_complete_each_trial_once(tmp_path):
    study = small_study(tmp_path)
    ids = {t.trial_id for t in expand(load_study(study))}
    log = tmp_path / "runs.log"
    runs = Runs(study, log)
    try:
        # one uninterrupted run: the span the kill points are drawn from
        answer, span = runs.run(tmp_path / "whole")
        assert answer == "exit 0", log.read_text()
        check_study(tmp_path / "whole" / "kill", ids)

        rng = random.Random(13)
        # in increasing order: each run resumes what the last one left and runs longer before
        # its kill, so the kills walk through the study (start-up, each trial's epochs and
        # checkpoints, its commit, the next trial) instead of all landing in its first epoch
        points = sorted(rng.uniform(0.02, 0.95) for _ in range(KILL_POINTS))
        folders = [tmp_path / "res0"]
        seen: dict = {}
        killed = 0
        for point in points:
            while True:
                out = folders[-1]
                fresh = not out.exists()
                answer, took = runs.run(out, kill_after=point * span)
                check_completed_once(out / "kill", ids, seen)
                if answer == "killed":
                    killed += 1
                    break
                # the study completed before this point: check it; the point goes to a fresh
                # folder
                assert answer == "exit 0", log.read_text()
                check_study(out / "kill", ids)
                folders.append(tmp_path / f"res{len(folders)}")
                seen = {}
                if fresh:  # a whole run, faster than the measured one (a busy machine quietened)
                    span = took
        assert killed == KILL_POINTS

        out = folders[-1]  # after the last kill, the next run completes the study
        assert runs.run(out)[0] == "exit 0", log.read_text()
        check_completed_once(out / "kill", ids, seen)
        check_study(out / "kill", ids)
    finally:
        runs.close()
    print(f"uninterrupted run {span:.1f} s; {killed} kills over {len(folders)} results folders; "
          f"trials committed by killed runs: {log.read_text().count(' done ') - 2 * len(folders)}")
