"""What a study's files say about its `ablate search`es: the sampled trials and their
objective, and the configurations a search confirmed with seeds. Ray-free, torch-free.

    trials = search_trials(study_dir, search)     # SearchTrial per finished sampled trial
    records = search_records(study_dir)           # name → SearchRecord (search/<name>/search.json)
    confirmed = read_confirm(study_dir)           # trial_id → (search, rank, point)

A sampled trial is a normal trial file whose `search` column names the search; its point is
read back from its resolved config (`config_json`), so a search's record is its trial files.
`search/<name>/search.json` (written when a search starts) says what it optimises, so the
table and report need no TOML; `search/<name>/confirm.json` lists the configurations `ablate search --confirm K` re-ran with
every seed (rank, point, trial ids).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ablate.results.atomic import atomic_write_text
from ablate.results.layout import StudyDir
from ablate.spec.search import Domain


@dataclass(frozen=True)
class SearchTrial:
    trial_id: str
    point: tuple  # (dotted key, value) pairs in the space's order
    grid: str  # the point as the `grid` column writes it
    status: str  # completed | stopped | failed
    value: float  # the objective (NaN unless completed with a value)
    metrics: dict  # resolution → {column: value} of every numeric metric and verdict


@dataclass(frozen=True)
class SearchRecord:
    """What a search optimises (the parts of `ablate.spec.search.SearchConfig` readers use)."""

    name: str
    variant: str
    metric: str
    resolution: int
    mode: str  # min | max
    num_samples: int
    space: tuple  # (dotted key, Domain) pairs

    def to_json(self) -> dict:
        return {"name": self.name, "variant": self.variant, "metric": self.metric,
                "resolution": self.resolution, "mode": self.mode,
                "num_samples": self.num_samples,
                "space": [{"key": k, "kind": d.kind, "values": _plain(d.values)}
                          for k, d in self.space]}

    @classmethod
    def from_json(cls, doc: dict) -> "SearchRecord":
        return cls(str(doc["name"]), str(doc["variant"]), str(doc["metric"]),
                   int(doc["resolution"]), str(doc["mode"]), int(doc["num_samples"]),
                   tuple((str(s["key"]), Domain(str(s["kind"]), _freeze(s["values"])))
                         for s in doc["space"]))


def _plain(v):
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


def write_record(study_dir: StudyDir, record: SearchRecord) -> Path:
    path = study_dir.search_record(record.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(record.to_json(), indent=1) + "\n")


def search_records(study_dir: StudyDir) -> dict[str, SearchRecord]:
    """name → SearchRecord of every search that started in this study (unreadable: skipped)."""
    out = {}
    folder = study_dir.searches_dir
    for path in sorted(folder.glob("*/search.json")) if folder.is_dir() else ():
        try:
            r = SearchRecord.from_json(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
        out[r.name] = r
    return out


def _walk(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return tuple(_freeze(node)) if isinstance(node, list) else node


def _freeze(v):
    return tuple(_freeze(x) for x in v) if isinstance(v, list) else v


def _rows(study_dir: StudyDir):
    """(trial_id, rows) of every readable trial file that has a `search` column."""
    for f in sorted(study_dir.trials_dir.glob("*.parquet")):
        if not f.is_file():  # a FIFO named like a trial file: never opened
            continue
        try:
            pf = pq.ParquetFile(f, pre_buffer=False)
            if "search" not in pf.schema_arrow.names:
                continue  # written before searches existed, or a grid trial of then
            rows = pf.read(use_threads=False).to_pylist()
        except Exception:  # noqa: BLE001 — being written, damaged: not finished here
            continue
        if rows:
            yield f.stem, rows


def search_trials(study_dir: StudyDir, search) -> list[SearchTrial]:
    """The finished trials of `search` (a SearchConfig or SearchRecord) whose point lies in
    its space."""
    out = []
    for tid, rows in _rows(study_dir):
        if rows[0]["search"] != search.name:
            continue
        try:
            config = json.loads(rows[0]["config_json"])
            point = tuple((k, _walk(config, k)) for k, _ in search.space)
        except (ValueError, KeyError, TypeError):
            continue
        if not all(_inside(d, v) for (_, d), (_, v) in zip(search.space, point)):
            continue  # sampled from an earlier space
        statuses = {r["status"] for r in rows}
        status = "completed" if statuses == {"completed"} else (
            "stopped" if "stopped" in statuses else "failed")
        metrics = {int(r["resolution"]): {k: v for k, v in r.items()
                                          if isinstance(v, (int, float, str))} for r in rows}
        value = math.nan
        if status == "completed" and search.resolution in metrics:
            v = metrics[search.resolution].get(search.metric)
            value = float(v) if isinstance(v, (int, float)) and v is not None else math.nan
        out.append(SearchTrial(tid, point, rows[0]["grid"], status, value, metrics))
    return out


def _inside(domain, value) -> bool:
    if domain.kind == "choice":
        return value in domain.values
    if not isinstance(value, (int, float)):
        return False
    low, high = domain.values
    return low * (1 - 1e-12) <= value <= high * (1 + 1e-12)


def read_confirm(study_dir: StudyDir) -> dict[str, tuple[str, int, str]]:
    """trial_id → (search name, rank, point) of every confirmed configuration's trials."""
    out = {}
    folder = study_dir.searches_dir
    for path in sorted(folder.glob("*/confirm.json")) if folder.is_dir() else ():
        try:
            doc = json.loads(path.read_text())
            for c in doc["configs"]:
                for tid in c["trial_ids"]:
                    out[str(tid)] = (str(doc["search"]), int(c["rank"]), str(c["point"]))
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
    return out


def rank(search, trials: list[SearchTrial]) -> list[SearchTrial]:
    """Best first: completed trials by objective (search.mode), then the others."""
    sign = 1.0 if search.mode == "min" else -1.0

    def key(t: SearchTrial):
        ok = t.status == "completed" and not math.isnan(t.value)
        return (0 if ok else 1, sign * t.value if ok else 0.0, t.trial_id)

    return sorted(trials, key=key)
