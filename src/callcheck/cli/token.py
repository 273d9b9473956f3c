"""`callcheck token create | list | revoke`: the API tokens that guard a server once any exists."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from callcheck.cli.common import EXIT_COULD_NOT_RUN, database_problem, exit_when, load_settings
from callcheck.domain.access import TokenScope, valid_name
from callcheck.errors import CallcheckError

if TYPE_CHECKING:
    from callcheck.config import Settings
    from callcheck.store.tokens import TokenStore

T = TypeVar("T")

token_app = typer.Typer(
    help="API tokens: once one exists, the server asks every client (API and page) for one.", no_args_is_help=True
)


def _with_tokens(settings: Settings, work: Callable[[TokenStore], Awaitable[T]]) -> T:
    """Run `work` on the (migrated) database's tokens; database problems are one line and exit 2."""
    from callcheck.store import db
    from callcheck.store.tokens import TokenStore

    exit_when(database_problem(settings))

    async def run() -> T:
        engine = db.create_engine(settings.resolved_database_url())
        try:
            return await work(TokenStore(engine))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def any_active_token(settings: Settings) -> bool:
    """True when the database holds a token that is not revoked (it is migrated on the way)."""
    return _with_tokens(settings, lambda store: store.any_active())


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"


@token_app.command("create")
def create(
    name: Annotated[str, typer.Option("--name", help="A name for the token (shown in the history of what it did).")],
    scope: Annotated[
        TokenScope,
        typer.Option(case_sensitive=False, help="read: see; call: also place calls and runs; admin: also doctor."),
    ] = TokenScope.CALL,
) -> None:
    """Make a token and print it once (only its hash is kept: copy it now)."""
    settings = load_settings()
    try:
        clean = valid_name(name)
        row, token = _with_tokens(settings, lambda store: store.create(clean, scope))
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc
    typer.echo(f"Created the {row.scope.value} token {row.name!r}. It is shown only this once:", err=True)
    typer.echo(token)
    typer.echo("Send it as `Authorization: Bearer <token>`, or paste it on the page's login.", err=True)


@token_app.command("list")
def list_tokens() -> None:
    """Every token: name, scope, created, last used, revoked (never the token itself)."""
    rows = _with_tokens(load_settings(), lambda store: store.list())
    if not rows:
        typer.echo("No tokens: the server is open to whoever reaches it (it listens on 127.0.0.1 by default).")
        return
    typer.echo(f"{'NAME':<24} {'SCOPE':<6} {'CREATED':<20} {'LAST USED':<20} REVOKED")
    for row in rows:
        typer.echo(
            f"{row.name:<24} {row.scope.value:<6} {_when(row.created_at):<20} {_when(row.last_used_at):<20} "
            f"{_when(row.revoked_at)}"
        )


@token_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token at once (for its logged-in pages too). Its name stays in the history and is not reused."""
    try:
        row = _with_tokens(load_settings(), lambda store: store.revoke(name.strip()))
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Revoked the token {row.name!r}.")


def register(app: typer.Typer) -> None:
    """Add `token` to the CLI."""
    app.add_typer(token_app, name="token")
