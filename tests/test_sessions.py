"""Sessions: the signed cookie carries a context id, a cookie-less request uses the local context; storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner

from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.runtime import session_secret
from tests.conftest import settings_for

OUTBOUND = "/v1/convai/twilio/outbound-call"


@pytest.fixture
async def app_client(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    return await client_for(settings_for(sandbox, tmp_path, workers=False))


def fresh_client(like: httpx.AsyncClient, cookies: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=like._transport, base_url="http://testserver", cookies=cookies)


async def test_context_sets_a_signed_cookie_that_later_requests_use(app_client: httpx.AsyncClient) -> None:
    response = await app_client.post("/api/context", json={"description": "Cookie business.", "scenario": "goal A"})
    cookie = response.cookies.get("callcheck_session")
    assert cookie and "Cookie business" not in cookie  # the context lives in the database, not the cookie
    call = await app_client.post("/api/call", json={"to_number": "+15551234567"})
    assert call.json()["scenario"] == "goal A"


async def test_a_cookie_naming_another_context_is_honoured(app_client: httpx.AsyncClient, tmp_path: Path) -> None:
    # Build the cookie a browser session would hold for context "browser-1", signed with the server's key.
    import base64
    import json

    services = app_client.callcheck_app.state.services  # type: ignore[attr-defined]
    await services.store.save_context("browser-1", "Browser business.", "goal B")
    await services.store.save_context("local", "Local business.", "goal L")
    data = base64.b64encode(json.dumps({"context_id": "browser-1"}).encode())
    signed = TimestampSigner(session_secret(services.settings)).sign(data).decode()
    browser = fresh_client(app_client, {"callcheck_session": signed})
    assert (await browser.post("/api/call", json={"to_number": "+15551234567"})).json()["scenario"] == "goal B"
    plain = fresh_client(app_client)
    assert (await plain.post("/api/call", json={"to_number": "+15551234567"})).json()["scenario"] == "goal L"
    forged = TimestampSigner("not-the-servers-key").sign(data).decode()
    tampered = fresh_client(app_client, {"callcheck_session": forged})
    # A cookie that does not verify is ignored: the request falls back to the local context.
    assert (await tampered.post("/api/call", json={"to_number": "+15551234567"})).json()["scenario"] == "goal L"
    for client in (browser, plain, tampered):
        await client.aclose()


async def test_idempotency_key_replays_instead_of_dialing_again(
    app_client: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    body = {"to_number": "+15551234567", "business_description": "A shop."}
    first = await app_client.post("/api/call", json=body, headers={"Idempotency-Key": "k-1"})
    again = await app_client.post("/api/call", json=body, headers={"Idempotency-Key": "k-1"})
    other = await app_client.post("/api/call", json=body, headers={"Idempotency-Key": "k-2"})
    assert first.status_code == again.status_code == other.status_code == 200
    assert again.json() == first.json()
    assert other.json()["id"] != first.json()["id"]
    assert len(httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND}).json()) == 2
    failed = await app_client.post(
        "/api/call", json={**body, "to_number": "+15550100500"}, headers={"Idempotency-Key": "k-3"}
    )
    failed_again = await app_client.post(
        "/api/call", json={**body, "to_number": "+15550100500"}, headers={"Idempotency-Key": "k-3"}
    )
    # ElevenLabs refused the first (a 500): nothing was placed, so the retry is tried again, not replayed.
    assert failed.status_code == failed_again.status_code == 502
    assert failed_again.json() == failed.json()
    assert len(httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND}).json()) == 4
    listed = (await app_client.get("/api/calls", params={"number": "+15550100500"})).json()["calls"]
    assert len(listed) == 2  # both attempts kept

    # The key names one request: another number (or description, or scenario) under it is refused, and no dial.
    reused = await app_client.post(
        "/api/call", json={**body, "to_number": "+15550100004"}, headers={"Idempotency-Key": "k-1"}
    )
    assert reused.status_code == 422
    assert reused.json() == {
        "error": "This Idempotency-Key was used for a different request (another number, description or scenario)."
    }
    assert len(httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND}).json()) == 4


async def test_every_attempt_is_stored_with_what_was_sent(
    app_client: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    ok = await app_client.post(
        "/api/call", json={"to_number": "+15551234567", "business_description": "A shop.", "scenario": "buy milk."}
    )
    failed = await app_client.post("/api/call", json={"to_number": "+15550100500", "business_description": "A shop."})
    listed = (await app_client.get("/api/calls")).json()["calls"]
    assert len(listed) == 2
    stored = (await app_client.get(f"/api/calls/{ok.json()['id']}")).json()
    assert stored["business_description"] == "A shop." and stored["scenario"] == "buy milk."
    assert stored["first_message"] == "Hi, I'm calling because I'd like to buy milk."
    assert "Business description: A shop." in stored["prompt"]
    services = app_client.callcheck_app.state.services  # type: ignore[attr-defined]
    row = await services.store.get_call(ok.json()["id"])
    assert (
        row.request_payload
        == httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND}).json()[0]["json"]
    )
    assert row.upstream_response == ok.json()["raw"]
    assert row.created_at and row.updated_at
    failed_row = (await app_client.get(f"/api/calls/{listed[0]['id']}")).json()
    assert failed_row["error"] == failed.json()["error"] and failed_row["state"] == "failed"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, 200),
        ({}, 200),  # curl, CI, scripts: no browser headers at all
    ],
)
async def test_cross_site_browser_posts_are_refused(
    app_client: httpx.AsyncClient, sandbox: SandboxServer, headers: dict[str, str], status: int
) -> None:
    # A page elsewhere can make a browser send a "simple" text/plain POST without a CORS preflight: refused for its
    # origin before its body is read (a same-origin text/plain body is a 415 of its own, see test_seed_api).
    body = '{"to_number": "+15551234567", "business_description": "A shop."}'
    media = "text/plain" if status == 403 else "application/json"
    response = await app_client.post("/api/call", content=body, headers={"Content-Type": media, **headers})
    assert response.status_code == status
    if status == 403:
        assert response.json() == {"error": "Cross-site requests are refused."}
        assert httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND}).json() == []
