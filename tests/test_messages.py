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


def test_latex_has_no_raw_greek_or_unicode_math():
    from typer.testing import CliRunner

    from ablate.cli.app import app

    r = CliRunner().invoke(app, ["table", str(SHIPPED), "--study", "locality", "--format",
                                 "latex", "--detail"])
    assert r.exit_code == 0, r.output
    body = "\n".join(ln for ln in r.output.splitlines() if not ln.startswith("%"))
    assert "$\\alpha$ = 3" in body
    for ch in "α±×Δσ≤≥−":
        assert ch not in body, ch


def test_validate_checks_the_data_path_run_would_refuse(tmp_path):
    from typer.testing import CliRunner

    from ablate.cli.app import app
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path)
    r = CliRunner().invoke(app, ["validate", str(study), "--set",
                                 'data.source="folder:no_such_photos"'])
    assert r.exit_code == 2, r.output
    assert "no_such_photos" in r.output
    assert CliRunner().invoke(app, ["validate", str(study)]).exit_code == 0


def test_cpus_per_trial_below_rays_resolution_is_refused_by_validation(tmp_path):
    from typer.testing import CliRunner

    from ablate.cli.app import app
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path)
    r = CliRunner().invoke(app, ["validate", str(study), "--set", "resources.cpus_per_trial=1e-9"])
    assert r.exit_code == 2 and "resources.cpus_per_trial" in r.output, r.output
    r = CliRunner().invoke(app, ["validate", str(study), "--set", "resources.gpus_per_trial=1e-6"])
    assert r.exit_code == 2 and "resources.gpus_per_trial" in r.output, r.output
    ok = CliRunner().invoke(app, ["validate", str(study), "--set", "resources.cpus_per_trial=0.5"])
    assert ok.exit_code == 0, ok.output


def test_a_set_with_a_line_break_is_refused_not_cut(tmp_path):
    from typer.testing import CliRunner

    from ablate.cli.app import app
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path)
    r = CliRunner().invoke(app, ["validate", str(study), "--set", "train.epochs=2\ntrain.lr=5"])
    assert r.exit_code == 2 and "one line only" in r.output, r.output


def test_a_refused_run_leaves_no_folder_behind(tmp_path):
    from typer.testing import CliRunner

    from ablate.cli.app import app
    from conftest import write_tiny_study

    study = write_tiny_study(tmp_path)
    res = tmp_path / "fresh" / "results"
    r = CliRunner().invoke(app, ["run", str(study), "--results", str(res), "--executor", "local",
                                 "--set", 'data.source="folder:no_such_photos"'])
    assert r.exit_code == 2 and "no_such_photos" in r.output, r.output
    assert not (tmp_path / "fresh").exists()  # neither the study folder nor its lock
    r = CliRunner().invoke(app, ["trial", str(study), "--variant", "plain", "--seed", "0",
                                 "--results", str(res), "--set",
                                 'data.source="folder:no_such_photos"'])
    assert r.exit_code == 2 and not (tmp_path / "fresh").exists(), r.output


def test_every_command_error_starts_with_error(tmp_path):
    """One prefix for every command's errors (issue 28 §7: "error:", "ablate table:" and
    none were all in use)."""
    from typer.testing import CliRunner

    from ablate.cli.app import app

    runner = CliRunner()
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nname = "x"\n[data]\nhr_size = 3\n')
    (tmp_path / "afile").write_text("x")
    cases = [["table", str(tmp_path / "nowhere")], ["report", str(tmp_path / "nowhere"),
             "--out", str(tmp_path / "o")], ["status", str(tmp_path / "nowhere")],
             ["validate", str(bad)], ["run", str(bad)], ["search", str(bad)],
             ["data", str(bad)]]
    for args in cases:
        r = runner.invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.startswith("error: "), (args, r.output)
