"""One `ablate run` per study directory at a time.

The lock is an advisory `flock` on <study>/.run.lock (`StudyDir.lock`), whose content names the holder (pid,
host, start time). The kernel releases a flock when its process dies, however it dies, so a
lock left by a dead process (SIGKILL, power loss of a local disk) is simply taken over. On a
network filesystem without flock support (ENOLCK, EOPNOTSUPP) the run goes on without the
lock, with a warning: it cannot tell a second run from a lock it was not given.

The lock file is opened with O_NOFOLLOW: a symbolic link planted in its place (on a shared
results directory, pointing at someone's file) is refused, naming it, instead of being
followed and truncated.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

from ablate.results.layout import StudyDir


class StudyLocked(RuntimeError):
    pass


def _open(path: Path, flags: int, mode: int = 0o644) -> int:
    """os.open without following a link at `path` (StudyLocked naming it when one is there)."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as e:
        if path.is_symlink():  # ELOOP (Linux), EMLINK/EFTYPE elsewhere
            raise StudyLocked(f"{path} is a symbolic link (to {os.readlink(path)}), not ablate's "
                              "lock file: it is not followed; remove the link (and check who "
                              "planted it) before running this study") from None
        raise e


class StudyLock:
    def __init__(self, study_dir: StudyDir | Path):
        d = study_dir if isinstance(study_dir, StudyDir) else StudyDir(Path(study_dir))
        self.path = d.lock
        self._fd: int | None = None

    def is_held(self) -> bool:
        """Whether a process holds the lock now (checked without taking it; False where the
        filesystem has no flock: it cannot tell)."""
        if not self.path.exists() or self.path.is_symlink():  # a planted link: not a lock
            return False
        fd = _open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:  # held by a running `ablate run` / `ablate trial`
            return True
        except OSError:  # no flock on this filesystem
            return False
        finally:
            os.close(fd)

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "StudyLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: another process holds it
            os.close(fd)
            h = self.holder()
            who = (f"pid {h.get('pid')} on {h.get('host')}, started {h.get('started')}"
                   if h else "another process")
            raise StudyLocked(
                f"{self.path.parent} is being run by {who}; wait for it to finish or stop it "
                f"(Ctrl-C, or kill {h.get('pid', '<pid>')}) — two runs of one study would train "
                "the same trials twice") from None
        except OSError as e:  # this filesystem has no flock: go on, unprotected, and say so
            warnings.warn(f"cannot lock {self.path} ({e}); make sure no other `ablate run` of "
                          "this study is running", stacklevel=2)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
