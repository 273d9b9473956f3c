"""`callcheck agent setup`: ready the ElevenLabs agent that plays the caller, and say what changed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from callcheck.cli.common import EXIT_COULD_NOT_RUN, CallcheckGroup, load_settings
from callcheck.domain.access import ELEVENLABS_WEBHOOK_PATH

if TYPE_CHECKING:
    from callcheck.providers.base import SetupResult

agent_app = typer.Typer(cls=CallcheckGroup, help="The ElevenLabs agent that plays the caller.", no_args_is_help=True)


@agent_app.command("setup")
def agent_setup(
    agent_id: Annotated[
        str | None, typer.Option(help="Agent to update (default: ELEVENLABS_AGENT_ID; none: create one).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of a created agent.")] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help=f"Post-call webhook URL (default: CALLCHECK_PUBLIC_URL + {ELEVENLABS_WEBHOOK_PATH})."),
    ] = None,
    webhook_id: Annotated[
        str | None, typer.Option(help="Id of the ElevenLabs workspace webhook to use (default: found by URL).")
    ] = None,
    create_webhook: Annotated[
        bool,
        typer.Option("--create-webhook", help="Create the workspace webhook when none points at the URL yet."),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would change; send nothing.")] = False,
) -> None:
    """Create or update the caller agent so it is ready for callcheck, and print exactly what changed."""
    import asyncio

    import httpx

    from callcheck.errors import CallcheckError
    from callcheck.providers import caller_from_settings
    from callcheck.providers.base import AgentSetupOptions

    settings = load_settings()
    options = AgentSetupOptions(
        agent_id=agent_id,
        name=name,
        webhook_url=webhook_url,
        webhook_id=webhook_id,
        create_webhook=create_webhook,
        dry_run=dry_run,
    )

    async def setup() -> SetupResult:
        async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
            caller = caller_from_settings(settings, http)
            missing = caller.missing_setup_settings()
            if missing:
                plural = "s" if len(missing) > 1 else ""
                typer.echo(f"Missing required environment variable{plural}: " + ", ".join(missing), err=True)
                raise typer.Exit(EXIT_COULD_NOT_RUN)
            return await caller.setup_agent(options)

    try:
        result = asyncio.run(setup())
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    typer.echo(format_setup(result))


def format_setup(result: SetupResult) -> str:
    """The setup report for a person."""
    label = result.agent_id or "(new agent)"
    if result.agent_name:
        label += f" ({result.agent_name!r})"
    lines: list[str] = []
    if not result.changed:
        lines.append(f"Agent {label} is ready for callcheck: nothing to change.")
    else:
        verb = "Would change" if result.dry_run else ("Created" if result.created else "Changed")
        lines.append(f"{verb} agent {label}:")
        lines.extend(f"  - {change}" for change in result.changes)
        if result.dry_run:
            lines.append(f"Dry run: nothing was sent to {result.provider}.")
    if result.created and not result.dry_run:
        lines.append(f"Use it: set {result.agent_setting}={result.agent_id}")
    lines.extend(f"Note: {note}" for note in result.notes)
    if result.webhook_secret:
        # Shown to the person running setup, once, because the provider will never show it again; callcheck keeps
        # no copy (not in logs, not in the database).
        lines.append(
            "The new webhook's secret is shown only now. Put it in callcheck's environment (or .env):\n"
            f"  {result.secret_setting}={result.webhook_secret}"
        )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add `agent ...` to the CLI."""
    app.add_typer(agent_app, name="agent")
