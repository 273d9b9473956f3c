"""Waiting for a call to reach a state through callcheck's own API, with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

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
