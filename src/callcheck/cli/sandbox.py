"""`callcheck sandbox`: the local simulated ElevenLabs API in the foreground."""

from __future__ import annotations

from typing import Annotated

import typer

from callcheck.domain.pacing import MAX_SANDBOX_TIME_SCALE


def _valid_time_scale(value: float) -> float:
    if not 0 < value <= MAX_SANDBOX_TIME_SCALE:
        raise typer.BadParameter(f"must be more than 0 and at most {MAX_SANDBOX_TIME_SCALE:g}")
    return value


def sandbox(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    time_scale: Annotated[
        float,
        typer.Option(callback=_valid_time_scale, help="Real seconds per simulated second (0.1 = ten times faster)."),
    ] = 1.0,
    webhook_url: Annotated[str | None, typer.Option(help="Where to send post-call webhooks (none: send none).")] = None,
    webhook_secret: Annotated[str | None, typer.Option(help="HMAC secret of the webhooks.")] = None,
    bare_agent: Annotated[
        bool, typer.Option("--bare-agent", help="Start with a bare agent, to try `callcheck agent setup`.")
    ] = False,
) -> None:
    """Run the local simulated ElevenLabs API (no account, no real calls) in the foreground."""
    from callcheck.providers.elevenlabs.sandbox import SandboxConfig, run_sandbox_forever

    config = SandboxConfig(time_scale=time_scale, webhook_url=webhook_url, agent_ready=not bare_agent)
    if webhook_secret:
        config.webhook_secret = webhook_secret
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    typer.echo("Simulated ElevenLabs (no real calls). Point callcheck at it:")
    typer.echo(f"export ELEVENLABS_API_BASE={base}")
    typer.echo(f"export ELEVENLABS_API_KEY={config.api_key}")
    typer.echo(f"export ELEVENLABS_AGENT_ID={config.agent_id}")
    typer.echo(f"export ELEVENLABS_AGENT_PHONE_NUMBER_ID={config.phone_number_id}")
    if webhook_url:
        typer.echo(f"export ELEVENLABS_WEBHOOK_SECRET={config.webhook_secret}")
    run_sandbox_forever(config, host, port)


def register(app: typer.Typer) -> None:
    """Add `sandbox` to the CLI."""
    app.command()(sandbox)
