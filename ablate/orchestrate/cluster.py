"""Where the trials run: an embedded local Ray or a cluster, and what each trial may ask of it.

    cluster = connect(address)              # join RAY_ADDRESS / --address, or start a local Ray
    print(dashboard_line(cluster))          # where, how many CPUs/GPUs, the dashboard (token)
    cpus, gpus = trial_resources(study.resources, cluster, note)

The embedded Ray listens on 127.0.0.1 only and keeps Ray's token authentication on (the
dashboard asks the browser for the token; `dashboard_line` says where it is). Connecting is
checked before anything is written: an address nothing answers fails in seconds with what to
do (`RunError`).
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import nullcontext
from dataclasses import dataclass

from ablate.orchestrate import signals
from ablate.orchestrate.preflight import RunError
from ablate.orchestrate.ray_internals import (TOKEN_LOGGER, agent_port, dashboard_installed,
                                              keep_sigterm_handler, loopback_only, token_auth_on)
from ablate.spec.config import ResourcesConfig


@dataclass
class Cluster:
    address: str  # "" for the embedded local Ray
    cpus: float
    gpus: float
    dashboard_url: str
    started_here: bool
    token_auth: bool = False  # the dashboard asks the browser for Ray's token


class _Hold(logging.Filter):
    """Keeps Ray's token-auth warning (logged during ray.init) out of the terminal: ablate
    says the same, and how to open the dashboard with it, in its own Ray line."""

    def __init__(self):
        super().__init__()
        self.held: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.held.append(record.getMessage())
        return False


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast on HOST:PORT that nothing answers (ray.init would wait much longer)."""
    if address in ("auto", "local") or address.startswith("ray://"):
        target = address[len("ray://"):] if address.startswith("ray://") else None
    else:
        target = address
    if not target:
        return
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise RunError(f"cannot reach a Ray cluster at {address} ({e}); start one with "
                       f"`ray start --head` there, check host and port, or drop --address to "
                       f"use an embedded local Ray") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> Cluster:
    """Join the cluster at `address` (or RAY_ADDRESS), or start an embedded local Ray sized to
    this machine with its dashboard on 127.0.0.1. Reuses a Ray already initialised here."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    hold = _Hold()
    token_log = logging.getLogger(TOKEN_LOGGER)
    token_log.addFilter(hold)
    try:
        with keep_sigterm_handler() if signals.installed() else nullcontext():
            started, url = _init(ray, address, num_cpus)
    finally:
        token_log.removeFilter(hold)
        signals.reinstall()  # ray.init replaced ablate's SIGTERM handler with its own
    res = ray.cluster_resources()
    return Cluster(address=address or "", cpus=res.get("CPU", 0.0), gpus=res.get("GPU", 0.0),
                   dashboard_url=url and (url if url.startswith("http") else f"http://{url}"),
                   started_here=started, token_auth=token_auth_on())


def _init(ray, address: str | None, num_cpus: int | None) -> tuple[bool, str]:
    started, url = False, ""
    if ray.is_initialized():  # e.g. a test session's Ray, or a notebook's
        current = ray.get_runtime_context().gcs_address
        if address and address not in ("auto", current) and not address.startswith("ray://"):
            raise RunError(f"this process is already connected to Ray at {current}, not "
                           f"{address}")
    else:
        if address:
            try:
                ctx = ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
                raise RunError(f"cannot connect to the Ray cluster at {address}: {e}") from None
        else:
            # worker stdout stays in Ray's logs (and the dashboard): trial errors reach the
            # user through Tune's error files, progress through ablate's own lines
            ctx = _init_loopback(ray, num_cpus)
            started = True
            signals.owns_processes()  # a forced exit takes this Ray's processes with it
        url = getattr(ctx, "dashboard_url", "") or ""
    return started, url


LOOPBACK = "127.0.0.1"


def _init_loopback(ray, num_cpus: int | None):
    """A new embedded local Ray whose every port (GCS, raylet, object manager, workers,
    dashboard and its agents, metrics) listens on 127.0.0.1 only (`ray_internals.loopback_only`
    says how). `address="local"`: always a new instance, never a `ray start` cluster found on
    this machine. The dashboard where its packages are installed (ray[default]); a minimal Ray
    (e.g. the one carried to a bare GPU node, docs/gpu.md) starts without it, as Ray's own
    default does, instead of refusing to start ("Cannot include dashboard with missing
    packages")."""
    dashboard = True if dashboard_installed() else None  # None: Ray's default
    # a free port for the dashboard agent, not Ray's fixed 52365: two studies on one machine
    # each start a Ray of their own (ray_internals.agent_port)
    with loopback_only(), agent_port(free_port(LOOPBACK)):
        return ray.init(address="local", num_cpus=num_cpus, _node_ip_address=LOOPBACK,
                        include_dashboard=dashboard, dashboard_host=LOOPBACK,
                        logging_level="WARNING", log_to_driver=False)


def free_port(host: str) -> int:
    """A TCP port free on `host` now (the kernel's pick, from its ephemeral range: outside the
    ranges Ray gives its workers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def dashboard_line(cluster: Cluster) -> str:
    """ablate's Ray line: where the trials run, and how to open the dashboard (with the token,
    when Ray asks the browser for one)."""
    where = f"cluster {cluster.address}" if cluster.address else "embedded local Ray"
    line = f"Ray: {where}, {cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs"
    if not cluster.dashboard_url:
        return line
    line += f"; dashboard {cluster.dashboard_url}"
    if cluster.token_auth:
        line += (" (Ray token auth is on: the browser asks for the token once; paste what "
                 "`ray get-auth-token` prints, the contents of ~/.ray/auth_token; "
                 "RAY_AUTH_MODE=disabled starts Ray without)")
    return line


def trial_resources(res: ResourcesConfig, cluster: Cluster, note) -> tuple[float, float]:
    """(cpus, gpus) per trial. A GPU request on a cluster without GPUs falls back to the CPU
    with a warning (never PENDING forever); a CPU request larger than the cluster is an error."""
    cpus = res.cpus_per_trial
    if cpus > cluster.cpus:
        raise RunError(f"resources.cpus_per_trial = {cpus:g} but the cluster has only "
                       f"{cluster.cpus:g} CPUs: no trial could ever start; lower it "
                       f"(--set resources.cpus_per_trial={max(1, int(cluster.cpus))})")
    gpus = res.gpus_per_trial
    if gpus == "auto":
        gpus = 0.25 if cluster.gpus > 0 else 0.0
    gpus = float(gpus)
    if gpus > 0 and cluster.gpus == 0:
        note(f"warning: resources.gpus_per_trial = {gpus:g} but the cluster has no GPU; "
             "running the trials on CPU instead")
        gpus = 0.0
    elif gpus > 1 and not gpus.is_integer():
        raise RunError(f"resources.gpus_per_trial = {gpus:g}: above 1 it must be a whole number")
    elif gpus > cluster.gpus:
        raise RunError(f"resources.gpus_per_trial = {gpus:g} but the cluster has "
                       f"{cluster.gpus:g} GPUs")
    return cpus, gpus
