"""A call's live events, for whoever watches it (the API's Server-Sent Events, the call page through them).

What is told: each stored `state`, `transcript` and `recording` event after the point the watcher resumes from, then
`end` once the call is final and its recording is kept or will not come. A watched call is also polled faster by the
tracker while the watcher stays (jobs/tracking.py), so its updates arrive within a couple of seconds even without
webhooks; nobody watching costs nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import anyio

from callcheck.notifier import WATCH_AGAIN_S, WATCH_PREFIX
from callcheck.services import Services
from callcheck.store.repo import CallEvent, CallRow, utcnow

# How long after a call ended its stream still waits for a recording ElevenLabs said it has.
RECORDING_GRACE_S = 10.0


@dataclass
class LiveMessage:
    """One thing to tell a watcher: `event` is state (with the `stored` event), transcript or recording (with `data`),
    each with the stored event's `id`; or end (with the whole `call`)."""

    event: str
    id: int | None = None
    data: dict[str, Any] | None = None
    stored: CallEvent | None = None
    call: CallRow | None = None


def _message(call: CallRow, event: CallEvent, turns_sent: int) -> tuple[LiveMessage | None, int]:
    """The message telling of a stored event (None for kinds that are not told), and the turns sent after it."""
    if event.kind == "state":
        return LiveMessage("state", event.id, stored=event), turns_sent
    if event.kind == "transcript":
        transcript = call.transcript or []
        told = len(transcript) if event.turns is None else event.turns
        start = min(turns_sent, told)
        return LiveMessage("transcript", event.id, {"turns": transcript[start:told], "from": start}), told
    if event.kind == "recording":
        return LiveMessage("recording", event.id, {"recording_url": f"/api/calls/{call.id}/audio"}), turns_sent
    return None, turns_sent


async def turns_before(services: Services, call_id: str, after: int) -> int:
    """How many turns a watcher resuming after event `after` has already been sent."""
    told = [e for e in await services.store.events_after(call_id, 0) if e.kind == "transcript" and e.id <= after]
    return (told[-1].turns or 0) if told else 0


def settled(call: CallRow) -> bool:
    """A final call whose recording will not come any more: none expected, or the grace after its end passed."""
    if not call.state.may_have_recording:
        return True
    if not (call.facts or {}).get("has_audio"):
        return True
    return call.ended_at is not None and (utcnow() - call.ended_at).total_seconds() > RECORDING_GRACE_S


async def _wait_for_news(services: Services, call_id: str, shutdown: anyio.Event) -> None:
    """Until the call's topic is published (in any process on PostgreSQL: notifier.py), the notifier's fallback
    re-read is due, or the server starts shutting down."""
    async with anyio.create_task_group() as group:

        async def on_shutdown() -> None:
            await shutdown.wait()
            group.cancel_scope.cancel()

        group.start_soon(on_shutdown)
        timeout = services.notifier.fallback_s
        if services.tracker is None and services.notifier.listening:
            # A server without workers: the process following the call is told someone watches it, and again
            # before that lapses, so it polls the call often (as a process's own watchers make it).
            services.notifier.publish(WATCH_PREFIX + call_id)
            timeout = min(timeout, WATCH_AGAIN_S)
        await services.notifier.wait(call_id, timeout)
        group.cancel_scope.cancel()


async def follow_live(
    services: Services,
    call_id: str,
    *,
    after: int = 0,
    shutdown: anyio.Event,
    gone: Callable[[], Awaitable[bool]],
) -> AsyncIterator[LiveMessage]:
    """The call's messages as they happen, from event `after` on, ending with `end`; nothing more once `gone()` says
    the watcher left. Stops early, without `end`, when `shutdown` is set: the watcher resumes from its last id."""
    last = after
    turns_sent = await turns_before(services, call_id, after) if after else 0
    async with AsyncExitStack() as stack:
        if services.tracker is not None:
            # Watched: the tracker polls this call faster for as long as the watcher stays.
            stack.enter_context(services.tracker.watching(call_id))
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
            if call.state.terminal and (call.recording_path or call.ended_at is None or settled(call)):
                final = await services.store.get_call(call_id, with_events=True)
                if final is None:
                    return
                if not final.events or final.events[-1].id <= last:
                    yield LiveMessage("end", call=final)
                    return
                continue  # events written since the read above (the recording's, say) are told before `end`
            if await gone():
                return
            await _wait_for_news(services, call_id, shutdown)
