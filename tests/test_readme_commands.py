"""The README's cheap command lines, run (issue 28 §3: blocks that had gone stale — the
quickstart's `ablate data` output, a `load_results(DIR).history()` that returned a list)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.results.read import load_results

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def test_the_quickstart_data_block_is_what_ablate_data_prints(monkeypatch):
    monkeypatch.chdir(ROOT)
    r = runner.invoke(app, ["data", "studies/quickstart.toml"])
    assert r.exit_code == 0, r.output
    block = re.search(r"```\n(quickstart \(studies/quickstart.toml\)\n.*?)```", README, re.S)
    assert block, "the README has no quickstart `ablate data` block"
    assert block.group(1) == r.stdout, r.stdout


def test_the_results_in_python_snippets_run():
    s = load_results(ROOT / "docs" / "results" / "locality")[0]  # as the README writes it
    assert {"trial_id", "epoch", "loss"} <= set(s.history().columns)
    assert len(s.spectra()) and s.samples(s.columns()["trial_id"][0]) is not None
    assert "`s = load_results(DIR)[0]`" in README


def test_the_readme_table_and_report_commands_on_shipped_results(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    commands = re.findall(r"(?m)^ablate (table docs/results[^\n#]*|report docs/results[^\n#]*)",
                          README)
    assert commands, "no `ablate table docs/results …` line in the README"
    for c in commands:
        args = c.split()
        if args[0] == "report":
            args[args.index("--out") + 1] = str(tmp_path / "report")
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (c, r.output)


def test_every_shipped_study_validates():
    for study in sorted((ROOT / "studies").glob("*.toml")):
        r = runner.invoke(app, ["validate", str(study)])
        assert r.exit_code == 0, (study, r.output)
