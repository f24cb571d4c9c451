"""SIGTERM takes the Ctrl-C path: what SLURM, Kubernetes and `timeout` send to stop a job.

    with terminate_as_interrupt():      # the commands that train (cli/common.run_errors)
        ...                             # SIGTERM → SIGINT: Ray Tune stops its trials and
                                        # keeps their checkpoints; the local executor raises
                                        # KeyboardInterrupt; ablate says what resumes from where
    exit_code(130)                      # 143 when a SIGTERM was the reason

A second SIGTERM forces the process out at once (exit 143), as a second Ctrl-C skips Tune's
last checkpoint, and takes the processes it started with it: an embedded Ray's (GCS, raylet,
workers, agents; they run in sessions of their own, so a process group does not hold them)
would otherwise outlive it, since `os._exit` skips Ray's atexit shutdown. After the command,
while Ray shuts down, a SIGTERM does the same where the process started a Ray
(`owns_processes`) and nothing else handled SIGTERM before. The processes are found through
/proc (Linux: the clusters SLURM and Kubernetes run); elsewhere only the process itself ends. `ray.init` installs SIGTERM handlers of its own (one that exits with status
15, one that kills the node and exits 1): `cluster.connect` keeps them out while ablate's is
installed (`ray_internals.keep_sigterm_handler`) and calls `reinstall()` after it.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

SIGTERM_EXIT = 128 + signal.SIGTERM  # 143: the shell's status for a process ended by SIGTERM

_state = {"installed": False, "terminated": False, "owns": False}


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (by parent links in /proc; [] where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _force_out(*_args) -> None:
    """SIGKILL every process this one started (all found first, then killed: a child killed
    first would hand its own to init), then exit 143 at once."""
    for pid in descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    os._exit(SIGTERM_EXIT)


def _on_sigterm(signum, frame) -> None:
    if _state["terminated"]:  # the second one: out now
        _force_out()
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
            after = _force_out if _state["owns"] and self._before is signal.SIG_DFL \
                else self._before  # Ray's shutdown to come: a SIGTERM then takes its processes
            signal.signal(signal.SIGTERM, after)
            _state["installed"] = False
        return False


def owns_processes() -> None:
    """This process started processes that must not outlive it (an embedded Ray)."""
    _state["owns"] = True


def installed() -> bool:
    """Whether ablate's SIGTERM handler is in place (an ablate command that trains runs)."""
    return _state["installed"]


def terminated() -> bool:
    """Whether a SIGTERM arrived (since the last `terminate_as_interrupt` began)."""
    return _state["terminated"]


def exit_code(code: int) -> int:
    """`code`, or 143 in place of Ctrl-C's 130 when a SIGTERM stopped the command."""
    return SIGTERM_EXIT if code == 130 and _state["terminated"] else code
