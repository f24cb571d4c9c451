"""Ray's private API that ablate uses (ablate/orchestrate/ray_internals.py), checked directly:
when a Ray upgrade moves or changes one of these, this file fails and names it, instead of a
study run misbehaving quietly (a dashboard without token line, an actor named ImplicitFunc,
an embedded Ray listening on every interface)."""

from __future__ import annotations

import importlib
import inspect
import logging

from ray import tune

from ablate.orchestrate import ray_internals


def test_wrap_function_makes_a_tune_trainable_class_of_a_function():
    from ray.tune.trainable.function_trainable import wrap_function

    def fn(config):
        pass

    cls = ray_internals.wrap_function(fn)
    assert isinstance(cls, type) and issubclass(cls, tune.Trainable)
    assert wrap_function is not None  # the import path itself is what is checked


def test_loopback_only_turns_ray_clusters_off_and_back():
    from ray._private import ray_constants

    assert isinstance(ray_constants.ENABLE_RAY_CLUSTER, bool)
    before = ray_constants.ENABLE_RAY_CLUSTER
    with ray_internals.loopback_only():
        assert ray_constants.ENABLE_RAY_CLUSTER is False
        import os

        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
    assert ray_constants.ENABLE_RAY_CLUSTER == before
    # the environment variable of the processes Ray starts, and the place Ray reads the flag
    # when it resolves 127.0.0.1 to the machine's address
    assert ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR == "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    from ray._private import services

    assert "if not ray_constants.ENABLE_RAY_CLUSTER" in inspect.getsource(services)


def test_dashboard_dependency_check_answers():
    from ray._private.utils import get_dashboard_dependency_error

    # the test environment installs ray[default]: the dashboard's packages are here
    assert get_dashboard_dependency_error() is None
    assert ray_internals.dashboard_installed() is True


def test_token_auth_mode_is_readable_without_a_fallback():
    from ray._raylet import AuthenticationMode, get_authentication_mode

    assert hasattr(AuthenticationMode, "TOKEN")
    assert isinstance(ray_internals.token_auth_on(), bool)
    assert (get_authentication_mode() == AuthenticationMode.TOKEN) == ray_internals.token_auth_on()


def test_the_token_warning_logger_exists_under_its_name():
    module = importlib.import_module(ray_internals.TOKEN_LOGGER)
    assert module.__name__ == ray_internals.TOKEN_LOGGER
    # the module logs through a logger of its own name (what cluster._Hold filters)
    assert any(isinstance(v, logging.Logger) and v.name == ray_internals.TOKEN_LOGGER
               for v in vars(module).values())


def test_ray_init_installs_its_sigterm_handlers_through_one_function():
    """keep_sigterm_handler replaces `ray._private.utils.set_sigterm_handler`; it works only as
    long as ray.init (worker.py) and the node (node.py) install theirs through it."""
    from ray._private import node, utils, worker

    assert callable(utils.set_sigterm_handler)
    for module in (worker, node):
        assert "ray._private.utils.set_sigterm_handler(" in inspect.getsource(module), module
    with ray_internals.keep_sigterm_handler():
        assert utils.set_sigterm_handler(lambda s, f: None) is None
        assert utils.set_sigterm_handler is not ray_internals  # patched, restored below
    import signal

    before = signal.getsignal(signal.SIGTERM)
    try:
        def mine(s, f):
            pass

        utils.set_sigterm_handler(mine)  # restored: the real one again
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


def test_agent_port_reaches_the_params_ray_init_builds():
    from ray._private import parameter, worker

    assert "ray._private.parameter.RayParams(" in inspect.getsource(worker.init)
    assert parameter.RayParams().dashboard_agent_listen_port == 52365  # Ray's fixed default
    with ray_internals.agent_port(40123):
        assert parameter.RayParams().dashboard_agent_listen_port == 40123
        assert parameter.RayParams(dashboard_agent_listen_port=5).dashboard_agent_listen_port == 5
    assert parameter.RayParams().dashboard_agent_listen_port == 52365
