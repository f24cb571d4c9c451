"""What every command shares: loading a study or exiting 2 with the spec's problems."""

from __future__ import annotations

from typing import NoReturn

import typer

from ablate.spec import Study, SpecError, load_study

SetOption = typer.Option(
    None, "--set", metavar="KEY=VALUE",
    help="Override any spec key by dotted path (value read as TOML), e.g. --set train.epochs=2. "
         "Repeatable. Part of the trial config, hence of its id.")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def study_or_exit(path: str, sets: list[str] | None) -> Study:
    """Load and validate a study; on bad input print every problem and exit 2."""
    try:
        study = load_study(path, sets or [])
    except SpecError as e:
        fail(e.render())
    for note in study.notes:
        typer.echo(f"note: {note}", err=True)
    return study
