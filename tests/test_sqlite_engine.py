"""callcheck's SQLite engine (store/sqlite.py): statements run on the event loop's thread, and the loop never waits
for a lock. Another process holding SQLite's write lock (a real one: a Python process with a connection of its own)
makes a write transaction wait for it on a thread while the loop goes on; reads go on beside it; errors roll back;
rows outlive their connection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callcheck.store import sqlite as engine_module
from callcheck.store.db import create_engine
from callcheck.store.sqlite import long_read

HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
connection.execute("INSERT INTO t VALUES (100)")
print("held", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
print("released", flush=True)
"""


class Holder:
    """Another process holding SQLite's write lock on a file until `release()`."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "held"

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "engine.db"


@pytest.fixture
async def engine(database: Path) -> AsyncIterator[AsyncEngine]:
    """callcheck's engine on a file with one table, keeping one connection (the next user gets the same one)."""
    engine = create_engine(f"sqlite:///{database}", pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
        yield engine
    finally:
        await engine.dispose()


async def _ticking(ticks: list[int]) -> None:
    while True:
        ticks.append(1)
        await asyncio.sleep(0.01)


async def write_one(engine: AsyncEngine, x: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO t VALUES (:x)"), {"x": x})


async def values(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text("SELECT x FROM t ORDER BY x"))).scalars())


async def test_a_write_waits_for_another_process_off_the_loop(database: Path, engine: AsyncEngine) -> None:
    holder = await asyncio.to_thread(Holder, database)
    try:
        writer = asyncio.create_task(write_one(engine, 1))
        # While the other process holds the lock, the writer waits and the loop goes on (a writer waiting on the
        # loop's thread would have failed by now: its busy timeout there is 0): reads too, at once.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not writer.done()
        assert await values(engine) == []  # the other process's row is not committed yet
        await asyncio.to_thread(holder.release)
        await asyncio.wait_for(writer, 30)
        assert await values(engine) == [1, 100]
    finally:
        await asyncio.to_thread(holder.close)


async def test_a_write_that_waits_too_long_fails_and_the_loop_never_stalls(
    database: Path, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_MS", 300)
    holder = await asyncio.to_thread(Holder, database)
    ticks: list[int] = []
    ticker = asyncio.create_task(_ticking(ticks))
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            await write_one(engine, 1)
        assert len(ticks) > 1  # the loop ran while the write waited
    finally:
        ticker.cancel()
        await asyncio.to_thread(holder.close)
    await write_one(engine, 2)  # the lock is free again: the same pool writes at once
    assert await values(engine) == [2]


async def test_a_write_cancelled_while_waiting_leaves_its_connection_clean(database: Path, engine: AsyncEngine) -> None:
    holder = await asyncio.to_thread(Holder, database)
    try:
        writer = asyncio.create_task(write_one(engine, 1))
        while engine.sync_engine.pool.checkedout() == 0:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # until the writer has its connection and waits for the lock on it
        await asyncio.sleep(0.05)
        assert not writer.done()
        writer.cancel()
        release = asyncio.create_task(asyncio.to_thread(holder.release))
        with pytest.raises(asyncio.CancelledError):
            await writer
        await release
        await write_one(engine, 3)  # on the same pooled connection, in a transaction of its own
        assert await values(engine) == [3, 100]
    finally:
        await asyncio.to_thread(holder.close)


async def test_an_error_rolls_the_transaction_back(engine: AsyncEngine) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    assert await values(engine) == []


async def test_rows_outlive_their_connection_and_updates_count_rows(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO t VALUES (1), (2), (3)"))
        updated = await conn.execute(sa.text("UPDATE t SET x = x + 10 WHERE x > 1"))
    assert updated.rowcount == 2
    async with engine.connect() as conn:
        result = await conn.execute(sa.text("SELECT x FROM t ORDER BY x"))
    async with engine.begin() as conn:  # the connection is reused (and written with) before the rows are read
        await conn.execute(sa.text("DELETE FROM t"))
    assert result.scalars().all() == [1, 12, 13]


async def test_a_connection_returned_in_a_transaction_is_rolled_back(engine: AsyncEngine) -> None:
    def write_behind_sqlalchemys_back(sync: sa.Connection) -> None:
        # Straight on the driver's connection: only the pool's reset can end the transaction SQLite opened.
        sync.connection.dbapi_connection.cursor().execute("INSERT INTO t VALUES (1)")  # type: ignore[union-attr]

    async with engine.connect() as conn:
        await conn.run_sync(write_behind_sqlalchemys_back)
    assert await values(engine) == []  # the same pooled connection: it would see its own uncommitted row


async def test_a_long_read_runs_on_a_thread_and_the_rest_on_the_loop(engine: AsyncEngine) -> None:
    threads: list[int] = []

    def seen(*_: object) -> None:
        threads.append(threading.get_ident())

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    await write_one(engine, 2)
    async with long_read(engine) as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 1
    assert await values(engine) == [2]
    loop = threading.get_ident()
    assert [thread == loop for thread in threads] == [True, False, True]


async def test_a_checkout_never_waits_for_a_connection(engine: AsyncEngine) -> None:
    # On the loop, a pool out of connections would block the whole process until its timeout: SQLite's pool opens
    # more instead (one kept: the fixture's pool_size=1, and no overflow limit).
    async with engine.connect() as one, engine.connect() as two, engine.connect() as three:
        for conn in (one, two, three):
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
        assert engine.sync_engine.pool.checkedout() == 3  # type: ignore[attr-defined]


async def test_a_write_queued_behind_this_processs_writers_gives_up_within_the_timeout(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The wait for this process's own writers counts towards the busy timeout: writers queued behind one that waits
    # for another process give up together, not one full timeout after another.
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_MS", 300)
    writer_lock = engine._writer  # type: ignore[attr-defined]
    await writer_lock.acquire()  # a writer of this process that does not finish
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            await write_one(engine, 1)
    finally:
        writer_lock.release()
    await write_one(engine, 2)
    assert await values(engine) == [2]


async def test_a_write_cancelled_again_and_again_keeps_its_connection_until_its_thread_is_done(
    database: Path, engine: AsyncEngine
) -> None:
    # A cancel scope cancels again on every turn of the loop: the connection must still not go back to the pool
    # while the thread waiting for the lock holds it (it would then take the lock for an idle pooled connection).
    holder = await asyncio.to_thread(Holder, database)
    pool = engine.sync_engine.pool
    try:
        writer = asyncio.create_task(write_one(engine, 1))
        while pool.checkedout() == 0:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for _ in range(5):
            writer.cancel()
            await asyncio.sleep(0.01)
        assert not writer.done()
        assert pool.checkedout() == 1  # type: ignore[attr-defined]
        await asyncio.to_thread(holder.release)
        with pytest.raises(asyncio.CancelledError):
            await writer
        await write_one(engine, 3)  # the connection is clean: no transaction left open on it
        assert await values(engine) == [3, 100]
    finally:
        await asyncio.to_thread(holder.close)


async def test_a_failed_commit_leaves_no_transaction_on_the_connection(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE p (id INTEGER PRIMARY KEY)"))
        await conn.execute(
            sa.text("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
        )
    with pytest.raises(sa.exc.IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (7)"))
            await conn.execute(sa.text("INSERT INTO c VALUES (1, 99)"))  # checked at COMMIT, which fails
    assert await values(engine) == []  # the same pooled connection would see its own row
    await write_one(engine, 8)
    assert await values(engine) == [8]


class _Cursor:
    def __init__(self, mode: str, seen: list[str]) -> None:
        self.mode, self.seen = mode, seen

    def execute(self, sql: str) -> _Cursor:
        self.seen.append(sql)
        return self

    def fetchone(self) -> tuple[str]:
        return (self.mode,)

    def close(self) -> None:
        pass


class _Connection:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.seen: list[str] = []

    def cursor(self) -> _Cursor:
        return _Cursor(self.mode, self.seen)


def test_without_wal_a_connection_waits_for_locks_rather_than_failing() -> None:
    # Where WAL cannot be had, a COMMIT waits for other processes' readers: the loop then waits too (a warning says
    # so) rather than every such write failing at once.
    from callcheck.store import db

    wal, delete = _Connection("wal"), _Connection("delete")
    db._sqlite_pragmas(wal, None)
    db._sqlite_pragmas(delete, None)
    assert "PRAGMA busy_timeout=0" in wal.seen
    assert f"PRAGMA busy_timeout={engine_module.BUSY_TIMEOUT_MS}" in delete.seen
