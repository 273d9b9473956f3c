"""What every `callcheck` command shares: its exit code for "could not run", its settings, its database checks.

Imported by `callcheck --help`: nothing heavy at module level (no SQLAlchemy, DBOS, FastAPI, httpx), only inside
the functions that need it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from callcheck.config import Settings

EXIT_COULD_NOT_RUN = 2  # every command: callcheck could not do what was asked (settings, options, database)
SETTINGS_CLASS = "Settings"  # the title of a pydantic ValidationError raised by callcheck.config.Settings


def read_suite_file(path: Path) -> str:
    """A suite file's text; one line and exit 2 when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"cannot read {path}: {exc}", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc


def _flags_shown_as_flags(params: list[Any]) -> None:
    """A boolean flag takes no value (`--sandbox`, never `--sandbox true`): its help shows none (typer shows <bool>)."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""


class CallcheckGroup(TyperGroup):
    """The one place where a command's bad settings become plain lines and exit 2, never a traceback."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _flags_shown_as_flags(params)
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _flags_shown_as_flags(command.get_params(ctx))
        return command

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context, which typer exports under no public name
        # Imported here, not at the top: `callcheck --help` never invokes a command and should not pay for them.
        from pydantic import ValidationError

        from callcheck.config import settings_problems
        from callcheck.errors import ConfigurationError

        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != SETTINGS_CLASS:
                raise
            lines = [*settings_problems(exc), "(docs/configuration.md lists every setting and its allowed values)"]
        except ConfigurationError as exc:
            lines = [exc.message]
        for line in lines:
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)


class LogLevel(StrEnum):
    """Levels `serve --log-level` and `worker --log-level` accept."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def load_settings(**overrides: object) -> Settings:
    """The settings from the environment and `.env`, with the options given on the command line over them."""
    from callcheck.config import Settings

    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]


def database_problem(settings: Settings) -> str | None:
    """Why the database cannot be used, or None; it is migrated on the way, as a server's startup would."""
    import sqlalchemy.exc

    from callcheck.errors import CallcheckError
    from callcheck.store import db

    try:
        db.upgrade(settings.resolved_database_url())
    except CallcheckError as exc:
        return exc.message
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        return database_error_line(settings, exc)
    return None


def database_error_line(settings: Settings, exc: Exception) -> str:
    """One line for a database error: which database and setting, and the driver's first line (never a password)."""
    from callcheck.store import db

    url = settings.resolved_database_url()
    setting = "CALLCHECK_DATABASE_URL" if settings.database_url else "CALLCHECK_DATA_DIR"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = db.scrubbed(reason[0], url) if reason else exc
    return f"cannot use the database {db.shown_url(url)} (check {setting}): {first}"


def exit_when(problem: str | None) -> None:
    """Print `problem` as one line and exit 2; nothing when there is none."""
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
