"""The comparison table as plain data: what `ablate table` prints in any format.

Layout (one table per study):

- A **Bicubic** row first: bicubic upsampling of the same 32×32 inputs. Every trial row carries
  ``psnr_bicubic``/``ssim_bicubic``, identical across variants and seeds (same inputs, same
  fixed test crops), so the row is the mean over all completed rows at that resolution. If the
  grid changes it (bicubic differs between grid points, e.g. a grid over ``data.*``), each
  grid block gets its own Bicubic row instead. At the input size it is "—" (nothing to upsample).
- Then a **block per grid point** (``grid`` column; one block without a grid), the variants in
  spec order (``variant_order``) under their labels, the baseline marked, with the model kind
  (``model.kind`` of the trials' config: lainr, liif) shown where the rows differ by it.
- Per eval resolution: mean ± std over seeds (``n`` shown when fewer than the study's seeds);
  Δ vs the baseline of the same grid point, paired by seed and held-out image, with its 95 %
  two-level bootstrap interval (seeds, and held-out photos shared by the seeds) and a
  significance mark from a t-test with both variance components, Holm-corrected across the
  table (``stats.py`` documents all of it). Results without per-image files fall back to
  seed-only intervals and paired t-tests, with a note; a single seed without them gives Δ
  with no interval.
- A **verdict** per resolution above the input size: the trials' verdicts counted across seeds,
  most frequent first ("true_sr 3/3", "resampling 2/3, unfit 1/3"); `unfit` and
  `inconsistent` count like the others.
- The **basis** of each verdict (`Row.basis`, shown by `--detail`): per resolution from the
  input up, the means over completed seeds of the columns the rule reads (BASIS_COLUMNS: the
  fitness gate's PSNR at the input, its floor and margin; the LR-consistency PSNR and margin at
  r; in-band energy (and the truth's), error ratio, coherence and bicubic's coherence), with
  95 % intervals over held-out photos for the band ratios (`Row.band_ci`, table/band.py), so a
  reader can see why a row is `true_sr`, `unfit` or `inconsistent`.
- Missing figures are None ("—" when printed). Failed trials are listed (variant, seed,
  error), never dropped; a partial study says how many trials completed out of how many.

The study's seeds, baseline, variants (in spec order, with labels), grid order, eval
resolutions, input size and expected trial count come from its manifest
(``results/manifest.py``; variants not run yet then appear as empty rows), else from the rows
themselves.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from ablate.results.manifest import Manifest
from ablate.results.read import NoResults, StudyResults, load_results
from ablate.results.search import search_records
from ablate.spec.ids import model_kind
from ablate.table.band import study_intervals
from ablate.table.choices import Metric
from ablate.table.search import grid_view
from ablate.table.stats import (Comparison, Summary, apply_holm, compare_images, compare_paired,
                                summarize)

METRICS = {m.value: m.label for m in Metric}  # `ablate table --metric`
BASIS_COLUMNS = ("fit_margin", "psnr_lr_consistency", "psnr_lr_floor", "lr_margin",
                 "hf_energy_ratio", "truth_energy_ratio", "band_error_ratio", "band_coherence",
                 "band_coherence_bicubic")  # what ablate.metrics.verdict reads, and the truth's
#   in-band energy beside the model's
DECIMALS = {m.value: m.decimals for m in Metric}


class UnknownBaseline(ValueError):
    """--baseline names no variant of the study."""


@dataclass
class Row:
    kind: str  # "bicubic" | "variant"
    name: str  # variant name ("bicubic")
    label: str  # what the table shows
    grid: str  # grid point ("" without a grid, or for a Bicubic row shared by all blocks)
    order: int  # position in the spec
    is_baseline: bool = False
    cells: dict[int, Summary] = field(default_factory=dict)  # resolution → mean ± std
    deltas: dict[int, Comparison] = field(default_factory=dict)  # resolution → Δ vs baseline
    verdicts: dict[int, dict[str, int]] = field(default_factory=dict)  # resolution → counts
    basis: dict[int, dict[str, float | None]] = field(default_factory=dict)  # resolution →
    #   BASIS_COLUMNS → mean over completed seeds (None where no trial has the figure); from
    #   the input size up (at the input: the fitness gate's figures)
    band_ci: dict[int, dict[str, tuple[float, float]]] = field(default_factory=dict)  #
    #   resolution → band ratio → 95 % interval over held-out photos (table/band.py)
    completed: int = 0  # completed trials (seeds) of this row
    model: str = ""  # model.kind of its trials ("" for Bicubic or a row not run yet)


@dataclass
class FailedTrial:
    variant: str
    label: str
    grid: str
    seed: int
    trial_id: str
    error: str


@dataclass
class Table:
    study: str
    metric: str  # psnr | ssim
    baseline: str  # variant name
    baseline_label: str
    input_size: int | None
    resolutions: list[int]
    seeds: list[int]  # the study's seeds (spec ∪ seen)
    grids: list[str]  # grid points, in order
    rows: list[Row]
    failed: list[FailedTrial]
    completed: int  # completed trials
    expected: int  # trials the study should have
    notes: list[str] = field(default_factory=list)  # partial results, skipped files, …
    trial_ids: list[str] = field(default_factory=list)  # the completed trials the figures use

    @property
    def metric_label(self) -> str:
        return METRICS[self.metric]

    @property
    def decimals(self) -> int:
        return DECIMALS[self.metric]

    @property
    def verdict_resolutions(self) -> list[int]:
        if self.input_size is None:
            return []
        return [r for r in self.resolutions if r > self.input_size]

    @property
    def shows_model(self) -> bool:
        """Whether the rows differ by model kind (the table then shows it)."""
        return len({row.model for row in self.rows if row.kind == "variant" and row.model}) > 1

    @property
    def comparisons(self) -> list[Comparison]:
        return [c for row in self.rows for c in row.deltas.values()]


@dataclass
class _Trial:
    """One trial file's identity, from its rows."""

    id: str
    variant: str
    label: str
    order: float
    grid: str
    seed: int
    status: str
    error: str
    finished_at: str
    model: str  # model.kind
    rows: list[int] = field(default_factory=list)  # indices into the study's columns


# ---------------------------------------------------------------------------------------------


def load_tables(dir, study: str | None = None, metric: str = "psnr",
                baseline: str | None = None, detail: bool = False) -> list[Table]:
    """The table of every study under DIR (or of `study`). Raises NoResults, UnknownBaseline."""
    return [build_table(s, metric, baseline, detail) for s in load_results(dir, study)]


def build_table(s: StudyResults, metric: str = "psnr", baseline: str | None = None,
                detail: bool = False) -> Table:
    """One study's table from its rows (see the module docstring). `detail`: also the band
    ratios' intervals over held-out photos (`Row.band_ci`, table/band.py), which read every
    trial's per-image file."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    metric = Metric(metric).value  # a plain str from here on
    col = s.columns()

    trials = grid_view(_trials(col), col, s.dir)
    if not trials:
        reason = f" ({s.skipped_count} unreadable file(s) skipped)" if s.skipped_count else ""

        if search_records(s.dir):
            reason += ("; only sampled trials of `ablate search`: `ablate table --search` "
                       "lists them")
        if s.apart:
            reason += "; " + apart_note(s.apart)
        raise NoResults(f"no trial results yet in {s.root}{reason}")
    m = s.manifest
    notes: list[str] = []

    variants = _variants(trials, m)
    names = [n for n, _ in variants]
    labels = dict(variants)
    base = _baseline(baseline, m.baseline if m else None, names, labels, s.name)

    done, failed, superseded, other = split_trials(trials)
    if m is not None and m.description:  # what the study is for, from its spec
        notes.append(f"about this study: {m.description}")
    if s.apart:
        notes.append(apart_note(s.apart))
    if superseded:
        notes.append(f"{superseded} older trial(s) of the same variant, grid point and seed "
                     "superseded by the latest completed one")
    if other:
        notes.append(f"{len(other)} trial(s) with status "
                     f"{sorted({t.status or '(empty)' for t in other})} ignored")

    seeds = sorted(set(m.seeds if m else ()) | {t.seed for t in trials})
    res_col = col["resolution"]
    seen_res = {int(res_col[i]) for t in done for i in t.rows if np.isfinite(res_col[i])}
    resolutions = sorted(seen_res | set(m.eval_resolutions if m else ()))
    grids = _grid_order({t.grid for t in trials}, m.grid if m else ()) or [""]
    input_size = m.input_size if m and m.input_size else _input_size(done, col)

    # seed-aligned vectors per (grid, variant, resolution); verdicts; bicubic values
    seed_at = {sd: k for k, sd in enumerate(seeds)}
    per_image = _per_image(s, done, metric)
    values: dict[tuple, np.ndarray] = {}
    verdicts: dict[tuple, Counter] = defaultdict(Counter)
    basis: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    bicubic: dict[tuple, list[float]] = defaultdict(list)
    per_row: Counter = Counter()
    kinds: dict[tuple, set] = defaultdict(set)  # (grid, variant) → model kinds
    for t in trials:
        kinds[(t.grid, t.variant)].add(t.model)
    metric_col, bic_col, verdict_col = col[metric], col[f"{metric}_bicubic"], col["verdict"]
    for t in done:
        per_row[(t.grid, t.variant)] += 1
        for i in t.rows:
            if not np.isfinite(res_col[i]):
                continue
            r = int(res_col[i])
            key = (t.grid, t.variant, r)
            if key not in values:
                values[key] = np.full(len(seeds), np.nan)
            values[key][seed_at[t.seed]] = metric_col[i]
            if verdict_col[i] not in ("", "n/a"):
                verdicts[key][verdict_col[i]] += 1
            for c in BASIS_COLUMNS:
                if np.isfinite(col[c][i]):
                    basis[key][c].append(float(col[c][i]))
            if np.isfinite(bic_col[i]):
                bicubic[(t.grid, r)].append(float(bic_col[i]))

    band_cis = study_intervals(s, done) if detail else {}
    rows: list[Row] = []
    counts: Counter = Counter()  # seed_only, crops (one photo), no_overlap
    bic_rows = _bicubic_rows(bicubic, metric, grids, resolutions, notes)
    if "" in bic_rows and len(bic_rows) == 1:
        rows.append(bic_rows[""])
    empty = np.full(len(seeds), np.nan)
    for g in grids:
        if g in bic_rows and len(bic_rows) > 1:
            rows.append(bic_rows[g])
        for order, (name, label) in enumerate(variants):
            row = Row("variant", name, label, g, order, is_baseline=(name == base),
                      completed=per_row[(g, name)],
                      model=",".join(sorted(kinds.get((g, name), set()) - {""})))
            for r in resolutions:
                vec = values.get((g, name, r), empty)
                row.cells[r] = summarize(vec)
                if name != base:
                    row.deltas[r] = _compare(vec, values.get((g, base, r), empty), seeds,
                                             per_image.get((g, name, r), {}),
                                             per_image.get((g, base, r), {}), counts)
                if input_size is not None and r > input_size:
                    row.verdicts[r] = dict(verdicts.get((g, name, r), {}))
                if input_size is not None and r >= input_size:
                    got = basis.get((g, name, r), {})
                    row.basis[r] = {c: (float(np.mean(got[c])) if got.get(c) else None)
                                    for c in BASIS_COLUMNS}
                    row.band_ci[r] = band_cis.get((g, name, r), {})
            rows.append(row)
    t = Table(
        study=s.name, metric=metric, baseline=base, baseline_label=labels[base],
        input_size=input_size, resolutions=resolutions, seeds=seeds, grids=grids, rows=rows,
        failed=failed, completed=len(done), expected=_expected(m, variants, grids, seeds),
        notes=notes, trial_ids=[t.id for t in done],
    )
    apply_holm(t.comparisons)
    _partial_notes(t, s)
    _interval_notes(t, counts, metric, col, done)
    return t


def _per_image(s: StudyResults, done: list[_Trial], metric: str) -> dict[tuple, dict]:
    """(grid, variant, resolution) → {seed: (image keys, photos, values)} from images/."""
    if not s.dir.images_dir.is_dir():
        return {}
    out: dict[tuple, dict] = defaultdict(dict)
    got = s.images([t.id for t in done], metric)
    for t in done:
        if t.id not in got:
            continue
        a = got[t.id]
        for r in np.unique(a["resolution"][np.isfinite(a["resolution"])]):
            m = (a["resolution"] == r) & np.isfinite(a["value"]) & np.isfinite(a["image"])
            keys = np.array([f"{int(i)}|{p}" for i, p in zip(a["image"][m], a["photo"][m])],
                            dtype=object)
            out[(t.grid, t.variant, int(r))][t.seed] = (keys, a["photo"][m], a["value"][m])
    return out


def _compare(vec, base_vec, seeds: list[int], imgs: dict, base_imgs: dict,
             counts: Counter) -> Comparison:
    """Two-level comparison over the paired seeds' per-image values when every paired seed
    has them on both sides; else (older results) the seed-level comparison."""
    paired = [sd for k, sd in enumerate(seeds) if np.isfinite(vec[k]) and np.isfinite(base_vec[k])]
    if not paired:
        return compare_paired(vec, base_vec)
    if not all(sd in imgs and sd in base_imgs for sd in paired):
        counts["seed_only"] += 1
        return compare_paired(vec, base_vec)
    common = None
    for sd in paired:
        for keys, _, _ in (imgs[sd], base_imgs[sd]):
            common = set(keys) if common is None else common & set(keys)
    if not common:
        counts["no_overlap"] += 1
        counts["seed_only"] += 1
        return compare_paired(vec, base_vec)
    order = sorted(common)
    d = np.empty((len(paired), len(order)))
    photos = None
    for row, sd in enumerate(paired):
        (kv, pv, vv), (kb, _, vb) = imgs[sd], base_imgs[sd]
        at_v = dict(zip(kv, vv))
        at_b = dict(zip(kb, vb))
        d[row] = [at_v[k] - at_b[k] for k in order]
        if photos is None:
            by_key = dict(zip(kv, pv))
            photos = np.array([by_key[k] for k in order], dtype=object)
    groups = photos
    if np.unique(photos.astype(str)).size < 2 and len(order) > 1:
        counts["crops"] += 1
        groups = np.array(order, dtype=object)  # one photo: its crops, as if independent
    return compare_images(d, groups)


def _interval_notes(t: Table, counts: Counter, metric: str, col, done: list[_Trial]) -> None:
    if counts["seed_only"]:
        t.notes.append(
            f"{counts['seed_only']} comparison(s) without per-image results on both sides "
            "(written before ablate kept images/, or no shared held-out images): their interval "
            "and test are over seeds only")
    if counts["crops"]:
        t.notes.append(
            f"{counts['crops']} comparison(s) on a held-out set from one photo: its crops are "
            "resampled as if independent (the interval is too narrow if they are alike)")
    rows = [i for tr in done for i in tr.rows]
    if rows and not np.isfinite(col[metric][rows]).any():
        t.notes.append(f"no {metric} in these results (written before ablate recorded it)")
    elif rows:
        _nonfinite_note(t, metric, col, rows)


def _nonfinite_note(t: Table, metric: str, col, rows: list[int]) -> None:
    """Completed rows whose metric is NaN or ±inf at a resolution where other rows have a
    number: named, since they drop out of the mean (its n) and the comparisons unseen."""
    value, res = col[metric], col["resolution"]
    measured = {float(res[i]) for i in rows if np.isfinite(value[i])}
    bad = [i for i in rows if not np.isfinite(value[i]) and float(res[i]) in measured]
    if not bad:
        return
    where = ", ".join(f"{col['variant'][i]} seed {int(col['seed'][i])} "
                      f"@{int(res[i])}: {float(value[i])}" for i in bad[:4])
    more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
    t.notes.append(
        f"{metric} is missing or not a finite number in {len(bad)} completed row(s) "
        f"({where}{more}): left out of the mean ± std (its n) and of the comparisons; a NaN "
        "from training means the model's output diverged, an inf a prediction equal to the truth")


# ---------------------------------------------------------------------------------------------


def _trials(col: dict[str, np.ndarray]) -> list[_Trial]:
    """Group the rows by trial (rows without a seed are dropped: they cannot be paired)."""
    by_id: dict[str, _Trial] = {}
    seed = col["seed"]
    for i, tid in enumerate(col["trial_id"]):
        if not np.isfinite(seed[i]):
            continue
        t = by_id.get(tid)
        if t is None:
            o = col["variant_order"][i]
            t = by_id[tid] = _Trial(
                tid, col["variant"][i], col["label"][i], float(o) if np.isfinite(o) else math.inf,
                col["grid"][i], int(seed[i]), col["status"][i], col["error"][i],
                col["finished_at"][i], model_kind(col["config_json"][i]))
        t.rows.append(i)
    return list(by_id.values())


def apart_note(apart: list[str], shown: int = 4) -> str:
    """The finished trials of an earlier configuration of the study, named (results/read.py)."""
    more = f" and {len(apart) - shown} more" if len(apart) > shown else ""
    return (f"{len(apart)} finished trial(s) of an earlier configuration (not in the study's "
            f"manifest: the settings changed since) left out: {', '.join(apart[:shown])}{more}")


def split_trials(trials: list[_Trial]):
    """(completed, failed, superseded, other): the latest completed trial per grid point,
    variant and seed; failed trials without a completed retry; how many were superseded; and
    trials of any other status."""
    latest: dict[tuple, _Trial] = {}
    superseded = 0
    for t in trials:
        if t.status != "completed":
            continue
        key = (t.grid, t.variant, t.seed)
        if key in latest:
            superseded += 1
            if t.finished_at < latest[key].finished_at:
                continue
        latest[key] = t
    failed = []
    for t in sorted((t for t in trials if t.status == "failed"),
                    key=lambda t: (t.order, t.grid, t.seed)):
        if (t.grid, t.variant, t.seed) in latest:
            superseded += 1  # a retry under another id completed
            continue
        failed.append(FailedTrial(t.variant, t.label, t.grid, t.seed, t.id,
                                  t.error or "(no message)"))
    other = [t for t in trials if t.status not in ("completed", "failed")]
    return list(latest.values()), failed, superseded, other


def _baseline(asked: str | None, planned: str | None, names: list[str], labels: dict[str, str],
              study: str) -> str:
    """The baseline's variant name: --baseline (a name or a label), the manifest's, the first."""
    if asked is not None:
        if asked in labels:
            return asked
        by_label = [n for n in names if labels[n] == asked]
        if by_label:
            return by_label[0]
        raise UnknownBaseline(f"unknown baseline {asked!r}: the variants of study {study!r} "
                              f"are " + ", ".join(names))
    if planned in labels:
        return planned
    return names[0]


def _natural(s: str):
    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", s)]


def _grid_order(seen: set[str], planned: tuple[str, ...]) -> list[str]:
    """The grid points that have trials: in the manifest's order (the spec's [grid] axes
    crossed in file order), then any others (a changed spec, no manifest) in natural order."""
    known = [g for g in planned if g in seen]
    return known + sorted(seen - set(known), key=_natural)


def _variants(trials: list[_Trial], m: Manifest | None) -> list[tuple[str, str]]:
    """(name, label) in spec order: variant_order, else the manifest's list, else first seen."""
    seen: dict[str, tuple[float, str]] = {}
    for t in trials:
        order, label = seen.get(t.variant, (math.inf, t.label))
        seen[t.variant] = (min(order, t.order), label)
    for i, v in enumerate(m.variants if m else ()):
        order, label = seen.get(v.name, (math.inf, v.label))
        seen[v.name] = (order if order != math.inf else i, label)
    ranked = sorted(seen.items(), key=lambda kv: kv[1][0])  # stable: first seen breaks ties
    return [(name, label) for name, (_, label) in ranked]


def _input_size(done: list[_Trial], col: dict[str, np.ndarray]) -> int | None:
    """Without a manifest, the model's input side from the rows: the resolution where bicubic
    is NaN everywhere (nothing to upsample), else the smallest resolution."""
    res = [(int(col["resolution"][i]), col["psnr_bicubic"][i]) for t in done for i in t.rows
           if np.isfinite(col["resolution"][i])]
    if not res:
        return None
    nan_everywhere = {r for r, _ in res} - {r for r, b in res if np.isfinite(b)}
    return max(nan_everywhere) if nan_everywhere else min(r for r, _ in res)


def _bicubic_rows(bicubic: dict[tuple, list[float]], metric: str, grids: list[str],
                  resolutions: list[int], notes: list[str]) -> dict[str, Row]:
    """{"": row} when bicubic is the same at every grid point, else {grid: row}."""
    per_grid: dict[str, dict[int, Summary]] = {}
    for g in grids:
        cells = {}
        for r in resolutions:
            v = np.asarray(bicubic.get((g, r), []), dtype=float)
            cells[r] = Summary(float(v.mean()) if v.size else None, None, int(v.size))
            if v.size > 1 and np.ptp(v) > 1e-6 * max(1.0, abs(float(v.mean()))):
                notes.append(f"bicubic {metric} differs between trials at {r}"
                             f"{' (' + g + ')' if g else ''}: spread {np.ptp(v):.3g}, mean shown")
        per_grid[g] = cells

    def same(a: dict[int, Summary], b: dict[int, Summary]) -> bool:
        for r in resolutions:
            x, y = a[r].mean, b[r].mean
            if x is not None and y is not None and abs(x - y) > 1e-6 * max(1.0, abs(x)):
                return False
        return True

    first = per_grid[grids[0]]
    if all(same(first, c) for c in per_grid.values()):
        cells = {}
        for r in resolutions:
            means = [c[r].mean for c in per_grid.values() if c[r].mean is not None]
            cells[r] = Summary(float(np.mean(means)) if means else None, None,
                               sum(c[r].n for c in per_grid.values()))
        return {"": Row("bicubic", "bicubic", "Bicubic", "", -1, cells=cells)}
    return {g: Row("bicubic", "bicubic", "Bicubic", g, -1, cells=c) for g, c in per_grid.items()}


def _expected(m: Manifest | None, variants, grids, seeds) -> int:
    n_grid = max(len(grids), len(m.grid) if m else 0)
    return len(variants) * n_grid * len(seeds)


def _partial_notes(t: Table, s: StudyResults) -> None:
    done_or_failed = t.completed + len(t.failed)
    if t.completed < t.expected:
        missing = max(0, t.expected - done_or_failed)
        parts = [f"{t.completed}/{t.expected} trials completed"]
        if t.failed:
            parts.append(f"{len(t.failed)} failed")
        if missing:
            parts.append(f"{missing} not finished (running or not started)")
        t.notes.insert(0, ("partial study: " if missing else "") + ", ".join(parts))
    if s.manifest_problem:
        t.notes.append(f"study facts from the rows alone (variants not run yet, labels and "
                       f"the baseline may be missing): {s.manifest_problem}")
    if s.skipped.get("trials"):
        t.notes.append(f"{len(s.skipped['trials'])} unreadable trial file(s) skipped: "
                       "counted not finished, the next `ablate run` runs them again: " + "; ".join(s.skipped["trials"][:3])
                       + (" …" if len(s.skipped["trials"]) > 3 else ""))
    if len(t.seeds) == 1 or (t.seeds and all(c.n < 2 for c in t.comparisons if c.n)):
        if any(c.n == 1 and c.ci_low is None for c in t.comparisons):
            t.notes.append("one seed per comparison and no per-image results: Δ is a single "
                           "paired difference; no interval or significance test is possible")
