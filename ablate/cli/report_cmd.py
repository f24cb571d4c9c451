"""`ablate report`: the figures and an index.html showing them with the table."""

from __future__ import annotations

import typer

from ablate.cli.common import fail, no_results
from ablate.table.choices import Metric


def report(
    dir: str = typer.Argument(..., metavar="DIR", help="A study's results folder, or a results "
                              "folder holding several studies."),
    out: str = typer.Option(..., "--out", metavar="DIR",
                            help="Folder to write the PNGs and index.html to."),
    study: str = typer.Option(None, "--study", metavar="NAME",
                              help="Only this study (folder or study name)."),
    metric: Metric = typer.Option(Metric.psnr, "--metric", help="Metric of the first HTML "
                                  "table (the second shows SSIM, or PSNR when this is SSIM)."),
    baseline: str = typer.Option(None, "--baseline", metavar="VARIANT",
                                 help="Variant that Δ compares against."),
) -> None:
    """Write the report: PNG figures and OUT/index.html with the tables.

    Figures: PSNR and SSIM vs resolution, power spectra at the top resolution,
    held-out reconstructions, training curves. Exit 0; 2 when there are no results.
    """
    from ablate.report.html import write_report
    from ablate.results.read import NoResults
    from ablate.table.build import UnknownBaseline

    try:
        index = write_report(dir, out, study=study, metric=metric.value, baseline=baseline,
                             log=lambda m: typer.echo(m, err=True))
    except NoResults as e:
        fail(no_results(e, dir, study))
    except (UnknownBaseline, ValueError) as e:
        fail(str(e))
    except (FileExistsError, NotADirectoryError):
        fail(f"--out {out} (or a folder above it) is a file, not a folder; "
             "give a folder")
    except OSError as e:
        fail(f"--out {out}: cannot write there ({e.strerror}); give a folder "
             "this user can write to")
    typer.echo(f"wrote {index}")
