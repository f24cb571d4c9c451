"""What ablate says when a run stops counts what the files hold (issue 28 §2)."""

from __future__ import annotations

import shutil
from pathlib import Path

from ablate.cli.run_cmds import interrupted_message

SHIPPED = Path(__file__).resolve().parents[1] / "docs" / "results"


def test_stopped_between_trials_says_so_not_before_any_trial(tmp_path):
    shutil.copytree(SHIPPED / "locality", tmp_path / "locality")
    msg = interrupted_message(str(tmp_path), "locality", None)
    assert msg.startswith("interrupted between trials: none was in progress, 5 of the study's "
                          "trials are completed"), msg
    assert "before any trial started" in interrupted_message(str(tmp_path), "nothing", None)
