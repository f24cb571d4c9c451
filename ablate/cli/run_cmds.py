"""`ablate run` and `ablate status`: a study on Ray Tune (or locally), and its progress."""

from __future__ import annotations

from pathlib import Path

import typer

from ablate.cli.common import (AddressOption, MlflowOption, SetOption, StorageOption, WandbOption,
                               exit_code, fail, results_option, run_errors, study_or_exit,
                               terminated)
from ablate.orchestrate.executor import Executor
from ablate.orchestrate.tracking import Tracking
from ablate.results.layout import StudyDir, find_studies


def run(
    study_file: str = typer.Argument(..., metavar="STUDY.toml", help="The study spec."),
    results: str = results_option(),
    address: str = AddressOption,
    executor: Executor = typer.Option(Executor.ray, "--executor", help="ray: Ray Tune; local: "
                                      "in this process, one trial after another, no Ray."),
    max_concurrent: int = typer.Option(0, "--max-concurrent", metavar="N",
                                       help="At most N trials at once "
                                            "(0: as resources allow)."),
    storage: str = StorageOption,
    device: str = typer.Option("auto", "--device", metavar="DEVICE",
                               help="--executor local only: cpu | cuda | auto."),
    variants: list[str] = typer.Option(None, "--variant", metavar="NAME", help="Run only this "
                                       "variant's trials (repeatable); default: every variant."),
    mlflow: str = MlflowOption,
    wandb: str = WandbOption,
    sets: list[str] = SetOption,
) -> None:
    """Run the whole study (or --variant NAME…); skip trials already completed; resume
    interrupted ones.

    Exit 0 when every trial completed, 1 when some failed (listed), 2 on invalid input, 130
    when stopped by Ctrl-C, 143 by SIGTERM (running trials keep their checkpoints; run again
    to resume).

    Examples:

    \b
      ablate run studies/smoke.toml         # seconds: checks an install
      ablate run studies/quickstart.toml --variant no_jitter
      ablate run study.toml --address auto --storage s3://bucket/ablate
    """
    from ablate.orchestrate.run import run_study

    study = study_or_exit(study_file, sets)
    with run_errors(lambda: interrupted_message(results, study.name, storage)):
        summary = run_study(study, results, executor=executor, address=address,
                            max_concurrent=max_concurrent, storage=storage, device=device,
                            variants=variants or (), tracking=Tracking(mlflow, wandb))
    n_run = summary.total - summary.skipped
    typer.echo(f"{study.name}: {len(summary.completed)}/{n_run} run now completed, "
               f"{summary.skipped} skipped (already completed), {len(summary.failed)} failed"
               + (f", {len(summary.unfinished)} unfinished" if summary.unfinished else "")
               + f" → {summary.study_root}")
    for tid, err in summary.failed.items():
        typer.echo(f"  FAILED {tid}: {err}", err=True)
    if summary.unfinished:
        typer.echo("  " + ("SIGTERM: " if terminated() else "")
                   + interrupted_message(results, study.name, storage), err=True)
    raise typer.Exit(exit_code(summary.exit_code))


def interrupted_message(results: str, study: str, storage: str | None) -> str:
    """What a stopped run left, counted from the files: which trials resume from a
    checkpoint (and from which epoch), which start over."""
    from ablate.orchestrate.status import resume_points
    from ablate.orchestrate.study_files import completed_ids

    study_dir = StudyDir.of(results, study)
    points = resume_points(study_dir, storage)
    if not points:
        done = len(completed_ids(study_dir)) if study_dir.trials_dir.is_dir() else 0
        if done:
            return (f"interrupted between trials: none was in progress, {done} of the study's "
                    "trials are completed; run the same command again to run the rest")
        return "interrupted before any trial started; run the same command again to start"
    resumable = sorted(ep for ep in points.values() if ep)
    over = len(points) - len(resumable)
    parts = []
    if resumable:
        parts.append(f"{len(resumable)} resume{'s' if len(resumable) == 1 else ''} from "
                     f"{'its checkpoint' if len(resumable) == 1 else 'their checkpoints'} "
                     f"(at epoch {', '.join(str(ep + 1) for ep in resumable)})")
    if over:
        parts.append(f"{over} had no epoch done and start{'s' if over == 1 else ''} over")
    return (f"interrupted: {len(points)} trial{'s' if len(points) != 1 else ''} unfinished: "
            + "; ".join(parts) + "; run the same command again to resume")


def status(
    directory: str = typer.Argument(..., metavar="DIR", help="A results root or one study's "
                                    "directory."),
) -> None:
    """Per study: trials completed / failed / running / interrupted / pending, from the files.

    Exit 0; 2 when DIR holds no study.
    """
    from ablate.orchestrate.status import study_status

    dirs = find_studies(Path(directory))
    if not dirs:
        fail(f"{directory}: no study here (expected a study directory with manifest.json or "
             "trials/, or a results folder holding such directories)")
    for d in dirs:
        s = study_status(d)
        ended = s.completed + s.failed + s.stopped
        state = "running" if s.active else ("done" if ended == s.total else "idle")
        typer.echo(f"{s.name} ({state}): {s.completed}/{s.total} completed, {s.failed} failed, "
                   + (f"{s.stopped} stopped, " if s.stopped else "")
                   + f"{s.running} running, {s.interrupted} interrupted, {s.pending} pending  "
                   f"[{d.root}]")
        for q in s.searches:
            typer.echo(f"  search {q.name!r}: {q.completed + q.stopped + q.failed}/"
                       f"{q.num_samples} sampled trials finished: {q.completed} completed, "
                       f"{q.stopped} stopped (ASHA), {q.failed} failed")
        if s.problem:
            typer.echo(f"  note: {s.problem}")
        if s.apart:
            typer.echo(f"  note: {len(s.apart)} completed trial(s) of an earlier configuration "
                       f"(not in the manifest: the settings changed since) not counted: "
                       f"{', '.join(s.apart[:6])}{' …' if len(s.apart) > 6 else ''}")
        for tid in s.unreadable:
            typer.echo(f"  unreadable  {tid} {s.labels.get(tid, '')}: its trial file does not "
                       "read; counted pending, the next `ablate run` runs it again")
        for tid, ep in s.in_progress.items():
            what = "running" if s.active else "interrupted"
            done = f"epoch {ep} done" if ep else "started, no epoch done yet"
            typer.echo(f"  {what:<11} {tid} {s.labels.get(tid, '')}: {done}")
