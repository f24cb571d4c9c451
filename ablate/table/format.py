"""The table in five formats: text (rich, for the terminal), markdown and LaTeX (to paste into a
README or a paper), CSV and JSON (for tools).

Text, markdown and LaTeX show the same cells (``cells``): mean ± std, Δ [95 % CI] with its
significance mark, verdict counts, "—" where a figure is missing; then the notes (partial study,
skipped files) and the failed trials. CSV is long ("tidy"): one record per study × row ×
resolution with plain numbers, empty where missing. JSON holds the same numbers, nested by
study and row, with the notes and failed trials: ``{"studies": [...]}``.

``detail=True`` (``ablate table --detail``) adds the basis of every verdict: in the human
formats a second table, one line per row × resolution above the input (verdict counts, the
fitness gate's LR-consistency PSNR against its floor, in-band energy and error ratios vs
bicubic, coherence with the truth beside bicubic's; means over seeds), with the rule in its
legend; in CSV and JSON the same figures as extra fields.

From Python:

    from ablate.table.format import print_table
    print_table("results/my_study")                 # the rich table on stdout
    text = render(load_tables("results"), "markdown")
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import unicodedata

from ablate.metrics.verdict import (
    HALLUCINATION_MIN_ENERGY_RATIO,
    HALLUCINATION_MIN_ERROR_RATIO,
    TRUE_SR_MAX_ERROR_RATIO,
    TRUE_SR_MIN_COHERENCE_GAIN,
)
from ablate.results.json_safe import json_safe
from ablate.table.build import BASIS_COLUMNS, Row, Table, load_tables
from ablate.table.choices import Format
from ablate.table.stats import Comparison, Summary

FORMATS = tuple(f.value for f in Format)
MISSING = "—"


# ---------------------------------------------------------------------------------------------
# Cells shared by the human formats
# ---------------------------------------------------------------------------------------------


def _num(x: float, decimals: int, sign: bool = False) -> str:
    x = round(x, decimals) + 0.0  # no "-0.00" for a tiny negative
    return f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"


def fmt_summary(c: Summary | None, t: Table, row: Row) -> str:
    """"27.31 ± 0.12", with "(n=2)" when fewer seeds than the study's; "—" when missing."""
    if c is None or c.mean is None:
        return MISSING
    s = _num(c.mean, t.decimals)
    if c.std is not None:
        s += f" ± {_num(c.std, t.decimals)}"
    if row.kind == "variant" and c.n < len(t.seeds):
        s += f" (n={c.n})"
    return s


def fmt_delta(c: Comparison | None, t: Table, row: Row, own: Summary | None = None) -> str:
    """"+0.41 [+0.20, +0.60] **"; "(n=1: no interval)" for a single pair; "(n=k)" when fewer
    pairs than the row's own seeds (`own`: the row's summary at that resolution)."""
    if row.kind != "variant":
        return ""
    if row.is_baseline:
        return "baseline"
    if c is None or c.delta is None:
        return MISSING
    s = _num(c.delta, t.decimals, sign=True)
    if c.ci_low is None:  # said once, in the legend (`legend`), not in every cell
        return s
    s += f" [{_num(c.ci_low, t.decimals, True)}, {_num(c.ci_high, t.decimals, True)}]"
    if c.mark:
        s += " " + c.mark
    if own is not None and c.n < own.n:
        s += f" (n={c.n})"
    return s


def fmt_verdict(counts: dict[str, int] | None, row: Row) -> str:
    if row.kind != "variant":
        return ""
    if not counts:
        return MISSING
    total = sum(counts.values())
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{v} {k}/{total}" for v, k in ranked)


def lead(t: Table) -> list[str]:
    """The columns before the figures: the variant, and its model kind where rows differ by
    it."""
    return ["Variant", "Model"] if t.shows_model else ["Variant"]


def header(t: Table) -> list[str]:
    short = {"psnr_y": "Y-PSNR"}.get(t.metric, t.metric.upper())
    cols = lead(t)
    for r in t.resolutions:
        cols.append(f"{short}@{r}" + (" (input)" if r == t.input_size else ""))
        cols.append(f"Δ@{r} [95% CI]")
    cols += [f"Verdict@{r}" for r in t.verdict_resolutions]
    return cols


INPUT = "input"  # bicubic at the input size: the input itself, nothing to compare


def cells(row: Row, t: Table) -> list[str]:
    out = [row.label]  # the baseline is marked by its Δ cells ("baseline") and in bold
    if t.shows_model:
        out.append(row.model)
    for r in t.resolutions:
        if row.kind == "bicubic" and r == t.input_size and _missing(row.cells.get(r)):
            out += [INPUT, ""]
            continue
        out.append(fmt_summary(row.cells.get(r), t, row))
        out.append(fmt_delta(row.deltas.get(r), t, row, row.cells.get(r)))
    out += [fmt_verdict(row.verdicts.get(r), row) for r in t.verdict_resolutions]
    return out


def blocks(t: Table) -> list[tuple[str | None, list[Row]]]:
    """(grid heading or None, rows): a shared Bicubic row alone, then a block per grid point
    (headed by its grid point when the study has a grid)."""
    out: list[tuple[str | None, list[Row]]] = []
    has_grid = t.grids != [""]
    key = None
    for row in t.rows:
        heading = row.grid if (has_grid and row.grid) else None
        k = ("shared-bicubic",) if (row.kind == "bicubic" and not row.grid) else (heading,)
        if out and k == key:
            out[-1][1].append(row)
        else:
            out.append((heading, [row]))
            key = k
    return out


def title(t: Table) -> str:
    return f"{t.study}: {t.metric_label} by eval resolution"


def _missing(c: Summary | None) -> bool:
    return c is None or c.mean is None


def legend(t: Table) -> str:
    """What the cells mean: only the parts that appear in this table."""
    n = len(t.seeds)
    shown = [cells(row, t) for row in t.rows]
    flat = [c for row in shown for c in row[1:]]
    compared = [c for c in t.comparisons if c.delta is not None]
    with_ci = [c for c in compared if c.ci_low is not None]
    parts = [f"mean ± std over {n} seed{'s' if n != 1 else ''}"
             + (" (n = seeds when fewer)" if any("(n=" in c for c in flat) else "")]
    if compared:
        images = any(c.n_images for c in t.comparisons)
        if images:
            delta = (f"Δ vs {t.baseline_label}, paired by seed and held-out image"
                     + (", [95% CI: two-level bootstrap over seeds and held-out photos]; "
                        "Holm-corrected t-test (seed + photo variance)" if with_ci else ""))
        else:
            delta = (f"Δ vs {t.baseline_label}, paired by seed"
                     + (", [95% bootstrap CI over seeds]; Holm-corrected paired t-test"
                        if with_ci else ""))
        marks = [m for m in ("***", "**", "*") if any(c.mark == m for c in with_ci)]
        if marks:
            delta += ": " + ", ".join(f"{m} p<{p}" for m, p in
                                      (("*", "0.05"), ("**", "0.01"), ("***", "0.001"))
                                      if m in marks)
        if len(with_ci) < len(compared):
            delta += ("; a Δ without [CI] has one seed pair and no per-image results "
                      "(n=1: no interval)")
        parts.append(delta)
    if t.verdict_resolutions:
        parts.append(f"verdicts counted across seeds above the {t.input_size or '?'} px input")
    if any(c == INPUT for c in flat):
        parts.append(f"Bicubic {INPUT}: at the input size, bicubic is the input itself")
    if any(c == MISSING for c in flat):
        parts.append(f"{MISSING} = no result")
    return "; ".join(parts)


def footer_lines(t: Table) -> list[str]:
    lines = list(t.notes)
    if t.failed:
        lines.append(f"{len(t.failed)} failed trial(s):")
        for f in t.failed:
            where = f" [{f.grid}]" if f.grid else ""
            error = _first_line(f.error)
            lines.append(f"  {f.label}{where}, seed {f.seed} ({f.trial_id}): {error}")
    return lines


# ---------------------------------------------------------------------------------------------
# The verdicts' basis (--detail)
# ---------------------------------------------------------------------------------------------

DETAIL_HEADER = ["Variant", "r", "Verdicts", "Fit at input: PSNR (floor) margin",
                 "LR PSNR (margin)", "Energy × bicubic [CI] (truth)", "Error × bicubic [CI]",
                 "Coherence [CI] (bicubic)"]


def _opt(x: float | None, spec: str) -> str:
    return MISSING if x is None else format(x, spec)


def _ci(ci: tuple[float, float] | None, spec: str) -> str:
    return "" if not ci else f" [{format(ci[0], spec)}, {format(ci[1], spec)}]"


def detail_title(t: Table) -> str:
    return f"{t.study}: what the verdicts were decided from"


def detail_legend(t: Table) -> str:
    s = t.input_size or "?"
    return (
        "means over seeds; [CI]: 95% interval over held-out photos (table/band.py); rule "
        "(ablate/metrics/verdict.py), in order: unfit (at every r) when the margin at the input "
        f"— the lower 95% bound, over held-out photos, of the model's PSNR at {s} px minus the "
        "input's half-resolution copy's (the floor) — is ≤ 0; inconsistent when the same bound "
        "for the output at r brought back to the input grid (LR PSNR) is ≤ 0; true_sr when "
        f"error × bicubic ≤ {TRUE_SR_MAX_ERROR_RATIO:g} and coherence ≥ bicubic's + "
        f"{TRUE_SR_MIN_COHERENCE_GAIN:g}; hallucination when energy × bicubic ≥ "
        f"{HALLUCINATION_MIN_ENERGY_RATIO:g} and error × bicubic ≥ "
        f"{HALLUCINATION_MIN_ERROR_RATIO:g}; resampling otherwise. In-band: above the {s} px "
        "input's Nyquist; (truth): the truth's own in-band energy × bicubic's; coherence is "
        "signed, in [-1, 1]"
    )


def detail_rows(t: Table) -> list[tuple[str | None, list[str], bool]]:
    """(grid heading or None, cells, is_baseline) per variant row × verdict resolution."""
    out = []
    has_grid = t.grids != [""]
    for row in t.rows:
        if row.kind != "variant":
            continue
        fit = row.basis.get(t.input_size) or {} if t.input_size else {}
        fit_psnr, floor, margin = (fit.get("psnr_lr_consistency"), fit.get("psnr_lr_floor"),
                                   fit.get("fit_margin"))
        fit_cell = MISSING if fit_psnr is None else (
            f"{fit_psnr:.2f} ({_opt(floor, '.2f')}) {_opt(margin, '+.2f')}")
        for r in t.verdict_resolutions:
            b, ci = row.basis.get(r) or {}, row.band_ci.get(r) or {}
            lr, lr_margin = b.get("psnr_lr_consistency"), b.get("lr_margin")
            lr_cell = MISSING if lr is None else f"{lr:.2f} ({_opt(lr_margin, '+.2f')})"
            energy, truth = b.get("hf_energy_ratio"), b.get("truth_energy_ratio")
            energy_cell = MISSING if energy is None else (
                f"{energy:.3g}{_ci(ci.get('hf_energy_ratio'), '.3g')} ({_opt(truth, '.3g')})")
            err = b.get("band_error_ratio")
            err_cell = MISSING if err is None else (
                f"{err:.3f}{_ci(ci.get('band_error_ratio'), '.3f')}")
            coh, coh_b = b.get("band_coherence"), b.get("band_coherence_bicubic")
            coh_cell = MISSING if coh is None else (
                f"{coh:+.3f}{_ci(ci.get('band_coherence'), '+.3f')} ({_opt(coh_b, '+.3f')})")
            out.append((row.grid if has_grid and row.grid else None, [
                row.label, str(r), fmt_verdict(row.verdicts.get(r), row), fit_cell, lr_cell,
                energy_cell, err_cell, coh_cell,
            ], row.is_baseline))
    return out


def _first_line(s: str, limit: int = 160) -> str:
    s = (s or "").strip().splitlines()[-1] if (s or "").strip() else "(no message)"
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------


def rich_table(t: Table):
    """The table as a rich renderable."""
    from rich import box
    from rich.table import Table as RichTable

    rt = RichTable(title=title(t), caption=legend(t), box=box.SIMPLE_HEAVY,
                   caption_justify="left", title_justify="left")
    for i, h in enumerate(header(t)):
        rt.add_column(h, justify="left" if i < len(lead(t)) else "right", no_wrap=(i == 0))
    ncols = len(header(t))
    for k, (heading, rows) in enumerate(blocks(t)):
        if k:
            rt.add_section()
        if heading is not None:
            rt.add_row(f"[bold]{heading}[/bold]", *[""] * (ncols - 1))
        for row in rows:
            style = "dim" if row.kind == "bicubic" else ("bold" if row.is_baseline else None)
            rt.add_row(*[_rich_escape(c) for c in cells(row, t)], style=style)
    return rt


def rich_compact(t: Table):
    """The same cells for a narrow terminal: one line per row × eval resolution (a section
    per resolution), so that the table fits 80 columns instead of wrapping every cell."""
    from rich import box
    from rich.table import Table as RichTable

    short = {"psnr_y": "Y-PSNR"}.get(t.metric, t.metric.upper())
    rt = RichTable(title=title(t), box=box.SIMPLE_HEAVY, caption_justify="left",
                   title_justify="left")
    used: dict[str, str] = {}
    for h in lead(t):
        rt.add_column(h, justify="left")
    rt.add_column("r", justify="right", no_wrap=True)
    rt.add_column(short, justify="right", no_wrap=True)
    rt.add_column("Δ [95% CI]", justify="right", min_width=16)  # stacked: _stacked
    rt.add_column("Verdict", justify="left", no_wrap=True)  # abbreviated: SHORT_VERDICTS
    for k, r in enumerate(t.resolutions):
        if k:
            rt.add_section()
        for heading, rows in blocks(t):
            if heading is not None:
                rt.add_row(f"[bold]{_rich_escape(heading)}[/bold]", *[""] * (len(lead(t)) + 3))
            for row in rows:
                c = cells(row, t)
                n = len(lead(t))
                i = n + 2 * t.resolutions.index(r)
                verdict = (fmt_verdict(row.verdicts.get(r), row)
                           if r in t.verdict_resolutions else "")
                for word, short_word in SHORT_VERDICTS.items():
                    if word in verdict:
                        verdict = verdict.replace(word, short_word)
                        used[short_word] = word
                style = "dim" if row.kind == "bicubic" else ("bold" if row.is_baseline else None)
                rt.add_row(*[_rich_escape(x) for x in (*c[:n], str(r), c[i])],
                           _stacked(_rich_escape(c[i + 1])),  # its line break kept
                           _rich_escape(verdict), style=style)
    key = "; ".join(f"{s} = {w}" for s, w in used.items())
    rt.caption = _rich_escape(legend(t) + (f"; {key}" if key else ""))
    return rt


# The compact table's verdict words, shortened to fit 80 columns (its caption gives the key).
SHORT_VERDICTS = {"inconsistent": "incons.", "resampling": "resampl.",
                  "hallucination": "halluc."}


_DELTA = re.compile(r"^(\S+) (\[[^\]]+\])( \*+)?$")


def _stacked(delta: str) -> str:
    """"+6.65 [+5.37, +7.92] ***" → "+6.65 ***" over "[+5.37, +7.92]": a narrow column
    breaks a Δ cell here, keeping the stars with the value they mark."""
    m = _DELTA.match(delta)
    return f"{m.group(1)}{m.group(3) or ''}\n{m.group(2)}" if m else delta


def fits(renderable, console) -> bool:
    """Whether `renderable` fits the console's width without wrapping its cells."""
    from rich.console import Console

    wide = Console(width=10_000, file=io.StringIO(), color_system=None)
    return wide.measure(renderable).maximum <= console.width


def detail_stacked(t: Table) -> list[str]:
    """The verdicts' basis for a narrow terminal: per variant row and resolution, its verdicts,
    then one indented line per figure (DETAIL_HEADER's names), instead of truncated columns."""
    out = [detail_title(t), ""]
    heading_seen = None
    for heading, c, _ in detail_rows(t):
        if heading is not None and heading != heading_seen:
            out.append(f"[{heading}]")
            heading_seen = heading
        out.append(f"{c[0]} @{c[1]}: {c[2]}")
        out += [f"    {name}: {value}" for name, value in zip(DETAIL_HEADER[3:], c[3:])]
    return out + ["", detail_legend(t)]


def rich_detail(t: Table):
    """The verdicts' basis as a rich renderable."""
    from rich import box
    from rich.table import Table as RichTable

    rt = RichTable(title=detail_title(t), caption=detail_legend(t), box=box.SIMPLE_HEAVY,
                   caption_justify="left", title_justify="left")
    for i, h in enumerate(DETAIL_HEADER):
        rt.add_column(h, justify="left" if i in (0, 2) else "right", no_wrap=(i == 0))
    heading_seen = None
    for heading, c, is_base in detail_rows(t):
        if heading is not None and heading != heading_seen:
            rt.add_row(f"[bold]{_rich_escape(heading)}[/bold]", *[""] * (len(c) - 1))
            heading_seen = heading
        rt.add_row(*[_rich_escape(x) for x in c], style="bold" if is_base else None)
    return rt


def printable(s: str) -> str:
    """`s` with every control character (newlines, carriage returns, ESC and the terminal
    sequences it starts, …) made a space: text from a spec or a results folder never moves a
    cursor, retitles a window or splits a row of whatever reads the output."""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in str(s))


def _rich_escape(s: str) -> str:
    from rich.markup import escape

    return escape(printable(s))


def print_text(tables: list[Table], console=None, detail: bool = False) -> None:
    """Print the tables with rich (colours on a terminal); `detail`: the verdicts' basis too."""
    from rich.console import Console

    if console is None:
        # Off a terminal rich would wrap at 80 columns: let the table take its natural width.
        console = Console() if sys.stdout.isatty() else Console(width=400, soft_wrap=True)
    for i, t in enumerate(tables):
        if i:
            console.print()
        full = rich_table(t)
        console.print(full if fits(full, console) else rich_compact(t))
        for line in footer_lines(t):
            console.print(_rich_escape(line), highlight=False)
        if detail and t.verdict_resolutions:
            console.print()
            full = rich_detail(t)
            if fits(full, console):
                console.print(full)
            else:
                for line in detail_stacked(t):
                    console.print(_rich_escape(line), highlight=False)


def to_text(tables: list[Table], width: int = 400, detail: bool = False) -> str:
    from rich.console import Console

    buf = io.StringIO()
    print_text(tables, Console(file=buf, width=width, color_system=None, soft_wrap=True),
               detail=detail)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def to_markdown(tables: list[Table], detail: bool = False) -> str:
    out = []
    for t in tables:
        h = header(t)
        out += [f"**{_md(title(t))}**", "", "| " + " | ".join(map(_md, h)) + " |",
                "|" + "|".join([":---"] * len(lead(t)) + ["---:"] * (len(h) - len(lead(t))))
                + "|"]
        for heading, rows in blocks(t):
            if heading is not None:
                out.append("| " + " | ".join([f"*{_md(heading)}*"] + [""] * (len(h) - 1)) + " |")
            for row in rows:
                c = [_md(x) for x in cells(row, t)]
                if row.is_baseline:
                    c[0] = f"**{c[0]}**"
                out.append("| " + " | ".join(c) + " |")
        out += ["", _md(legend(t)) + "."]
        foot = footer_lines(t)
        if foot:
            out.append("")
            out += [("  - " if line.startswith("  ") else "- ") + _md(line.strip())
                    for line in foot]
        out.append("")
        if detail and t.verdict_resolutions:
            out += [f"**{_md(detail_title(t))}**", "",
                    "| " + " | ".join(map(_md, DETAIL_HEADER)) + " |",
                    "|" + "|".join([":---", "---:", ":---"] + ["---:"] * 4) + "|"]
            heading_seen = None
            for heading, c, is_base in detail_rows(t):
                if heading is not None and heading != heading_seen:
                    out.append("| " + " | ".join([f"*{_md(heading)}*"] + [""] * 6) + " |")
                    heading_seen = heading
                c = [_md(x) for x in c]
                if is_base:
                    c[0] = f"**{c[0]}**"
                out.append("| " + " | ".join(c) + " |")
            out += ["", _md(detail_legend(t)) + ".", ""]
    return "\n".join(out)


_MD = {"\\": "\\\\", "|": "\\|", "*": "\\*", "`": "\\`", "<": "&lt;", ">": "&gt;"}


def _md(s: str) -> str:
    """Markdown table text: markup characters escaped, HTML made inert (&lt;script&gt;), one
    line (`printable`)."""
    return "".join(_MD.get(ch, ch) for ch in printable(s))


def to_latex(tables: list[Table], detail: bool = False) -> str:
    out = []
    for t in tables:
        h = header(t)
        out += [f"% ablate table: {title(t)}", "% requires \\usepackage{booktabs}",
                "\\begin{tabular}{" + "l" * len(lead(t)) + "r" * (len(h) - len(lead(t))) + "}",
                "\\toprule",
                " & ".join(_tex(x) for x in h) + " \\\\", "\\midrule"]
        for k, (heading, rows) in enumerate(blocks(t)):
            if k:
                out.append("\\midrule")
            if heading is not None:
                out.append(f"\\multicolumn{{{len(h)}}}{{l}}{{\\textit{{{_tex(heading)}}}}} \\\\")
            for row in rows:
                c = [_tex(x) for x in cells(row, t)]
                if row.is_baseline:
                    c[0] = f"\\textbf{{{c[0]}}}"
                out.append(" & ".join(c) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}", f"% {_tex_comment(legend(t))}"]
        out += [f"% {_tex_comment(line)}" for line in footer_lines(t)]
        out.append("")
        if detail and t.verdict_resolutions:
            out += [f"% ablate table --detail: {detail_title(t)}",
                    "\\begin{tabular}{lrlrrrr}", "\\toprule",
                    " & ".join(_tex(x) for x in DETAIL_HEADER) + " \\\\", "\\midrule"]
            heading_seen = None
            for heading, c, is_base in detail_rows(t):
                if heading is not None and heading != heading_seen:
                    out.append(f"\\multicolumn{{7}}{{l}}{{\\textit{{{_tex(heading)}}}}} \\\\")
                    heading_seen = heading
                c = [_tex(x) for x in c]
                if is_base:
                    c[0] = f"\\textbf{{{c[0]}}}"
                out.append(" & ".join(c) + " \\\\")
            out += ["\\bottomrule", "\\end{tabular}", f"% {_tex_comment(detail_legend(t))}", ""]
    return "\n".join(out)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    s = "".join(_TEX.get(ch, ch) for ch in printable(s))
    s = s.replace(MISSING, "---").replace("…", "\\ldots{}")
    return "".join(_TEX_SYMBOLS.get(ch, ch) for ch in s)


# Non-ASCII symbols of labels and headers as LaTeX math: pdflatex without a Unicode setup
# stops at a raw "α"
_TEX_SYMBOLS = {"±": "$\\pm$", "×": "$\\times$", "Δ": "$\\Delta$", "α": "$\\alpha$",
                "β": "$\\beta$", "γ": "$\\gamma$", "σ": "$\\sigma$", "ω": "$\\omega$",
                "≤": "$\\leq$", "≥": "$\\geq$", "≈": "$\\approx$", "→": "$\\to$",
                "−": "$-$", "²": "$^2$"}


def _tex_comment(s: str) -> str:
    """One comment line: no \\n or \\r (either would end the comment and start TeX)."""
    return printable(s)


CSV_COLUMNS = (
    "study", "grid", "kind", "variant", "label", "model", "is_baseline", "resolution", "metric",
    "mean", "std", "n", "delta", "ci_low", "ci_high", "n_pairs", "p_value", "p_holm",
    "significance", "verdict", "n_images", "n_photos",
)


def records(t: Table, detail: bool = False) -> list[dict]:
    """One plain record per row × resolution (the CSV rows); `detail` adds BASIS_COLUMNS."""
    out = []
    for row in t.rows:
        for r in t.resolutions:
            s = row.cells.get(r) or Summary(None, None, 0)
            c = row.deltas.get(r)
            out.append({
                "study": t.study, "grid": row.grid, "kind": row.kind, "variant": row.name,
                "label": row.label, "model": row.model, "is_baseline": row.is_baseline,
                "resolution": r, "metric": t.metric, "mean": s.mean, "std": s.std, "n": s.n,
                "delta": c.delta if c else None, "ci_low": c.ci_low if c else None,
                "ci_high": c.ci_high if c else None, "n_pairs": c.n if c else None,
                "p_value": c.p if c else None, "p_holm": c.p_holm if c else None,
                "significance": c.mark if c else "",
                "verdict": fmt_verdict(row.verdicts.get(r), row) if r in row.verdicts else "",
                "n_images": c.n_images if c else None, "n_photos": c.n_photos if c else None,
            })
            if detail:
                out[-1].update({c: (row.basis.get(r) or {}).get(c) for c in BASIS_COLUMNS})
    return out


def to_csv(tables: list[Table], detail: bool = False) -> str:
    buf = io.StringIO()
    fields = CSV_COLUMNS + (BASIS_COLUMNS if detail else ())
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for t in tables:
        for rec in records(t, detail):
            w.writerow({k: ("" if v is None else v) for k, v in rec.items()})
    return buf.getvalue()


def as_dict(t: Table, detail: bool = False) -> dict:
    """The table as JSON-ready plain data (`detail`: each cell's verdict basis too)."""
    rows = []
    for row in t.rows:
        per_res = []
        for r in t.resolutions:
            s = row.cells.get(r) or Summary(None, None, 0)
            c = row.deltas.get(r)
            per_res.append({
                "resolution": r, "mean": s.mean, "std": s.std, "n": s.n,
                "delta": None if c is None else {
                    "value": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "n": c.n,
                    "p_value": c.p, "p_holm": c.p_holm, "significance": c.mark,
                    "n_images": c.n_images, "n_photos": c.n_photos},
                "verdicts": row.verdicts.get(r) if r in row.verdicts else None,
            })
            if detail:
                per_res[-1]["basis"] = row.basis.get(r)
        rows.append({"kind": row.kind, "variant": row.name, "label": row.label,
                     "model": row.model, "grid": row.grid, "is_baseline": row.is_baseline,
                     "completed": row.completed, "cells": per_res})
    return {
        "study": t.study, "metric": t.metric, "metric_label": t.metric_label,
        "baseline": t.baseline, "baseline_label": t.baseline_label,
        "input_size": t.input_size, "resolutions": t.resolutions, "seeds": t.seeds,
        "grids": t.grids, "completed": t.completed, "expected": t.expected,
        "rows": rows,
        "failed": [vars(f) for f in t.failed],
        "notes": t.notes,
    }


def to_json(tables: list[Table], detail: bool = False) -> str:
    return json.dumps({"studies": [json_safe(as_dict(t, detail)) for t in tables]}, indent=2,
                      ensure_ascii=False)


def render(tables: list[Table], format: str = "text", detail: bool = False) -> str:
    """The tables as one string in `format` (text is rendered without colours); `detail`: with
    the verdicts' basis."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: expected one of {', '.join(FORMATS)}")
    return {"text": to_text, "markdown": to_markdown, "csv": to_csv, "json": to_json,
            "latex": to_latex}[format](tables, detail=detail)


def print_table(dir, study: str | None = None, format: str = "text", metric: str = "psnr",
                baseline: str | None = None, detail: bool = False) -> list[Table]:
    """Print the comparison table of the results under DIR; returns the tables.

    Raises ``ablate.results.read.NoResults`` (nothing to show) and
    ``ablate.table.build.UnknownBaseline``.
    """
    tables = load_tables(dir, study=study, metric=metric, baseline=baseline)
    if format == "text":
        print_text(tables, detail=detail)
    else:
        sys.stdout.write(render(tables, format, detail))
    return tables
