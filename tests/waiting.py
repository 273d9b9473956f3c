"""Waiting for a call to reach a state through callcheck's own API, with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from callcheck.providers.elevenlabs.sandbox import SteppedClock

TERMINAL = frozenset({"completed", "failed", "no_answer", "busy", "timed_out", "cancelled"})


def _done(call: dict[str, Any], states: frozenset[str] | set[str], recording: bool) -> bool:
    return call["state"] in states and (not recording or bool(call["recording_url"]))


async def wait_for_call(
    api: httpx.AsyncClient,
    call_id: str,
    states: frozenset[str] | set[str] = TERMINAL,
    *,
    recording: bool = False,
    timeout: float = 30,
) -> dict[str, Any]:
    """GET /api/calls/{id} until its state is one of `states` (and it has a recording, if asked)."""
    deadline = time.monotonic() + timeout
    call: dict[str, Any] = {}
    while time.monotonic() < deadline:
        call = (await api.get(f"/api/calls/{call_id}")).json()
        if _done(call, states, recording):
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} never reached {sorted(states)}: {call.get('state')} {call.get('events')}")


async def wait_until_call(
    api: httpx.AsyncClient, call_id: str, check: Callable[[dict[str, Any]], bool], what: str, *, timeout: float = 30
) -> dict[str, Any]:
    """GET /api/calls/{id} until `check(call)` holds; `what` names the condition in the failure."""
    deadline = time.monotonic() + timeout
    call: dict[str, Any] = {}
    while time.monotonic() < deadline:
        call = (await api.get(f"/api/calls/{call_id}")).json()
        if check(call):
            return call
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} never {what}: {call.get('state')} {call.get('events')}")


# The stops of a completed sandbox call (+15550100001: it rings 3 s, then turns at 0, 4, 9, 14, 19 and 21 s in call,
# hangs up at 22 s, and is analysed 3 s later), in seconds since it was placed, each with the state callcheck must
# show there and how many turns it has by then. Every stop is well inside its state: no rounding decides it.
COMPLETED_CALL_STOPS = [(4.5, "in_progress", 1), (13.5, "in_progress", 3), (26.5, "processing", 6)]


async def step_through_completed_call(api: httpx.AsyncClient, call_id: str, clock: SteppedClock) -> dict[str, Any]:
    """Walk a completed sandbox call on a stepped clock through every state, waiting at each stop until callcheck
    has stored it, so each state and each part of the transcript is seen, however slow the machine; the final call.
    """
    await wait_until_call(api, call_id, lambda c: c["state"] == "ringing", "rang")
    elapsed = 0.0
    for at, state, turns in COMPLETED_CALL_STOPS:
        clock.advance(at - elapsed)
        elapsed = at

        def reached(call: dict[str, Any], state: str = state, turns: int = turns) -> bool:
            return call["state"] == state and len(call["transcript"]) == turns

        await wait_until_call(api, call_id, reached, f"reached {state} with {turns} turns")
    clock.advance(30.0 - elapsed)
    return await wait_for_call(api, call_id, {"completed"}, recording=True)


def wait_for_call_sync(
    base_url: str,
    call_id: str,
    states: frozenset[str] | set[str] = TERMINAL,
    *,
    recording: bool = False,
    timeout: float = 40,
) -> dict[str, Any]:
    """The blocking twin of wait_for_call, for tests that drive a server in another process."""
    deadline = time.monotonic() + timeout
    call: dict[str, Any] = {}
    while time.monotonic() < deadline:
        call = httpx.get(f"{base_url}/api/calls/{call_id}").json()
        if _done(call, states, recording):
            return call
        time.sleep(0.05)
    raise AssertionError(f"call {call_id} never reached {sorted(states)}: {call.get('state')} {call.get('events')}")
