"""`ablate table --search`: the best configurations of each search of a study, as plain data,
and the search's confirmed configurations as rows of the normal table.

    tables = search_tables("results", study="sigmas", metric="psnr", top=10)
    print(render_search(tables, "text"))

One table per search (`search/<name>/search.json`): its finished trials ranked by the
objective (the search's metric at its resolution, min or max), each with its sampled point,
the table metric at every eval resolution, the verdict at every resolution above the input
size, and its status; how many trials were completed, stopped (ASHA) or failed. Read from the
trial files alone (results/search.py). Ray-free, torch-free.

`grid_view` is what the normal table does with search trials: sampled trials are left out
(they are one seed of one configuration each: no rows of a comparison), except the ones a
search confirmed with every seed (`ablate search --confirm K`), which become rows named
"<search>#<rank>" beside the study's variants.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from dataclasses import dataclass, field

from ablate.results.read import NoResults, load_results
from ablate.results.search import SearchRecord, SearchTrial, rank, read_confirm, \
    search_records, search_trials

CONFIRM_ORDER = 10_000  # confirmed rows come after every variant of the spec


@dataclass
class SearchTable:
    study: str
    record: SearchRecord
    metric: str  # the table metric shown per resolution
    resolutions: list[int]
    input_size: int | None
    entries: list[SearchTrial]  # best first (top N)
    counts: Counter = field(default_factory=Counter)  # status → trials
    confirmed: dict[str, int] = field(default_factory=dict)  # trial_id → rank confirmed

    @property
    def finished(self) -> int:
        return sum(self.counts.values())


def search_tables(dir, study: str | None = None, metric: str = "psnr",
                  top: int = 10) -> list[SearchTable]:
    """The search tables of every study under DIR (or of `study`). Raises NoResults when
    there is no study, or none of them ran a search."""
    out = []
    for s in load_results(dir, study):
        confirm = read_confirm(s.dir)
        for name, record in search_records(s.dir).items():
            trials = rank(record, search_trials(s.dir, record))
            res = sorted({r for t in trials for r in t.metrics})
            input_size = s.manifest.input_size if s.manifest else None
            out.append(SearchTable(
                study=s.name, record=record, metric=metric, resolutions=res,
                input_size=input_size, entries=trials[:top],
                counts=Counter(t.status for t in trials),
                confirmed={tid: r for tid, (n, r, _) in confirm.items() if n == name}))
    if not out:
        raise NoResults(f"no search in {dir}: run `ablate search STUDY.toml` first")
    return out


def _num(v, decimals=3) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{decimals}g}" \
        if abs(v) >= 1000 or abs(v) < 0.01 else f"{v:.{decimals}f}"


def header(t: SearchTable) -> list[str]:
    r = t.record
    above = [x for x in t.resolutions if t.input_size is None or x > t.input_size]
    return (["#", f"{r.metric}@{r.resolution} ({r.mode})", "configuration"]
            + [f"{t.metric}@{x}" for x in t.resolutions]
            + [f"verdict@{x}" for x in above] + ["status", "trial"])


def rows(t: SearchTable) -> list[list[str]]:
    above = [x for x in t.resolutions if t.input_size is None or x > t.input_size]
    out = []
    for k, e in enumerate(t.entries, start=1):
        ok = e.status == "completed" and not math.isnan(e.value)
        status = e.status + (" (confirmed)" if e.trial_id in t.confirmed else "")
        out.append([str(k) if ok else "", _num(e.value, 4), e.grid]
                   + [_num(e.metrics.get(x, {}).get(t.metric), 4) for x in t.resolutions]
                   + [str(e.metrics.get(x, {}).get("verdict", "")) or "—" for x in above]
                   + [status, e.trial_id])
    return out


def title(t: SearchTable) -> str:
    r = t.record
    counts = ", ".join(f"{n} {s}" for s, n in sorted(t.counts.items()))
    return (f"{t.study}: search {r.name!r} from variant {r.variant!r}: {t.finished}/"
            f"{r.num_samples} sampled ({counts or 'none finished'}); best "
            f"{len([e for e in t.entries if e.status == 'completed'])} by {r.metric} at "
            f"{r.resolution} ({r.mode})")


def render_search(tables: list[SearchTable], fmt: str = "text") -> str:
    """text | markdown | csv | json."""
    if fmt == "json":
        return json.dumps([{"study": t.study, **t.record.to_json(), "counts": dict(t.counts),
                            "header": header(t), "rows": rows(t)} for t in tables],
                          indent=1) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        for t in tables:
            w.writerow(["study", "search", *header(t)])
            for row in rows(t):
                w.writerow([t.study, t.record.name, *row])
        return buf.getvalue()
    out = []
    for t in tables:
        h, body = header(t), rows(t)
        if fmt == "markdown":
            out += [f"**{title(t)}**", "", "| " + " | ".join(h) + " |",
                    "|" + "|".join("---" for _ in h) + "|"]
            out += ["| " + " | ".join(r) + " |" for r in body]
        else:
            widths = [max(len(x) for x in col) for col in zip(h, *body)]
            out += [title(t), "  ".join(x.ljust(w) for x, w in zip(h, widths)).rstrip()]
            out += ["  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip() for r in body]
        out.append("")
    return "\n".join(out)


def grid_view(trials: list, col: dict, study_dir) -> list:
    """The trials of the normal table (build.py's `_Trial`s): sampled trials dropped, those of
    confirmed configurations renamed to rows "<search>#<rank>" of the first grid block."""
    search = col.get("search")
    if search is None:
        return trials
    confirmed = read_confirm(study_dir)
    out = []
    for t in trials:
        name = search[t.rows[0]]
        if t.id in confirmed:
            s, k, point = confirmed[t.id]
            t.variant, t.label = f"{s}#{k}", f"{s} #{k}: {point}"
            t.grid, t.order = "", CONFIRM_ORDER + k
        elif name:
            continue
        out.append(t)
    return out
