"""Write a file or a directory so that a reader sees the old version or the new one, never half.

    atomic_write(path, lambda tmp: pq.write_table(table, tmp))   # a file
    atomic_write(path, lambda tmp: shutil.copytree(src, tmp))     # a directory
    atomic_write_text(path, json.dumps(doc))

The content is written beside its final name, under ``.<name>.<pid>.tmp`` (so that two
processes never share a temporary name, and readers that glob ``*.parquet`` never see it),
then renamed into place: atomic on one filesystem. A directory that already exists is first
renamed aside and removed after the swap. Every writer of a study's files goes through here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


def temporary_name(path: Path) -> Path:
    """Where `atomic_write` puts `path`'s content before the rename."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path: str | Path, fill: Callable[[Path], object]) -> Path:
    """Let `fill(tmp)` write a file or a directory at `tmp`, then move it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    _remove(tmp)
    try:
        fill(tmp)
        if tmp.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
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
