"""Every call followed to its end against the sandbox: states, transcript, journey, analysis, recording."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dbos import DBOS, WorkflowHandleAsync

from callcheck.jobs.workflows import workflow_id
from callcheck.providers.elevenlabs.sandbox import SandboxServer, SteppedClock
from tests.conftest import BACKEND, settings_for
from tests.servers import AppServer
from tests.waiting import COMPLETED_CALL_STOPS, wait_for_call

PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."


async def place(api: httpx.AsyncClient, number: str, scenario: str = "order a pizza") -> str:
    response = await api.post(
        "/api/call", json={"to_number": number, "business_description": PIZZA, "scenario": scenario}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    return client


async def test_completed_call_is_followed_to_its_end(api: httpx.AsyncClient) -> None:
    call_id = await place(api, "+15550100001")
    call = await wait_for_call(api, call_id, recording=True)
    assert call["state"] == "completed"
    # Placed through a separately started sandbox (a configured upstream, not `serve --sandbox`): its answers carry
    # x-callcheck-sandbox, so the call is still simulated.
    assert call["simulated"] is True
    states = [e["state"] for e in call["events"] if e["kind"] == "state"]
    assert states[0] == "dialing" and states[1] == "ringing" and states[-1] == "completed"
    assert states == sorted(states, key=["dialing", "ringing", "in_progress", "processing", "completed"].index)
    transcript = call["transcript"]
    assert transcript[0] == {
        "speaker": "caller",
        "text": "Hi, I'm calling because I'd like to order a pizza.",
        "time_in_call_secs": transcript[0]["time_in_call_secs"],
        "tool_calls": [],
        "silence": False,
    }
    assert any(t["speaker"] == "business" for t in transcript)
    assert call["analysis"]["call_successful"] == "success"
    assert call["analysis"]["summary"]
    journey = call["journey"]
    assert journey["turns"] == sum(1 for t in transcript if t["text"])
    assert journey["first_response_s"] is not None and journey["first_response_s"] >= 0
    assert journey["reached_human"] is False
    assert journey["ended_by"] == "caller"
    assert call["metadata"]["duration_secs"] > 0
    audio = await api.get(call["recording_url"])
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/mpeg"
    assert audio.content[:3] == b"ID3" or audio.content[:2] == b"\xff\xfb"


async def test_on_sqlite_dboss_own_file_is_in_wal_mode_and_not_pinged(api: httpx.AsyncClient, tmp_path: Path) -> None:
    # Each recorded step is then one append to the WAL, not a rollback journal created, synced and deleted.
    system_file = tmp_path / "data" / "callcheck-dbos.sqlite"
    if BACKEND == "postgres":
        assert not system_file.exists()  # DBOS keeps its tables in the PostgreSQL database
        return
    connection = sqlite3.connect(system_file)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()
    # Nor does DBOS ping a file before each of its transactions (a statement more per step, for nothing).
    from dbos._dbos import _get_dbos_instance

    engine = _get_dbos_instance()._sys_db.engine
    assert engine.pool._pre_ping is False
    # And its commits are synced as callcheck's own are (NORMAL, 1), not on every commit (FULL, 2).
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1


async def test_a_call_placed_by_a_request_is_followed_without_a_placing_step(api: httpx.AsyncClient) -> None:
    # The request that placed it hands its workflow the deadline, and the wait for the end is not a recorded step:
    # the workflow's only recorded step is the recording, and the call is still followed to its end.
    call_id = await place(api, "+15550100001")
    call = await wait_for_call(api, call_id, recording=True)
    assert call["state"] == "completed" and call["recording_url"]
    handle: WorkflowHandleAsync[str] = await DBOS.retrieve_workflow_async(workflow_id(call_id))
    assert await handle.get_result() == "completed"
    steps = [s["function_name"] for s in await DBOS.list_workflow_steps_async(workflow_id(call_id), load_output=False)]
    assert steps == ["callcheck.recording"], steps


@pytest.mark.parametrize(
    ("number", "state", "check"),
    [
        ("+15550100002", "completed", lambda c: c["analysis"]["call_successful"] == "failure"),
        (
            "+15550100003",
            "completed",
            lambda c: c["journey"]["reached_human"] is True and c["journey"]["transferred"] is True,
        ),
        (
            "+15550100004",
            "busy",
            lambda c: c["transcript"] == [] and c["recording_url"] is None and c["journey"]["reached_human"] is False,
        ),
        (
            "+15550100005",
            "no_answer",
            lambda c: c["transcript"] == [] and c["recording_url"] is None and c["journey"]["transferred"] is False,
        ),
        # The caller's voicemail_detection tool hung up: the caller ended the call.
        (
            "+15550100006",
            "completed",
            lambda c: c["journey"]["voicemail"] is True and c["journey"]["ended_by"] == "caller",
        ),
        (
            "+15550100007",
            "completed",
            lambda c: [(k["digits"], k["ok"]) for k in c["journey"]["keypad"]] == [("2", True)],
        ),
        ("+15550100008", "completed", lambda c: c["analysis"]["call_successful"] == "failure"),
        ("+15550110005", "completed", lambda c: c["analysis"]["call_successful"] == "success"),
    ],
)
async def test_every_magic_number_ends_in_the_right_state(
    api: httpx.AsyncClient, number: str, state: str, check: Any
) -> None:
    call = await wait_for_call(api, await place(api, number))
    assert call["state"] == state, call["events"]
    assert check(call), call


async def test_failed_placement_is_stored_as_failed(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/call", json={"to_number": "+15550100500", "business_description": PIZZA})
    assert response.status_code == 502
    listed = (await api.get("/api/calls")).json()["calls"]
    assert listed[0]["state"] == "failed"
    call = (await api.get(f"/api/calls/{listed[0]['id']}")).json()
    assert call["error"] == response.json()["error"]


async def test_list_filters_and_paginates_newest_first(api: httpx.AsyncClient) -> None:
    ids = [await place(api, "+15550100004"), await place(api, "+15550100001"), await place(api, "+15550100004")]
    for call_id in ids:
        await wait_for_call(api, call_id)
    everything = (await api.get("/api/calls")).json()
    assert [c["id"] for c in everything["calls"]] == ids[::-1]
    busy = (await api.get("/api/calls", params={"status": "busy"})).json()
    assert [c["id"] for c in busy["calls"]] == [ids[2], ids[0]]
    by_number = (await api.get("/api/calls", params={"number": "+15550100001"})).json()
    assert [c["id"] for c in by_number["calls"]] == [ids[1]]
    page1 = (await api.get("/api/calls", params={"limit": 2})).json()
    page2 = (await api.get("/api/calls", params={"limit": 2, "cursor": page1["next_cursor"]})).json()
    assert [c["id"] for c in page1["calls"] + page2["calls"]] == ids[::-1]
    assert page2["next_cursor"] is None
    bad = await api.get("/api/calls", params={"status": "nope"})
    assert bad.status_code == 400 and "Unknown status" in bad.json()["error"]
    bad_cursor = await api.get("/api/calls", params={"cursor": "!!!"})
    assert bad_cursor.status_code == 400 and bad_cursor.json() == {"error": "Invalid cursor."}


async def test_unknown_call_and_missing_audio_are_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/calls/nope")).status_code == 404
    assert (await api.get("/api/calls/nope")).json() == {"error": "No call with this id."}
    call_id = await place(api, "+15550100004")
    await wait_for_call(api, call_id)
    audio = await api.get(f"/api/calls/{call_id}/audio")
    assert audio.status_code == 404 and audio.json()["error"].startswith("This call has no recording")


async def test_events_stream_shows_transitions_live(
    stepped_sandbox: SandboxServer, clock: SteppedClock, tmp_path: Path
) -> None:
    # The call moves on only when the stream has told the step before: every state and every piece of the
    # transcript is seen live, before the call ends, however slow the machine (a call on the real clock may be
    # polled once in progress, or never, and skip states). Over real HTTP: the in-process transport would hand
    # over the response only once it is complete.
    with AppServer(settings_for(stepped_sandbox, tmp_path)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as api:
            events = await follow_live(api, await place(api, "+15550100001"), clock)
    kinds = [k for k, _ in events]
    states = [d["state"] for k, d in events if k == "state"]
    assert states == ["dialing", "ringing", "in_progress", "processing", "completed"]
    assert kinds[-1] == "end" and events[-1][1]["state"] == "completed"
    # The transcript arrived in pieces while the call was in progress, not only at the end.
    transcript_events = [d for k, d in events if k == "transcript"]
    assert [(d["from"], len(d["turns"])) for d in transcript_events] == [(0, 1), (1, 2), (3, 3)]
    assert [t for d in transcript_events for t in d["turns"]] == events[-1][1]["transcript"]


async def follow_live(api: httpx.AsyncClient, call_id: str, clock: SteppedClock) -> list[tuple[str, Any]]:
    """The events stream of a completed call, the clock moved to each next stop once the stream told the last."""
    events: list[tuple[str, Any]] = []
    async with api.stream("GET", f"/api/calls/{call_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = sse_messages(response.aiter_lines())

        async def read_until(done: Any) -> None:
            async with asyncio.timeout(30):
                async for kind, data in messages:
                    events.append((kind, data))
                    if done():
                        return
            raise AssertionError(f"the stream ended early: {events}")

        def told(state: str, turns: int) -> Any:
            def done() -> bool:
                states = [d["state"] for k, d in events if k == "state"]
                pieces = [d for k, d in events if k == "transcript"]
                return bool(states) and states[-1] == state and sum(len(d["turns"]) for d in pieces) == turns

            return done

        await read_until(told("ringing", 0))
        elapsed = 0.0
        for at, state, turns in COMPLETED_CALL_STOPS:
            clock.advance(at - elapsed)
            elapsed = at
            await read_until(told(state, turns))
        clock.advance(30.0 - elapsed)
        await read_until(lambda: events[-1][0] == "end")
    return events


async def sse_messages(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) of each SSE message with data, as the lines arrive."""
    kind = "message"
    async for line in lines:
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            yield kind, json.loads(line.split(":", 1)[1])
        elif line == "":
            kind = "message"


async def test_timed_out_call(client_for: Any, stepped_sandbox: SandboxServer, tmp_path: Path) -> None:
    # The sandbox's clock never moves: the line rings for ever (on the real clock it would give up after its
    # ringing timeout, which a slow poll can see before the cap), and only the cap ends the call.
    api = await client_for(settings_for(stepped_sandbox, tmp_path, call_timeout_s=0.5))
    call = await wait_for_call(api, await place(api, "+15550100001"))
    assert call["state"] == "timed_out"
    assert call["events"][-1]["detail"].startswith("not finished after")
