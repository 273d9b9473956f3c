"""What every `callcheck` command shares: its exit code for "could not run" and reading a suite file."""

from __future__ import annotations

from pathlib import Path

import typer

EXIT_COULD_NOT_RUN = 2  # every command: callcheck could not do what was asked (settings, options, database)


def read_suite_file(path: Path) -> str:
    """A suite file's text; one line and exit 2 when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"cannot read {path}: {exc}", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc
