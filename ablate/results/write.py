"""Writing result files: Parquet with the schema of ``ablate/schema.py``, atomically.

    write_rows(path, rows, TRIAL_COLUMNS)       # rows: dicts with exactly the table's columns
    write_artifacts(dir, samples, spectra)      # predictions.npz + spectra.parquet

A row that lacks a column of its table, or has one the table does not list, is an error (so a
writer cannot drift from the schema unnoticed). Every file goes through `atomic_write`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ablate.results.atomic import atomic_write
from ablate.results.layout import PREDICTIONS_FILE, SPECTRA_FILE
from ablate.schema import SPECTRA_COLUMNS, Columns


class SchemaMismatch(ValueError):
    """Rows whose keys are not the columns of their table (a bug in the writer)."""


def rows_table(rows: list[dict], columns: Columns) -> pa.Table:
    names = columns.names
    missing = sorted({c for r in rows for c in names if c not in r})
    unknown = sorted({k for r in rows for k in r if k not in columns})
    if missing or unknown:
        raise SchemaMismatch(
            "result rows do not match ablate/schema.py: "
            + (f"lacking {missing}" if missing else "")
            + ("; " if missing and unknown else "")
            + (f"not in the schema {unknown} (add them there)" if unknown else ""))
    return pa.Table.from_pydict({c: [r[c] for r in rows] for c in names}, schema=columns.schema)


def write_rows(path: Path, rows: list[dict], columns: Columns) -> Path:
    table = rows_table(rows, columns)
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_artifacts(dir: Path, samples: dict[str, np.ndarray], spectra: list[dict]) -> None:
    """predictions.npz (when there are samples) and spectra.parquet into `dir`."""
    dir = Path(dir)
    if samples:
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **samples)

        atomic_write(dir / PREDICTIONS_FILE, save)
    write_rows(dir / SPECTRA_FILE, spectra, SPECTRA_COLUMNS)
