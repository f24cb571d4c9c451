"""Read what studies wrote: trial rows, training histories, spectra and held-out samples.

The reader works from the result contract alone (``ablate/schema.py``: columns and types,
``layout.py``: paths, ``manifest.py``: the study) and needs only pyarrow and numpy (pandas for
the DataFrame views) — no torch, no Ray — so ``ablate table`` stays fast and runs anywhere the
results are. It is meant to be pointed at a study that is still running: a
file that cannot be read (partially written, truncated, foreign) or that lacks the columns a
row needs is skipped and counted in ``StudyResults.skipped``, never raised.

A DIR is either one study (it has a ``trials/`` folder) or a results root holding several
studies as sub-folders; ``study=`` selects one of them by folder name or by its ``study`` column.

    studies = load_results("results")             # every study under results/
    s = studies[0]
    s.trials                                       # DataFrame, one row per trial × resolution
    s.columns()                                    # the same as numpy arrays (what the table uses)
    s.history(), s.spectra(), s.samples(trial_id)
    s.images(trial_ids, "psnr_y")                  # per-image metrics (images/), by trial

Speed: a study of 10,000 rows is ~3,000 small files; opening each costs ~0.2 ms, so the trial
files are read with only the table's columns, without pyarrow's thread pool or pre-buffering,
and the rows stay in Arrow until someone asks for a DataFrame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ablate.results.layout import MANIFEST, PREDICTIONS_FILE, SPECTRA_FILE, StudyDir, find_studies
from ablate.results.legacy import legacy_manifest
from ablate.results.manifest import Manifest, ManifestError
from ablate.results.trial_file import read_trial_file
from ablate.schema import TRIAL_COLUMNS
from ablate.spec.names import RULE, valid_name

def study_manifest(study_dir: StudyDir) -> Manifest | None:
    """The study's manifest: manifest.json, else one rebuilt from the previous layout
    (plan.json and study.toml), else None (nothing says what the study is). Raises
    ManifestError when the file(s) there cannot be read."""
    path = study_dir.manifest
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # RecursionError: nested too deep
            raise ManifestError(f"{path}: cannot be read ({e}); run the study again "
                                "(`ablate run`) to rewrite it") from None
        return Manifest.from_json(doc, str(path))
    return legacy_manifest(study_dir)


# The trial columns the table needs (`load_results(columns=None)` reads every column).
TABLE_COLUMNS: tuple[str, ...] = (
    "study", "trial_id", "variant", "label", "variant_order", "grid", "seed", "search", "status",
    "error", "resolution", "psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "psnr_y",
    "psnr_y_bicubic", "verdict", "finished_at", "hf_energy_ratio", "band_error_ratio",
    "band_coherence", "band_coherence_bicubic", "psnr_lr_consistency", "psnr_lr_floor",
    "truth_energy_ratio", "fit_margin", "lr_margin",  # NaN in files older than the gates
    "node",  # "" in files written before the column existed
    "config_json",  # the table reads the model kind from it (ablate.spec.ids.model_kind)
    "code_version",  # the report says which code wrote the rows
)
# How `columns()` gives the table's columns (from ablate/schema.py): text as str ("" where a
# file lacks the column), numbers as float64 (NaN where missing: results of older versions
# lack psnr_y*, psnr_lr_*; seed, resolution and variant_order are whole). label defaults to
# the variant.
STRING_COLUMNS = tuple(c for c in TABLE_COLUMNS if TRIAL_COLUMNS[c].is_text)
FLOAT_COLUMNS = tuple(c for c in TABLE_COLUMNS if TRIAL_COLUMNS[c].is_number)
assert set(STRING_COLUMNS) | set(FLOAT_COLUMNS) == set(TABLE_COLUMNS)


class NoResults(LookupError):
    """DIR holds no study (or not the one asked for); the message says what was looked at."""


@dataclass
class StudyResults:
    """One study's results as read from disk."""

    name: str  # the study's name (its `study` column, else its folder name)
    root: Path  # the study folder (results/layout.py)
    rows: pa.Table  # every readable trial file's rows (one per trial × eval resolution)
    files: int  # trial files found
    manifest: Manifest | None = None  # the study that ran (None: no manifest, unreadable)
    manifest_problem: str = ""  # why it could not be read (ManifestError), "" otherwise
    skipped: dict[str, list[str]] = field(default_factory=dict)  # kind → ["file: reason"]
    apart: list[str] = field(default_factory=list)  # finished trials the manifest does not
    #   plan ("variant seed s (id)"): an earlier configuration of the study, left out of `rows`
    _columns: dict | None = field(default=None, repr=False)

    @property
    def dir(self) -> StudyDir:
        return StudyDir(self.root)

    def skip(self, kind: str, path: Path, reason: str) -> None:
        reason = " ".join(reason.split())
        reason = reason if len(reason) <= 120 else reason[:119] + "…"
        self.skipped.setdefault(kind, []).append(f"{path.name}: {reason}")

    @property
    def skipped_count(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def columns(self) -> dict[str, np.ndarray]:
        """TABLE_COLUMNS as numpy arrays, defaults filled: strings as object arrays ("" for
        missing), numbers as float64 (NaN for missing)."""
        if self._columns is None:
            self._columns = _columns(self.rows, self.root.name)
        return self._columns

    @property
    def trials(self):
        """The trial rows as a pandas DataFrame (table columns normalised, others as read)."""
        import pandas as pd

        df = self.rows.to_pandas() if self.rows.num_rows else pd.DataFrame()
        for c, v in self.columns().items():
            df[c] = v
        return df

    # -- the other files of a study, read on demand --------------------------------------------

    def history(self, trial_ids=None):
        """Per-epoch rows (HISTORY_COLUMNS) of the given trials (default: every file)."""
        tables = []
        for p in _paths(self.dir.history_dir, trial_ids):
            t = _read(p, None, ("trial_id", "epoch"), self, "history")
            if t is not None:
                tables.append(t)
        return _frame(tables)

    def spectra(self, trial_ids=None):
        """Radially averaged spectra (SPECTRA_COLUMNS + trial_id) of the given trials."""
        ids = trial_ids if trial_ids is not None else _artifact_ids(self.dir)
        tables = []
        for tid in ids:
            p = self.dir.artifacts(tid) / SPECTRA_FILE
            if not p.exists():
                continue
            t = _read(p, None, ("resolution", "kind", "frequency", "power"), self, "spectra")
            if t is not None:
                tables.append(t.append_column("trial_id", pa.array([tid] * t.num_rows)))
        return _frame(tables)

    def images(self, trial_ids, metric: str) -> dict[str, dict[str, np.ndarray]]:
        """Per-image `metric` of the given trials: trial_id → {"resolution", "image" (float64),
        "photo" (object), "value" (float64)}. Trials without a readable images/ file (failed,
        or written before ablate kept per-image metrics) are absent; unreadable files are
        counted in `skipped["images"]`."""
        out = {}
        for tid in trial_ids:
            p = self.dir.images(tid)
            if not p.exists():
                continue
            t = _read(p, ("resolution", "image", "photo", metric),
                      ("resolution", "image", metric), self, "images")
            if t is None:
                continue
            names = t.column_names
            out[tid] = {
                "resolution": _floats(t.column("resolution")),
                "image": _floats(t.column("image")),
                "photo": (_strings(t.column("photo")) if "photo" in names
                          else np.full(t.num_rows, "", dtype=object)),
                "value": _floats(t.column(metric)),
            }
        return out

    def image_columns(self, trial_ids, columns) -> dict[str, dict[str, np.ndarray]]:
        """Several per-image number columns of the given trials: trial_id → {"resolution",
        "image", "photo", *columns}; trials whose images/ file lacks any of `columns` (written
        before they existed) are absent, as are failed ones."""
        out = {}
        for tid in trial_ids:
            p = self.dir.images(tid)
            if not p.exists():
                continue
            t = _read(p, ("resolution", "image", "photo", *columns), ("resolution", "image"),
                      self, "images")
            if t is None or not set(columns) <= set(t.column_names):
                continue  # older files lack the columns: not an error, just no figures
            out[tid] = {"resolution": _floats(t.column("resolution")),
                        "image": _floats(t.column("image")),
                        "photo": (_strings(t.column("photo")) if "photo" in t.column_names
                                  else np.full(t.num_rows, "", dtype=object)),
                        **{c: _floats(t.column(c)) for c in columns}}
        return out

    def samples(self, trial_id: str) -> dict[str, np.ndarray] | None:
        """predictions.npz of a trial: input, bicubic, prediction, truth — or None."""
        p = self.dir.artifacts(trial_id) / PREDICTIONS_FILE
        if not p.exists():
            return None
        try:
            with np.load(p) as z:
                out = {k: np.asarray(z[k], dtype=np.float32) for k in z.files}
        except Exception as e:  # noqa: BLE001 — partially written or foreign: skip, count
            self.skip("samples", p, f"{type(e).__name__}: {e}")
            return None
        missing = {"input", "bicubic", "prediction", "truth"} - out.keys()
        if missing:
            self.skip("samples", p, f"missing arrays {sorted(missing)}")
            return None
        return out


# ---------------------------------------------------------------------------------------------
# Finding and reading studies
# ---------------------------------------------------------------------------------------------


def study_roots(dir: str | Path) -> list[Path]:
    """The study folders DIR stands for: itself if it has trials/, else its sub-folders that do."""
    return [d.root for d in find_studies(dir, with_results=True)]


def load_results(
    dir: str | Path, study: str | None = None, columns: tuple[str, ...] | None = TABLE_COLUMNS,
    every_trial: bool = False,
) -> list[StudyResults]:
    """Every study under DIR (or the one named `study`), with its trial rows read: the trials
    its manifest plans (and the sampled trials of its searches); `every_trial` also the ones
    of earlier configurations, which are otherwise listed in `StudyResults.apart`.

    Raises NoResults when DIR holds no study folder, or none named `study`. A study whose
    files are all unreadable still comes back (with no rows and its skipped files).
    """
    roots = study_roots(dir)
    if not roots:
        raise NoResults(
            f"no results in {dir}: expected a study folder with trials/*.parquet, "
            f"or a results folder holding such study folders"
        )
    if study is not None and any(r.name == study for r in roots):
        roots = [r for r in roots if r.name == study]  # by folder: read only that one
    out = []
    for root in roots:
        s = load_study(root, columns, every_trial)
        if study is None or study in (root.name, s.name):
            out.append(s)
    if not out:
        names = ", ".join(r.name for r in roots)
        raise NoResults(f"no study named {study!r} in {dir} (found: {names})")
    return out


def load_study(root: str | Path, columns: tuple[str, ...] | None = TABLE_COLUMNS,
               every_trial: bool = False) -> StudyResults:
    """One study folder: its manifest (if any) and the rows of every readable trial file the
    manifest plans (every one: `every_trial`, or without a manifest). A trial the manifest does
    not plan and no search sampled is of an earlier configuration (orchestrate/changes.py): it
    is named in `apart`, not read into `rows`."""
    d = StudyDir(Path(root))
    s = StudyResults(name=d.name, root=d.root, rows=pa.table({}), files=0)
    try:
        s.manifest = study_manifest(d)
    except ManifestError as e:  # the rows alone still make a table; the note says why
        s.manifest_problem = str(e)
    paths = _paths(d.trials_dir, None)
    s.files = len(paths)
    planned = ({t.trial_id for t in s.manifest.trials}
               if s.manifest is not None and s.manifest.trials and not every_trial else None)
    tables, seen = [], {}
    for p in paths:
        f = read_trial_file(p)  # the whole file, by the rule `ablate run` skips trials by
        if f.state == "unreadable":
            s.skip("trials", p, f.reason)
            continue
        t = f.table
        tid = (t.column("trial_id")[0].as_py() if "trial_id" in t.column_names else p.stem)
        if tid in seen:  # a copy of a trial's file under another name: counted once
            s.skip("trials", p, f"repeats trial {tid} of {seen[tid]}")
            continue
        seen[tid] = p.name
        if planned is not None and tid not in planned and not _sampled(t):
            s.apart.append(describe_trial(t, tid))
            continue
        if columns:
            t = t.select([c for c in columns if c in t.column_names])
        if "trial_id" not in t.column_names:
            t = t.append_column("trial_id", pa.array([p.stem] * t.num_rows))
        tables.append(t)
    s.rows = _concat(tables)
    name = ""
    if s.rows.num_rows and "study" in s.rows.column_names:
        name = s.rows.column("study")[0].as_py() or ""
        where = "trials/*.parquet, column study"
    elif s.manifest is not None:
        name, where = s.manifest.study, MANIFEST
    if name and not valid_name(name):  # it names report files: never a path of its own
        s.skip("names", Path(where), f"study name {str(name)!r} is not a valid name ({RULE}); "
               f"the folder's name {d.name!r} is used instead")
        name = ""
    s.name = str(name) if name else d.name
    return s


def _sampled(t: pa.Table) -> bool:
    """A trial of `ablate search` (sampled or confirmed): its `search` column is set."""
    return "search" in t.column_names and bool(t.column("search")[0].as_py())


def describe_trial(t: pa.Table, tid: str) -> str:
    """"variant seed s [grid] (id)" of a trial file's rows, as notes and messages name it."""
    row = t.slice(0, 1).to_pylist()[0]
    grid = row.get("grid") or ""
    return f"{row['variant']} seed {row['seed']}" + (f" [{grid}]" if grid else "") + f" ({tid})"


def _paths(folder: Path, ids) -> list[Path]:
    if ids is not None:
        return [folder / f"{i}.parquet" for i in ids if (folder / f"{i}.parquet").exists()]
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.parquet"))  # not the writers' ".<name>.<pid>.tmp" files


def _artifact_ids(d: StudyDir) -> list[str]:
    folder = d.artifacts_dir
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read(path: Path, columns, required, s: StudyResults, kind: str) -> pa.Table | None:
    """One Parquet file (those of `columns` it has), or None — counted — if unusable."""
    if not path.is_file():  # a FIFO or a device named like a result file would block a read
        s.skip(kind, path, "not a regular file: not opened")
        return None
    try:
        f = pq.ParquetFile(path, pre_buffer=False)
        t = f.read(columns=list(columns) if columns else None, use_threads=False)
        f.close()
    except Exception as e:  # noqa: BLE001 — still being written, truncated, not Parquet
        s.skip(kind, path, f"{type(e).__name__}: {e}")
        return None
    names = t.column_names
    lacking = [c for c in required if c not in names]
    if lacking:
        s.skip(kind, path, f"missing columns {lacking}")
        return None
    return t


def _concat(tables: list[pa.Table]) -> pa.Table:
    if not tables:
        return pa.table({})
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # a column with different types in different files: keep the table's columns as text
        # or numbers, whichever each file had, via per-file normalisation
        cols = [_columns(t, "") for t in tables]
        return pa.table({c: np.concatenate([x[c] for x in cols]) for c in cols[0]})


def _frame(tables: list[pa.Table]):
    import pandas as pd

    if not tables:
        return pd.DataFrame()
    try:
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def _columns(t: pa.Table, study: str) -> dict[str, np.ndarray]:
    n = t.num_rows
    names = set(t.column_names)
    out: dict[str, np.ndarray] = {}
    for c in STRING_COLUMNS:
        out[c] = _strings(t.column(c)) if c in names else np.full(n, "", dtype=object)
    for c in FLOAT_COLUMNS:
        out[c] = _floats(t.column(c)) if c in names else np.full(n, np.nan)
    out["status"] = np.array([s.strip().lower() for s in out["status"]], dtype=object)
    empty = out["label"] == ""
    out["label"][empty] = out["variant"][empty]
    if "study" not in names and study:
        out["study"][:] = study
    return out


# Arrow → numpy through the buffers: pyarrow's to_numpy()/to_pylist() import pandas and its
# casts import pyarrow.compute (~0.25 s together) on first use, more than the whole table
# costs otherwise. Other types take the slow, general path.


def _validity(a: pa.Array) -> np.ndarray | None:
    if a.null_count == 0:
        return None
    bits = np.frombuffer(a.buffers()[0], dtype=np.uint8)
    return np.unpackbits(bits, bitorder="little")[a.offset:a.offset + len(a)].astype(bool)


def _numeric_dtype(t: pa.DataType) -> np.dtype | None:
    if pa.types.is_floating(t) and t.bit_width in (32, 64):
        return np.dtype(f"f{t.bit_width // 8}")
    if pa.types.is_integer(t):
        return np.dtype(f"{'i' if pa.types.is_signed_integer(t) else 'u'}{t.bit_width // 8}")
    return None


def _floats(col) -> np.ndarray:
    """Any numeric (or numeric-text) column as float64, NaN where null or unparseable."""
    a = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(a) == 0:
        return np.empty(0)
    dtype = _numeric_dtype(a.type)
    if dtype is None:
        def f(x):
            try:
                return float(x.as_py())
            except (TypeError, ValueError):
                return np.nan
        return np.array([f(x) for x in a], dtype=float)
    vals = np.frombuffer(a.buffers()[1], dtype=dtype)[a.offset:a.offset + len(a)]
    vals = vals.astype(float)
    ok = _validity(a)
    return vals if ok is None else np.where(ok, vals, np.nan)


def _strings(col) -> np.ndarray:
    """Any column as an object array of str, "" where null."""
    a = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if len(a) == 0:
        return np.empty(0, dtype=object)
    if not (pa.types.is_string(a.type) or pa.types.is_large_string(a.type)):
        return np.array(["" if x.as_py() is None else str(x.as_py()) for x in a], dtype=object)
    width = np.int32 if pa.types.is_string(a.type) else np.int64
    _, offsets, data = a.buffers()
    off = np.frombuffer(offsets, dtype=width)[a.offset:a.offset + len(a) + 1].astype(np.int64)
    lengths = np.diff(off)
    longest = int(lengths.max())
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(1, np.uint8)
    if longest == 0:
        out = np.full(len(a), "", dtype=object)
    elif len(a) * longest <= 50_000_000:
        # vectorised: pad every value to the longest as a fixed-width bytes array, decode
        # only the distinct values (few per column: variants, statuses, grid points, …)
        cols = np.arange(longest)
        pos = np.minimum(off[:-1, None] + cols, raw.size - 1)
        padded = np.where(cols < lengths[:, None], raw[pos], 0).astype(np.uint8)
        distinct, inverse = np.unique(padded.view(f"S{longest}").ravel(), return_inverse=True)
        words = np.array([w.decode("utf-8", "replace") for w in distinct], dtype=object)
        out = words[inverse.ravel()]
    else:  # very long values (tracebacks): one by one
        b = raw.tobytes()
        out = np.array([b[lo:hi].decode("utf-8", "replace")
                        for lo, hi in zip(off[:-1].tolist(), off[1:].tolist())], dtype=object)
    ok = _validity(a)
    if ok is not None:
        out[~ok] = ""
    return out
