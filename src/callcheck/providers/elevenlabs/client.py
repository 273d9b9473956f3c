"""A small async client for the ElevenLabs endpoints callcheck uses (shared/contracts/elevenlabs.md).

Why not their SDK: it retries POSTs on 408/409/429/5xx by default (contract §10.4), and the outbound-call endpoint
has no idempotency key, so a retry can phone a business twice. This client sends every request exactly once; the
caller decides what may be tried again (only reads are, by the job that follows a call).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from callcheck.domain.storable import without_nul
from callcheck.errors import UpstreamHTTPError, UpstreamNotSuccess, UpstreamUnreachable
from callcheck.providers.elevenlabs.wire import error_message

# Every answer of callcheck's sandbox carries this header (never ElevenLabs' own): what it answered is simulated.
SANDBOX_HEADER = "x-callcheck-sandbox"


class ElevenLabsClient:
    """The ElevenLabs API, over an injected `httpx.AsyncClient` (the test seam)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_key: str,
        base_url: str,
        on_sandbox: Callable[[], None] | None = None,
    ) -> None:
        self._http = http
        self._api_key = api_key
        # Keep a path prefix of the base URL (contract §1.1): join, never replace.
        self._base = base_url.rstrip("/")
        # Called when an answer comes from callcheck's sandbox, however it was started (`serve --sandbox` knows it
        # already; a `callcheck sandbox` pointed at with ELEVENLABS_API_BASE is only known by its answers).
        self._on_sandbox = on_sandbox

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"xi-api-key": self._api_key, "accept": "application/json"}
        try:
            response = await self._http.request(method, f"{self._base}{path}", headers=headers, **kwargs)
        except httpx.ConnectTimeout as exc:
            raise UpstreamUnreachable("timed out connecting", maybe_sent=False) from exc
        except httpx.TimeoutException as exc:
            raise UpstreamUnreachable(f"timed out ({type(exc).__name__})") from exc
        except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            # No connection was made (or could be: a malformed ELEVENLABS_API_BASE): nothing was sent.
            raise UpstreamUnreachable(_describe(exc), maybe_sent=False) from exc
        except httpx.HTTPError as exc:
            raise UpstreamUnreachable(_describe(exc)) from exc
        if self._on_sandbox is not None and response.headers.get(SANDBOX_HEADER) == "1":
            self._on_sandbox()
        if not response.is_success:
            # Any status outside 2xx is a failure, a redirect too (nothing of ElevenLabs' API redirects; a proxy or a
            # wrong base URL does). The body is kept on the error, so the stored attempt shows what was answered.
            body = _body(response)
            raise UpstreamHTTPError(response.status_code, error_message(body, response.reason_phrase), body)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, **kwargs)
        try:
            # NULs dropped: PostgreSQL text cannot keep them, and a transcript is no worse without.
            return without_nul(response.json())
        except ValueError as exc:
            raise UpstreamHTTPError(response.status_code, "the response was not JSON") from exc

    async def outbound_call(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/convai/twilio/outbound-call, once. A 200 saying `success: false` is an error too."""
        body = await self._json("POST", "/v1/convai/twilio/outbound-call", json=payload)
        if not isinstance(body, dict):
            raise UpstreamHTTPError(200, "the response was not a JSON object", body)
        # UNCONFIRMED (contract §12.1) whether the live service ever answers 200 with success false; if it does,
        # the call was not placed and saying "Call initiated." would be a lie. `success` is a required boolean
        # (contract §2.2), so an answer without `success: true` (missing, "false", 0) is not a placed call either.
        if body.get("success") is not True:
            raise UpstreamNotSuccess(error_message(body, "the call was not initiated"), body)
        return body

    async def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        """GET /v1/convai/conversations/{id}."""
        body = await self._json("GET", f"/v1/convai/conversations/{_segment(conversation_id)}")
        return body if isinstance(body, dict) else {}

    async def list_conversations(self, **params: Any) -> dict[str, Any]:
        """GET /v1/convai/conversations with filters (agent_id, user_id, cursor, page_size...)."""
        query = {k: v for k, v in params.items() if v is not None}
        body = await self._json("GET", "/v1/convai/conversations", params=query)
        return body if isinstance(body, dict) else {}

    async def get_audio(self, conversation_id: str) -> bytes | None:
        """The call's MP3, or None when ElevenLabs has none (404)."""
        try:
            response = await self._request("GET", f"/v1/convai/conversations/{_segment(conversation_id)}/audio")
        except UpstreamHTTPError as exc:
            # UNCONFIRMED (contract §4.3): the status for "no audio yet/at all"; 404 is the likely one.
            if exc.status == 404:
                return None
            raise
        return response.content

    async def get_agent(self, agent_id: str) -> dict[str, Any]:
        """GET /v1/convai/agents/{id}."""
        body = await self._json("GET", f"/v1/convai/agents/{_segment(agent_id)}")
        return body if isinstance(body, dict) else {}

    async def create_agent(self, config: dict[str, Any]) -> str:
        """POST /v1/convai/agents/create; the new agent's id."""
        body = await self._json("POST", "/v1/convai/agents/create", json=config)
        agent_id = body.get("agent_id") if isinstance(body, dict) else None
        if not isinstance(agent_id, str):
            raise UpstreamHTTPError(200, "the response carried no agent_id", body)
        return agent_id

    async def update_agent(self, agent_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """PATCH /v1/convai/agents/{id}; the updated agent."""
        body = await self._json("PATCH", f"/v1/convai/agents/{_segment(agent_id)}", json=patch)
        return body if isinstance(body, dict) else {}

    async def create_workspace_webhook(self, name: str, url: str) -> tuple[str, str | None]:
        """POST /v1/workspace/webhooks (HMAC auth, contract §5.2): (webhook_id, webhook_secret shown only now)."""
        body = await self._json(
            "POST", "/v1/workspace/webhooks", json={"settings": {"auth_type": "hmac", "name": name, "webhook_url": url}}
        )
        webhook_id = body.get("webhook_id") if isinstance(body, dict) else None
        if not isinstance(webhook_id, str):
            raise UpstreamHTTPError(200, "the response carried no webhook_id", body)
        secret = body.get("webhook_secret")
        return webhook_id, secret if isinstance(secret, str) else None

    async def list_workspace_webhooks(self) -> list[dict[str, Any]]:
        """GET /v1/workspace/webhooks: `{webhooks: [...]}` in the 2025-08 OpenAPI schema (not in elevenlabs.md)."""
        body = await self._json("GET", "/v1/workspace/webhooks")
        items = body.get("webhooks") if isinstance(body, dict) else None
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    async def get_convai_settings(self) -> dict[str, Any]:
        """GET /v1/convai/settings: the workspace's Agents settings, its post-call `webhooks` among them."""
        body = await self._json("GET", "/v1/convai/settings")
        return body if isinstance(body, dict) else {}

    async def list_phone_numbers(self) -> list[dict[str, Any]]:
        """GET /v1/convai/phone-numbers (a bare JSON array)."""
        body = await self._json("GET", "/v1/convai/phone-numbers")
        return [item for item in body if isinstance(item, dict)] if isinstance(body, list) else []


def _segment(value: str) -> str:
    """One URL path segment; ids come from our database or users, so never let them add path parts."""
    return quote(value, safe="")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text[:2000]  # kept with the attempt; a proxy's error page need not be kept whole


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
