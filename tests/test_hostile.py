"""A group-shared results directory treated as hostile (issue 27): what a planted file or link
must not make ablate do. Each test fails without its fix."""

from __future__ import annotations

from typer.testing import CliRunner

from ablate.cli.app import app
from conftest import write_tiny_study

runner = CliRunner()


def test_a_lock_planted_as_a_link_is_refused_not_followed(tmp_path):
    study = write_tiny_study(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's data\n")
    root = tmp_path / "res" / "tiny"
    root.mkdir(parents=True)
    (root / ".run.lock").symlink_to(victim)
    r = runner.invoke(app, ["run", str(study), "--results", str(tmp_path / "res"),
                            "--executor", "local", "--device", "cpu"])
    assert r.exit_code == 2, r.output
    assert ".run.lock is a symbolic link" in r.output and "not followed" in r.output
    assert victim.read_text() == "someone's data\n"  # not truncated, not written
    # status reads past it (a link is not a lock held by anyone)
    r = runner.invoke(app, ["status", str(tmp_path / "res")])
    assert victim.read_text() == "someone's data\n"
    assert "Traceback" not in r.output


def test_report_outputs_planted_as_links_are_replaced_not_written_through(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "docs" / "results" / "locality"
    out = tmp_path / "report"
    out.mkdir()
    victims = {}
    for name in ("index.html", "spectra.png"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("someone's file\n")
        (out / name).symlink_to(victim)
        victims[name] = victim
    r = runner.invoke(app, ["report", str(shipped), "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name, victim in victims.items():
        assert victim.read_text() == "someone's file\n", name  # not written through
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 100, name
