"""SIGTERM takes the Ctrl-C path: what SLURM, Kubernetes and `timeout` send to stop a job.

    with terminate_as_interrupt():      # the commands that train (cli/common.run_errors)
        ...                             # SIGTERM → SIGINT: Ray Tune stops its trials and
                                        # keeps their checkpoints; the local executor raises
                                        # KeyboardInterrupt; ablate says what resumes from where
    exit_code(130)                      # 143 when a SIGTERM was the reason

A second SIGTERM forces the process out at once (exit 143), as a second Ctrl-C skips Tune's
last checkpoint. `ray.init` installs SIGTERM handlers of its own (one that exits with status
15, one that kills the node and exits 1): `cluster.connect` keeps them out while ablate's is
installed (`ray_internals.keep_sigterm_handler`) and calls `reinstall()` after it.
"""

from __future__ import annotations

import os
import signal
import threading

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: the shell's status for a process ended by SIGTERM

_state = {"installed": False, "terminated": False}


def _on_sigterm(signum, frame) -> None:
    if _state["terminated"]:  # the second one: out now
        os._exit(SIGTERM_EXIT)
    _state["terminated"] = True
    signal.raise_signal(signal.SIGINT)  # whatever Ctrl-C does at this moment


def reinstall() -> None:
    """Put ablate's SIGTERM handler back (after `ray.init` replaced it), where installed."""
    if _state["installed"] and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


class terminate_as_interrupt:
    """Inside: SIGTERM behaves as Ctrl-C (main thread only; elsewhere it does nothing)."""

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._before = signal.signal(signal.SIGTERM, _on_sigterm)
            _state.update(installed=True, terminated=False)
        else:
            self._before = None
        return self

    def __exit__(self, *exc):
        if self._before is not None:
            signal.signal(signal.SIGTERM, self._before)
            _state["installed"] = False
        return False


def installed() -> bool:
    """Whether ablate's SIGTERM handler is in place (an ablate command that trains runs)."""
    return _state["installed"]


def terminated() -> bool:
    """Whether a SIGTERM arrived (since the last `terminate_as_interrupt` began)."""
    return _state["terminated"]


def exit_code(code: int) -> int:
    """`code`, or 143 in place of Ctrl-C's 130 when a SIGTERM stopped the command."""
    return SIGTERM_EXIT if code == 130 and _state["terminated"] else code
