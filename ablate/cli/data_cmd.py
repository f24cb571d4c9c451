"""`ablate data`: what a study's data are (photos, crops, bicubic figures, in-band energy)."""

from __future__ import annotations

import json

import typer

from ablate.cli.common import SetOption, fail, study_or_exit
from ablate.orchestrate.preflight import RunError, check_data
from ablate.spec import expand


def data(
    study_files: list[str] = typer.Argument(..., metavar="STUDY.toml...",
                                            help="One or more study specs."),
    as_json: bool = typer.Option(False, "--json", help='{"studies": [{"study", "file", '
                                 '"data": [one object per data config]}]}.'),
    sets: list[str] = SetOption,
) -> None:
    """Describe each study's data: photos per split, crops, and per eval resolution the mean
    bicubic PSNR (RGB, and Y-PSNR as SR papers compute it) and the share of the ground
    truth's energy above the input's Nyquist. Exit 0; 2 on an invalid spec or unusable data.
    """
    from ablate.metrics.describe import describe_study, format_facts
    from ablate.data.sources import DataError

    studies = [study_or_exit(f, sets) for f in study_files]  # every spec checked first
    out = []
    for i, (file, study) in enumerate(zip(study_files, studies)):
        trials = expand(study)
        try:
            check_data(trials)
            facts = describe_study(study, trials)
        except (RunError, DataError) as e:
            fail(f"{file}: {e}")
        if as_json:
            out.append({"study": study.name, "file": file, "data": [f.as_dict() for f in facts]})
            continue
        if i:
            typer.echo()
        typer.echo(f"{study.name} ({file})")
        for f in facts:
            for line in format_facts(f, len(study.variants)):
                typer.echo(line)
    if as_json:
        typer.echo(json.dumps({"studies": out}, indent=2, ensure_ascii=False))
