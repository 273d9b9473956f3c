"""In-process wake-ups for live views: a writer says "call X changed", SSE streams waiting on X wake at once.

Streams also re-read the database on a short timeout, so changes made by another process (a second server on the
same PostgreSQL) still arrive, only a little later.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Notifier:
    """Wake-ups keyed by a topic (a call id, a run id)."""

    def __init__(self) -> None:
        self._events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)

    def publish(self, topic: str) -> None:
        """Wake everything waiting on `topic`."""
        for event in list(self._events.get(topic, ())):
            event.set()

    async def wait(self, topic: str, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait is the point
        """Wait until `topic` is published or `timeout` passes; True when woken."""
        event = asyncio.Event()
        self._events[topic].add(event)
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._events.get(topic)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._events[topic]
