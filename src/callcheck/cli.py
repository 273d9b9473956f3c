"""The `callcheck` command line."""

from __future__ import annotations

import logging
import os
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from callcheck.cli_common import EXIT_COULD_NOT_RUN
from callcheck.config import MAX_SANDBOX_TIME_SCALE, Settings, settings_problems
from callcheck.errors import ConfigurationError


def _flags_shown_as_flags(params: list[Any]) -> None:
    """A boolean flag takes no value (`--sandbox`, never `--sandbox true`): its help shows none (typer shows <bool>)."""
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""


class _CallcheckGroup(TyperGroup):
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
        try:
            return super().invoke(ctx)
        except ValidationError as exc:
            if exc.title != Settings.__name__:
                raise
            lines = [*settings_problems(exc), "(docs/configuration.md lists every setting and its allowed values)"]
        except ConfigurationError as exc:
            lines = [exc.message]
        for line in lines:
            typer.echo(line, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)


app = typer.Typer(
    cls=_CallcheckGroup,
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


def _settings(**overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**values)  # type: ignore[arg-type]


def _shown_database(settings: Settings) -> str:
    """The database's URL without its password or query (which may carry one)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url())
    return url.set(query={}).render_as_string(hide_password=True)


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
    setting = "CALLCHECK_DATABASE_URL" if settings.database_url else "CALLCHECK_DATA_DIR"
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"cannot use the database {_shown_database(settings)} (check {setting}): {reason[0] if reason else exc}"


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
        database = f"PostgreSQL {_shown_database(settings)}"
    return f"callcheck is running on http://{shown}:{port} ({mode}; database: {database})"


class LogLevel(StrEnum):
    """Levels `serve --log-level` accepts."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


def _valid_time_scale(value: float) -> float:
    if not 0 < value <= MAX_SANDBOX_TIME_SCALE:
        raise typer.BadParameter(f"must be more than 0 and at most {MAX_SANDBOX_TIME_SCALE:g}")
    return value


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


@app.command()
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
    import uvicorn

    from callcheck.app import create_app
    from callcheck.token_cli import any_active_token

    settings = _settings()
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
    problem = port_problem(host, port)
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    application = create_app(settings)  # a ConfigurationError (the cookie key) is one line via _CallcheckGroup
    # The app's startup migrates too (a no-op by then), but a failure there is a uvicorn traceback; here it is one line.
    problem = database_problem(settings)
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    application.state.exposed = exposed
    typer.echo(serve_banner(settings, host, port))
    try:
        uvicorn.run(application, host=host, port=port, log_level=log_level.value, proxy_headers=False)
    except SystemExit as exc:
        # uvicorn exits 3 when it cannot start (the port taken between our check and its bind): callcheck says 2.
        if exc.code == UVICORN_STARTUP_FAILURE:
            raise typer.Exit(EXIT_COULD_NOT_RUN) from None
        raise


@app.command()
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

    settings = _settings()
    if db.is_sqlite(settings.resolved_database_url()):
        typer.echo(
            "callcheck worker needs PostgreSQL (CALLCHECK_DATABASE_URL=postgresql://...): on SQLite one "
            "`callcheck serve` does all the work",
            err=True,
        )
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    logging.basicConfig(level=log_level.value.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    problem = database_problem(settings)
    if problem:
        typer.echo(problem, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)

    async def work() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running_services(settings.model_copy(update={"workers": True}), role="worker") as services:
            logging.getLogger("callcheck").info("worker %s running", services.executor_id)
            await stop.wait()

    asyncio.run(work())


@app.command()
def version() -> None:
    """Print callcheck's version."""
    from callcheck import __version__

    typer.echo(__version__)


agent_app = typer.Typer(cls=_CallcheckGroup, help="The ElevenLabs agent that plays the caller.", no_args_is_help=True)
app.add_typer(agent_app, name="agent")


@agent_app.command("setup")
def agent_setup(
    agent_id: Annotated[
        str | None, typer.Option(help="Agent to update (default: ELEVENLABS_AGENT_ID; none: create one).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of a created agent.")] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="Post-call webhook URL (default: CALLCHECK_PUBLIC_URL + /api/webhooks/elevenlabs)."),
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

    from callcheck.agent_setup import format_setup, run_setup
    from callcheck.errors import CallcheckError

    settings = _settings()
    if not settings.elevenlabs_api_key or not settings.elevenlabs_api_key.get_secret_value().strip():
        typer.echo("Missing required environment variable: ELEVENLABS_API_KEY", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    try:
        result = asyncio.run(
            run_setup(
                settings,
                agent_id=agent_id or settings.elevenlabs_agent_id,
                name=name,
                webhook_url=webhook_url,
                webhook_id=webhook_id,
                create_webhook=create_webhook,
                dry_run=dry_run,
            )
        )
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    typer.echo(format_setup(result))


@app.command()
def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    public_url: Annotated[
        str | None, typer.Option(help="Public base URL to check webhooks against (default: CALLCHECK_PUBLIC_URL).")
    ] = None,
) -> None:
    """Check the set-up (settings, API key, agent, phone number, webhooks, database); exit 0 only if all pass."""
    import asyncio

    import httpx

    from callcheck.doctor import DoctorReport, format_report, run_doctor

    settings = _settings()

    async def run() -> DoctorReport:
        async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
            return await run_doctor(settings, http, public_url=public_url)

    report = asyncio.run(run())
    typer.echo(report.model_dump_json(indent=2) if as_json else format_report(report))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
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


def _register_suite_commands() -> None:
    from callcheck.suite_cli import register

    register(app)


_register_suite_commands()


def _register_monitor_commands() -> None:
    from callcheck.monitor_cli import register

    register(app)


_register_monitor_commands()


def _register_token_commands() -> None:
    from callcheck.token_cli import register

    register(app)


_register_token_commands()


def main() -> None:
    """Entry point of the `callcheck` script."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
