"""`callcheck serve` and `callcheck worker`: the web server and the durable work, each a long-running process."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from callcheck.cli.common import EXIT_COULD_NOT_RUN, LogLevel, database_problem, exit_when, load_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from callcheck.config import Settings

QUIET_LOGGERS = ("httpx", "alembic")
UVICORN_STARTUP_FAILURE = 3


def _not_the_sandbox(record: logging.LogRecord) -> bool:
    """Leave the in-process sandbox's uvicorn lines (its start, its access log of callcheck's polls) out of serve's."""
    from callcheck.providers.elevenlabs.sandbox.server import SANDBOX_THREAD

    return record.threadName != SANDBOX_THREAD


def port_problem(host: str, port: int) -> str | None:
    """Why `serve` could not listen on host:port (it is taken, or not an address of this machine), or None."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # uvicorn binds with SO_REUSEADDR too: a port left in TIME_WAIT by a server just stopped is free for both.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another callcheck serve?): stop it, or pick another "
                    "port with --port"
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def serve_banner(settings: Settings, host: str, port: int) -> str:
    """The one line `serve` prints at start: where it listens, against which ElevenLabs, on which database."""
    from sqlalchemy.engine import make_url

    from callcheck.store import db

    shown = f"[{host}]" if ":" in host else host
    if settings.sandbox:
        mode = "sandbox: simulated ElevenLabs, no real calls"
    else:
        from urllib.parse import urlsplit

        api = urlsplit(settings.elevenlabs_api_base)  # scheme and host only: never a user or password in a URL
        mode = f"real calls through ElevenLabs at {api.scheme}://{api.hostname}" + (f":{api.port}" if api.port else "")
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite":
        database = f"SQLite {url.database}"
    else:
        database = f"PostgreSQL {db.shown_url(settings.resolved_database_url())}"
    return f"callcheck is running on http://{shown}:{port} ({mode}; database: {database})"


EXPOSED_REFUSAL = (
    "Refusing to serve {where} without an API token: anyone who reaches it could place calls. Create one first "
    "with `callcheck token create --name NAME --scope admin`."
)


def exposure(host: str, settings: Settings) -> str | None:
    """How others could reach a server bound to `host` with these settings (words for EXPOSED_REFUSAL), or None."""
    import httpx

    if not is_loopback(host):
        return f"on {host}"
    if settings.trusted_proxy_list():
        return "behind the reverse proxies of CALLCHECK_TRUSTED_PROXIES"
    if settings.public_url:
        try:
            public_host = httpx.URL(settings.public_url.strip()).host
        except httpx.InvalidURL:
            public_host = ""
        if public_host and not is_loopback(public_host):
            # A tunnel or proxy brings ElevenLabs' webhooks in, and with them everyone else.
            return f"at the public address of CALLCHECK_PUBLIC_URL ({public_host})"
    return None


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach."""
    import ipaddress

    if host.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps the server local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Run against callcheck's local ElevenLabs sandbox (no account).")
    ] = False,
    log_level: Annotated[
        LogLevel, typer.Option(case_sensitive=False, help="How much the server logs.")
    ] = LogLevel.INFO,
    no_workers: Annotated[
        bool,
        typer.Option(
            "--no-workers",
            help="Serve only: leave the durable work to `callcheck worker` processes (PostgreSQL; as "
            "CALLCHECK_WORKERS=false).",
        ),
    ] = False,
) -> None:
    """Start the web page and JSON API."""
    with collector_paused():
        import uvicorn

        application, settings = built_app(host, port, sandbox, log_level, no_workers)
    typer.echo(serve_banner(settings, host, port))
    try:
        uvicorn.run(application, host=host, port=port, log_level=log_level.value, proxy_headers=False)
    except SystemExit as exc:
        # uvicorn exits 3 when it cannot start (the port taken between our check and its bind): callcheck says 2.
        if exc.code == UVICORN_STARTUP_FAILURE:
            raise typer.Exit(EXIT_COULD_NOT_RUN) from None
        raise


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while `serve` imports its libraries and builds its app; what was built
    is then frozen (never scanned again) and the collector is back on.

    Those imports (FastAPI, SQLAlchemy, DBOS, pydantic's models) make about 240,000 objects that live as long as the
    process; the collector, triggered every 700 allocations, walked the growing heap again and again for nothing,
    and a full collection of it afterwards costs a tenth of a second more, at start and again at every later full
    collection: together a quarter to a third of a start's CPU (bench/README.md, "Start-up, session 12").
    Reference counting frees everything else as before; the cyclic garbage a start leaves (0.8 MB, 1.7 MB after
    migrating a fresh database) is kept for the process's life. On an early exit (a refusal) nothing is frozen.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def built_app(host: str, port: int, sandbox: bool, log_level: LogLevel, no_workers: bool) -> tuple[FastAPI, Settings]:
    """`serve`'s app and settings, the port checked and the database migrated; exits (2) with one line when the
    server could not start."""
    from callcheck.app import create_app
    from callcheck.cli.token import any_active_token

    settings = load_settings()
    if no_workers:
        settings = settings.model_copy(update={"workers": False})
    if sandbox or settings.sandbox:  # the flag or CALLCHECK_SANDBOX=true: webhooks come back to this server
        public = settings.public_url or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        settings = settings.model_copy(update={"sandbox": True, "public_url": public})
    where = exposure(host, settings)
    exposed = where is not None
    # Before logging is set up: the refusal is one line, not lost among the migration's log lines.
    if where is not None and not any_active_token(settings):
        typer.echo(EXPOSED_REFUSAL.format(where=where), err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    logging.basicConfig(level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if log_level != LogLevel.DEBUG:
        # Routine lines, kept for --log-level debug: httpx logs every request (each poll of a call), Alembic every
        # MigrationContext it opens (the set-up panel's database check, on every view of the start page).
        for noisy in QUIET_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)
    if settings.sandbox:
        for name in ("uvicorn.error", "uvicorn.access"):
            logging.getLogger(name).addFilter(_not_the_sandbox)
    # The port first: a server that cannot listen should not have touched the data directory or the database.
    exit_when(port_problem(host, port))
    application = create_app(settings)  # a ConfigurationError (the cookie key) is one line via CallcheckGroup
    # The app's startup migrates too (a no-op by then), but a failure there is a uvicorn traceback; here it is one line.
    exit_when(database_problem(settings))
    application.state.exposed = exposed
    return application, settings


def worker(
    log_level: Annotated[
        LogLevel, typer.Option(case_sensitive=False, help="How much the worker logs.")
    ] = LogLevel.INFO,
) -> None:
    """Run the durable work (placing and following calls, suite runs) without the web server, until stopped
    (Ctrl-C or SIGTERM). Needs PostgreSQL: workers and servers share its database (docs/production.md)."""
    import asyncio
    import signal

    from callcheck.runtime import running_services
    from callcheck.store import db

    settings = load_settings()
    if db.is_sqlite(settings.resolved_database_url()):
        typer.echo(
            "callcheck worker needs PostgreSQL (CALLCHECK_DATABASE_URL=postgresql://...): on SQLite one "
            "`callcheck serve` does all the work",
            err=True,
        )
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    logging.basicConfig(level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_when(database_problem(settings))

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running_services(settings.model_copy(update={"workers": True}), role="worker") as services:
            logging.getLogger("callcheck").info("worker %s running", services.executor_id)
            await stop.wait()

    asyncio.run(work())


def register(app: typer.Typer) -> None:
    """Add `serve` and `worker` to the CLI."""
    app.command()(serve)
    app.command()(worker)
