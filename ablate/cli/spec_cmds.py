"""`ablate validate` and `ablate plan`: the study spec as the user wrote it, checked and expanded."""

from __future__ import annotations

import json
import textwrap

import typer

from ablate.cli.common import SetOption, fail, study_or_exit
from ablate.orchestrate.preflight import RunError, check_data
from ablate.spec import expand, trial_to_dict
from ablate.spec.settings import settings, show, split


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
    """List the expanded trials by row (variant and grid point): the settings each row does not
    share with the others, then its trial ids by seed (80 columns). --json: every trial with
    its whole config."""
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
    for line in plan_lines(trials):
        typer.echo(line)


def plan_lines(trials, width: int = 80) -> list[str]:
    """The plan in `width` columns: per row of the table (variant and grid point) the settings
    it does not share with the others (ablate/spec/settings.py), then its trials by seed."""
    rows: dict[tuple[str, str], list] = {}
    for t in trials:
        rows.setdefault((t.variant, t.grid_key()), []).append(t)
    flat = {key: settings(trial_to_dict(ts[0])) for key, ts in rows.items()}
    common, differing = split({f"{v}\0{g}": f for (v, g), f in flat.items()})
    seeds = sorted({t.seed for t in trials})
    name = trials[0].study if trials else ""
    out = [f"{name}: {len(trials)} trials, {len(rows)} row(s) × {len(seeds)} seed(s) "
           f"{seeds}"]
    out += textwrap.wrap(f"every trial shares {len(common)} settings (`ablate plan --json` "
                         "gives them all); the rows differ in the settings under each:", width)
    for (variant, grid), ts in rows.items():
        label = ts[0].label if ts[0].label != variant else ""
        head = variant + (f" ({label})" if label else "") + (f" [{grid}]" if grid else "")
        out.append("")
        out.append(head)
        own = differing[f"{variant}\0{grid}"]
        items = [f"{k} = {show(v)}" for k, v in own.items()] or ["(nothing differs)"]
        out += textwrap.wrap("; ".join(items), width, initial_indent="  ",
                             subsequent_indent="  ", break_on_hyphens=False)
        out += textwrap.wrap("trials: " + ", ".join(f"seed {t.seed} {t.trial_id}" for t in ts),
                             width, initial_indent="  ", subsequent_indent="    ")
    return out
