"""Following calls: list, detail, live events (SSE) and the recording."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import FileResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import number_filter
from callcheck.edge.deps import ServicesDep
from callcheck.edge.errors import error_response
from callcheck.errors import InvalidInput, NotFound
from callcheck.jobs.live import LiveMessage, follow_live
from callcheck.presenters.calls import CallDetail, CallPage, call_detail, call_summary, event_view
from callcheck.services import Services
from callcheck.store.repo import CallRow

router = APIRouter(prefix="/api/calls", tags=["calls"])

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


@router.get("", summary="List calls, newest first", response_model=CallPage)
async def list_calls(
    services: ServicesDep,
    status: Annotated[str | None, Query(description="Only calls in this state.")] = None,
    number: Annotated[
        str | None, Query(description="Only calls to this E.164 number (URL-encode the +, or leave it out).")
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CallPage:
    """Calls newest first, with cursor pagination."""
    if status is not None and status not in {s.value for s in CallState}:
        raise InvalidInput(f"Unknown status {status!r}; one of: " + ", ".join(s.value for s in CallState) + ".")
    calls, next_cursor = await services.store.list_calls(
        state=status, number=number_filter(number), cursor=cursor, limit=limit
    )
    return CallPage(calls=[call_summary(c) for c in calls], next_cursor=next_cursor)


@router.get("/{call_id}", summary="Everything about one call", response_model=CallDetail)
async def get_call(call_id: str, services: ServicesDep) -> CallDetail:
    """State, transcript, journey figures, analysis, events and recording link of a call."""
    call = await _call_or_404(services, call_id, with_events=True)
    if services.tracker is not None and not call.state.terminal:
        services.tracker.looked_at(call.id)  # a client following it: its news should reach it soon
    return call_detail(call)


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


def _sse(message: LiveMessage) -> ServerSentEvent:
    """A live message as Server-Sent Events put it: `end` carries the call as GET /api/calls/{id} returns it."""
    if message.event == "end" and message.call is not None:
        return ServerSentEvent(json.dumps(call_detail(message.call).model_dump(mode="json")), event="end")
    data = event_view(message.stored).model_dump(mode="json") if message.stored is not None else message.data
    return ServerSentEvent(json.dumps(data), event=message.event, id=str(message.id))


async def call_stream(
    services: Services,
    call_id: str,
    request: Request,
    *,
    after: int = 0,
    shutdown: anyio.Event | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The call's live messages (jobs/live.py) as Server-Sent Events; when `shutdown` is set the stream ends cleanly,
    unfinished, with a comment: the client reconnects and resumes from its last id."""
    shutdown = shutdown or anyio.Event()
    async for message in follow_live(services, call_id, after=after, shutdown=shutdown, gone=request.is_disconnected):
        yield _sse(message)
        if message.event == "end":
            return
    if shutdown.is_set():
        yield ServerSentEvent(comment="callcheck is shutting down; reconnect to resume", retry=RECONNECT_MS)


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
