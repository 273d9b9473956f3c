"""Typed edges: body models, declared answers, run and item moves, and the replay reading a stored error kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from alembic import command

from callcheck.api.schemas import CallBody, CallInitiated, ContextBody
from callcheck.domain.lifecycle import (
    TERMINAL_RUN_STATES,
    CallErrorKind,
    CallState,
    IllegalTransition,
    ItemStatus,
    RunState,
    can_mark_item,
    can_move_run,
    check_run_move,
    item_sources,
    run_sources,
)
from callcheck.edge.body import validated
from callcheck.errors import InvalidInput
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from callcheck.store import db
from tests.conftest import BACKEND, fresh_postgres_database, settings_for

OUTBOUND = "/v1/convai/twilio/outbound-call"
BODY = {"to_number": "+15551234567", "business_description": "A shop.", "scenario": "buy milk"}


def dials(sandbox: SandboxServer) -> int:
    return len(httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": OUTBOUND}).json())


async def test_a_refused_dial_is_stored_with_its_kind_and_frees_its_key(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    refused = {**BODY, "to_number": "+15550100500"}
    first = await api.post("/api/call", json=refused, headers={"Idempotency-Key": "r-1"})
    assert first.status_code == 502 and first.json()["error"].startswith("ElevenLabs API error")
    store = api.callcheck_app.state.services.store
    row = await store.get_call(first.json().get("id") or (await api.get("/api/calls")).json()["calls"][0]["id"])
    assert row.error_kind == CallErrorKind.REFUSED and row.idempotency_key == "r-1"
    again = await api.post("/api/call", json=refused, headers={"Idempotency-Key": "r-1"})
    assert again.status_code == 502 and dials(sandbox) == 2  # nothing was placed: the key was freed, dialed again


async def test_the_replay_reads_the_kind_not_the_words(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    store = api.callcheck_app.state.services.store

    async def stored(key: str, error: str, kind: CallErrorKind | None) -> None:
        call = await store.create_call(
            id=f"call-{key}",
            state=CallState.DIALING.value,
            origin="api",
            to_number=BODY["to_number"],
            business_description=BODY["business_description"],
            scenario=BODY["scenario"],
            prompt="p",
            first_message="f",
            request_payload={},
            idempotency_key=key,
        )
        assert await store.move_call(call.id, CallState.FAILED, error, error=error, error_kind=kind)

    # Words that once meant "refused", stored without that kind (a failure after the dial): replayed, not re-dialed.
    await stored("k-words", "ElevenLabs API error (400): seen in a transcript", None)
    words = await api.post("/api/call", json=BODY, headers={"Idempotency-Key": "k-words"})
    assert words.status_code == 500
    assert words.json() == {"error": "ElevenLabs API error (400): seen in a transcript"}
    # An unreachable kind is a 502 whatever its words.
    await stored("k-kind", "The line dropped.", CallErrorKind.UNREACHABLE)
    kind = await api.post("/api/call", json=BODY, headers={"Idempotency-Key": "k-kind"})
    assert kind.status_code == 502 and kind.json() == {"error": "The line dropped."}
    # A refused kind frees the key whatever its words: this request dials.
    await stored("k-refused", "Refused.", CallErrorKind.REFUSED)
    placed = await api.post("/api/call", json=BODY, headers={"Idempotency-Key": "k-refused"})
    assert placed.status_code == 200 and placed.json()["ok"] is True
    assert dials(sandbox) == 1


async def test_clearing_an_error_clears_its_kind(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    store = api.callcheck_app.state.services.store
    placed = (await api.post("/api/call", json=BODY)).json()
    await store.update_call(placed["id"], error="Could not reach ElevenLabs: timed out", error_kind="unreachable")
    assert (await store.get_call(placed["id"])).error_kind == CallErrorKind.UNREACHABLE
    await store.update_call(placed["id"], error="The same words, kept by a later step.")
    assert (await store.get_call(placed["id"])).error_kind == CallErrorKind.UNREACHABLE
    await store.update_call(placed["id"], error=None)
    row = await store.get_call(placed["id"])
    assert row.error is None and row.error_kind is None


def test_the_migration_gives_stored_errors_the_kind_their_words_said(tmp_path: Path) -> None:
    url = fresh_postgres_database() if BACKEND == "postgres" else f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(db.alembic_config(url), "0007")
    engine = sa.create_engine(db.sync_url(url))
    columns = (
        "id, created_at, updated_at, state, simulated, origin, to_number, business_description, scenario, "
        "prompt, first_message, request_payload, error"
    )
    try:
        with engine.begin() as conn:
            for call_id, error in (
                ("a", "ElevenLabs API error (429): busy"),
                ("b", "Could not reach ElevenLabs: timed out"),
                ("c", "The conversation failed upstream."),
                ("d", None),
            ):
                conn.execute(
                    sa.text(
                        f"INSERT INTO calls ({columns}) VALUES (:id, :now, :now, 'failed', false, 'api', "
                        "'+15551234567', 'd', 's', 'p', 'f', '{}', :error)"
                    ),
                    {"id": call_id, "now": "2026-12-01 00:00:00+00:00", "error": error},
                )
        command.upgrade(db.alembic_config(url), "head")
        with engine.connect() as conn:
            kinds: dict[str, str | None] = dict(
                conn.execute(sa.text("SELECT id, error_kind FROM calls ORDER BY id")).all()
            )
    finally:
        engine.dispose()
    assert kinds == {"a": "refused", "b": "unreachable", "c": None, "d": None}


def test_run_and_item_moves_are_one_table() -> None:
    assert can_move_run(RunState.RUNNING, RunState.CANCELLING)
    assert not can_move_run(RunState.CANCELLING, RunState.RUNNING)
    assert all(not can_move_run(done, other) for done in TERMINAL_RUN_STATES for other in RunState)
    assert run_sources(RunState.CANCELLING) == [RunState.RUNNING]
    with pytest.raises(IllegalTransition, match="a run cannot move from completed to running"):
        check_run_move(RunState.COMPLETED, RunState.RUNNING)
    assert item_sources(ItemStatus.SKIPPED) == [ItemStatus.PENDING]
    assert not can_mark_item(ItemStatus.PLACED, ItemStatus.SKIPPED)
    # Stored values are unchanged: the enums are the strings the database has always held.
    assert [s.value for s in RunState] == ["running", "cancelling", "completed", "cancelled", "failed"]
    assert [s.value for s in ItemStatus] == ["pending", "placed", "skipped"]


async def test_the_store_writes_only_allowed_moves(client_for: Any, tmp_path: Path) -> None:
    api = await client_for(settings_for(None, tmp_path, workers=False))
    runs = api.callcheck_app.state.services.store.runs
    run = await runs.create_run(
        [("a", "goal", 1), ("b", "goal", 1)], name="n", source_name="s", suite_text="x", concurrency=1
    )
    assert run.state is RunState.RUNNING
    first, _second = await runs.items(run.id)
    assert first.status is ItemStatus.PENDING
    await runs.mark_items([first.id], ItemStatus.SKIPPED)
    await runs.mark_items([first.id], ItemStatus.PLACED)  # a skipped call is never placed after
    assert [i.status for i in await runs.items(run.id)] == [ItemStatus.SKIPPED, ItemStatus.PENDING]
    assert await runs.request_cancel(run.id)
    assert await runs.update_run(run.id, state=RunState.CANCELLED, exit_code=2)
    # A finished run stays finished (a second finisher writes nothing), other fields still change.
    assert not await runs.update_run(run.id, state=RunState.COMPLETED, exit_code=0)
    assert await runs.update_run(run.id, error="a note")
    stored = await runs.get_run(run.id)
    assert stored.state is RunState.CANCELLED and stored.exit_code == 2 and stored.error == "a note"
    assert not await runs.request_cancel(run.id)


def test_a_body_model_keeps_each_fields_type_error_for_the_route_to_raise_in_its_turn() -> None:
    body = validated(CallBody, {"to_number": 15551234567, "scenario": ["x"], "business_description": "A shop."})
    assert body.business_description == "A shop." and body.to_number is None and body.scenario is None
    assert body.check("business_description") is body
    with pytest.raises(InvalidInput, match=r"^Field 'to_number' must be a string\.$"):
        body.check("business_description", "to_number", "scenario")
    with pytest.raises(InvalidInput, match=r"^Field 'scenario' must be a string\.$"):
        body.check("scenario")
    # Strict: a number is never taken for text; unknown fields are ignored, as they always were.
    context = validated(ContextBody, {"description": "x", "unknown": 1})
    assert context.check("description", "scenario").description == "x"


async def test_the_routes_answer_their_declared_models(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    spec = (await api.get("/openapi.json")).json()
    ok = spec["paths"]["/api/call"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/CallInitiated"}
    saved = spec["paths"]["/api/context"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert saved == {"$ref": "#/components/schemas/ContextSaved"}
    # Every request body's schema stands on its own (no $ref to a $defs it does not carry).
    assert "$defs" not in str(spec["paths"]["/api/tokens"])
    placed = await api.post("/api/call", json={**BODY, "unknown": {"ignored": True}})
    assert placed.status_code == 200
    answer = placed.json()
    assert CallInitiated.model_validate(answer).id == answer["id"]
    assert list(answer) == [
        "ok", "status", "message", "to_number", "scenario", "call_sid", "conversation_id", "raw", "id"
    ]  # fmt: skip
    saved_body = await api.post("/api/context", json={"description": "A shop.", "scenario": " buy milk "})
    assert saved_body.json() == {"ok": True, "scenario": "buy milk"}


async def test_a_token_body_is_read_after_the_admin_check(client_for: Any, tmp_path: Path) -> None:
    api = await client_for(settings_for(None, tmp_path, workers=False))
    refused = await api.post("/api/tokens", content=b"{not json", headers={"content-type": "application/json"})
    assert refused.status_code == 403 and "admin token" in refused.json()["error"]
