"""`create_app(settings)`: the FastAPI application. Everything it needs is built in the lifespan, nothing at import."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware

from callcheck import __version__
from callcheck.api.body import BodyLimit
from callcheck.api.errors import install_error_handlers
from callcheck.config import Settings
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.repo import Store

log = logging.getLogger("callcheck")

WEBHOOK_PATH = "/api/webhooks/elevenlabs"
# post_call_audio webhooks carry a base64 MP3 of the whole call (contract §5.4).
WEBHOOK_MAX_BYTES = 64_000_000


@asynccontextmanager
async def _start_sandbox(settings: Settings) -> AsyncIterator[Settings]:
    """Run callcheck's own ElevenLabs sandbox beside the app and point the settings at it."""
    from pydantic import SecretStr

    from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer

    api_key = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(24) if settings.public_url else None
    webhook_url = f"{settings.public_url.rstrip('/')}{WEBHOOK_PATH}" if settings.public_url else None
    config = SandboxConfig(api_key=api_key, webhook_url=webhook_url, time_scale=settings.sandbox_time_scale)
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build a callcheck application for these settings."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            effective = settings
            if settings.sandbox:
                effective = await stack.enter_async_context(_start_sandbox(settings))
            url = effective.resolved_database_url()
            await asyncio.to_thread(db.upgrade, url)
            engine = db.create_engine(url)
            stack.push_async_callback(engine.dispose)
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=effective.http_timeout_s))
            services = Services(settings=effective, store=Store(engine), http=http, simulated=effective.sandbox)
            if effective.workers:
                from callcheck.jobs.tracking import Tracker

                tracker = Tracker(services)
                await stack.enter_async_context(tracker.running())
                services.tracker = tracker
            app.state.services = services
            app.state.ready = True
            yield
            app.state.ready = False

    app = FastAPI(
        title="callcheck",
        version=__version__,
        summary="Test a business's phone line the way a customer would.",
        lifespan=lifespan,
    )
    app.state.ready = False
    install_error_handlers(app)
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret(),
        session_cookie="callcheck_session",
        same_site="lax",
        https_only=bool(settings.public_url and settings.public_url.startswith("https://")),
    )
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, overrides={WEBHOOK_PATH: WEBHOOK_MAX_BYTES})

    @app.get("/healthz", tags=["meta"], summary="Readiness")
    async def healthz() -> dict[str, Any]:
        """200 once the app has started (database migrated, workers running)."""
        return {"ok": True, "version": __version__}

    from callcheck.api import calls, doctor, history, runs, webhooks

    app.include_router(calls.router)
    app.include_router(doctor.router)
    app.include_router(history.router)
    app.include_router(webhooks.router)
    app.include_router(runs.router)
    return app
