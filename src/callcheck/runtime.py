"""Building the services of a running callcheck: for the web app's lifespan and for CLI commands alike."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from callcheck.config import Settings
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.files import private_dir, tighten_data_dir
from callcheck.store.repo import Store

WEBHOOK_PATH = "/api/webhooks/elevenlabs"


@asynccontextmanager
async def start_sandbox(settings: Settings, clock: Callable[[], float] | None = None) -> AsyncIterator[Settings]:
    """Run callcheck's own ElevenLabs sandbox beside the app and point the settings at it; `clock` (tests only)
    ages its calls instead of the real clock (a HeldClock, say)."""
    from pydantic import SecretStr

    from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer

    api_key = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(24) if settings.public_url else None
    webhook_url = f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}" if settings.public_url else None
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

    lease = Lease(
        ExecutorStore(services.store.engine), new_executor_id("web"), "web", services.settings.executor_lease_s
    )
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
        if effective.workers:
            from callcheck.jobs.monitors import MonitorScheduler  # imported first: its workflows exist at launch
            from callcheck.jobs.tracking import Tracker

            tracker = Tracker(services, executor_id, role)
            await stack.enter_async_context(tracker.running())
            services.tracker = tracker
            if executor_id is None:  # a server runs the monitors' schedules; a `callcheck run` process does not
                await stack.enter_async_context(MonitorScheduler(services).running())
        elif not db.is_sqlite(url):
            await stack.enter_async_context(web_lease(services))
        yield services
