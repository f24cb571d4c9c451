"""A real multi-node Ray cluster on this machine, for the tests: a head and worker nodes, each
its own `ray start --block` process (in its own session, with its own --temp-dir and ports),
started and stopped by pid — never `ray stop`, which would stop every Ray on the machine.

    with LocalCluster(tmp) as c:
        c.start_head()                       # 1 CPU, custom resource {"head": 1}
        worker = c.add_worker()              # 1 CPU, custom resource {"worker": 1}
        c.env                                # what a driver needs: RAY_ADDRESS, the token
        c.node_ids()                         # node id → resources, from the GCS
        c.kill_raylet(worker)                # a node failure: its raylet, SIGKILL

Token authentication stays on: the cluster gets a token of its own (RAY_AUTH_TOKEN in every
node's and the driver's environment). Nodes register with this machine's IP: Ray rewrites
127.0.0.1 in `--address` to it (services.resolve_ip_for_localhost), so a loopback-only
multi-node cluster cannot be built with `ray start`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _ports() -> list[str]:
    return [f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"]


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process (from /proc)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        out[int(d)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd)
    return out


@dataclass
class Node:
    name: str
    proc: subprocess.Popen
    temp_dir: Path
    log: Path

    def descendants(self) -> dict[int, str]:
        procs, out, todo = _processes(), {}, [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child, (parent, cmd) in procs.items():
                if parent == pid and child not in out:
                    out[child] = cmd
                    todo.append(child)
        return out


class LocalCluster:
    def __init__(self, root: Path, *, extra_env: dict[str, str] | None = None):
        # unix socket paths must stay short: a temp dir of our own under /tmp
        self.root = Path(root)
        self.port = free_port()
        self.token = secrets.token_hex(32)
        self.nodes: list[Node] = []
        self.node_env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                             OMP_NUM_THREADS="1",
                             # a dead node is noticed in seconds, not the default ~30 s
                             RAY_health_check_period_ms="1000",
                             RAY_health_check_failure_threshold="3",
                             RAY_health_check_timeout_ms="1000",
                             **(extra_env or {}))
        self.ip = ""

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment of a driver joining this cluster."""
        return dict(self.node_env, RAY_ADDRESS=self.address)

    def _start(self, name: str, args: list[str], resources: dict) -> Node:
        tmp = self.root / name
        tmp.mkdir(parents=True, exist_ok=True)
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", "--num-cpus=1",
             "--num-gpus=0", "--object-store-memory=80000000", f"--temp-dir={tmp}",
             f"--resources={json.dumps(resources)}", *_ports(), *args],
            env=self.node_env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        node = Node(name, proc, tmp, log)
        self.nodes.append(node)
        return node

    def start_head(self, timeout: float = 120) -> Node:
        head = self._start("head", ["--head", f"--port={self.port}", "--include-dashboard=false",
                                    f"--dashboard-port={free_port()}",
                                    f"--ray-client-server-port={free_port()}"], {"head": 1})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the node IP Ray chose is in its log
            assert head.proc.poll() is None, head.log.read_text()[-3000:]
            for line in head.log.read_text().splitlines():
                if "Local node IP" in line:
                    self.ip = _strip_ansi(line.split("Local node IP")[-1]).strip(": ")
            if self.ip and any(r.get("head") for r in self.node_ids().values()):
                return head  # its GCS answers and its raylet has registered
            time.sleep(0.3)
        raise TimeoutError("the Ray head did not start:\n" + head.log.read_text()[-3000:])

    def add_worker(self, name: str = "worker", resources: dict | None = None,
                   timeout: float = 120, attempts: int = 2) -> Node:
        """A worker node joined to the head; a start that times out (a loaded machine: Ray
        gives a node a fixed time to come up) is tried again, as an operator would."""
        for attempt in range(attempts):
            node = self._start(f"{name}{attempt or ''}", [f"--address={self.address}"],
                               resources or {"worker": 1})
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and node.proc.poll() is None:
                if any(r.get("worker") for r in self.node_ids(alive=True).values()):
                    return node
                time.sleep(0.5)
        raise TimeoutError("the Ray worker did not join:\n" + node.log.read_text()[-3000:]
                           + "\nhead:\n" + self.nodes[0].log.read_text()[-3000:])

    def node_ids(self, alive: bool = True) -> dict[str, dict]:
        """node id → resources of the cluster's (alive) nodes, asked of the GCS by a driver
        in a subprocess (this test process may already be connected to another Ray)."""
        code = ("import json, ray; ray.init(logging_level='ERROR', log_to_driver=False); "
                "print('NODES ' + json.dumps({n['NodeID']: dict(n['Resources'], "
                "alive=n['Alive']) for n in ray.nodes()}))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True,
                             text=True, timeout=120)
        if out.returncode != 0:
            return {}
        found = [ln for ln in out.stdout.splitlines() if ln.startswith("NODES ")]
        if not found:
            return {}
        nodes = json.loads(found[-1][len("NODES "):])
        return {k: v for k, v in nodes.items() if v.pop("alive") or not alive}

    def raylet_pid(self, node: Node) -> int:
        pids = [pid for pid, cmd in node.descendants().items() if "/raylet/raylet " in cmd]
        assert len(pids) == 1, node.descendants()
        return pids[0]

    def kill_raylet(self, node: Node) -> int:
        pid = self.raylet_pid(node)
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """Every process of every node, by process group, then any straggler that names one
        of our temp dirs (re-parented daemons)."""
        for node in reversed(self.nodes):
            if node.proc.poll() is None:
                try:
                    os.killpg(node.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for node in reversed(self.nodes):
            try:  # a node whose raylet was killed can ignore SIGTERM: no use waiting long
                node.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(node.proc.pid, signal.SIGKILL)
                node.proc.wait()
        time.sleep(0.5)
        tags = [str(n.temp_dir) for n in self.nodes]
        for pid, (_, cmd) in _processes().items():
            if any(t in cmd for t in tags):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
