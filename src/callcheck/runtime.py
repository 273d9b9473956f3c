"""The composition root: what a running callcheck is built from, for the web app's lifespan and CLI commands alike.

Settings come in; the sandbox (if asked), the migrated database, the HTTP client, the cookie-signing key and the
durable workers are made here, and handed on as one `Services` (services.py holds only its type). Nothing else builds
them, and nothing below app.py and cli/ imports this module (tests/test_architecture.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from callcheck.config import MIN_SECRET_KEY_CHARS, Settings
from callcheck.domain.access import ELEVENLABS_WEBHOOK_PATH
from callcheck.errors import ConfigurationError
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.files import kept_secret_key, private_dir, tighten_data_dir
from callcheck.store.repo import Store


def session_secret(settings: Settings) -> str:
    """The cookie-signing key: CALLCHECK_SECRET_KEY, or one generated once and kept (mode 0600) in the data directory.

    An empty or short kept key is refused rather than signing cookies with it.
    """
    if settings.secret_key and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    try:
        path, key = kept_secret_key(settings.data_dir)
    except OSError as exc:
        raise ConfigurationError(
            f"Cannot keep the cookie-signing key in {settings.data_dir / 'secret_key'}: {exc.strerror or exc} "
            "(check CALLCHECK_DATA_DIR, or set CALLCHECK_SECRET_KEY)."
        ) from exc
    if len(key) < MIN_SECRET_KEY_CHARS:
        raise ConfigurationError(
            f"The cookie-signing key in {path} is too short to be safe (under {MIN_SECRET_KEY_CHARS} characters): "
            "delete the file to have a new one made, or set CALLCHECK_SECRET_KEY."
        )
    return key


@asynccontextmanager
async def start_sandbox(settings: Settings, clock: Callable[[], float] | None = None) -> AsyncIterator[Settings]:
    """Run callcheck's own ElevenLabs sandbox beside the app and point the settings at it; `clock` (tests only)
    ages its calls instead of the real clock (a HeldClock, say)."""
    from pydantic import SecretStr

    from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer

    api_key = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(24) if settings.public_url else None
    webhook_url = f"{settings.public_url.rstrip('/')}{ELEVENLABS_WEBHOOK_PATH}" if settings.public_url else None
    config = SandboxConfig(
        api_key=api_key,
        webhook_url=webhook_url,
        time_scale=settings.sandbox_time_scale,
        workspace_webhook=webhook_url is not None,
    )
    if clock is not None:
        config.clock = clock
    if secret:
        config.webhook_secret = secret
    server = SandboxServer(config)
    await asyncio.to_thread(server.start)
    try:
        yield settings.model_copy(
            update={
                "elevenlabs_api_key": SecretStr(api_key),
                "elevenlabs_agent_id": config.agent_id,
                "elevenlabs_agent_phone_number_id": config.phone_number_id,
                "elevenlabs_api_base": server.url,
                "elevenlabs_webhook_secret": SecretStr(secret) if secret else None,
            }
        )
    finally:
        await asyncio.to_thread(server.stop)


@asynccontextmanager
async def web_lease(services: Services) -> AsyncIterator[None]:
    """A server without workers on PostgreSQL: a lease of its own (jobs/executors.py), so the calls it dials are
    known to be its own while it lives, and taken over by a worker once it is gone."""
    from callcheck.jobs.executors import Lease, new_executor_id
    from callcheck.store.executors import ExecutorStore

    async with db.lease_engine(services.settings.resolved_database_url()) as engine:
        lease = Lease(ExecutorStore(engine), new_executor_id("web"), "web", services.settings.executor_lease_s)
        await lease.register()
        services.executor_id = lease.executor_id
        beat = asyncio.create_task(lease.run(), name="callcheck-lease")
        try:
            yield
        finally:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
            await lease.release()


@asynccontextmanager
async def store_services(settings: Settings) -> AsyncIterator[Services]:
    """The migrated store and an HTTP client, without sandbox or workers (`callcheck monitor ...`); closed on exit."""
    url = settings.resolved_database_url()
    await asyncio.to_thread(db.upgrade, url)
    engine = db.create_engine(url)
    try:
        async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
            yield Services(settings=settings, store=Store(engine), http=http)
    finally:
        await engine.dispose()


@asynccontextmanager
async def running_services(
    settings: Settings,
    executor_id: str | None = None,
    role: str = "server",
    sandbox_clock: Callable[[], float] | None = None,
) -> AsyncIterator[Services]:
    """Sandbox (if asked), migrated database, HTTP client and durable workers; all closed on exit.

    `executor_id` is given by a `callcheck run` process (jobs/ownership.py); a server leaves it None. `role` names
    the process in the executors table (server or worker; jobs/executors.py).
    """
    async with AsyncExitStack() as stack:
        effective = settings
        if settings.sandbox:
            effective = await stack.enter_async_context(start_sandbox(settings, sandbox_clock))
        url = effective.resolved_database_url()
        # The data directory and all in it (database, WAL, DBOS's database, recordings) readable by its owner only.
        await asyncio.to_thread(private_dir, effective.data_dir)
        await asyncio.to_thread(tighten_data_dir, effective.data_dir)
        await asyncio.to_thread(db.upgrade, url)
        engine = db.create_engine(url)
        stack.push_async_callback(engine.dispose)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=effective.http_timeout_s))
        services = Services(
            settings=effective,
            store=Store(engine, limits=effective.call_limits()),
            http=http,
            simulated=effective.sandbox,
        )
        from callcheck.api.metrics import count_upstream_errors

        count_upstream_errors(services)
        if not db.is_sqlite(url):
            # Live updates from every process on the database (notifier.py), before any work starts.
            from callcheck.notifier import bridged

            conninfo = db.sync_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
            await stack.enter_async_context(bridged(services.notifier, conninfo))
        if effective.workers:
            from callcheck.jobs.monitors import MonitorScheduler  # imported first: its workflows exist at launch
            from callcheck.jobs.recovery import tracker as new_tracker

            tracker = new_tracker(services, executor_id, role)
            await stack.enter_async_context(tracker.running())
            services.tracker = tracker
            if executor_id is None:  # a server runs the monitors' schedules; a `callcheck run` process does not
                await stack.enter_async_context(MonitorScheduler(services).running())
        elif not db.is_sqlite(url):
            await stack.enter_async_context(web_lease(services))
        yield services
