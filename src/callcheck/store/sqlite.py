"""SQLite on the event loop: the store's statements run on the caller's thread through the synchronous driver.

Why not aiosqlite (SQLAlchemy's async SQLite driver): it runs every statement, BEGIN, COMMIT and rollback in a
thread of its own, each a greenlet switch, a queue hand-off and a wake-up of the event loop. For statements that
take tens of microseconds on a local file that is most of their cost: 36-58% of the GIL's samples while placing
calls (bench/README.md, "Session 12 (lead)"), and 3.7-4.3 ms of CPU for two write transactions and a read against
0.74-0.78 ms run where they are called (bench/sqlite_paths.py; bench/README.md, "Session 13"). So here each
statement runs on the loop's own thread, which it holds for as long as SQLite takes.

What must never happen is the loop waiting for a lock. In WAL mode readers never wait for the writer; writers wait
for each other, so:

- write transactions (`begin()`) take SQLite's write lock first (`BEGIN IMMEDIATE`), one at a time in this process
  (an asyncio lock: the others wait without blocking the loop). Once it is held, no statement of the transaction can
  be refused for a lock. When another *process* holds it (a `callcheck run` beside a server, a CLI command), the
  attempt fails at once (a busy timeout of 0 on the loop) and the wait for the lock moves to a thread, with the
  usual timeout; the loop goes on meanwhile.
- a read refused for a lock (rare in WAL: a database being recovered after a crash, say) is run again in a thread,
  waiting as long as the busy timeout allows.

What the loop does wait for is SQLite's own work: a statement's microseconds, and now and then (every 1,000 pages of
WAL, SQLite's default) the checkpoint a commit runs, which syncs the files: up to about 20 ms here, measured over
20,000 commits of 3 KB on a loaded machine. Reads that scan whole tables take a thread of their own (`long_read`).

The objects here offer what callcheck uses of SQLAlchemy's AsyncEngine and AsyncConnection (`begin`, `connect`,
`dispose`, `dialect`, `sync_engine`; `execute`, `run_sync`), so the store's code is the same on SQLite and on
PostgreSQL (which keeps SQLAlchemy's async engine with psycopg).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

T = TypeVar("T")

# How long a statement that must wait for another process's lock waits (in a thread) before it fails.
BUSY_TIMEOUT_MS = 10_000


def _is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" (SQLITE_BUSY), raw or wrapped by SQLAlchemy."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return isinstance(orig, sqlite3.OperationalError) and getattr(orig, "sqlite_errorcode", None) in (
        sqlite3.SQLITE_BUSY,
        getattr(sqlite3, "SQLITE_BUSY_RECOVERY", -1),
        getattr(sqlite3, "SQLITE_BUSY_SNAPSHOT", -1),
    )


def _patiently(driver: sqlite3.Connection, work: Callable[[], T], timeout_ms: int) -> T:
    """Run `work` (on a thread) with the busy timeout up, so it waits up to `timeout_ms` for another process's lock."""
    driver.execute(f"PRAGMA busy_timeout={max(timeout_ms, 0)}")
    try:
        return work()
    finally:
        driver.execute("PRAGMA busy_timeout=0")


async def _off_the_loop(driver: sqlite3.Connection, work: Callable[[], T], timeout_ms: int | None = None) -> T:
    """Run `work` on a thread, waiting up to `timeout_ms` (BUSY_TIMEOUT_MS by default) for a lock. Cancelled
    meanwhile (once or many times over: a cancel scope cancels again on every turn of the loop), it still waits for
    the thread to be done with the connection before the cancellation goes on: the connection then goes back to the
    pool, and must not go back while a thread still uses it."""
    timeout = BUSY_TIMEOUT_MS if timeout_ms is None else timeout_ms
    future = asyncio.get_running_loop().run_in_executor(None, _patiently, driver, work, timeout)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with suppress(asyncio.CancelledError):
                await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: the cancellation is what goes on
        raise


def _rows_read(result: CursorResult[Any]) -> Result[Any]:
    """The result with its rows already read, as SQLAlchemy's async engine reads them: a result may be used after its
    connection went back to the pool. Statements without rows (UPDATE, DELETE) keep their CursorResult, for
    `rowcount`."""
    return result.freeze()() if result.returns_rows else result


def _driver(sync: Connection) -> sqlite3.Connection:
    return cast(sqlite3.Connection, sync.connection.driver_connection)


class SQLiteConnection:
    """One pooled connection, used like SQLAlchemy's AsyncConnection (`execute`, `run_sync`)."""

    def __init__(self, sync: Connection, *, writing: bool, on_thread: bool = False) -> None:
        self.sync_connection = sync
        self.dialect = sync.dialect
        self._writing = writing  # inside BEGIN IMMEDIATE: the write lock is held, nothing can be refused a lock
        self._on_thread = on_thread  # a long read (`SQLiteEngine.connect(on_thread=True)`)

    async def execute(
        self, statement: Any, parameters: Any = None, *, execution_options: dict[str, Any] | None = None
    ) -> Result[Any]:
        """Run one statement here (on the loop's thread); its result, its rows already read."""
        options = execution_options or {}
        if self._on_thread:
            sync = self.sync_connection

            return await _off_the_loop(
                _driver(sync), lambda: _rows_read(sync.execute(statement, parameters, execution_options=options))
            )
        try:
            result: CursorResult[Any] = self.sync_connection.execute(statement, parameters, execution_options=options)
        except sa.exc.OperationalError as exc:
            if self._writing or not _is_busy(exc):
                raise
            # A read refused a lock: wait for it on a thread, not on the loop.
            sync = self.sync_connection
            result = await _off_the_loop(
                _driver(sync), lambda: sync.execute(statement, parameters, execution_options=options)
            )
        return _rows_read(result)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(the synchronous connection, *args, **kwargs)`, as AsyncConnection.run_sync calls it."""
        return fn(self.sync_connection, *args, **kwargs)


class SQLiteEngine:
    """A synchronous SQLAlchemy engine for a SQLite file, used like an AsyncEngine (see the module's docstring)."""

    def __init__(self, sync_engine: sa.Engine) -> None:
        self.sync_engine = sync_engine
        self.dialect = sync_engine.dialect
        self.url = sync_engine.url
        self._writer = asyncio.Lock()  # write transactions one at a time in this process, waiting off the loop

    @asynccontextmanager
    async def connect(self, *, on_thread: bool = False) -> AsyncIterator[SQLiteConnection]:
        """A connection for reads (what it writes without `begin()` is rolled back when it goes back).

        `on_thread=True` for a read that may scan many rows (whole tables, for /metrics): its statements run on a
        thread, so the loop goes on meanwhile."""
        with self.sync_engine.connect() as sync:
            yield SQLiteConnection(sync, writing=False, on_thread=on_thread)

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[SQLiteConnection]:
        """A write transaction holding SQLite's write lock from its start: committed at the end, rolled back on an
        error. Waiting for the lock (this process's other writers, then another process's) takes BUSY_TIMEOUT_MS at
        most in all, as SQLite's busy timeout alone did: writers queued behind one that waits for another process
        give up together, not one timeout after another."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BUSY_TIMEOUT_MS / 1000
        try:
            async with asyncio.timeout_at(deadline):
                await self._writer.acquire()
        except TimeoutError:
            refused = sqlite3.OperationalError("database is locked")
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, refused) from None
        try:
            with self.sync_engine.connect() as sync:
                driver = _driver(sync)
                transaction = sync.begin()  # SQLAlchemy's side only: pysqlite sends no BEGIN of its own for it
                try:
                    await _begin_immediate(driver, int((deadline - loop.time()) * 1000))
                    try:
                        yield SQLiteConnection(sync, writing=True)
                    except BaseException:
                        transaction.rollback()
                        raise
                    transaction.commit()
                finally:
                    # A COMMIT that failed (a full disk, say) can leave SQLite's transaction open while SQLAlchemy
                    # takes it as over and skips the pool's reset: never hand that connection to the next user.
                    if driver.in_transaction:
                        try:
                            driver.rollback()
                        except sqlite3.Error:
                            sync.invalidate()  # the pool drops it
        finally:
            self._writer.release()

    async def dispose(self) -> None:
        """Close the pooled connections."""
        self.sync_engine.dispose()

    def as_async(self) -> AsyncEngine:
        """This engine where an AsyncEngine is expected (it offers what callcheck uses of one)."""
        return cast(AsyncEngine, self)


async def _begin_immediate(driver: sqlite3.Connection, timeout_ms: int) -> None:
    """Take SQLite's write lock: at once when it is free, else waiting up to `timeout_ms` for it on a thread."""
    try:
        driver.execute("BEGIN IMMEDIATE")
        return
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc) or timeout_ms <= 0:
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc
    try:
        await _off_the_loop(driver, lambda: driver.execute("BEGIN IMMEDIATE"), timeout_ms)
    except sqlite3.OperationalError as exc:
        raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def long_read(engine: AsyncEngine) -> AbstractAsyncContextManager[AsyncConnection]:
    """A connection for a read that may scan many rows: on SQLite its statements run on a thread (the loop goes on
    meanwhile); on PostgreSQL the engine's own connection (the server does the work, the loop only waits)."""
    if isinstance(engine, SQLiteEngine):
        return cast(AbstractAsyncContextManager[AsyncConnection], engine.connect(on_thread=True))
    return engine.connect()
