"""Bounded work for every input, and the audit's findings: each protection fails its test without it."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.domain.suite import SuiteError, load_suite
from callcheck.jobs import runs as run_jobs
from callcheck.jobs.applying import recordings_dir, save_recording
from callcheck.jobs.placing import attach_conversation
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.providers.elevenlabs.webhooks import sign
from callcheck.services import Services
from callcheck.store.tables import calls
from tests.conftest import settings_for
from tests.test_webhooks import PATH, SECRET, placed_conversation, signed, transcription_event

PIZZA = "We are Pizza Palace."


def services_of(api: httpx.AsyncClient) -> Services:
    services: Services = api.callcheck_app.state.services  # type: ignore[attr-defined]
    return services


# -- suites -------------------------------------------------------------------------------------------------------

# 9 anchors, each a list of 9 aliases of the one before: 9^9 (387 million) strings once expanded, in 400 bytes.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def test_yaml_aliases_are_refused_before_any_is_expanded() -> None:
    started = time.monotonic()
    with pytest.raises(SuiteError) as caught:
        load_suite(ALIAS_BOMB, "bomb.yaml")
    assert "YAML aliases (*name) are not accepted" in caught.value.message
    assert caught.value.problems[0].line == 2  # the first alias
    assert time.monotonic() - started < 30  # expanded, it would not end at all


def test_a_suite_with_too_many_nodes_is_refused() -> None:
    text = "business: b\nnumber: '+15550100001'\nscenarios: [" + "1," * 50_001 + "1]\n"
    with pytest.raises(SuiteError) as caught:
        load_suite(text, "big.yaml")
    assert "too large (over 50000 YAML nodes)" in caught.value.message


async def test_a_pasted_alias_bomb_is_a_400_and_suites_are_parsed_off_the_event_loop(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path))
    threads: list[bool] = []
    real = load_suite  # what jobs.runs calls, until the test swaps it there

    def watched(text: str, source: str) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return real(text, source)

    monkeypatch.setattr(run_jobs, "load_suite", watched)
    response = await api.post("/runs/start", json={"suite": ALIAS_BOMB})
    assert response.status_code == 400
    assert any("YAML aliases" in p for p in response.json()["problems"])
    assert threads == [False]  # parsed in a worker thread, never on the event loop (the main thread here)


# -- webhooks -----------------------------------------------------------------------------------------------------


class CountedBody:
    """A request body streamed in chunks, counting how many the server pulled."""

    def __init__(self, chunks: int, size: int = 64_000) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b" " * self.size


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(
        settings_for(sandbox, tmp_path, workers=False, elevenlabs_webhook_secret=SECRET)
    )
    return client


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, "Missing signature header."),
        ({"ElevenLabs-Signature": sign(SECRET, b"{}", int(time.time()) - 31 * 60)}, "Timestamp outside the tolerance"),
        ({"ElevenLabs-Signature": "t=1,v1=abc"}, "No signature hash found"),
    ],
)
async def test_unsigned_or_stale_webhooks_are_refused_before_their_body_is_read(
    api: httpx.AsyncClient, headers: dict[str, str], error: str
) -> None:
    body = CountedBody(chunks=100)  # 6.4 MB, streamed
    response = await api.post(PATH, content=body, headers={"content-type": "application/json", **headers})
    assert response.status_code == 401 and response.json()["error"].startswith(error)
    assert body.pulled <= 1


async def test_a_webhook_body_is_capped_while_it_streams(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, elevenlabs_webhook_secret=SECRET))
    body = CountedBody(chunks=1_100)  # 70 MB without a Content-Length, over the 64 MB cap
    response = await api.post(PATH, content=body, headers=signed(b"{}"))
    assert response.status_code == 413 and response.json() == {"error": "Request body is too large."}
    assert body.pulled < 1_100  # stopped at the cap, not read to the end


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"type": "t" * 65, "data": {"conversation_id": "conv_1"}}, "Webhook type is too long (over 64 characters)."),
        (
            {"type": "post_call_transcription", "data": {"conversation_id": "c" * 129}},
            "Webhook data.conversation_id is too long (over 128 characters).",
        ),
    ],
)
async def test_overlong_webhook_fields_are_a_400_not_a_database_error(
    api: httpx.AsyncClient, event: dict[str, Any], error: str
) -> None:
    body = json.dumps(event).encode()
    response = await api.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 400 and response.json() == {"error": error}
    at_the_limit = json.dumps({"type": "t" * 64, "data": {"conversation_id": "c" * 128}}).encode()
    assert (await api.post(PATH, content=at_the_limit, headers=signed(at_the_limit))).status_code == 200


async def test_a_webhook_that_failed_half_way_is_applied_when_sent_again(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    call_id, conversation_id = await placed_conversation(api)
    folder = recordings_dir(services_of(api))
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")  # saving the recording fails: the delivery is not applied
    event = {
        "type": "post_call_audio",
        "data": {"conversation_id": conversation_id, "full_audio": base64.b64encode(b"ID3 mp3").decode()},
    }
    body = json.dumps(event).encode()
    # As a real server answers an unexpected error (a 500), rather than raising it into the test.
    transport = httpx.ASGITransport(app=api.callcheck_app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as server:
        failed = await server.post(PATH, content=body, headers=signed(body))
    assert failed.status_code == 500
    folder.unlink()
    again = await api.post(PATH, content=body, headers=signed(body))
    assert again.json() == {"ok": True, "matched": True, "call_id": call_id}  # not taken for a duplicate
    assert (await api.get(f"/api/calls/{call_id}/audio")).content == b"ID3 mp3"
    duplicate = await api.post(PATH, content=body, headers=signed(body))
    assert duplicate.json() == {"ok": True, "duplicate": True}


async def test_concurrent_recordings_of_one_call_do_not_share_a_temp_file(api: httpx.AsyncClient) -> None:
    call_id, _ = await placed_conversation(api)
    services = services_of(api)
    takes = [bytes([n]) * 3_000_000 for n in range(6)]
    await asyncio.gather(*(save_recording(services, call_id, audio) for audio in takes))
    kept = (await api.get(f"/api/calls/{call_id}/audio")).content
    assert kept in takes
    assert sorted(p.name for p in recordings_dir(services).iterdir()) == [f"{call_id}.mp3"]


# -- the events stream --------------------------------------------------------------------------------------------


async def test_event_ids_beyond_32_bits_are_a_400(api: httpx.AsyncClient) -> None:
    call_id, conversation_id = await placed_conversation(api)
    body = json.dumps(transcription_event(conversation_id)).encode()
    await api.post(PATH, content=body, headers=signed(body))
    too_big = await api.get(f"/api/calls/{call_id}/events", params={"after": 2**31})
    assert too_big.status_code == 400 and "after" in too_big.json()["error"]
    header = await api.get(f"/api/calls/{call_id}/events", headers={"Last-Event-ID": str(2**31)})
    assert header.status_code == 400
    largest = await api.get(f"/api/calls/{call_id}/events", params={"after": 2**31 - 1})
    assert largest.status_code == 200 and "event: end" in largest.text  # the finished call: nothing after, then end


# -- Idempotency-Key after a crash --------------------------------------------------------------------------------


async def test_a_key_replayed_after_the_call_was_found_placed_answers_the_call(api: httpx.AsyncClient) -> None:
    # What a crash between the dial and its answer leaves: a DIALING call with its key and no answer kept; the
    # restart finds it placed upstream and attaches its conversation. The client retries with the same key.
    headers = {"Idempotency-Key": "k2"}
    asked = {"to_number": "+15550100004", "business_description": PIZZA}
    lost = (await api.post("/api/call", json=asked, headers=headers)).json()["id"]
    services = services_of(api)
    async with services.store.engine.begin() as conn:  # what the crash left: dialing, nothing answered or kept
        await conn.execute(
            calls.update()
            .where(calls.c.id == lost)
            .values(state="dialing", upstream_response=None, conversation_id=None, call_sid=None, ended_at=None)
        )
    in_progress = await api.post("/api/call", json=asked, headers=headers)
    assert in_progress.status_code == 409  # not settled yet: honestly in progress
    await attach_conversation(services, lost, "conv_found", "found upstream after an interruption")
    replay = await api.post("/api/call", json=asked, headers=headers)
    assert replay.status_code == 200, replay.text
    body = replay.json()
    assert body["id"] == lost and body["conversation_id"] == "conv_found" and body["message"] == "Call initiated."
    assert body["raw"] == {}  # no answer was kept: nothing is made up


# -- the API's description ---------------------------------------------------------------------------------------


async def test_a_405_says_which_methods_are_allowed(api: httpx.AsyncClient) -> None:
    response = await api.delete("/api/calls")
    assert response.status_code == 405 and response.json() == {"error": "Method not allowed."}
    assert "GET" in response.headers["Allow"]


async def test_the_description_declares_what_the_api_answers(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert "422" in paths["/api/call"]["post"]["responses"]  # a reused Idempotency-Key
    assert {"403", "429"} <= set(paths["/api/call"]["post"]["responses"])
    assert {"403", "429", "502"} <= set(paths["/api/runs"]["post"]["responses"])
    assert "404" in paths["/api/calls/{call_id}"]["get"]["responses"]
    events = paths["/api/calls/{call_id}/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
