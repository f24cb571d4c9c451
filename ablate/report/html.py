"""`ablate report`: the figures of every study under DIR and an index.html showing them with the
comparison tables (PSNR and SSIM), the notes and the failed trials.

    OUT/index.html
    OUT/<prefix>psnr_vs_resolution.png, ssim_vs_resolution.png, spectra.png,
        samples.png (samples_<k>.png per grid point), training.png

`<prefix>` is "<study>-" when DIR holds several studies, else empty. The HTML references the
PNGs by relative path, so OUT can be moved or served as is.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ablate.report.search import search_section
from ablate.results.atomic import atomic_write_text
from ablate.results.read import NoResults, StudyResults, load_results
from ablate.results.search import search_records
from ablate.spec.settings import settings, show, split
from ablate.table.build import Table, build_table
from ablate.table.format import (DETAIL_HEADER, blocks, cells, detail_legend, detail_rows,
                                 detail_title, footer_lines, header, legend, title)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table.ablate { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
table.ablate th, table.ablate td { padding: 0.25em 0.6em; border-bottom: 1px solid #e4e4e4;
  text-align: right; white-space: nowrap; }
table.ablate th:first-child, table.ablate td:first-child { text-align: left; }
table.ablate tr.bicubic td { color: #666; font-style: italic; }
table.ablate tr.baseline td { font-weight: 600; }
table.ablate tr.block td { background: #f3f3f3; font-weight: 600; text-align: left; }
p.legend, ul.notes { font-size: 0.85em; color: #555; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
"""

CAPTIONS = {
    "psnr": "PSNR vs eval resolution per variant (mean over seeds, 95 % bootstrap band), with "
            "bicubic; right: gain over bicubic.",
    "ssim": "SSIM vs eval resolution per variant (mean over seeds, 95 % bootstrap band), with "
            "bicubic; right: gain over bicubic.",
    "spectra": "Radially averaged power spectra at the highest resolution: ground truth, bicubic "
               "and each variant; the shaded band lies above the input's Nyquist frequency, "
               "where only true super-resolution can match the ground truth.",
    "samples": "Held-out reconstructions at the highest resolution: input, bicubic, each "
               "variant (its lowest seed), ground truth; second rows zoom into the centre.",
    "training": "Training curves per variant: loss and quick held-out PSNR per epoch "
                "(mean over seeds; band: min–max).",
}


def caption(key: str, t: Table) -> str:
    """The figure's caption; the band of the metric figures only where a row has 2+ seeds (as
    the figure draws it: ablate/report/figures.py)."""
    text = CAPTIONS[key]
    if key in ("psnr", "ssim") and not any(r.completed >= 2 for r in t.rows
                                           if r.kind == "variant"):
        text = text.replace("(mean over seeds, 95 % bootstrap band)",
                            "(one seed per variant: no confidence band)")
    return text


def html_table(t: Table) -> str:
    """The comparison table as an HTML <table> (the same cells as the text table)."""
    h = header(t)
    out = ['<table class="ablate">', "<thead><tr>"
           + "".join(f"<th>{html.escape(x)}</th>" for x in h) + "</tr></thead>", "<tbody>"]
    for heading, rows in blocks(t):
        if heading is not None:
            out.append(f'<tr class="block"><td colspan="{len(h)}">{html.escape(heading)}'
                       "</td></tr>")
        for row in rows:
            cls = "bicubic" if row.kind == "bicubic" else ("baseline" if row.is_baseline else "")
            out.append(f'<tr class="{cls}">'
                       + "".join(f"<td>{html.escape(c)}</td>" for c in cells(row, t)) + "</tr>")
    out += ["</tbody></table>", f'<p class="legend">{html.escape(legend(t))}</p>']
    foot = footer_lines(t)
    if foot:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(x.strip())}</li>"
                                                   for x in foot) + "</ul>")
    return "\n".join(out)


def html_detail(t: Table) -> str:
    """What each verdict was decided from (`ablate table --detail`) as an HTML <table>."""
    if not t.verdict_resolutions:
        return ""
    out = [f"<h3>{html.escape(detail_title(t))}</h3>", '<table class="ablate">',
           "<thead><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in DETAIL_HEADER)
           + "</tr></thead>", "<tbody>"]
    heading_seen = None
    for heading, c, is_base in detail_rows(t):
        if heading is not None and heading != heading_seen:
            out.append(f'<tr class="block"><td colspan="{len(DETAIL_HEADER)}">'
                       f"{html.escape(heading)}</td></tr>")
            heading_seen = heading
        out.append(f'<tr class="{"baseline" if is_base else ""}">'
                   + "".join(f"<td>{html.escape(x)}</td>" for x in c) + "</tr>")
    out += ["</tbody></table>", f'<p class="legend">{html.escape(detail_legend(t))}</p>']
    return "\n".join(out)


def definition_html(s: StudyResults, table: Table) -> str:
    """What the study is, for a reader of the report alone: its description, what sets each
    row apart (the settings the rows do not share, from their trials' `config_json`: jitter,
    multi-scale, curriculum, model, …), the settings every row shares (data, model, training)
    and the code that wrote the rows."""
    col = s.columns()
    used = set(table.trial_ids)
    rows: dict[str, dict] = {}
    labels: dict[str, str] = {}
    order: dict[str, tuple] = {}
    versions: set[str] = set()
    for i, tid in enumerate(col["trial_id"]):
        if tid not in used:
            continue
        versions.add(str(col["code_version"][i]))
        key = str(col["variant"][i]) + (f" [{col['grid'][i]}]" if col["grid"][i] else "")
        if key in rows:
            continue
        try:
            config = json.loads(col["config_json"][i] or "")
        except ValueError:
            continue
        if isinstance(config, dict):
            rows[key] = settings(config)
            labels[key] = str(col["label"][i])
            order[key] = (float(col["variant_order"][i]), str(col["grid"][i]))
    rows = {k: rows[k] for k in sorted(rows, key=lambda k: order[k])}  # the table's order
    out = []
    m = s.manifest
    if m is not None and m.description:
        out.append(f"<p>{html.escape(m.description)}</p>")
    if not rows:
        return "\n".join(out)
    common, differing = split(rows)
    out.append('<h3>What each row is</h3><table class="ablate"><thead><tr><th>row</th>'
               "<th>variant</th><th>settings that set it apart</th></tr></thead><tbody>")
    for key, own in differing.items():
        what = "; ".join(f"{k} = {show(v)}" for k, v in own.items()) or "(nothing differs)"
        out.append(f"<tr><td>{html.escape(labels[key])}</td><td>{html.escape(key)}</td>"
                   f'<td style="text-align:left;white-space:normal">{html.escape(what)}</td>'
                   "</tr>")
    out.append("</tbody></table>")
    shared = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(show(v))}</td></tr>"
                     for k, v in common.items())
    out.append(f"<details><summary>The {len(common)} settings every row shares (data, model, "
               'training)</summary><table class="ablate"><tbody>' + shared
               + "</tbody></table></details>")
    written = "; ".join(sorted(v for v in versions if v)) or "unknown (older files)"
    out.append(f'<p class="legend">Rows written by ablate {html.escape(written)}.</p>')
    return "\n".join(out)


def study_figures(s: StudyResults, table: Table, out: Path, prefix: str = "",
                  log: Callable[[str], None] = lambda m: None) -> list[tuple[str, Path]]:
    """Draw every figure of one study; returns (caption key, path) of those written. `log`
    hears of each figure as it starts (drawing a large study takes a minute)."""
    log(f"{table.study}: drawing figures into {out}")
    from ablate.report import figures  # matplotlib (~0.45 s): only when figures are drawn

    df = s.trials
    # the completed rows the table used (latest trial per grid point, variant and seed)
    done = df[df["trial_id"].isin(set(table.trial_ids)) & df["resolution"].notna()].copy()
    done["resolution"] = done["resolution"].astype(int)
    done["seed"] = done["seed"].astype(int)
    variants = [(r.name, r.label) for r in table.rows if r.kind == "variant"]
    variants = list(dict.fromkeys(variants))  # one entry per variant across grid blocks
    grids = table.grids
    written: list[tuple[str, Path | None]] = []
    for metric in ("psnr", "ssim"):
        log(f"{table.study}: {metric} vs resolution")
        written.append((metric, figures.metric_vs_resolution(
            done, variants, grids, metric, table.input_size, table.study,
            out / f"{prefix}{metric}_vs_resolution.png")))
    ids = list(done["trial_id"].unique())
    log(f"{table.study}: spectra ({len(ids)} trials)")
    written.append(("spectra", figures.spectra(s.spectra(ids), done, variants, grids,
                                               table.input_size, table.study,
                                               out / f"{prefix}spectra.png")))
    for k, g in enumerate(grids):
        per_variant = {}
        for name, _ in variants:
            trials = (done[(done["grid"] == g) & (done["variant"] == name)]
                      .drop_duplicates("trial_id").sort_values("seed"))
            for tid in trials["trial_id"]:
                arrays = s.samples(tid)
                if arrays is not None:
                    per_variant[name] = arrays
                    break
        fname = f"{prefix}samples.png" if len(grids) == 1 else f"{prefix}samples_{k}.png"
        log(f"{table.study}: held-out samples" + (f" [{g}]" if g else ""))
        written.append(("samples", figures.samples(per_variant, variants, table.study, g,
                                                   out / fname)))
    log(f"{table.study}: training curves")
    written.append(("training", figures.training(s.history(ids), done, variants, grids,
                                                 table.study, out / f"{prefix}training.png")))
    return [(k, p) for k, p in written if p is not None]


def write_report(dir, out, study: str | None = None, metric: str = "psnr",
                 baseline: str | None = None,
                 log: Callable[[str], None] = lambda m: None) -> Path:
    """Write the figures and OUT/index.html for every study under DIR; returns index.html.

    Raises NoResults (nothing to report) and UnknownBaseline, like the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    studies = load_results(dir, study)
    other = "ssim" if metric == "psnr" else "psnr"
    sections = []
    for s in studies:
        prefix = f"{s.name}-" if len(studies) > 1 else ""
        log(f"{s.name}: tables (with the verdicts' intervals over held-out photos)")
        try:
            tables = [build_table(s, metric, baseline, detail=True),
                      build_table(s, other, baseline)]
        except NoResults:
            if not search_records(s.dir):
                raise
            # only `ablate search` trials so far (no grid row to compare): the search alone
            sections.append("\n".join(
                [f"<h2>{html.escape(s.name)}</h2>",
                 "<p>No grid trial results yet (<code>ablate run</code>): the study's "
                 f"search{'es' if len(search_records(s.dir)) > 1 else ''} only; results in "
                 f"<code>{html.escape(str(s.root))}</code>.</p>",
                 *search_section(s, out, prefix)]))
            continue
        figs = study_figures(s, tables[0], out, prefix, log)
        parts = [f"<h2>{html.escape(s.name)}</h2>",
                 f"<p>{tables[0].completed}/{tables[0].expected} trials completed, "
                 f"{len(tables[0].failed)} failed; results in <code>{html.escape(str(s.root))}"
                 f"</code>.</p>", definition_html(s, tables[0])]
        for t in tables:
            parts += [f"<h3>{html.escape(title(t))}</h3>", html_table(t)]
        parts.append(html_detail(tables[0]))
        missing = [k for k in CAPTIONS if k not in {k for k, _ in figs}]
        for key, path in figs:
            parts.append(f'<figure><img src="{html.escape(path.name)}" '
                         f'alt="{html.escape(key)}"><figcaption>'
                         f"{html.escape(caption(key, tables[0]))}</figcaption></figure>")
        if missing:
            parts.append(f'<p class="legend">Not drawn (no data yet): {", ".join(missing)}.</p>')
        if s.skipped_count:
            parts.append(f'<p class="legend">{s.skipped_count} unreadable file(s) skipped: '
                         + html.escape("; ".join(x for v in s.skipped.values() for x in v[:5]))
                         + "</p>")
        parts += search_section(s, out, prefix)  # `ablate search`es of the study
        sections.append("\n".join(parts))
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(s.name for s in studies)
    page = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>ablate report: {html.escape(names)}</title><style>{CSS}</style></head>\n"
            f"<body><h1>ablate report: {html.escape(names)}</h1>"
            f"<p class=\"legend\">Generated {stamp} from <code>{html.escape(str(dir))}</code>."
            "</p>\n" + "\n".join(sections) + "\n</body></html>\n")
    return atomic_write_text(out / "index.html", page)  # a planted link is replaced, not followed
