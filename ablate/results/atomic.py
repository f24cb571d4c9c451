"""Write a file or a directory so that a reader sees the old version or the new one, never half.

    atomic_write(path, lambda tmp: pq.write_table(table, tmp))   # a file
    atomic_write(path, lambda tmp: shutil.copytree(src, tmp))     # a directory
    atomic_write_text(path, json.dumps(doc))

The content is written beside its final name, under ``.<name>.<pid>.tmp`` (so that two
processes never share a temporary name, and readers that glob ``*.parquet`` never see it),
then renamed into place: atomic on one filesystem. A directory that already exists is first
renamed aside and removed after the swap. Every writer of a study's files goes through here.

Durability: the content (every file of a directory) is fsynced before the rename that
publishes it, and the folder holding it after, so that a power loss leaves the old version or
the new one. A full disk (ENOSPC, EDQUOT) raises `DiskFull` naming the file, after the
temporary content is removed: nothing half-written stays behind.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable


class DiskFull(OSError):
    """No space left (or quota exceeded) while writing `path`."""

    def __init__(self, path: str | Path, cause: BaseException | None = None):
        self.path = Path(path)
        super().__init__(errno.ENOSPC, f"no space left on the device while writing {path}")

    def __reduce__(self):  # OSError pickles as (errno, strerror): rebuild from the path instead
        return (DiskFull, (str(self.path),))  # (Ray sends a worker's exception to the driver)


# how a full disk or quota reads in an error's text (pyarrow's IOError, a traceback's last line)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded", f"[Errno {errno.ENOSPC}]")


def is_disk_full(e: BaseException) -> bool:
    """An OSError (or shutil.Error, pyarrow's IOError) caused by a full disk or quota."""
    if isinstance(e, DiskFull):
        return True
    if not isinstance(e, OSError):
        return False
    return e.errno in (errno.ENOSPC, errno.EDQUOT) or names_disk_full(str(e))


def names_disk_full(text: str) -> bool:
    """An error's text (e.g. the last line of a Ray worker's traceback) says the disk is full."""
    return "DiskFull" in text or any(m in text for m in _DISK_FULL_TEXT)


def fsync_tree(p: Path) -> None:
    """fsync a file, or every file and folder of a tree."""
    if p.is_dir():
        for sub in p.rglob("*"):
            if sub.is_file():
                _fsync(sub)
        for sub in [p, *(d for d in p.rglob("*") if d.is_dir())]:
            _fsync_dir(sub)
    else:
        _fsync(p)


def _fsync(p: Path) -> None:
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(p: Path) -> None:
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems do not sync folders
        pass
    finally:
        os.close(fd)


def temporary_name(path: Path) -> Path:
    """Where `atomic_write` puts `path`'s content before the rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | Path, fill: Callable[[Path], object]) -> Path:
    """Let `fill(tmp)` write a file or a directory at `tmp`, then move it to `path`."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        fill(tmp)
        fsync_tree(tmp)
        if tmp.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:
        _remove(tmp)
        if is_disk_full(e) and not isinstance(e, DiskFull):
            raise DiskFull(path, e) from e
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a file or a directory tree into place atomically."""
    src = Path(src)
    if src.is_dir():
        return atomic_write(dst, lambda tmp: shutil.copytree(src, tmp))
    return atomic_write(dst, lambda tmp: shutil.copyfile(src, tmp))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink(missing_ok=True)
