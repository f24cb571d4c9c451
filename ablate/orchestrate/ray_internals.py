"""Every use of Ray's private API, in one place (Ray 2.60); `tests/test_ray_internals.py`
fails loudly when a Ray upgrade moves or changes one of them.

- `wrap_function` (ray.tune.trainable.function_trainable): the class Tune makes of a function
  trainable. ablate subclasses it to name each trial's actor (worker.trial_actor): Tune's
  public API names every actor `ImplicitFunc`.
- `loopback_only()` (ray._private.ray_constants.ENABLE_RAY_CLUSTER): an embedded Ray whose
  every port listens on 127.0.0.1 (cluster.py explains why nothing public does it).
- `dashboard_installed()` (ray._private.utils.get_dashboard_dependency_error): whether
  ray[default]'s dashboard packages are here; a minimal Ray starts without a dashboard.
- `token_auth_on()` (ray._raylet.get_authentication_mode): whether this process's Ray uses
  token authentication (the dashboard then asks the browser for the token).
- `TOKEN_LOGGER`: the logger of Ray's token-auth warning during `ray.init`.
- `agent_port(port)` (ray._private.parameter.RayParams): the port of the dashboard agent of a
  Ray started by `ray.init`. Ray fixes it at 52365 and `ray.init` has no argument for it, so
  a second study started on the same machine (an embedded Ray each) met a port taken: its
  agent's HTTP service off, or, started at the same moment, a node start that timed out.
- `keep_sigterm_handler()` (ray._private.utils.set_sigterm_handler): `ray.init` installs two
  SIGTERM handlers of its own (exit 15 at once; kill the node's processes, exit 1); while an
  ablate command runs, SIGTERM must take the Ctrl-C path even in the middle of `ray.init`
  (orchestrate/signals.py), so they are not installed then. The node's processes are still
  killed at exit, by the atexit handler Ray registers beside them.

Imports Ray when called, not when imported.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

TOKEN_LOGGER = "ray._private.authentication.authentication_token_setup"


def wrap_function(trainable):
    """Tune's trainable class for the function `trainable`."""
    from ray.tune.trainable.function_trainable import wrap_function as wrap

    return wrap(trainable)


@contextmanager
def loopback_only():
    """Inside: a Ray started here keeps every port on the node IP given (127.0.0.1).

    Ray's gRPC servers listen on all interfaces unless the node IP is the loopback address, and
    `ray.init(_node_ip_address="127.0.0.1")` alone is replaced by the machine's address
    (`services.resolve_ip_for_localhost`) unless "Ray clusters" are disabled, which is what
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 does (read by `ray_constants` at import: set here for
    the processes Ray starts, and on the imported module for this one)."""
    from ray._private import ray_constants

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def agent_port(port: int):
    """Inside: a Ray started here by `ray.init` gives its dashboard agent `port` (Ray's
    default: the fixed 52365). `ray.init` builds its node's `RayParams` by attribute lookup on
    `ray._private.parameter`, so a subclass there that fills the port in is what it uses."""
    from ray._private import parameter

    original = parameter.RayParams

    class _RayParams(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("dashboard_agent_listen_port", port)
            super().__init__(*args, **kwargs)

    parameter.RayParams = _RayParams
    try:
        yield
    finally:
        parameter.RayParams = original


@contextmanager
def keep_sigterm_handler():
    """Inside: `ray.init` leaves the process's SIGTERM handler as it is."""
    from ray._private import utils

    before = utils.set_sigterm_handler
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = before


def dashboard_installed() -> bool:
    """Whether Ray's dashboard can start here (ray[default]'s packages import)."""
    from ray._private.utils import get_dashboard_dependency_error

    return get_dashboard_dependency_error() is None


def token_auth_on() -> bool:
    """Whether this process's Ray uses token authentication (RAY_AUTH_MODE=token, which a new
    local Ray turns on by default unless RAY_AUTH_MODE is set)."""
    try:
        from ray._raylet import AuthenticationMode, get_authentication_mode
    except ImportError:  # a Ray without it: say what the environment says
        return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    return get_authentication_mode() == AuthenticationMode.TOKEN
