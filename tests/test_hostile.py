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


EVIL = "Evil <script>alert(1)</script> | x\r\n\\input{/etc/passwd}\x1b]0;pwned\x07\x1b[2J"


def _evil_results(tmp_path):
    """The shipped locality study with one variant's label made hostile, in the manifest and
    in its trial files."""
    import json
    import shutil
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    shipped = Path(__file__).resolve().parents[1] / "docs" / "results" / "locality"
    root = tmp_path / "res" / "locality"
    shutil.copytree(shipped, root)
    manifest = json.loads((root / "manifest.json").read_text())
    old = "2-D, α = 3"
    hit = [v for v in manifest["variants"] if v["label"] == old]
    assert hit
    hit[0]["label"] = EVIL
    (root / "manifest.json").write_text(json.dumps(manifest))
    for f in (root / "trials").glob("*.parquet"):
        t = pq.read_table(f)
        labels = [EVIL if x == old else x for x in t.column("label").to_pylist()]
        pq.write_table(t.set_column(t.schema.get_field_index("label"), "label",
                                    pa.array(labels, pa.string())), f)
    return root


def test_labels_cannot_inject_markup_commands_or_terminal_sequences(tmp_path):
    root = _evil_results(tmp_path)
    md = runner.invoke(app, ["table", str(root), "--format", "markdown", "--detail"])
    assert md.exit_code == 0, md.output
    assert "<script>" not in md.output and "&lt;script&gt;" in md.output
    rows = [ln for ln in md.output.splitlines() if "Evil" in ln]
    assert rows and all(ln.startswith("| ") and ln.endswith(" |") for ln in rows)
    assert all("\\| x" in ln for ln in rows)  # the label's | escaped: no extra column
    assert "\r" not in md.output and "\x1b" not in md.output and "\x07" not in md.output
    tex = runner.invoke(app, ["table", str(root), "--format", "latex", "--detail"])
    assert tex.exit_code == 0, tex.output
    assert "\r" not in tex.output and "\x1b" not in tex.output
    assert "\\input{" not in tex.output  # the backslash and braces escaped
    for line in tex.output.splitlines():  # a label never starts a line of TeX after a comment
        assert not line.startswith("\\input")
    txt = runner.invoke(app, ["table", str(root)])
    assert txt.exit_code == 0, txt.output
    assert "\x1b" not in txt.output and "\x07" not in txt.output and "\r" not in txt.output
    assert "Evil" in txt.output


def test_a_deeply_nested_manifest_and_a_fifo_trial_file_neither_crash_nor_hang(tmp_path):
    import os
    import subprocess
    import sys

    root = _evil_results(tmp_path)
    (root / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    fifo = root / "trials" / "ffffffffffff.parquet"
    os.mkfifo(fifo)
    os.mkfifo(root / "history" / "ffffffffffff.parquet")
    for args in (["table", str(root)], ["status", str(root)],
                 ["report", str(root), "--out", str(tmp_path / "rep")]):
        # a subprocess with a timeout: a hang fails the test instead of stopping the suite
        r = subprocess.run([sys.executable, "-m", "ablate.cli.app", *args], capture_output=True,
                           text=True, timeout=120)
        out = r.stdout + r.stderr
        assert "Traceback" not in out and "RecursionError:" not in out, (args, out)
        assert r.returncode in (0, 2), (args, r.returncode, out)
        named = out if args[0] != "report" else (tmp_path / "rep" / "index.html").read_text()
        assert "manifest.json: cannot be read" in named, (args, out)  # the problem is named
    r = subprocess.run([sys.executable, "-m", "ablate.cli.app", "table", str(root)],
                       capture_output=True, text=True, timeout=120)
    assert "ffffffffffff.parquet: not a regular file" in r.stdout + r.stderr


def test_a_copied_trial_file_and_impossible_rows_are_not_counted(tmp_path):
    import json
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    root = _evil_results(tmp_path)
    trials = sorted((root / "trials").glob("*.parquet"))
    before = runner.invoke(app, ["table", str(root), "--format", "json"])
    assert before.exit_code == 0, before.output
    shutil.copy(trials[0], root / "trials" / "aaaaaaaaaaaa.parquet")  # the same trial again
    t = pq.read_table(trials[1])
    bad = t.set_column(t.schema.get_field_index("seed"), "seed",
                       pa.array([-1] * t.num_rows, t.schema.field("seed").type))
    bad = bad.set_column(bad.schema.get_field_index("trial_id"), "trial_id",
                         pa.array(["bbbbbbbbbbbb"] * t.num_rows))
    pq.write_table(bad, root / "trials" / "bbbbbbbbbbbb.parquet")
    res = t.column("resolution").to_pylist()
    huge = t.set_column(t.schema.get_field_index("resolution"), "resolution",
                        pa.array([10**12] + res[1:], t.schema.field("resolution").type))
    huge = huge.set_column(huge.schema.get_field_index("trial_id"), "trial_id",
                           pa.array(["cccccccccccc"] * t.num_rows))
    pq.write_table(huge, root / "trials" / "cccccccccccc.parquet")
    after = runner.invoke(app, ["table", str(root), "--format", "json"])
    assert after.exit_code == 0, after.output
    # the same table: verdict counts "1/1", not "2/1"; the bad files skipped
    assert (json.loads(after.stdout)["studies"][0]["rows"]
            == json.loads(before.stdout)["studies"][0]["rows"])
    text = runner.invoke(app, ["table", str(root)]).output
    assert "repeats trial" in text and "seed that is not a whole number" in text, text
    assert "a resolution outside" in text, text


def test_nan_and_inf_metrics_are_named_in_a_note_not_dropped_silently(tmp_path):
    import math

    from synthetic_results import make_study

    for value in (math.nan, math.inf):
        res = tmp_path / str(value)

        def values(variant, grid, seed, r):
            return {"psnr": value} if (variant, seed, r) == ("per_batch", 1, 64) else None

        make_study(res, values=values)
        r = runner.invoke(app, ["table", str(res)])
        assert r.exit_code == 0, r.output
        assert "(n=2)" in r.output, r.output  # the mean is over the two finite seeds
        note = " ".join(r.output.split())
        assert (f"psnr is missing or not a finite number in 1 completed row(s) (per_batch seed 1 "
                f"@64: {value}): left out of the mean ± std") in note, r.output
