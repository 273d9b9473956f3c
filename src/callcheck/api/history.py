"""Following calls: list, detail, live events (SSE) and the recording."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

from callcheck.api.deps import ServicesDep
from callcheck.api.views import call_detail, call_summary, event_view
from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import number_filter
from callcheck.errors import InvalidInput, NotFound
from callcheck.services import Services
from callcheck.store.repo import CallRow

router = APIRouter(prefix="/api/calls", tags=["calls"])

# How often a live stream re-reads the database when nothing woke it (changes from other processes).
STREAM_POLL_S = 1.0


async def _call_or_404(services: Services, call_id: str, *, with_events: bool = False) -> CallRow:
    call = await services.store.get_call(call_id, with_events=with_events)
    if call is None:
        raise NotFound("No call with this id.")
    return call


@router.get("", summary="List calls, newest first")
async def list_calls(
    services: ServicesDep,
    status: Annotated[str | None, Query(description="Only calls in this state.")] = None,
    number: Annotated[
        str | None, Query(description="Only calls to this E.164 number (URL-encode the +, or leave it out).")
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Calls newest first, with cursor pagination."""
    if status is not None and status not in {s.value for s in CallState}:
        raise InvalidInput(f"Unknown status {status!r}; one of: " + ", ".join(s.value for s in CallState) + ".")
    calls, next_cursor = await services.store.list_calls(
        state=status, number=number_filter(number), cursor=cursor, limit=limit
    )
    return {"calls": [call_summary(c) for c in calls], "next_cursor": next_cursor}


@router.get("/{call_id}", summary="Everything about one call")
async def get_call(call_id: str, services: ServicesDep) -> dict[str, Any]:
    """State, transcript, journey figures, analysis, events and recording link of a call."""
    return call_detail(await _call_or_404(services, call_id, with_events=True))


@router.get("/{call_id}/audio", summary="The call's recording (MP3)", response_class=FileResponse)
async def get_audio(call_id: str, services: ServicesDep) -> FileResponse:
    """The MP3 of the call; 404 while there is none."""
    call = await _call_or_404(services, call_id)
    if not call.recording_path or not await asyncio.to_thread(Path(call.recording_path).is_file):
        raise NotFound("This call has no recording (yet).")
    return FileResponse(call.recording_path, media_type="audio/mpeg", filename=f"callcheck-{call.id}.mp3")


async def call_stream(services: Services, call_id: str, request: Request) -> AsyncIterator[ServerSentEvent]:
    """State changes and transcript arrivals of a call as they happen, ending with its final state."""
    last_event = 0
    turns_sent = 0
    recording_sent = False
    while True:
        call = await services.store.get_call(call_id)
        if call is None:
            return
        for event in await services.store.events_after(call_id, last_event):
            last_event = event.id
            if event.kind == "state":
                yield ServerSentEvent(json.dumps(event_view(event)), event="state", id=str(event.id))
        transcript = call.transcript or []
        if len(transcript) > turns_sent:
            yield ServerSentEvent(
                json.dumps({"turns": transcript[turns_sent:], "from": turns_sent}), event="transcript"
            )
            turns_sent = len(transcript)
        if call.recording_path and not recording_sent:
            recording_sent = True
            yield ServerSentEvent(json.dumps({"recording_url": f"/api/calls/{call_id}/audio"}), event="recording")
        if call.state.terminal and (recording_sent or call.ended_at is None or _settled(call)):
            yield ServerSentEvent(json.dumps(call_detail(call)), event="end")
            return
        if await request.is_disconnected():
            return
        await services.notifier.wait(call_id, STREAM_POLL_S)


def _settled(call: CallRow) -> bool:
    """A terminal call whose recording will not come any more (none expected, or a few seconds passed)."""
    if call.state in (CallState.BUSY, CallState.NO_ANSWER, CallState.CANCELLED, CallState.TIMED_OUT):
        return True
    facts = call.facts or {}
    if not facts.get("has_audio"):
        return True
    from callcheck.store.repo import utcnow

    return call.ended_at is not None and (utcnow() - call.ended_at).total_seconds() > 10


@router.get("/{call_id}/events", summary="Live events of a call (Server-Sent Events)")
async def call_events(call_id: str, request: Request, services: ServicesDep) -> EventSourceResponse:
    """`state`, `transcript` and `recording` events as they happen, then `end` with the whole call."""
    await _call_or_404(services, call_id)
    return EventSourceResponse(call_stream(services, call_id, request), ping=15)
