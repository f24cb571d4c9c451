"""`ablate validate` and `ablate plan`: the study spec as the user wrote it, checked and expanded."""

from __future__ import annotations

import json

import typer

from ablate.cli.common import SetOption, fail, study_or_exit
from ablate.orchestrate.preflight import RunError, check_data
from ablate.spec import expand, trial_to_dict


def validate(
    study_file: str = typer.Argument(..., metavar="STUDY.toml", help="The study spec."),
    sets: list[str] = SetOption,
) -> None:
    """Parse and validate a study; print a summary (exit 0) or every problem (exit 2)."""
    study = study_or_exit(study_file, sets)
    trials = expand(study)
    try:  # the data paths too: what `ablate run` would refuse, validate refuses
        check_data(trials)
    except RunError as e:
        fail(f"{study.path}: {e}")
    grid = " × ".join(f"{axis} ({len(v)})" for axis, v in study.grid) or "none"
    typer.echo(f"{study.path}: ok")
    typer.echo(f"  study      {study.name}" + (f" — {study.study.description}"
                                              if study.study.description else ""))
    typer.echo(f"  variants   {len(study.variants)}: " + ", ".join(v.name for v in study.variants))
    typer.echo(f"  baseline   {study.baseline}")
    typer.echo(f"  grid       {grid} → {study.grid_size()} combination(s)")
    typer.echo(f"  seeds      {len(study.study.seeds)}: {list(study.study.seeds)}")
    typer.echo(f"  data       {study.data.source}, HR {study.data.hr_size}, input "
               f"{study.data.input_size}, eval at {list(study.data.eval_resolutions)}")
    typer.echo(f"  train      {study.train.epochs} epochs, batch {study.train.batch_size}")
    typer.echo(f"  trials     {len(trials)}")


def plan(
    study_file: str = typer.Argument(..., metavar="STUDY.toml", help="The study spec."),
    as_json: bool = typer.Option(False, "--json", help="A JSON list of trials with configs."),
    sets: list[str] = SetOption,
) -> None:
    """List the expanded trials: trial_id, variant, seed and axis values (and the model kind
    where the trials differ by it)."""
    study = study_or_exit(study_file, sets)
    trials = expand(study)
    if as_json:
        out = []
        for t in trials:
            d = trial_to_dict(t)
            out.append({"trial_id": t.trial_id, "variant": t.variant, "label": t.label,
                        "seed": t.seed, "grid": d["grid"], "axes": t.axes(),
                        "config": {k: d[k] for k in ("data", "model", "train")}})
        typer.echo(json.dumps(out, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{study.name}: {len(trials)} trials", show_lines=False)
    models = len({t.model.kind for t in trials}) > 1  # shown where the trials differ by it
    for col in ("trial_id", "variant", *(("model",) if models else ()), "seed", "jitter",
                "multiscale", "curriculum", "sigmas"):
        table.add_column(col, no_wrap=col in ("trial_id", "variant"))
    if study.grid:
        table.add_column("grid")
    for t in trials:
        a = t.axes()
        jit = t.train.jitter.describe()
        sigmas = a["sigmas"] if t.model.kind == "lainr" else "—"  # LIIF has no Fourier bands
        row = [t.trial_id, t.variant, *((t.model.kind,) if models else ()), str(t.seed), jit,
               a["multiscale"], a["curriculum"], sigmas]
        if study.grid:
            row.append(t.grid_key())
        table.add_row(*row)
    Console(width=160).print(table)
