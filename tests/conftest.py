"""Shared fixtures: a tiny study (studies/smoke.toml: trains in seconds on this CPU) and one
local Ray per session."""

from __future__ import annotations

import gc
import logging
import re
import textwrap
from pathlib import Path

import pytest

# The test tiers. `make test` runs everything; `make test-fast` (-m "not integration", well
# under a minute on 2 cores) leaves out these files: each starts Ray, subprocesses or a
# cluster, kills processes, or trains and reports whole studies (measured with
# `pytest --durations=0`: 10-100 s per file on 2 cores, the rest together ~40 s).
INTEGRATION_FILES = {
    "test_run.py", "test_cluster.py", "test_gpu_script.py", "test_sigkill.py", "test_search.py",
    "test_exposure.py", "test_checkpoint_safety.py", "test_faults.py", "test_tracking.py",
    "test_report.py", "test_sigterm.py", "test_changes.py", "test_readme_commands.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in INTEGRATION_FILES:
            item.add_marker(pytest.mark.integration)


# the tiny study: the shipped smoke study (trains in seconds on this CPU) with a few keys set
SMOKE = Path(__file__).resolve().parents[1] / "studies" / "smoke.toml"


def write_tiny_study(directory: Path, name: str = "tiny", seeds=(0, 1), epochs: int = 2,
                     max_failures: int = 1, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    p = directory / f"{name}.toml"
    text = SMOKE.read_text()
    for key, value in (("name", f'"{name}"'), ("seeds", list(seeds)), ("epochs", epochs),
                       ("max_failures", max_failures)):  # the first `name` is the study's
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text, count=1)
        assert n == 1, key
    p.write_text(text + textwrap.dedent(extra))
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



class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(self.format(record))


@pytest.fixture
def ray_said():
    """ray_said() -> what Ray's and Tune's loggers passed on to the terminal so far in the test
    (outside click's captured output; after a collection, as Ray logs "Unhandled error" when
    a dropped result held a worker's exception)."""
    records = _Records()
    logging.getLogger("ray").addHandler(records)

    def said() -> list[str]:
        gc.collect()
        return records.messages

    yield said
    logging.getLogger("ray").removeHandler(records)
