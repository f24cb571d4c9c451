"""`ablate search`: Optuna's sampler on Ray Tune over the study's [search] space."""

from __future__ import annotations

import math

import typer

from ablate.cli.common import (AddressOption, MlflowOption, SetOption, StorageOption, WandbOption,
                               exit_code, fail, results_option, run_errors, study_or_exit)
from ablate.orchestrate.tracking import Tracking


def search(
    study_file: str = typer.Argument(..., metavar="STUDY.toml", help="A study with a [search] "
                                     "table."),
    results: str = results_option(", beside the study's grid trials"),
    address: str = AddressOption,
    confirm: int = typer.Option(0, "--confirm", metavar="K", min=0, help="Then re-run the K "
                                "best configurations with every seed of the study; `ablate "
                                "table` shows them beside the variants."),
    top: int = typer.Option(5, "--top", metavar="N", min=1, help="How many of the best to print."),
    storage: str = StorageOption,
    mlflow: str = MlflowOption,
    wandb: str = WandbOption,
    sets: list[str] = SetOption,
) -> None:
    """Search the study's [search] space with Optuna (TPE or random) on Ray Tune.

    Every sampled configuration is a normal trial (trials/, history/) marked with the search;
    run it again to resume (finished configurations are never trained again). Exit 0 when the
    search has all its samples, 1 when some trials failed, 2 on invalid input, 130 when stopped
    by Ctrl-C, 143 by SIGTERM.

    Example: ablate search study.toml --confirm 3    # then re-run the best 3 with every seed
    """
    from ablate.orchestrate.search import run_search

    study = study_or_exit(study_file, sets)
    if study.search is None:
        fail(f"{study_file}: no [search] table: add one to say what to optimise over which "
             "keys (README, \"Searching\")")
    with run_errors(lambda: "interrupted: run the same command again to resume the search"):
        summary = run_search(study, results, address=address, confirm=confirm, storage=storage,
                             tracking=Tracking(mlflow, wandb))
    s = study.search
    done = sum(1 for t in summary.trials)
    typer.echo(f"{study.name}: search {s.name!r}: {done}/{s.num_samples} sampled trials "
               f"finished ({summary.ran} this run) → {summary.study_root}")
    best = [t for t in summary.trials if t.status == "completed" and not math.isnan(t.value)]
    for k, t in enumerate(best[:top], start=1):
        typer.echo(f"  #{k} {s.metric}@{s.resolution} = {t.value:.4g}  {t.grid}  ({t.trial_id})")
    if summary.confirmed:
        typer.echo(f"  confirmed {len(summary.confirmed)} trials: `ablate table "
                   f"{summary.study_root}` shows them beside the variants")
    for tid, err in summary.failed.items():
        typer.echo(f"  FAILED {tid}: {err}", err=True)
    raise typer.Exit(exit_code(summary.exit_code))
