"""ablate's version, and the code version every result row records."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from ablate import __version__


@functools.cache
def code_version() -> str:
    """ablate's version and, inside a git checkout, the commit (+dirty): "0.1.0+g1234abcd"."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=here,
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", ""
    if not sha:
        return __version__
    return f"{__version__}+g{sha}" + (".dirty" if dirty else "")
