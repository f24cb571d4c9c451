"""The CLI's contract beyond each command's own tests: --version and the listed choices."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from ablate import __version__
from ablate.cli.app import app

runner = CliRunner()


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and re.fullmatch(rf"ablate {re.escape(__version__)}(\+g\w+(\.dirty)?)?\n",
                                             r.output), r.output


def test_choices_are_listed_in_help_and_checked():
    for cmd, option, choices in (("table", "--format", "text|markdown|csv|json|latex"),
                                 ("table", "--metric", "psnr|ssim|psnr_y"),
                                 ("report", "--metric", "psnr|ssim|psnr_y"),
                                 ("run", "--executor", "ray|local")):
        r = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "250"})
        assert r.exit_code == 0 and choices in r.output, (cmd, option, r.output)
    r = runner.invoke(app, ["run", "x.toml", "--executor", "slurm"])
    assert r.exit_code == 2 and "--executor" in r.output and "slurm" in r.output
