"""Wake-ups for live views: a writer says "call X changed", streams waiting on X wake at once.

In one process the wake-up is an asyncio event. On PostgreSQL every process is bridged (`bridged`): a topic
published in any process is sent with NOTIFY on one channel, and each process LISTENs on it and wakes its own
waiters, so a stream served by one process sees a change written by another within a database round trip. Streams
still re-read the database on a timeout (`Notifier.fallback_s`), short without a bridge (SQLite, where a `callcheck
run` process may write beside a server), long with one (a NOTIFY lost while the listening connection was down).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

log = logging.getLogger("callcheck.notify")

CHANNEL = "callcheck"
LOCAL_FALLBACK_S = 1.0  # the re-read's pace without a bridge
BRIDGED_FALLBACK_S = 5.0  # with one: a safety net only
RECONNECT_S = 1.0  # a lost listening connection is opened again after this
# A topic that says "someone watches call X live": the process following X polls it often (jobs/following.py). A
# server without workers, which follows nothing, says so again at every re-read of its stream.
WATCH_PREFIX = "watch:"
WATCH_AGAIN_S = 2.0


class Notifier:
    """Wake-ups keyed by a topic (a call id, a run id)."""

    def __init__(self) -> None:
        self._events: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._outbox: asyncio.Queue[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listening = False  # True while the bridge's LISTEN connection is up
        # Told of every call watched in another process (the Tracker's looked_at, in a process that follows calls).
        self.on_watched: Callable[[str], None] | None = None

    @property
    def fallback_s(self) -> float:
        """How long a stream waits before it re-reads the database when nothing woke it."""
        return BRIDGED_FALLBACK_S if self.listening else LOCAL_FALLBACK_S

    def publish(self, topic: str) -> None:
        """Wake everything waiting on `topic`, in this process and (bridged) in every other."""
        self.wake(topic)
        outbox, loop = self._outbox, self._loop
        if outbox is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            outbox.put_nowait(topic)
        else:  # a thread of DBOS's: handed to the bridge's loop
            loop.call_soon_threadsafe(outbox.put_nowait, topic)

    def wake(self, topic: str) -> None:
        """Wake what waits on `topic` in this process only."""
        if topic.startswith(WATCH_PREFIX):
            if self.on_watched is not None:
                self.on_watched(topic.removeprefix(WATCH_PREFIX))
            return
        for event in list(self._events.get(topic, ())):
            event.set()

    @contextmanager
    def subscribed(self, topic: str) -> Iterator[asyncio.Event]:
        """While inside, the event is set whenever `topic` is published: subscribe, then read, then wait, and no
        publication between the read and the wait is missed (the caller clears the event before each read)."""
        event = asyncio.Event()
        self._events[topic].add(event)
        try:
            yield event
        finally:
            waiters = self._events.get(topic)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._events[topic]

    async def wait(self, topic: str, timeout: float) -> bool:  # noqa: ASYNC109 - a bounded wait is the point
        """Wait until `topic` is published or `timeout` passes; True when woken."""
        with self.subscribed(topic) as event:
            try:
                async with asyncio.timeout(timeout):
                    await event.wait()
                return True
            except TimeoutError:
                return False


@asynccontextmanager
async def bridged(notifier: Notifier, conninfo: str) -> AsyncIterator[None]:
    """While inside, `notifier` publishes to and hears from every process on this PostgreSQL database."""
    notifier._loop = asyncio.get_running_loop()
    notifier._outbox = asyncio.Queue()
    tasks = [
        asyncio.create_task(_listen(notifier, conninfo), name="callcheck-listen"),
        asyncio.create_task(_send(notifier, conninfo), name="callcheck-notify"),
    ]
    try:
        yield
    finally:
        notifier._outbox = None
        notifier._loop = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        notifier.listening = False


async def _listen(notifier: Notifier, conninfo: str) -> None:
    """LISTEN, and wake this process's waiters for every topic any process publishes; reconnect when cut off."""
    import psycopg

    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                notifier.listening = True
                async for note in conn.notifies():
                    notifier.wake(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("live updates from other processes paused (%s); reconnecting", type(exc).__name__)
        notifier.listening = False
        await asyncio.sleep(RECONNECT_S)


async def _send(notifier: Notifier, conninfo: str) -> None:
    """NOTIFY every topic published here, a batch of distinct topics per round trip."""
    import psycopg

    outbox = notifier._outbox
    assert outbox is not None
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                while True:
                    topics = {await outbox.get()}
                    while not outbox.empty():
                        topics.add(outbox.get_nowait())
                    async with conn.transaction():  # one commit: every NOTIFY of the batch is delivered at once
                        for topic in topics:
                            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, topic))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("live updates to other processes paused (%s); reconnecting", type(exc).__name__)
        await asyncio.sleep(RECONNECT_S)
