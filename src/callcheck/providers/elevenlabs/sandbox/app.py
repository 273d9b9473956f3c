"""The sandbox app: its state, webhook dispatcher, outermost middleware and routes (`routes.py`), put together."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcheck.providers.elevenlabs.client import SANDBOX_HEADER
from callcheck.providers.elevenlabs.sandbox import routes
from callcheck.providers.elevenlabs.sandbox.config import SandboxConfig
from callcheck.providers.elevenlabs.sandbox.errors import SandboxAPIError
from callcheck.providers.elevenlabs.sandbox.state import SandboxState
from callcheck.providers.elevenlabs.sandbox.webhooks import WebhookDispatcher

REDACTED = "<redacted>"


class _RecordAndAuthenticate:
    """Outermost layer: logs each request and its body, checks `xi-api-key` on /v1/*, marks answers."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Read the whole body up front so it can be logged even when the route never reads it (e.g. a 401).
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry: dict[str, Any] | None = None
        if not path.startswith("/_sandbox"):
            entry = self._log(scope, headers, body)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (SANDBOX_HEADER.encode(), b"1")]
                if entry is not None:
                    entry["status_code"] = message["status"]
            await send(message)

        if path.startswith("/v1/") and headers.get("xi-api-key") != self.state.config.api_key:
            # Live behaviour for a *missing* key is UNCONFIRMED (§1.2, §12.10); we answer as for a wrong one.
            error = SandboxAPIError(401, "authentication_error", "invalid_api_key", "Invalid API key")
            await error.response()(scope, replay, send_marked)
            return
        await self.app(scope, replay, send_marked)

    def _log(self, scope: Scope, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        parsed: Any = None
        text: str | None = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                text = body.decode("utf-8", errors="replace")
        shown = dict(headers)
        if "xi-api-key" in shown:
            shown["xi-api-key"] = REDACTED
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": shown,
            "api_key_valid": headers.get("xi-api-key") == self.state.config.api_key,
            "json": parsed,
            "body": text,
            "status_code": None,
            "received_at": time.time(),
        }
        self.state.requests.append(entry)
        return entry


async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    dispatcher: WebhookDispatcher = app.state.dispatcher
    await dispatcher.start()
    try:
        yield
    finally:
        await dispatcher.stop()


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, SandboxAPIError)  # registered for SandboxAPIError only
    return exc.response()


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    """A new sandbox app with its own in-memory state (build as many as you like)."""
    config = config or SandboxConfig()
    state = SandboxState(config)
    app = FastAPI(
        title="callcheck sandbox (simulated ElevenLabs API)",
        lifespan=asynccontextmanager(_lifespan),
        docs_url=None,
        redoc_url=None,
    )
    app.state.sandbox = state
    app.state.dispatcher = WebhookDispatcher(
        config.webhook_url,
        config.webhook_secret,
        retries=config.webhook_retries,
        retry_delay_secs=config.webhook_retry_delay_secs,
        timeout_secs=config.webhook_timeout_secs,
        record=state.deliveries.append,
    )
    app.add_middleware(_RecordAndAuthenticate, state=state)
    app.add_exception_handler(SandboxAPIError, _api_error)
    app.include_router(routes.api)
    app.include_router(routes.inspection)
    return app
