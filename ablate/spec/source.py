"""`data.source` as a typed value: parsed once, here, for every reader.

    src = DataSource.parse("folder:imgs")       # DataSource(kind="folder", path="imgs")
    src.resolved("/studies")                    # folder:/studies/imgs (absolute)
    str(src)                                    # "folder:imgs", the string the spec holds

The spec keeps the string as written (the trial id hashes it); `DataConfig.parsed_source`
and `resolved_data(trial)` give the typed value.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ablate.spec.config import DataConfig, TrialConfig

SourceKind = Literal["bundled", "folder", "cifar10"]
BUNDLED_PRESCALE = 1.5  # what prescale = "auto" means for bundled (see DataConfig.prescale)
EXPECTED = 'expected "bundled", "folder:PATH" or "cifar10:PATH"'


@dataclass(frozen=True)
class DataSource:
    kind: SourceKind
    path: str = ""  # folder: and cifar10: only, as written (relative to the study file's
    #   folder unless absolute), or absolute once `resolved`

    @classmethod
    def parse(cls, text: str) -> "DataSource":
        """Raises ValueError saying what is expected."""
        return _parse(text)

    def resolved(self, base_dir: str | Path = "") -> "DataSource":
        """The path made absolute: `~` expanded, a relative path joined to `base_dir`."""
        if self.kind == "bundled":
            return self
        p = Path(self.path).expanduser()
        if not p.is_absolute() and base_dir:
            p = Path(base_dir) / p
        return DataSource(self.kind, str(p))

    def __str__(self) -> str:
        return self.kind if self.kind == "bundled" else f"{self.kind}:{self.path}"


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> DataSource:
    if text == "bundled":
        return DataSource("bundled")
    kind, sep, path = str(text).partition(":")
    if kind in ("folder", "cifar10") and sep and path:
        return DataSource(kind, path)  # type: ignore[arg-type]
    raise ValueError(f"{EXPECTED}, got {text!r}")


def resolve_prescale(source: "str | DataSource", prescale: float | str) -> float:
    """`DataConfig.prescale` as a number: "auto" is BUNDLED_PRESCALE for bundled, else 1. Part
    of the trial id (spec/expand.py resolves it), so it lives here, beside the source."""
    if prescale == "auto":
        return BUNDLED_PRESCALE if str(source) == "bundled" else 1.0
    return float(prescale)


def resolved_data(trial: "TrialConfig") -> "DataConfig":
    """The trial's data config with a relative folder:/cifar10: PATH made absolute against the
    study file's folder (the id keeps the path as written)."""
    src = trial.data.parsed_source
    if src.kind == "bundled":
        return trial.data
    return dataclasses.replace(trial.data, source=str(src.resolved(trial.spec_dir)))
