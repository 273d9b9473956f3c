"""Following calls: list, detail, live events (SSE) and the recording."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, Response
from sse_starlette.sse import EventSourceResponse, ServerSentEvent
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from callcheck.api.deps import ServicesDep
from callcheck.api.errors import error_response
from callcheck.api.views import call_detail, call_summary, event_view
from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import number_filter
from callcheck.errors import InvalidInput, NotFound
from callcheck.services import Services
from callcheck.store.repo import CallEvent, CallRow

router = APIRouter(prefix="/api/calls", tags=["calls"])

# How often a live stream re-reads the database when nothing woke it (changes from other processes).
STREAM_POLL_S = 1.0
# Seconds a stream gets, once the server shuts down, to end its response cleanly (it needs far less): without them
# sse-starlette cancels it mid-response and uvicorn logs "ASGI callable returned without completing response".
SHUTDOWN_GRACE_S = 5.0
# How soon (milliseconds) an EventSource reconnects after a shutdown ended its stream.
RECONNECT_MS = 1000
# Event ids are 32-bit on PostgreSQL (INTEGER): a larger resume point is no id of ours, and compared with the
# column it would break the stream's query (a 400 instead, in the parameter's validation).
MAX_EVENT_ID = 2**31 - 1


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
@router.head("/{call_id}/audio", include_in_schema=False)
async def get_audio(call_id: str, request: Request, services: ServicesDep) -> Response:
    """The MP3 of the call (byte ranges as `Range: bytes=...`); 404 while there is none."""
    call = await _call_or_404(services, call_id)
    found = await asyncio.to_thread(_file_stat, call.recording_path) if call.recording_path else None
    if call.recording_path is None or found is None:
        raise NotFound("This call has no recording (yet).")
    refused = _refused_range(request.headers.get("range"), found.st_size)
    if refused is not None:
        return refused
    return FileResponse(
        call.recording_path, media_type="audio/mpeg", filename=f"callcheck-{call.id}.mp3", stat_result=found
    )


def _file_stat(path: str) -> os.stat_result | None:
    """The stat of a regular file at `path`; None when there is none."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def _refused_range(header: str | None, size: int) -> Response | None:
    """Refuse, in the JSON error shape, a Range header FileResponse would refuse in text/plain: InvalidInput when it
    is malformed, a 416 response when it starts past the end; None when FileResponse can serve it."""
    if header is None:
        return None
    try:
        # Starlette's own parser, so that exactly the ranges FileResponse would refuse are answered here instead.
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise InvalidInput(
            f"Invalid Range header {header!r}: expected bytes=START-END, bytes=START- or bytes=-LENGTH "
            "with START at most END."
        ) from exc
    except RangeNotSatisfiable:
        # No error class of ours means 416 (a range past the end is the one case): answered here, in the same shape.
        response = error_response(f"Range not satisfiable: the recording has {size} bytes.", 416)
        response.headers["Content-Range"] = f"bytes */{size}"
        return response
    return None


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """The event id a stream resumes after: Last-Event-ID (what a reconnecting EventSource sends), else `after`."""
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    value = last_event_id.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10 or int(value) > MAX_EVENT_ID:
        raise InvalidInput("Last-Event-ID must be the id of an event of this stream (a whole number).")
    return int(value)


# The detail of a `transcript` event counts the turns stored with it (jobs/tracking.py writes `counted(n, "turn")`):
# what lets a resumed stream know which turns its client already has.
_TURNS = re.compile(r"(\d+) turns?\b")


def told_turns(event: CallEvent) -> int | None:
    """How many turns the transcript had when this `transcript` event was written; None when its detail does not say."""
    found = _TURNS.match(event.detail or "")
    return int(found.group(1)) if found else None


def _message(call: CallRow, event: CallEvent, turns_sent: int) -> tuple[ServerSentEvent | None, int]:
    """The SSE message telling of a stored event (None for kinds the stream does not tell), and the turns sent."""
    if event.kind == "state":
        return ServerSentEvent(json.dumps(event_view(event)), event="state", id=str(event.id)), turns_sent
    if event.kind == "transcript":
        transcript = call.transcript or []
        told = told_turns(event)
        told = len(transcript) if told is None else told
        start = min(turns_sent, told)
        data = {"turns": transcript[start:told], "from": start}
        return ServerSentEvent(json.dumps(data), event="transcript", id=str(event.id)), told
    if event.kind == "recording":
        data = {"recording_url": f"/api/calls/{call.id}/audio"}
        return ServerSentEvent(json.dumps(data), event="recording", id=str(event.id)), turns_sent
    return None, turns_sent


async def _turns_before(services: Services, call_id: str, after: int) -> int:
    """How many turns a client resuming after event `after` has already been sent."""
    told = [e for e in await services.store.events_after(call_id, 0) if e.kind == "transcript" and e.id <= after]
    return (told_turns(told[-1]) or 0) if told else 0


async def _wait_for_news(services: Services, call_id: str, shutdown: anyio.Event) -> None:
    """Until the call's topic is published, STREAM_POLL_S passes or the server starts shutting down."""
    async with anyio.create_task_group() as group:

        async def on_shutdown() -> None:
            await shutdown.wait()
            group.cancel_scope.cancel()

        group.start_soon(on_shutdown)
        await services.notifier.wait(call_id, STREAM_POLL_S)
        group.cancel_scope.cancel()


async def call_stream(
    services: Services,
    call_id: str,
    request: Request,
    *,
    after: int = 0,
    shutdown: anyio.Event | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """State changes, transcript arrivals and the recording of a call as they happen, then `end` with the call.

    Each message but `end` carries the id of the stored event it tells of, and only events after `after` are told.
    When `shutdown` is set the stream ends cleanly, unfinished: the client reconnects and resumes from its last id.
    """
    last = after
    turns_sent = await _turns_before(services, call_id, after) if after else 0
    shutdown = shutdown or anyio.Event()
    while not shutdown.is_set():
        # Events first, then the call: the call is at least as new as every event told from it.
        events = await services.store.events_after(call_id, last)
        call = await services.store.get_call(call_id)
        if call is None:
            return
        for event in events:
            last = event.id
            message, turns_sent = _message(call, event, turns_sent)
            if message is not None:
                yield message
        if call.state.terminal and (call.recording_path or call.ended_at is None or _settled(call)):
            final = await services.store.get_call(call_id, with_events=True)
            if final is None:
                return
            if not final.events or final.events[-1].id <= last:
                yield ServerSentEvent(json.dumps(call_detail(final)), event="end")
                return
            continue  # events written since the read above (the recording's, say) are told before `end`
        if await request.is_disconnected():
            return
        await _wait_for_news(services, call_id, shutdown)
    yield ServerSentEvent(comment="callcheck is shutting down; reconnect to resume", retry=RECONNECT_MS)


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
async def call_events(
    call_id: str,
    request: Request,
    services: ServicesDep,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Resume after this event id (EventSource sends it).")
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="Resume after this event id, for clients that cannot send headers."),
    ] = None,
) -> EventSourceResponse:
    """`state`, `transcript` and `recording` events as they happen, then `end` with the call as GET /api/calls/{id}
    returns it.

    Every event but `end` has an `id`; a client that reconnects with `Last-Event-ID` (or `?after=`) gets only what
    came after it (the header wins over `after`: a reconnecting EventSource keeps its URL). `transcript` carries the
    new turns and their index `from`. When the server shuts down the stream ends without `end`: reconnect to resume.
    """
    await _call_or_404(services, call_id)
    shutdown = anyio.Event()
    return EventSourceResponse(
        call_stream(services, call_id, request, after=resume_point(last_event_id, after), shutdown=shutdown),
        ping=15,
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
    )
