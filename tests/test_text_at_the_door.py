"""Text no database keeps (a NUL from "\\u0000" or a URL's %00, a lone surrogate) is refused in words, on SQLite and
PostgreSQL alike; an emoji, however it is escaped, is just text; problems of a suite sent to the API are reported
by the lines the client wrote."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.test_runs_api import wait_run
from tests.test_webhooks import SECRET, signed

SUITE = {
    "business": "Pizza \U0001f355, open late",
    "number": "+15550100001",
    "scenarios": [{"name": "order", "goal": "order a pizza", "expect": [{"final_state": "completed"}]}],
}


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path, elevenlabs_webhook_secret=SECRET))
    return client


async def test_nul_in_a_body_or_a_path_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    call = {"to_number": "+15550100001", "business_description": "Biz\u0000x"}
    for path, body in (
        ("/api/call", call),
        ("/api/context", {"description": "Biz\u0000x"}),
        ("/api/runs", {**SUITE, "business": "Pizza\u0000"}),
    ):
        response = await api.post(path, json=body)
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {"error": "Request body must be valid text (it holds a NUL character (\\u0000))."}
    assert (await api.get("/api/calls")).json()["calls"] == [] and (await api.get("/api/runs")).json()["runs"] == []
    for method, path in (
        ("GET", "/api/calls/ab%00c"),
        ("GET", "/api/calls/ab%00c/audio"),
        ("GET", "/api/calls/ab%00c/events"),
        ("GET", "/api/runs/ab%00c"),
        ("DELETE", "/api/runs/ab%00c"),
    ):
        response = await api.request(method, path)
        assert response.status_code == 404 and "error" in response.json(), (method, path)
    for path in ("/calls/ab%00c", "/runs/ab%00c"):
        page = await api.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 404 and "<h1>Not found</h1>" in page.text, path


async def test_a_webhook_keeps_its_text_less_the_nuls(
    client_for: Any, stepped_sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The sandbox's clock stands still: the call rings until the webhook ends it. (On the fast sandbox a loaded
    # machine let the poller end the call with the sandbox's own transcript first, and the webhook came too late.)
    settings = settings_for(stepped_sandbox, tmp_path, elevenlabs_webhook_secret=SECRET)
    api: httpx.AsyncClient = await client_for(settings)
    placed = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "A shop."})
    conversation_id = placed.json()["conversation_id"]
    event = {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [{"role": "user", "message": "Hel\u0000lo", "time_in_call_secs": 1}],
            "metadata": {"call_duration_secs": 3},
        },
    }
    body = json.dumps(event).encode()
    answer = await api.post("/api/webhooks/elevenlabs", content=body, headers=signed(body))
    assert answer.status_code == 200 and answer.json()["matched"] is True
    call = (await api.get(f"/api/calls/{placed.json()['id']}")).json()
    assert [t["text"] for t in call["transcript"]] == ["Hello"]


async def test_an_escaped_emoji_runs_and_problems_keep_their_lines(api: httpx.AsyncClient) -> None:
    # json.dumps escapes the emoji as a surrogate pair, "\ud83c\udf55": it is one character, not two broken halves.
    body = json.dumps(SUITE, indent=2)
    assert "\\ud83c\\udf55" in body
    started = await api.post("/api/runs", content=body, headers={"Content-Type": "application/json"})
    assert started.status_code == 202, started.text
    run = await wait_run(api, started.json()["id"])
    assert run["state"] == "completed" and run["name"] == "Pizza \U0001f355, open late"

    broken = json.dumps(
        {**SUITE, "scenarios": [{"name": "a", "goal": "g", "expect": [{"outcom": "success"}]}]}, indent=2
    )
    # The assertion's line: where its mapping opens, the line before its key in this layout.
    line = next(n for n, text in enumerate(broken.splitlines(), 1) if "outcom" in text) - 1
    assert line > 1 and broken.splitlines()[line - 1].strip() == "{"
    refused = await api.post("/api/runs", content=broken, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400
    assert f"scenarios[0].expect[0] (line {line}): unknown assertion 'outcom'" in refused.json()["error"]
