"""The `ablate` command: one thin typer shell per command, each over a library function.

Each command lives in its own module of this package and is registered here. A command imports
the library function it calls inside its body when that pulls torch, Ray, pandas, matplotlib
or numpy's data stack (0.1–2.8 s measured with `python -X importtime`), so that `ablate --help`,
`ablate validate` and a spec error answer at once; everything else is imported at the top.
"""

from __future__ import annotations

import typer

from ablate.version import code_version

app = typer.Typer(
    name="ablate",
    help="Ablation studies of a coordinate-based image model: true super-resolution or resampling?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # help text is plain text: "[search]" and "[0, 1]" are shown as written, not read as rich
    # markup (which ate them)
    rich_markup_mode=None,
)



def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"ablate {code_version()}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print ablate's version (and git commit) and exit."),
) -> None:
    """Ablation studies of a coordinate-based image model: true super-resolution or resampling?"""


# Registration: one line per command module (keep alphabetical within groups).
from ablate.cli import spec_cmds  # noqa: E402  validate, plan

app.command("validate")(spec_cmds.validate)
app.command("plan")(spec_cmds.plan)

from ablate.cli import data_cmd  # noqa: E402  data

app.command("data")(data_cmd.data)

from ablate.cli import trial_cmd  # noqa: E402  trial

app.command("trial")(trial_cmd.trial)

from ablate.cli import run_cmds  # noqa: E402  run, status

app.command("run")(run_cmds.run)
app.command("status")(run_cmds.status)

from ablate.cli import search_cmd  # noqa: E402  search

app.command("search")(search_cmd.search)

from ablate.cli import report_cmd, table_cmd  # noqa: E402  table, report

app.command("table")(table_cmd.table)
app.command("report")(report_cmd.report)


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    main()
