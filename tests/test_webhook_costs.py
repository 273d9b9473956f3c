"""What a post-call webhook costs, and what it must still guarantee (issue 13, figure 4): the delivery is kept in the
write that ends its call (marked seen exactly when applied), and a final record saying "no audio" spares the call's
workflow its recording step. On the test backend (SQLite by default, PostgreSQL with CALLCHECK_TEST_BACKEND=postgres).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from callcheck.domain.lifecycle import CallState
from callcheck.jobs.applying import apply_conversation
from callcheck.jobs.following import NO_RECORDING, Follower, ended_state
from callcheck.jobs.placing import CallRequest, record_call
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from callcheck.providers.elevenlabs.snapshot import snapshot_of
from callcheck.providers.elevenlabs.webhooks import sign
from callcheck.store.repo import AlreadyKept, KeptWebhook, Store
from callcheck.store.tables import call_events, webhook_events
from tests.conftest import settings_for

SECRET = "whsec-costs-0123456789abcdef"
PATH = "/api/webhooks/elevenlabs"


def transcription(conversation_id: str, **data: Any) -> bytes:
    event = {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "agent_sandbox",
            "conversation_id": conversation_id,
            "status": "done",
            "transcript": [{"role": "agent", "message": "Hi, I'd like a pizza.", "time_in_call_secs": 0}],
            "metadata": {"start_time_unix_secs": 1700000000, "call_duration_secs": 9},
            "analysis": {"call_successful": "success", "transcript_summary": "Ordered."},
            **data,
        },
    }
    return json.dumps(event).encode()


def headers(body: bytes) -> dict[str, str]:
    return {"ElevenLabs-Signature": sign(SECRET, body), "content-type": "application/json"}


# -- the provider says "no recording" only when its final record says so explicitly ------------------------------


@pytest.mark.parametrize(
    ("status", "audio", "ruled_out"),
    [
        ("done", {"has_audio": False}, True),
        ("done", {"has_audio": True}, False),
        ("done", {}, False),  # a payload without the field proves nothing
        ("in-progress", {"has_audio": False}, False),  # a record that may still change
        ("failed", {"has_audio": False}, True),
    ],
)
def test_no_recording_only_from_an_explicit_false_in_a_final_record(
    status: str, audio: dict[str, Any], ruled_out: bool
) -> None:
    snapshot = snapshot_of({"conversation_id": "conv_1", "status": status, "transcript": [], **audio})
    assert snapshot.no_recording is ruled_out


# -- the wait's result ---------------------------------------------------------------------------------------------


async def test_the_wait_result_says_when_no_recording_is_to_be_looked_for() -> None:
    follower = Follower(None, refresh=None, poll=None, found=None)  # type: ignore[arg-type]
    for recording in (True, False):
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        follower._waiting["call_1"] = future
        follower.ended("call_1", CallState.COMPLETED, recording=recording)
        assert ended_state(future.result()) == (CallState.COMPLETED, recording)
    # A call found final by a read (no final record told): a recording is looked for; the deadline reached is no
    # state at all.
    assert ended_state("failed") == (CallState.FAILED, True)
    assert ended_state("completed" + NO_RECORDING) == (CallState.COMPLETED, False)
    assert ended_state("") == (None, True)


# -- the delivery kept in the write that ends its call -------------------------------------------------------------


async def ringing_call(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> tuple[Store, str]:
    """A store (of an app without workers) and a RINGING call in it."""
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    services = api.callcheck_app.state.services
    request = CallRequest(to_number="+15550100001", description="d", scenario="s")
    call = await record_call(services, request, CallState.DIALING)
    assert await services.store.move_call(call.id, CallState.RINGING, conversation_id="conv_k")
    return services.store, call.id


async def test_a_delivery_is_kept_by_the_write_that_ends_its_call(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    store, call_id = await ringing_call(client_for, sandbox, tmp_path)
    kept = KeptWebhook("a" * 64, "post_call_transcription", "conv_k", {"type": "x"}, call_id)
    assert await store.move_call(call_id, CallState.COMPLETED, "done", webhook=kept)
    assert kept.kept
    async with store.engine.connect() as conn:
        query = sa.select(webhook_events.c.call_id).where(webhook_events.c.digest == "a" * 64)
        rows = (await conn.execute(query)).all()
    assert [r.call_id for r in rows] == [call_id]


async def test_a_delivery_kept_meanwhile_writes_nothing(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    store, call_id = await ringing_call(client_for, sandbox, tmp_path)
    # The same delivery, kept by a concurrent request first.
    assert await store.record_webhook("b" * 64, "post_call_transcription", "conv_k", {"type": "x"}, call_id)
    events_before = len((await store.get_call(call_id, with_events=True)).events)  # type: ignore[union-attr]
    kept = KeptWebhook("b" * 64, "post_call_transcription", "conv_k", {"type": "x"}, call_id)
    with pytest.raises(AlreadyKept):
        await store.move_call(call_id, CallState.COMPLETED, "done", webhook=kept)
    assert not kept.kept
    call = await store.get_call(call_id, with_events=True)
    assert call is not None and call.state == CallState.RINGING and call.ended_at is None
    assert len(call.events) == events_before
    async with store.engine.connect() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(call_events))).scalar()
    assert count == events_before
    # Without a delivery to keep, the same move goes through.
    assert await store.move_call(call_id, CallState.COMPLETED, "done")


async def test_a_delivery_and_its_call_are_read_in_one_statement(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    store, call_id = await ringing_call(client_for, sandbox, tmp_path)
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    sa.event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        seen, call = await store.webhook_and_call("c" * 64, "conv_k")
        assert len(statements) == 1
        assert not seen and call is not None and call.id == call_id and call.state == CallState.RINGING
        assert call.conversation_id == "conv_k" and call.created_at.tzinfo is not None
        assert await store.webhook_and_call("c" * 64, "conv_unknown") == (False, None)
        assert await store.webhook_and_call("c" * 64, None) == (False, None)
        # Once kept, the delivery is a duplicate whatever its conversation: its call is not read.
        assert await store.record_webhook("c" * 64, "post_call_transcription", "conv_k", {"type": "x"}, call_id)
        assert await store.webhook_and_call("c" * 64, "conv_k") == (True, None)
        assert await store.webhook_and_call("c" * 64, "conv_unknown") == (True, None)
        assert await store.webhook_and_call("c" * 64, None) == (True, None)
        assert await store.webhook_and_call("d" * 64, "conv_k") == (False, call)  # another delivery: the call
    finally:
        sa.event.remove(store.engine.sync_engine, "before_cursor_execute", count)


def test_no_route_runs_a_dependency_in_a_worker_thread() -> None:
    # FastAPI runs a plain `def` dependency in a worker thread: a thread hop on every request naming it (the
    # services, on nearly every route, the webhook's included).
    from fastapi.routing import APIRoute

    from callcheck.api import calls, doctor, history, metrics, monitors, runs, tokens, webhooks
    from callcheck.web import login, pages
    from callcheck.web import monitors as monitor_pages
    from callcheck.web import runs as run_pages

    def calls_of(dependant: Any) -> list[Any]:
        return [dependant.call, *(c for d in dependant.dependencies for c in calls_of(d))]

    modules: list[Any] = [calls, doctor, history, metrics, monitors, runs, tokens, webhooks]
    modules += [login, pages, monitor_pages, run_pages]
    routes = [r for m in modules for r in m.router.routes if isinstance(r, APIRoute)]
    assert any(r.path == PATH for r in routes)
    threaded = {
        f"{r.path}: {getattr(call, '__name__', call)}"
        for r in routes
        for call in calls_of(r.dependant)[1:]  # the endpoint itself aside
        if call is not None and not inspect.iscoroutinefunction(call) and not inspect.isclass(call)
    }
    assert not threaded


async def test_the_waits_one_read_tells_state_and_kept_webhooks(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # What a call's wait reads first, in one statement: its state, and whether a webhook that beat the dial's answer
    # is kept for its conversation (only then are they read and applied).
    store, call_id = await ringing_call(client_for, sandbox, tmp_path)
    assert await store.waiting_call("no-such-call") is None
    waiting = await store.waiting_call(call_id)
    assert waiting is not None and waiting.state == CallState.RINGING and waiting.conversation_id == "conv_k"
    assert not waiting.has_kept_webhooks
    # Kept for another conversation: not this call's.
    assert await store.record_webhook("c" * 64, "post_call_transcription", "conv_other", {"type": "x"}, None)
    assert not (await store.waiting_call(call_id)).has_kept_webhooks  # type: ignore[union-attr]
    assert await store.record_webhook("d" * 64, "post_call_transcription", "conv_k", {"type": "x"}, None)
    assert (await store.waiting_call(call_id)).has_kept_webhooks  # type: ignore[union-attr]
    await store.match_webhooks("conv_k", call_id)  # applied: no longer kept unmatched
    assert not (await store.waiting_call(call_id)).has_kept_webhooks  # type: ignore[union-attr]
    assert await store.move_call(call_id, CallState.COMPLETED, "done")
    assert (await store.waiting_call(call_id)).state == CallState.COMPLETED  # type: ignore[union-attr]


def turns(count: int) -> list[dict[str, Any]]:
    return [
        {"role": "agent" if i % 2 == 0 else "user", "message": f"turn {i}", "time_in_call_secs": i}
        for i in range(count)
    ]


async def test_a_stale_record_of_a_call_in_progress_does_not_replace_its_end(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # A watched call's poll reads the conversation in progress; meanwhile the post-call webhook ends the call with
    # the whole transcript; then the poll applies what it read. The end's record must stay.
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    services = api.callcheck_app.state.services
    request = CallRequest(to_number="+15550100001", description="d", scenario="s")
    call = await record_call(services, request, CallState.DIALING)
    assert await services.store.move_call(call.id, CallState.RINGING, conversation_id="conv_s")
    read_by_the_poll = await services.store.get_call(call.id)
    assert read_by_the_poll is not None
    base = {"conversation_id": "conv_s", "metadata": {"start_time_unix_secs": 1700000000}}
    in_progress = snapshot_of({**base, "status": "in-progress", "transcript": turns(1)})
    final = snapshot_of({**base, "status": "done", "transcript": turns(4), "analysis": {"call_successful": "success"}})
    ended = await apply_conversation(services, read_by_the_poll, final, webhook=None)
    assert ended.terminal
    assert await apply_conversation(services, read_by_the_poll, in_progress) == ended
    stored = await services.store.get_call(call.id, with_events=True)
    assert stored is not None and stored.state == ended
    assert [t["text"] for t in stored.transcript or []] == [f"turn {i}" for i in range(4)]
    assert [e.detail for e in stored.events if e.kind == "transcript"] == ["4 turns"]
    # A final record still completes a call already final (one whose webhook left the transcript out).
    again = snapshot_of({**base, "status": "done", "transcript": turns(6), "analysis": {"call_successful": "success"}})
    assert await apply_conversation(services, stored, again) == ended
    completed = await services.store.get_call(call.id)
    assert completed is not None and len(completed.transcript or []) == 6


# -- the workflow after a final record without audio ----------------------------------------------------------------


def conversation_reads(sandbox: SandboxServer, conversation_id: str) -> list[str]:
    """The sandbox's requests reading this conversation or its audio, by path."""
    requests = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    return [r["path"] for r in requests if r["method"] == "GET" and conversation_id in r["path"]]


@pytest.mark.parametrize(("audio", "read_again"), [({"has_audio": False}, False), ({}, True)])
async def test_a_final_record_without_audio_is_not_read_again(
    client_for: Any, tmp_path: Path, audio: dict[str, Any], read_again: bool
) -> None:
    # Calls that ring for a long while: nothing but the webhook ends them, and the poller has nothing to fetch.
    with SandboxServer(SandboxConfig(time_scale=50)) as slow:
        api = await client_for(settings_for(slow, tmp_path, elevenlabs_webhook_secret=SECRET))
        services = api.callcheck_app.state.services
        response = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "Pizza."})
        call_id, conversation_id = response.json()["id"], response.json()["conversation_id"]
        body = transcription(conversation_id, **audio)
        # The call's workflow waits for its end (it starts just after the answer): the webhook wakes it there.
        for _ in range(400):
            if call_id in services.tracker.follower.waiting_ids():
                break
            await asyncio.sleep(0.05)
        assert call_id in services.tracker.follower.waiting_ids()
        before = conversation_reads(slow, conversation_id)
        answer = await api.post(PATH, content=body, headers=headers(body))
        assert answer.json() == {"ok": True, "matched": True, "call_id": call_id}
        await services.tracker.settle([call_id], most_s=20)  # the call's workflow has returned
        after = conversation_reads(slow, conversation_id)[len(before) :]
        # With has_audio false in the final record, nothing is asked again; without the field, the workflow reads
        # the conversation to know whether there is a recording (what this test would see if the skip were lost).
        assert bool(after) is read_again, after
        assert not [p for p in after if p.endswith("/audio")]
        call = (await api.get(f"/api/calls/{call_id}")).json()
        assert call["state"] == "completed" and call["analysis"]["summary"] == "Ordered."
