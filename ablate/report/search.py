"""The report's part for `ablate search`: per search, the optimisation history and the
parameter importances (Optuna's own `optuna.importance.get_param_importances`, fANOVA, on the
finished trials), as PNGs, and the top of `ablate table --search` as an HTML table.

    parts = search_section(study_results, out_dir, prefix)   # HTML fragments ([] without a
                                                              # search)
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from ablate.results.atomic import atomic_write
from ablate.results.read import StudyResults
from ablate.results.search import SearchRecord, SearchTrial, rank, search_records, search_trials
from ablate.spec.search import encode
from ablate.table.search import header, rows, search_tables, title

CAPTIONS = {
    "history": "Optimisation history: the objective of each finished sampled trial in the "
               "order they finished (dots) and the best so far (line); trials stopped by ASHA "
               "or failed have no value.",
    "importance": "Parameter importances (Optuna's fANOVA evaluator on the completed trials): "
                  "the share of the objective's variance each searched key explains.",
}


def optuna_study(record: SearchRecord, trials: list[SearchTrial]):
    """An in-memory Optuna study holding the search's completed trials (for optuna.importance)."""
    import optuna


    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dist = {}
    for key, d in record.space:
        if d.kind == "choice":
            dist[key] = optuna.distributions.CategoricalDistribution(list(d.labels()))
        elif d.kind == "int":
            dist[key] = optuna.distributions.IntDistribution(*d.values)
        else:
            dist[key] = optuna.distributions.FloatDistribution(
                float(d.values[0]), float(d.values[1]), log=d.kind == "loguniform")
    study = optuna.create_study(direction="minimize" if record.mode == "min" else "maximize")
    for t in trials:
        if t.status == "completed" and not math.isnan(t.value):
            study.add_trial(optuna.trial.create_trial(
                params=encode(record, t.point), distributions=dist, value=t.value))
    return study


def _finished_at(t: SearchTrial) -> str:
    return min((str(m.get("finished_at", "")) for m in t.metrics.values()), default="")


def history_figure(record: SearchRecord, trials: list[SearchTrial], path: Path) -> Path | None:
    from matplotlib.figure import Figure

    ordered = sorted(trials, key=_finished_at)
    xs = [k for k, t in enumerate(ordered, start=1) if not math.isnan(t.value)]
    ys = [t.value for t in ordered if not math.isnan(t.value)]
    if not ys:
        return None
    better = min if record.mode == "min" else max
    best = [better(ys[:k + 1]) for k in range(len(ys))]
    fig = Figure(figsize=(6.5, 3.6), dpi=110)
    ax = fig.add_subplot()
    ax.plot(xs, ys, "o", color="tab:blue", label="trial")
    ax.step(xs, best, where="post", color="tab:red", label=f"best so far ({record.mode})")
    ax.set_xlabel("finished trial")
    ax.set_ylabel(f"{record.metric} at {record.resolution}")
    ax.set_title(f"search {record.name!r}: optimisation history", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))  # a link: replaced


def importance_figure(record: SearchRecord, trials: list[SearchTrial],
                      path: Path) -> Path | None:
    import optuna
    from matplotlib.figure import Figure

    study = optuna_study(record, trials)
    if len(study.trials) < 2 or len(record.space) < 1:
        return None
    try:
        imp = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError):  # e.g. every trial at the same point
        return None
    if not imp:
        return None
    keys = list(imp)[::-1]
    fig = Figure(figsize=(6.5, 0.6 + 0.45 * len(keys)), dpi=110)
    ax = fig.add_subplot()
    ax.barh(keys, [imp[k] for k in keys], color="tab:green")
    for y, k in enumerate(keys):
        ax.text(imp[k], y, f" {imp[k]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"importance for {record.metric} at {record.resolution} "
                  f"({len(study.trials)} completed trials)")
    ax.set_title(f"search {record.name!r}: parameter importances (optuna fANOVA)", fontsize=10)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))  # a link: replaced


def search_section(s: StudyResults, out: Path, prefix: str = "", top: int = 10) -> list[str]:
    """HTML fragments for every search of the study (figures written to `out`)."""
    records = search_records(s.dir)
    if not records:
        return []
    parts = []
    tables = {t.record.name: t for t in search_tables(s.root, top=top)}
    for name, record in records.items():
        trials = rank(record, search_trials(s.dir, record))
        parts.append(f"<h3>{html.escape(f'Search {name!r}')}</h3>")
        t = tables.get(name)
        if t is not None:
            h = header(t)
            parts.append(f"<p>{html.escape(title(t))}</p>")
            parts.append('<table class="ablate"><thead><tr>'
                         + "".join(f"<th>{html.escape(x)}</th>" for x in h)
                         + "</tr></thead><tbody>"
                         + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                                   + "</tr>" for r in rows(t)) + "</tbody></table>")
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        for key, draw in (("history", history_figure), ("importance", importance_figure)):
            path = draw(record, trials, out / f"{prefix}search_{safe}_{key}.png")
            if path is not None:
                parts.append(f'<figure><img src="{html.escape(path.name)}" alt="{key}">'
                             f"<figcaption>{html.escape(CAPTIONS[key])}</figcaption></figure>")
    return parts
