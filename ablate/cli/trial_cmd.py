"""`ablate trial`: one trial in this process, no Ray needed."""

from __future__ import annotations

import math

import typer

from ablate.cli.common import SetOption, results_option, run_errors, study_or_exit


def trial(
    study_file: str = typer.Argument(..., metavar="STUDY.toml", help="The study spec."),
    variant: str = typer.Option(..., "--variant", metavar="NAME",
                                help="Variant name (see `ablate plan`)."),
    seed: int = typer.Option(..., "--seed", metavar="N", help="One of the study's seeds."),
    results: str = results_option(),
    device: str = typer.Option("auto", "--device", metavar="DEVICE",
                               help="cpu | cuda | cuda:N | auto."),
    trial_id: str = typer.Option(None, "--trial-id", metavar="ID",
                                 help="Pick one grid point when the "
                                      "variant and seed match several."),
    sets: list[str] = SetOption,
) -> None:
    """Run one trial in-process: progress per epoch, then metrics beside bicubic with verdicts.

    Writes the trial's files into RESULTS/<study>/ as `ablate run` does (trials/, history/,
    images/, artifacts/); a failed trial writes a `status = failed` row with its error and
    exits 1. An interrupted trial resumes from its latest epoch checkpoint when run again.
    Exit 2 on invalid input (unknown variant or seed, bad device or data path), or when an
    `ablate run` of the study is going on; 130 on Ctrl-C, 143 on SIGTERM.

    Example: ablate trial studies/quickstart.toml --variant no_jitter --seed 0 --device cpu
    """
    from ablate.orchestrate.run import run_one

    study = study_or_exit(study_file, sets)

    def on_start(cfg, study_dir):
        typer.echo(f"trial {cfg.trial_id}: {cfg.label} ({cfg.variant}), seed {cfg.seed}"
                   + (f", {cfg.grid_key()}" if cfg.grid else "") + f" → {study_dir.root}")

    def on_epoch(r, _ckpt):
        typer.echo(f"  epoch {r.epoch:>3}/{r.epochs}  loss {r.loss:.5f}  lr {r.lr:.2e}  "
                   f"quick PSNR {r.quick_psnr:6.2f} dB  {r.img_per_s:7.1f} img/s  "
                   f"({r.seconds:.1f} s, res {','.join(map(str, r.resolutions))})"
                   + ("  [resumed]" if r.resumed else ""))

    with run_errors(lambda: "interrupted: the trial keeps its checkpoint; run the same command "
                            "again to resume"):
        done = run_one(study, variant, seed, results=results, trial_id=trial_id, device=device,
                       on_start=on_start, on_epoch=on_epoch, log=lambda m: typer.echo("  " + m))
    if not done.completed:
        typer.echo(f"FAILED: {done.rows[0]['error']}", err=True)
        raise typer.Exit(1)
    print_rows(done.rows)


def _num(v, fmt):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def print_rows(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{rows[0]['label']} seed {rows[0]['seed']} — {rows[0]['epochs']} epochs, "
                    f"{rows[0]['train_img_per_s']:.0f} img/s on {rows[0]['device']}")
    for col in ("res", "PSNR", "bicubic", "Δ dB", "SSIM", "bicubic", "HF energy ×",
                "truth ×", "band err ×", "coherence", "bicubic", "LR PSNR", "floor", "margin",
                "verdict"):
        t.add_column(col, justify="right" if col != "verdict" else "left")
    for r in rows:
        d = (r["psnr"] - r["psnr_bicubic"]) if not math.isnan(r["psnr_bicubic"]) else float("nan")
        t.add_row(str(r["resolution"]), _num(r["psnr"], ".2f"), _num(r["psnr_bicubic"], ".2f"),
                  _num(d, "+.2f"), _num(r["ssim"], ".4f"), _num(r["ssim_bicubic"], ".4f"),
                  _num(r["hf_energy_ratio"], ".3f"), _num(r["truth_energy_ratio"], ".3f"),
                  _num(r["band_error_ratio"], ".3f"),
                  _num(r["band_coherence"], ".3f"), _num(r["band_coherence_bicubic"], ".3f"),
                  _num(r["psnr_lr_consistency"], ".2f"), _num(r["psnr_lr_floor"], ".2f"),
                  _num(r["lr_margin"], "+.2f"), r["verdict"])
    Console(width=160).print(t)
