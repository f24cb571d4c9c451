"""Where `ablate run` runs a study's trials (`--executor`)."""

from __future__ import annotations

from enum import Enum


class Executor(str, Enum):
    ray = "ray"  # Ray Tune: an embedded local Ray, or a cluster (--address)
    local = "local"  # this process, one trial after another, no Ray
