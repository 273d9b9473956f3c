"""Live updates across processes: a topic published in one process wakes the waiters of another (PostgreSQL's
LISTEN/NOTIFY), and a call watched through one is made known to the others; without a bridge (SQLite) streams
re-read the database every second as before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from callcheck.notifier import BRIDGED_FALLBACK_S, LOCAL_FALLBACK_S, WATCH_PREFIX, Notifier
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import fresh_postgres_database, settings_for


async def _listening(notifier: Notifier) -> None:
    for _ in range(1200):
        if notifier.listening:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the bridge never listened")


async def test_a_topic_published_in_one_process_wakes_a_waiter_in_another(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path, workers=False, database_url=fresh_postgres_database())
    apis = [await client_for(settings), await client_for(settings.model_copy())]
    first, second = (api.callcheck_app.state.services.notifier for api in apis)  # type: ignore[attr-defined]
    await asyncio.gather(_listening(first), _listening(second))
    assert second.fallback_s == BRIDGED_FALLBACK_S
    watched: list[str] = []
    first.on_watched = watched.append
    # Woken, not timed out: wait() says which (a 60 s wait the publish must cut short).
    waiter = asyncio.create_task(second.wait("call-1", 60))
    await asyncio.sleep(0)  # the waiter is registered before it first yields
    first.publish("call-1")
    assert await waiter is True
    # The other way, and a watch: told to the other process's hook, never taken for a topic.
    waiter = asyncio.create_task(first.wait("call-2", 60))
    await asyncio.sleep(0)  # the waiter is registered before it first yields
    second.publish(WATCH_PREFIX + "call-3")
    second.publish("call-2")
    assert await waiter is True
    assert watched == ["call-3"]


async def test_without_a_bridge_streams_reread_every_second() -> None:
    notifier = Notifier()
    assert notifier.fallback_s == LOCAL_FALLBACK_S and not notifier.listening
    waiter = asyncio.create_task(notifier.wait("call-1", 60))
    await asyncio.sleep(0)
    notifier.publish("call-1")  # in-process: no bridge needed
    assert await waiter is True
    assert await notifier.wait("call-2", 0.01) is False
