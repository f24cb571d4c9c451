"""`ablate table`: the comparison table of a study, running or done."""

from __future__ import annotations

import typer

from ablate.cli.common import fail, no_results
from ablate.table.choices import Format, Metric


def table(
    dir: str = typer.Argument(..., metavar="DIR", help="A study's results folder, or a results "
                              "folder holding several studies."),
    study: str = typer.Option(None, "--study", metavar="NAME",
                              help="Only this study (folder or study name)."),
    format: Format = typer.Option(Format.text, "--format", help="Output format: text for the "
                                  "terminal, markdown/latex to paste, csv/json for tools."),
    metric: Metric = typer.Option(Metric.psnr, "--metric", help="psnr (RGB) | ssim | psnr_y "
                                  "(the SR literature's PSNR: BT.601 luma, border shaved)."),
    baseline: str = typer.Option(None, "--baseline", metavar="VARIANT",
                                 help="Variant that Δ compares against "
                                      "(default: the spec's baseline, else the first variant)."),
    detail: bool = typer.Option(False, "--detail", help="Also show what each verdict was "
                                "decided from: the fit at the input vs its floor (the "
                                "half-resolution copy), LR consistency at r, in-band energy "
                                "(and the truth's), error and coherence with intervals over "
                                "held-out photos (every format)."),
    search: bool = typer.Option(False, "--search", help="Instead: the best configurations "
                                "of each `ablate search` of the study, ranked by its "
                                "objective, with --metric at every resolution and verdicts."),
    top: int = typer.Option(10, "--top", metavar="N", min=1, help="--search: how many to list."),
) -> None:
    """Print the comparison table of a study, running or done.

    Per eval resolution: mean ± std over seeds, and Δ vs the baseline
    (paired by seed and held-out image) with a 95 % two-level bootstrap
    interval over seeds and held-out photos and a significance mark (t-test
    with both variance components, Holm-corrected); verdict counts across
    seeds (unfit | inconsistent | true_sr | resampling | hallucination);
    --detail shows their basis. Results without per-image files: over seeds only.
    Reads only the Parquet files: partial results are counted, failures listed.
    Exit 0; 2 when there are no results or an option is wrong.
    """
    from ablate.results.read import NoResults
    from ablate.table.build import UnknownBaseline, load_tables

    if search:  # ablate/table/search.py
        from ablate.table.search import render_search, search_tables

        try:
            found = search_tables(dir, study=study, metric=metric.value, top=top)
        except NoResults as e:
            fail(no_results(e, dir, study))
        typer.echo(render_search(found, format.value), nl=False)
        return
    from ablate.table.format import footer_lines, print_text, render

    try:
        tables = load_tables(dir, study=study, metric=metric.value, baseline=baseline,
                             detail=detail)
    except NoResults as e:
        fail(no_results(e, dir, study))
    except UnknownBaseline as e:
        fail(str(e))
    if format is Format.text:
        print_text(tables, detail=detail)
        return
    typer.echo(render(tables, format.value, detail), nl=False)
    if format in (Format.csv, Format.json):  # keep stdout parseable: notes and failures go to stderr
        for t in tables:
            for line in footer_lines(t):
                typer.echo(f"{t.study}: {line}", err=True)
