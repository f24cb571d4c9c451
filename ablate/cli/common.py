"""What the commands share: their common options, loading a study or exiting 2 with the spec's
problems, and the exit codes of a command that trains (`run_errors`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, NoReturn

import typer

from ablate.orchestrate.lock import StudyLock, StudyLocked
from ablate.orchestrate.preflight import RunError, disk_full_message
from ablate.orchestrate.signals import exit_code, terminate_as_interrupt, terminated
from ablate.results.atomic import is_disk_full
from ablate.results.layout import find_studies
from ablate.spec import SpecError, Study, load_study


def results_option(where: str = "") -> typer.Option:
    return typer.Option("results", "--results", metavar="DIR",
                        help=f"Results root; files go to RESULTS/<study>/{where}.")


AddressOption = typer.Option(
    None, "--address", metavar="ADDRESS",
    help="Join a Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: "
         "RAY_ADDRESS, else an embedded local Ray).")

StorageOption = typer.Option(
    None, "--storage", metavar="DIR|URI",
    help="Ray storage for checkpoints (default RESULTS/<study>/ray); on a "
         "multi-node cluster a path every node reaches, or a URI: "
         "s3://BUCKET/PATH (an S3-compatible endpoint: "
         "?endpoint_override=http://HOST:PORT or AWS_ENDPOINT_URL), "
         "gs://BUCKET/PATH, …")

MlflowOption = typer.Option(
    None, "--mlflow", metavar="URI", help="Also log every trial to MLflow at this tracking URI "
                                          "(sqlite:///mlflow.db: a local store, no server; or "
                                          "http://HOST:5000), through Ray Tune's MLflow "
                                          "callback: one run per trial, its config as "
                                          "parameters, per-epoch metrics. Needs pip install "
                                          "'ablate[mlflow]'.")

WandbOption = typer.Option(
    None, "--wandb", metavar="PROJECT", help="Also log every trial to this Weights & Biases "
                                             "project (Ray Tune's W&B callback; offline under "
                                             "RESULTS/<study>/wandb unless WANDB_API_KEY is "
                                             "set; `wandb sync` uploads later). Needs pip "
                                             "install 'ablate[wandb]'.")

SetOption = typer.Option(
    None, "--set", metavar="KEY=VALUE",
    help="Override any spec key by dotted path (value read as TOML), e.g. --set train.epochs=2. "
         "Repeatable. Part of the trial config, hence of its id.")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` on stderr as every command's errors are printed ("error: …") and exit
    with `code` (2: bad input; 1: the work failed)."""
    typer.echo(message if message.startswith("error: ") else f"error: {message}", err=True)
    raise typer.Exit(code)


def no_results(e: Exception, directory: str, study: str | None = None) -> str:
    """The message of a NoResults: where a run of the study is going on (its lock is held),
    that it is running and nothing has finished yet, instead of "no results"."""
    running = [d.name for d in find_studies(directory)
               if study in (None, d.name) and StudyLock(d).is_held()]
    if running:
        return (f"{directory}: {', '.join(running)} running, no trial finished yet; "
                f"`ablate status {directory}` shows its trials")
    return str(e)


def study_or_exit(path: str, sets: list[str] | None) -> Study:
    """Load and validate a study; on bad input print every problem and exit 2."""
    try:
        study = load_study(path, sets or [])
    except SpecError as e:
        fail(e.render())
    for note in study.notes:
        typer.echo(f"note: {note}", err=True)
    return study


@contextmanager
def run_errors(interrupted: Callable[[], str]) -> Iterator[None]:
    """A command that trains: a refused run (RunError, the study locked by another run) exits 2
    with its message, a full disk exits 1 with what to do, Ctrl-C exits 130 after printing
    `interrupted()` (called then: it may count what the run left), SIGTERM likewise with 143
    (orchestrate/signals.py; `exit_code` maps a command's own 130 the same way); anything else
    is a bug and keeps its traceback."""
    try:
        with terminate_as_interrupt():
            yield
    except (RunError, StudyLocked) as e:
        fail(str(e))
    except OSError as e:
        if not is_disk_full(e):
            raise
        fail(disk_full_message(e), code=1)
    except KeyboardInterrupt:
        typer.echo(("SIGTERM: " if terminated() else "") + interrupted(), err=True)
        raise typer.Exit(exit_code(130))

