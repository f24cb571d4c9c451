"""Checks before any trial starts, so that bad input exits 2 instead of failing every trial.

Validation (`ablate validate`) checks the spec alone; these check the machine that runs it:
the data paths the trials will read and the device asked for.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path

from ablate.results.layout import LOCK
from ablate.spec.config import TrialConfig
from ablate.spec.source import resolved_data


class RunError(RuntimeError):
    """Bad input or an environment problem found before any trial ran (exit 2)."""


@contextmanager
def refused_leaves_nothing(root: Path):
    """Around a command's checks and its study lock: a command refused with RunError before it
    wrote anything leaves the results folder as it found it — the folders it made for the study
    and the lock file it created are removed again (a folder that holds anything else stays)."""
    root = Path(root)
    made = [p for p in (root, *root.parents) if not p.exists()]  # deepest first
    try:
        yield
    except RunError:
        if made:
            lock = root / LOCK
            if lock.is_file() and not lock.is_symlink() and lock.stat().st_size == 0:
                lock.unlink(missing_ok=True)
            for p in made:
                try:
                    p.rmdir()  # only when empty
                except OSError:
                    break
        raise


def check_results(root: Path, option: str = "--results") -> None:
    """The study folder `root` can be created and written (RunError naming `option` otherwise);
    a probe file is created and removed."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except (FileExistsError, NotADirectoryError):
        raise RunError(f"{option}: {root} (or a folder above it) is a file, not a folder; give "
                       "a folder") from None
    except OSError as e:
        raise RunError(f"{option}: cannot write to {root} ({e.strerror or e}); give a folder "
                       "this user can write to") from None


def disk_full_message(e: OSError) -> str:
    where = f" while writing {e.path}" if getattr(e, "path", None) else ""
    return (f"no space left on the device{where}. Finished trials are kept and nothing is "
            "half-written; free some space (or use --results on another disk) and run the "
            "same command again: interrupted trials resume from their checkpoints")


def check_device(device: str) -> None:
    from ablate.train.trial import TrialFailed, resolve_device  # torch (~1 s): when asked

    try:
        resolve_device(device)
    except TrialFailed as e:
        raise RunError(str(e)) from None
    except RuntimeError:
        raise RunError(f"--device {device!r}: expected cpu, cuda, cuda:N or auto") from None


def check_data(trials: list[TrialConfig]) -> None:
    """Every folder:/cifar10: PATH the trials read exists (resolved as the trials will)."""
    seen = set()
    for cfg in trials:
        src = resolved_data(cfg).parsed_source
        if src in seen or src.kind == "bundled":
            continue
        seen.add(src)
        if not Path(src.path).is_dir():
            where = "" if cfg.data.source == str(src) else f", data.source = {cfg.data.source!r}" \
                    ": relative paths resolve against the study file's folder"
            hint = ("put cifar-10-batches-py there (no download at run time)"
                    if src.kind == "cifar10" else "give a folder of images")
            raise RunError(f"data path {src.path} does not exist or is not a folder (variant "
                           f"{cfg.variant!r}{where}); {hint}")
