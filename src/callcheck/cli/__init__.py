"""The `callcheck` command line: one Typer app, its commands in the modules beside this one.

`callcheck --help` imports this package and the command modules, never what the commands use (DBOS, SQLAlchemy,
FastAPI, the suite runner): each command imports those when it runs (tests/test_cli_startup.py keeps it so).
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from callcheck.cli import agent, doctor, monitor, run, sandbox, serve, token
from callcheck.cli.common import CallcheckGroup

__all__ = ["app", "main"]

app = typer.Typer(
    cls=CallcheckGroup,
    help="callcheck: test a business's phone line the way a customer would.",
    no_args_is_help=True,
)


def _print_version(value: bool) -> None:
    if value:
        from callcheck import __version__

        typer.echo(__version__)  # as `callcheck version` prints it
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print callcheck's version and exit."),
    ] = False,
) -> None:
    """callcheck: test a business's phone line the way a customer would."""


def version() -> None:
    """Print callcheck's version."""
    from callcheck import __version__

    typer.echo(__version__)


# In the order `callcheck --help` has always listed them.
serve.register(app)
app.command()(version)
agent.register(app)
doctor.register(app)
sandbox.register(app)
run.register(app)
monitor.register(app)
token.register(app)


def main() -> None:
    """Entry point of the `callcheck` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
