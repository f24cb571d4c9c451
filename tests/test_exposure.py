"""The embedded local Ray that `ablate run` starts listens on the loopback interface only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from conftest import write_tiny_study

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                stat = open(f"/proc/{p}/stat").read()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(p))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def listening_sockets(pids: list[int]) -> list[tuple[str, int, str]]:
    """(address, port, process name) of every TCP socket in LISTEN state held by `pids`."""
    owner: dict[str, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owner[target[8:-1]] = pid
    out = []
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in owner:  # 0A: LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            try:
                name = open(f"/proc/{owner[inode]}/comm").read().strip()
            except OSError:
                name = "?"
            out.append((socket.inet_ntop(family, raw), int(hex_port, 16), name))
    return out


def test_embedded_ray_binds_every_listening_port_to_loopback(tmp_path):
    study = write_tiny_study(tmp_path, name="ports", seeds=(0,), epochs=50)
    out = tmp_path / "res"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log = tmp_path / "run.log"
    proc = subprocess.Popen([sys.executable, "-m", "ablate.cli.app", "run", str(study),
                             "--results", str(out), "--max-concurrent", "1"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    started: list[int] = []
    try:
        # once a trial has checkpointed, every Ray process (GCS, raylet, dashboard and its
        # agents, a worker) is up
        deadline = time.monotonic() + 180
        while not list((out / "ports").glob("ray/*/*/checkpoint_*/meta.json")):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        started = descendants(proc.pid)
        sockets = listening_sockets(started)
        names = {n for _, _, n in sockets}
        assert {"gcs_server", "raylet"} <= names, sockets  # the listing does see Ray's ports
        exposed = [s for s in sockets if s[0] not in LOOPBACK]
        assert not exposed, f"listening beyond 127.0.0.1: {exposed}"
        assert "dashboard http://127.0.0.1:" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in started[1:]:  # Ray processes this test started, should any outlive the run
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
