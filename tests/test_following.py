"""Following calls costs by change, not by time: one conversations list per sweep for every call, full fetches only
of calls that changed; a watched call is polled on its own; the turn count of a transcript event is data."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from alembic import command

from callcheck.domain.lifecycle import RECORDED_STATES, CallState
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer, delayed_answer_number
from callcheck.store import db
from tests.conftest import settings_for
from tests.test_events_stream import read_stream

PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."
LIST = "/v1/convai/conversations"


async def place(api: httpx.AsyncClient, number: str) -> dict[str, Any]:
    answer = await api.post(
        "/api/call", json={"to_number": number, "business_description": PIZZA, "scenario": "order a pizza"}
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def requests_to(sandbox: SandboxServer, path: str) -> int:
    answer = httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": path})
    answer.raise_for_status()
    return len(answer.json())


async def until(condition: Any, timeout: float = 60) -> None:
    """Wait (checking every 50 ms) until `condition()` is true; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.05)


async def test_calls_that_do_not_change_are_listed_not_fetched(client_for: Any, tmp_path: Path) -> None:
    # Three lines that ring (in real time: a minute before the sandbox gives up on them): nothing about them changes
    # while they are followed.
    with SandboxServer(SandboxConfig(time_scale=1.0)) as sandbox:
        await _listed_not_fetched(client_for, sandbox, tmp_path)


async def _listed_not_fetched(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, poll_initial_s=0.05, poll_max_s=0.05))
    calls = [await place(api, delayed_answer_number(9999)) for _ in range(3)]
    conversations = [f"{LIST}/{c['conversation_id']}" for c in calls]
    lists_before = requests_to(sandbox, LIST)
    # Many sweeps...
    await until(lambda: requests_to(sandbox, LIST) >= lists_before + 10)
    # ...each one list request for all three calls, and no conversation fetched: the list said none had moved.
    assert [requests_to(sandbox, path) for path in conversations] == [0, 0, 0]
    for call in calls:
        assert (await api.get(f"/api/calls/{call['id']}")).json()["state"] == "ringing"


async def test_a_watched_call_is_polled_on_its_own_and_its_stream_ends(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The batched poller sweeps once, then not for an hour: only the watch can bring the call's news.
    api = await client_for(settings_for(sandbox, tmp_path, poll_initial_s=3600, poll_max_s=3600))
    call = await place(api, "+15550100001")
    messages = await read_stream(api, call["id"])
    assert messages[-1].event == "end"
    assert messages[-1].data["state"] == "completed"
    assert [m.data["state"] for m in messages if m.event == "state"][-1] == "completed"


def test_only_calls_that_may_have_been_answered_have_a_recording_looked_for() -> None:
    assert {s for s in CallState if s.may_have_recording} == set(RECORDED_STATES)
    assert RECORDED_STATES == {CallState.COMPLETED, CallState.FAILED, CallState.TIMED_OUT}
    assert not any(s.may_have_recording for s in CallState if not s.terminal)


def test_the_migration_turns_a_counted_detail_into_the_turns_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    config = db.alembic_config(url)
    command.upgrade(config, "0003")
    engine = sa.create_engine(db.sync_url(url))
    now = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO calls (id, created_at, updated_at, state, simulated, origin, to_number, "
                "business_description, scenario, prompt, first_message, request_payload) "
                "VALUES ('c1', :now, :now, 'completed', 0, 'api', '+15550100001', 'b', 's', 'p', 'f', '{}')"
            ),
            {"now": now},
        )
        for kind, detail in (
            ("transcript", "1 turn"),
            ("transcript", "12 turns"),
            ("note", "3 turns"),
            ("state", None),
        ):
            conn.execute(
                sa.text("INSERT INTO call_events (call_id, at, kind, detail) VALUES ('c1', :now, :kind, :detail)"),
                {"now": now, "kind": kind, "detail": detail},
            )
    command.upgrade(config, "head")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kind, turns FROM call_events ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("transcript", 1), ("transcript", 12), ("note", None), ("state", None)]
