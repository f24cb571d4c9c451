"""Shared fixtures: a tiny study (trains in seconds on this CPU) and one local Ray per session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TINY = """
[study]
name = "{name}"
seeds = {seeds}
baseline = "plain"

[data]
source = "bundled"
hr_size = 32
input_size = 16
eval_resolutions = [16, 32]
train_samples = 32
test_samples = 4

[model]
patch_size = 4
num_latents = 16
dim = 16
depth = 1
d_state = 4
expand = 2
mlp_dim = 32
heads = 1
head_dim = 8
feature_dim = 8
sigmas = [32, 8]

[train]
epochs = {epochs}
batch_size = 16
lr = 2e-3
warmup_epochs = 0

[resources]
cpus_per_trial = 1
gpus_per_trial = 0
max_failures = {max_failures}

[[variant]]
name = "plain"
label = "Plain"
jitter = "none"

[[variant]]
name = "multiscale"
label = "Multi-scale"
jitter = {{ placement = "per_batch", std = 0.01 }}
multiscale = {{ mode = "random_res", resolutions = [16, 24, 32] }}
{extra}
"""


def write_tiny_study(directory: Path, name: str = "tiny", seeds=(0, 1), epochs: int = 2,
                     max_failures: int = 1, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / f"{name}.toml"
    p.write_text(textwrap.dedent(TINY.format(name=name, seeds=list(seeds), epochs=epochs,
                                             max_failures=max_failures, extra=extra)))
    return p


@pytest.fixture
def tiny_study(tmp_path):
    return write_tiny_study(tmp_path)


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray for the whole test session (starting one costs seconds and ~1.6 GB)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    yield address
    ray.shutdown()

