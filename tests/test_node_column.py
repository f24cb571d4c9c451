"""The `node` column: written for every trial, and read as "" from files that predate it."""

from __future__ import annotations

import platform

import pyarrow as pa
import pyarrow.parquet as pq

from ablate.results.read import load_results
from ablate.results.rows import failure_rows
from ablate.spec import expand, load_study

from conftest import write_tiny_study


def test_files_without_the_node_column_still_read_with_it_empty(tmp_path):
    cfg = expand(load_study(write_tiny_study(tmp_path)))[0]
    rows = failure_rows(cfg, "boom", device="cpu", node=platform.node())
    assert {r["node"] for r in rows} == {platform.node()}
    from ablate.schema import TRIAL_COLUMNS
    from ablate.results.write import write_rows

    trials = tmp_path / "res" / "tiny" / "trials"
    write_rows(trials / "new.parquet", rows, TRIAL_COLUMNS)
    old = pq.read_table(trials / "new.parquet").drop_columns(["node"])  # an older file,
    i = old.schema.get_field_index("trial_id")  # of another trial (a copy of one trial's file
    old = old.set_column(i, "trial_id", pa.array(["0123456789ab"] * old.num_rows))  # counts once)
    pq.write_table(old, trials / "old.parquet")
    (study,) = load_results(tmp_path / "res")
    assert sorted(study.columns()["node"]) == ["", "", platform.node(), platform.node()]
