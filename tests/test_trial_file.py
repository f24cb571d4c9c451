"""One rule for "completed": a trial file that does not read as a whole is run again, and
`ablate status` / `ablate table` say it was unreadable (ablate/results/trial_file.py)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
from typer.testing import CliRunner

from ablate.cli.app import app
from ablate.orchestrate.study_files import completed_ids
from ablate.results.layout import StudyDir

from conftest import write_tiny_study

runner = CliRunner()


def damage_column(path, column: str) -> None:
    """Overwrite the data pages of one column chunk; the other columns still read."""
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = next(meta.column(i) for i in range(meta.num_columns)
                 if meta.column(i).path_in_schema == column)
    raw = bytearray(path.read_bytes())
    start = chunk.data_page_offset
    raw[start:start + chunk.total_compressed_size] = b"\xff" * chunk.total_compressed_size
    path.write_bytes(bytes(raw))


def test_trial_whose_status_reads_but_file_does_not_is_rerun_and_reported(tmp_path):
    study = write_tiny_study(tmp_path, name="half", seeds=(0,), epochs=1)
    out = tmp_path / "res"
    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
    assert r.exit_code == 0, r.output
    d = StudyDir(out / "half")
    files = sorted(d.trials_dir.glob("*.parquet"))
    damaged = files[0]
    damage_column(damaged, "psnr")
    assert set(pq.read_table(damaged, columns=["status"]).column("status").to_pylist()) == {"completed"}

    assert completed_ids(d) == {files[1].stem}  # not skipped by the next run
    r = runner.invoke(app, ["status", str(d.root)])
    assert r.exit_code == 0 and "1/2 completed" in r.output and "unreadable" in r.output, r.output
    assert damaged.stem in r.output
    r = runner.invoke(app, ["table", str(d.root)])
    assert r.exit_code == 0 and "1 unreadable trial file(s) skipped" in r.output, r.output
    assert "next `ablate run` runs them again" in r.output

    r = runner.invoke(app, ["run", str(study), "--results", str(out), "--executor", "local"])
    assert r.exit_code == 0, r.output
    assert "1 already completed, 1 to run" in r.output
    assert set(pd.read_parquet(damaged)["status"]) == {"completed"}  # rewritten, whole
    assert completed_ids(d) == {f.stem for f in files}
