"""`--help` shows what it says (issue 28 §4): square brackets are text, not rich markup that
ate them ("Search the study's  space"), the install hints name the extras, and the commands
that train show examples and every exit status."""

from __future__ import annotations

from typer.testing import CliRunner

from ablate.cli.app import app

runner = CliRunner()


def help_of(*cmd: str) -> str:
    r = runner.invoke(app, [*cmd, "--help"], terminal_width=80)
    assert r.exit_code == 0, r.output
    return r.output


def test_brackets_and_install_hints_survive_in_help():
    assert "Search the study's [search] space" in help_of("search")
    run = " ".join(help_of("run").split())
    assert "pip install 'ablate[mlflow]'" in run and "pip install 'ablate[wandb]'" in run


def test_training_commands_show_examples_and_every_exit_status():
    for cmd in ("run", "search", "trial"):
        text = " ".join(help_of(cmd).split())
        assert "ablate " + cmd in text.split("Example", 1)[-1], cmd
        assert "130" in text and "143" in text, cmd


def test_help_fits_80_columns():
    for cmd in ("run", "search", "trial", "table", "report", "status", "plan", "validate",
                "data"):
        wide = [ln for ln in help_of(cmd).splitlines() if len(ln) > 80]
        assert not wide, (cmd, wide)


def test_options_name_what_they_take():
    """Metavars without noise (issue 28 §4): every option that takes a value names it (DIR,
    ADDRESS, N, …) or lists its choices, never a bare type such as <str> or <int range>."""
    import re

    for cmd in ("run", "search", "trial", "table", "report", "status", "plan", "validate",
                "data"):
        options = [ln for ln in help_of(cmd).split("Options:")[-1].splitlines()
                   if ln.lstrip().startswith("--")]
        noisy = [ln for ln in options if re.search(r"<(str|int|float)( range)?>", ln)]
        assert not noisy, (cmd, noisy)
