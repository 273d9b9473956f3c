"""The web pages rendered in-process: escaping, the browser's own context, setup panel, banners, history, 404s.

What a person sees move in a real browser is in test_web_browser.py.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import E164_ERROR, E164_PATTERN
from callcheck.domain.prompts import DEFAULT_SCENARIO
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.web.pages import clock, figures, short_seconds, timeline
from tests.conftest import settings_for

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def finished(api: httpx.AsyncClient, call_id: str, timeout: float = 20) -> dict[str, Any]:
    """The call once it reached a terminal state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        call: dict[str, Any] = (await api.get(f"/api/calls/{call_id}")).json()
        if CallState(call["state"]).terminal:
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} did not finish")


@pytest.fixture
async def web(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    """A callcheck on the (fast) sandbox, with workers, so calls finish."""
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    return client


async def test_start_page_gives_the_browser_its_own_context_and_prefills_it(web: httpx.AsyncClient) -> None:
    page = await web.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "callcheck_session" in page.cookies
    assert f'placeholder="{DEFAULT_SCENARIO}"' in page.text
    assert E164_ERROR in page.text and E164_PATTERN.pattern in page.text
    # The form stores through the API with the page's cookie, so this browser's context is its own...
    stored = await web.post("/api/context", json={"description": "Tony's Pizza " + EVIL, "scenario": "order " + EVIL})
    assert stored.status_code == 200
    async with httpx.AsyncClient(transport=web._transport, base_url="http://testserver") as curl:
        # ...and not the cookie-less "local" one that curl users share.
        assert (await curl.post("/api/call", json={"to_number": "+15550100001"})).json()["error"] == (
            "Provide a business description first."
        )
    again = await web.get("/")
    assert (
        "Tony&#39;s Pizza &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
        in again.text
    )
    assert "order &lt;script&gt;" in again.text
    assert "<script>alert" not in again.text and "<img src=x" not in again.text


async def test_call_page_and_history_escape_what_users_typed(web: httpx.AsyncClient) -> None:
    await web.get("/")
    await web.post("/api/context", json={"description": "Desc " + EVIL, "scenario": "Goal " + EVIL})
    placed = (await web.post("/api/call", json={"to_number": "+15550100007"})).json()
    call = await finished(web, placed["id"])
    assert call["state"] == "completed"
    page = await web.get(f"/calls/{placed['id']}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "Goal &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    # The caller's first message repeats the scenario: the transcript is escaped too.
    assert "I&#39;d like to Goal &lt;script&gt;" in page.text
    assert "Pressed 2" in page.text and "Completed" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    history = await web.get("/calls")
    assert f'href="/calls/{placed["id"]}"' in history.text
    assert "Goal &lt;script&gt;" in history.text and "<script>alert" not in history.text
    for part in ("timeline", "transcript", "result"):
        fragment = await web.get(f"/calls/{placed['id']}/parts/{part}")
        assert fragment.status_code == 200 and f'id="{part}"' in fragment.text
        assert "<script>alert" not in fragment.text


async def test_history_filters_and_pages(web: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcheck.web import pages

    monkeypatch.setattr(pages, "HISTORY_PAGE_SIZE", 2)
    await web.post("/api/context", json={"description": "A bakery."})
    ids = {}
    for number in ("+15550100001", "+15550100004", "+15550100001"):
        placed = (await web.post("/api/call", json={"to_number": number})).json()
        ids[placed["id"]] = (await finished(web, placed["id"]))["state"]
    busy = await web.get("/calls", params={"status": "busy"})
    assert busy.text.count("<tr data-call-id=") == 1 and ">Busy<" in busy.text
    by_number = await web.get("/calls", params={"number": "+1 555 0100 001"})  # blanks are ignored
    rows = re.findall(r'<tr data-call-id="(\w+)"', by_number.text)
    assert len(rows) == 2 and all(ids[r] == "completed" for r in rows)
    first = await web.get("/calls")
    assert first.text.count("<tr data-call-id=") == 2
    older = re.search(r'<a rel="next" href="([^"]+)"', first.text)
    assert older is not None
    second = await web.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count("<tr data-call-id=") == 1 and "Newest calls" in second.text
    unknown = await web.get("/calls", params={"status": "exploded"})
    assert unknown.status_code == 200 and "Unknown status" in unknown.text
    not_a_number = await web.get("/calls", params={"number": "abc"})
    assert not_a_number.status_code == 200 and E164_ERROR in not_a_number.text
    assert "<tr data-call-id=" not in not_a_number.text and 'value="abc"' in not_a_number.text
    stale = await web.get("/calls", params={"cursor": "not-a-cursor"})
    assert "no longer valid" in stale.text and stale.text.count("<tr data-call-id=") == 2


async def test_unknown_call_is_a_page_not_json(web: httpx.AsyncClient) -> None:
    page = await web.get("/calls/nope")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html") and "There is no call with this id" in page.text
    assert (await web.get("/calls/nope/parts/timeline")).status_code == 404


async def test_static_assets_are_served_locally(web: httpx.AsyncClient) -> None:
    page = (await web.get("/")).text
    assert "//" not in " ".join(re.findall(r'(?:src|href)="([^"]+)"', page)).replace("data:,", "")
    for path in ("/static/htmx.min.js", "/static/start.js", "/static/call.js", "/static/common.js"):
        response = await web.get(path)
        assert response.status_code == 200 and "javascript" in response.headers["content-type"]
    assert (await web.get("/static/app.css")).headers["content-type"].startswith("text/css")
    for name in ("start", "call", "common"):
        # Our scripts put data in the page with textContent only (htmx swaps the server's escaped HTML).
        script = (await web.get(f"/static/{name}.js")).text
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", script), name


async def test_setup_panel_names_missing_settings_never_values(client_for: Any, tmp_path: Path) -> None:
    secret = "sk-very-secret-value-123"
    web = await client_for(settings_for(None, tmp_path, elevenlabs_api_key=secret, workers=False))
    page = await web.get("/")
    missing = re.findall(r'data-setting="([A-Z_]+)"', page.text)
    assert missing == ["ELEVENLABS_AGENT_ID", "ELEVENLABS_AGENT_PHONE_NUMBER_ID"]
    assert "callcheck serve --sandbox" in page.text
    assert "SIMULATED" not in page.text
    doctor = await web.get("/parts/setup")
    assert doctor.status_code == 200 and 'id="doctor"' in doctor.text
    for text in (page.text, doctor.text):
        assert secret not in text


async def test_sandbox_server_says_so_on_every_page(client_for: Any, tmp_path: Path) -> None:
    # settings_for's own `sandbox` argument is an external sandbox; this is `serve --sandbox` (in-process).
    settings = settings_for(None, tmp_path).model_copy(update={"sandbox": True, "sandbox_time_scale": 0.02})
    web = await client_for(settings)
    await web.post("/api/context", json={"description": "A dentist."})
    placed = (await web.post("/api/call", json={"to_number": "+15550100004"})).json()
    await finished(web, placed["id"])
    for path in ("/", "/calls", f"/calls/{placed['id']}", "/calls/missing"):
        assert 'id="sandbox-banner"' in (await web.get(path)).text, path
    assert "Sandbox numbers" in (await web.get("/")).text


def test_timeline_of_a_busy_line_skips_the_conversation() -> None:
    created = "2026-01-01T00:00:00+00:00"
    events = [
        {"kind": "state", "state": "dialing", "at": created},
        {"kind": "state", "state": "ringing", "at": "2026-01-01T00:00:00.500000+00:00"},
        {"kind": "state", "state": "busy", "at": "2026-01-01T00:00:02+00:00"},
    ]
    steps = timeline({"state": "busy", "created_at": created, "events": events, "ended_at": None})
    assert [(s.key, s.status) for s in steps] == [
        ("dialing", "done"),
        ("ringing", "done"),
        ("in_progress", "skipped"),
        ("processing", "skipped"),
        ("busy", "done"),
    ]
    assert steps[-1].offset == "+2.0 s" and steps[-1].tone == "bad"
    live = timeline({"state": "in_progress", "created_at": created, "events": events[:1]})
    assert [s.status for s in live] == ["done", "done", "current", "pending", "pending"]


def test_figures_and_formats() -> None:
    assert clock(None) == "—" and clock(35) == "0:35" and clock(3723) == "1:02:03"
    assert short_seconds(4.25) == "4.2 s" and short_seconds(75) == "1:15"
    journey = {
        "first_response_s": 3.0,
        "turns": 6,
        "caller_turns": 3,
        "business_turns": 3,
        "reached_human": True,
        "transferred": True,
        "keypad": [{"digits": "2", "ok": True}],
        "duration_secs": 31,
        "cost": 310,
        "ended_by": "caller",
    }
    shown = {f.label: (f.value, f.note) for f in figures({"journey": journey})}
    assert shown["Time to first answer"][0] == "3.0 s"
    assert shown["Human reached"] == ("Yes", "after a transfer")
    assert shown["Keypad"][0] == "2" and shown["Duration"][0] == "0:31" and shown["Cost"][0] == "310 credits"
    assert figures({"journey": None}) == []
    # Pauses shown as sent; a failed press and one with no result say so.
    pressed = {**journey, "keypad": [{"digits": "1w2", "ok": True}, {"digits": "3", "ok": False}, {"digits": "4"}]}
    assert {f.label: f.value for f in figures({"journey": pressed})}["Keypad"] == "1w2, 3 (failed), 4 (?)"
    answered = {**journey, "time_to_answer_s": 7.0, "cost_usd": 0.0612}
    values = {f.label: f.value for f in figures({"journey": answered})}
    assert values["Time to answer"] == "7.0 s" and values["Cost"] == "$0.0612 (310 credits)"
    # Mid-call only what is already known: no "Unknown" human, cost or hang-up.
    live = [f.label for f in figures({"state": "in_progress", "journey": journey})]
    assert live == ["Time to first answer", "Turns", "Keypad", "Duration"]
