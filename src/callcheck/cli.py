"""The `callcheck` command line."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from callcheck.config import Settings

app = typer.Typer(help="callcheck: test a business's phone line the way a customer would.", no_args_is_help=True)


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps the server local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against callcheck's local ElevenLabs sandbox (no account).")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Start the web page and JSON API."""
    import uvicorn

    from callcheck.app import create_app

    settings = _settings()
    if sandbox:
        public = settings.public_url or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        settings = settings.model_copy(update={"sandbox": True, "public_url": public})
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, proxy_headers=False)


@app.command()
def version() -> None:
    """Print callcheck's version."""
    from callcheck import __version__

    typer.echo(__version__)


def main() -> None:
    """Entry point of the `callcheck` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
