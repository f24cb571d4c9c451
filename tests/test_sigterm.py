"""SIGTERM — what SLURM, Kubernetes and `timeout` send — takes the Ctrl-C path (issue 27 §1):
ablate's message saying what resumes from where, exit 143, no process left behind; a second
SIGTERM forces the process out. Real subprocesses, real Ray."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import write_tiny_study


def start(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ablate.cli.app", *args],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)


def wait_for(what, until, proc, log: Path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():
            return
        if proc.poll() is not None:
            pytest.fail(f"ended (exit {proc.returncode}) before {what}:\n{log.read_text()}")
        time.sleep(0.1)
    pytest.fail(f"no {what} after {timeout:.0f} s:\n{log.read_text()}")


def descendants(pid: int) -> dict[int, str]:
    """pid → command line of every live process below `pid` (Ray starts its own in new
    sessions, so a process group does not hold them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            out[p] = (Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")
                      .decode(errors="replace"))
        except OSError:
            continue
        todo += children.get(p, [])
    return out


def alive(pids) -> list[str]:
    left = []
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.append(f"{p} {Path(f'/proc/{p}/cmdline').read_bytes()[:80]!r}")
    return left


def finish(proc: subprocess.Popen, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("still running after SIGTERM")


def test_sigterm_local_executor_mid_training_exits_143_and_says_what_resumes(tmp_path):
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=40)  # still training at the signal
    res, log = tmp_path / "res", tmp_path / "run.log"
    proc = start(["run", str(study), "--results", str(res), "--executor", "local",
                  "--device", "cpu", "--variant", "plain"], log)
    wait_for("an epoch checkpoint", lambda: any((res / "tiny" / "checkpoints").glob("*/meta.json"))
             if (res / "tiny" / "checkpoints").is_dir() else False, proc, log)
    os.kill(proc.pid, signal.SIGTERM)
    assert finish(proc) == 143, log.read_text()
    text = log.read_text()
    assert "SIGTERM: interrupted: 1 trial unfinished: 1 resumes from its checkpoint" in text, text
    assert re.search(r"\(at epoch [2-9]\)", text), text  # the next epoch, not the saved one
    assert "Traceback" not in text


def test_sigterm_ray_run_on_a_cluster_stops_trials_and_exits_143(tmp_path, ray_address):
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=40)  # still training at the signal
    res, log = tmp_path / "res", tmp_path / "run.log"
    proc = start(["run", str(study), "--results", str(res), "--address", ray_address,
                  "--variant", "plain"], log)
    ray_dir = res / "tiny" / "ray"
    wait_for("a checkpoint in Ray's storage",
             lambda: ray_dir.is_dir() and any(ray_dir.glob("*/*/checkpoint_*/meta.json")),
             proc, log)
    os.kill(proc.pid, signal.SIGTERM)
    assert finish(proc) == 143, log.read_text()
    text = log.read_text()
    assert "SIGTERM: interrupted: 1 trial unfinished: 1 resumes from its checkpoint" in text, text
    assert "resumes from" in text and "run the same command again to resume" in text, text
    assert "SIGTERM received" not in text and "PC: @" not in text, text  # no native dump
    assert "Traceback" not in text, text
    # the same command resumes it from the checkpoint
    proc = start(["run", str(study), "--results", str(res), "--address", ray_address,
                  "--variant", "plain"], tmp_path / "again.log")
    assert finish(proc, timeout=300) == 0, (tmp_path / "again.log").read_text()
    assert "resuming plain seed 0" in (tmp_path / "again.log").read_text()


def test_sigterm_while_the_embedded_ray_starts_leaves_no_process(tmp_path):
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=2)
    res, log = tmp_path / "res", tmp_path / "run.log"
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = start(["run", str(study), "--results", str(res), "--variant", "plain"], log, env=env)
    # inside ray.init: the local Ray's first processes are up, the node not ready yet
    wait_for("Ray's GCS server",
             lambda: any("gcs_server" in c for c in descendants(proc.pid).values()),
             proc, log, timeout=60)
    started = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    code = finish(proc)
    assert code == 143, log.read_text()
    deadline = time.monotonic() + 30
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(started), alive(started)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_a_second_sigterm_forces_the_process_out_at_once(tmp_path):
    """The mechanism, deterministically: the first SIGTERM becomes a SIGINT (here one that the
    process ignores, as a slow graceful stop would seem), the second ends it with 143."""
    code = """
import os, signal, time
from ablate.orchestrate.signals import terminate_as_interrupt
signal.signal(signal.SIGINT, lambda *a: print("graceful stop begins", flush=True))
with terminate_as_interrupt():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    print("still here", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    print("not forced out", flush=True)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 143, (r.returncode, r.stdout, r.stderr)
    assert r.stdout.split("\n")[:2] == ["graceful stop begins", "still here"], r.stdout
    assert "not forced out" not in r.stdout


def test_a_second_sigterm_during_a_ray_run_ends_it_and_leaves_no_process(tmp_path):
    """On a real run with an embedded Ray: SIGTERM, then another 0.3 s later (in the graceful
    stop or in Ray's shutdown after it, whichever it meets): the process ends at once with
    SIGTERM's status (143, or killed by signal 15, which a shell also reports as 143), and the
    embedded Ray's processes do not outlive it."""
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=40)  # still training at the signal
    res, log = tmp_path / "res", tmp_path / "run.log"
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = start(["run", str(study), "--results", str(res), "--variant", "plain"], log, env=env)
    ray_dir = res / "tiny" / "ray"
    wait_for("a checkpoint in Ray's storage",
             lambda: ray_dir.is_dir() and any(ray_dir.glob("*/*/checkpoint_*/meta.json")),
             proc, log)
    started = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert finish(proc, timeout=30) in (143, -signal.SIGTERM), log.read_text()
    assert time.monotonic() - t0 < 5, log.read_text()
    deadline = time.monotonic() + 30
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(started), alive(started)


def test_ctrl_c_during_a_ray_run_is_acknowledged_at_once(tmp_path, ray_address):
    """Issue 28 §2: Ctrl-C was acknowledged only when Tune's loop next logged (~10 s) while
    the live table kept ticking; now at once, then the same graceful stop (exit 130)."""
    study = write_tiny_study(tmp_path, seeds=(0,), epochs=40)  # still training at the signal
    res, log = tmp_path / "res", tmp_path / "run.log"
    proc = start(["run", str(study), "--results", str(res), "--address", ray_address,
                  "--variant", "plain"], log)
    wait_for("an epoch line", lambda: " epoch " in log.read_text(), proc, log)
    os.kill(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    said = "Ctrl-C: stopping the trials; each keeps its latest epoch checkpoint"
    while said not in log.read_text() and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    acknowledged = time.monotonic() - t0
    assert said in log.read_text(), log.read_text()
    assert acknowledged < 2.0, (acknowledged, log.read_text())
    assert finish(proc) == 130, log.read_text()
    assert "1 resumes from its checkpoint" in log.read_text(), log.read_text()
