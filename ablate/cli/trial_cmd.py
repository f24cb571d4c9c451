"""`ablate trial`: one trial in this process, no Ray needed."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from ablate.cli.common import SetOption, fail, study_or_exit


def trial(
    study_file: str = typer.Argument(..., metavar="STUDY.toml", help="The study spec."),
    variant: str = typer.Option(..., "--variant", help="Variant name (see `ablate plan`)."),
    seed: int = typer.Option(..., "--seed", help="One of the study's seeds."),
    results: str = typer.Option("results", "--results", help="Results root; files go to "
                                "RESULTS/<study>/."),
    device: str = typer.Option("auto", "--device", help="cpu | cuda | cuda:N | auto."),
    trial_id: str = typer.Option(None, "--trial-id", help="Pick one grid point when the "
                                 "variant and seed match several."),
    sets: list[str] = SetOption,
) -> None:
    """Run one trial in-process: progress per epoch, then metrics beside bicubic with verdicts.

    Writes RESULTS/<study>/trials/<trial_id>.parquet and history/<trial_id>.parquet; a failed
    trial writes a `status = failed` row with its error and exits 1. An interrupted trial
    resumes from its latest epoch checkpoint when run again.
    """
    from ablate.orchestrate.record import record_trial
    from ablate.results.write import write_spec_copy
    from ablate.spec import expand

    study = study_or_exit(study_file, sets)
    trials = expand(study)
    names = [v.name for v in study.variants]
    if variant not in names:
        from ablate.spec.convert import suggest

        fail(f"{study_file}: no variant {variant!r}{suggest(variant, names)}; variants: "
             f"{', '.join(names)}")
    if seed not in study.study.seeds:
        fail(f"{study_file}: seed {seed} is not among the study's seeds {list(study.study.seeds)} "
             f"(add it to study.seeds or --set study.seeds=[...])")
    matches = [t for t in trials if t.variant == variant and t.seed == seed
               and (trial_id is None or t.trial_id == trial_id)]
    if len(matches) != 1:
        listing = "\n".join(f"  {t.trial_id}  {t.grid_key()}" for t in trials
                            if t.variant == variant and t.seed == seed)
        fail(f"{len(matches)} trials match variant {variant!r}, seed {seed}; pick one with "
             f"--trial-id:\n{listing}")
    cfg = matches[0]
    from ablate.orchestrate.lock import StudyLock, StudyLocked
    from ablate.orchestrate.preflight import RunError, check_data, check_device

    try:
        check_device(device)
        check_data([cfg])
    except RunError as e:
        fail(f"error: {e}")
    root = Path(results) / study.name
    lock = StudyLock(root)
    try:
        lock.acquire()  # not beside an `ablate run` of the same study
    except StudyLocked as e:
        fail(f"error: {e}")
    write_spec_copy(root, study.path, study.overrides)
    typer.echo(f"trial {cfg.trial_id}: {cfg.label} ({cfg.variant}), seed {cfg.seed}"
               + (f", {cfg.grid_key()}" if cfg.grid else "") + f" → {root}")

    def on_epoch(r, _ckpt):
        typer.echo(f"  epoch {r.epoch:>3}/{r.epochs}  loss {r.loss:.5f}  lr {r.lr:.2e}  "
                   f"quick PSNR {r.quick_psnr:6.2f} dB  {r.img_per_s:7.1f} img/s  "
                   f"({r.seconds:.1f} s, res {','.join(map(str, r.resolutions))})"
                   + ("  [resumed]" if r.resumed else ""))

    try:
        ok, rows = record_trial(cfg, root, device=device, on_epoch=on_epoch,
                                log=lambda m: typer.echo("  " + m))
    finally:
        lock.release()
    if not ok:
        typer.echo(f"FAILED: {rows[0]['error']}", err=True)
        raise typer.Exit(1)
    print_rows(rows)


def _num(v, fmt):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def print_rows(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{rows[0]['label']} seed {rows[0]['seed']} — {rows[0]['epochs']} epochs, "
                    f"{rows[0]['train_img_per_s']:.0f} img/s on {rows[0]['device']}")
    for col in ("res", "PSNR", "bicubic", "Δ dB", "SSIM", "bicubic", "HF energy ×",
                "band err ×", "coherence", "bicubic", "LR PSNR", "floor", "verdict"):
        t.add_column(col, justify="right" if col != "verdict" else "left")
    for r in rows:
        d = (r["psnr"] - r["psnr_bicubic"]) if not math.isnan(r["psnr_bicubic"]) else float("nan")
        t.add_row(str(r["resolution"]), _num(r["psnr"], ".2f"), _num(r["psnr_bicubic"], ".2f"),
                  _num(d, "+.2f"), _num(r["ssim"], ".4f"), _num(r["ssim_bicubic"], ".4f"),
                  _num(r["hf_energy_ratio"], ".3f"), _num(r["band_error_ratio"], ".3f"),
                  _num(r["band_coherence"], ".3f"), _num(r["band_coherence_bicubic"], ".3f"),
                  _num(r["psnr_lr_consistency"], ".2f"), _num(r["psnr_lr_floor"], ".2f"),
                  r["verdict"])
    Console(width=160).print(t)
