"""callcheck's SQLite engine (store/sqlite.py): statements run on the event loop's thread, and the loop never waits
for a lock. Another process holding SQLite's write lock (a real one: a Python process with a connection of its own)
makes a write transaction wait for it on a thread while the loop goes on; reads go on beside it; errors roll back;
rows outlive their connection."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

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
def database(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "engine.db"
    yield path


async def _table(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    finally:
        await engine.dispose()


async def _ticking(ticks: list[int]) -> None:
    while True:
        ticks.append(1)
        await asyncio.sleep(0.01)


async def test_a_write_waits_for_another_process_off_the_loop(database: Path) -> None:
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url)
    holder = await asyncio.to_thread(Holder, database)
    try:

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))

        writer = asyncio.create_task(write())
        # While the other process holds the lock, the writer waits and the loop goes on (a writer waiting on the
        # loop's thread would have failed by now: its busy timeout there is 0): reads too, at once.
        for _ in range(20):
            await asyncio.sleep(0.01)
        assert not writer.done()
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 0  # its row not committed
        await asyncio.to_thread(holder.release)
        await asyncio.wait_for(writer, 30)
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT x FROM t ORDER BY x"))).scalars().all() == [1, 100]
    finally:
        await asyncio.to_thread(holder.close)
        await engine.dispose()


async def test_a_write_that_waits_too_long_fails_and_the_loop_never_stalls(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "BUSY_TIMEOUT_MS", 300)
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url)
    holder = await asyncio.to_thread(Holder, database)
    ticks: list[int] = []
    ticker = asyncio.create_task(_ticking(ticks))
    try:
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert len(ticks) > 1  # the loop ran while the write waited
    finally:
        ticker.cancel()
        await asyncio.to_thread(holder.close)
    try:
        async with engine.begin() as conn:  # the lock is free again: the same pool writes at once
            await conn.execute(sa.text("INSERT INTO t VALUES (2)"))
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT x FROM t"))).scalars().all() == [2]
    finally:
        await engine.dispose()


async def test_a_write_cancelled_while_waiting_leaves_its_connection_clean(database: Path) -> None:
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url, pool_size=1, overflow=0)  # one connection: the next user gets the same one
    holder = await asyncio.to_thread(Holder, database)
    try:

        async def write() -> None:
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))

        writer = asyncio.create_task(write())
        while engine.sync_engine.pool.checkedout() == 0:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # until the writer has its connection and waits for the lock on it
        await asyncio.sleep(0.05)
        assert not writer.done()
        writer.cancel()
        release = asyncio.create_task(asyncio.to_thread(holder.release))
        with pytest.raises(asyncio.CancelledError):
            await writer
        await release
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (3)"))
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT x FROM t ORDER BY x"))).scalars().all() == [3, 100]
    finally:
        await asyncio.to_thread(holder.close)
        await engine.dispose()


async def test_an_error_rolls_the_transaction_back(database: Path) -> None:
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url)
    try:
        with pytest.raises(sa.exc.IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
                await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await engine.dispose()


async def test_rows_outlive_their_connection_and_updates_count_rows(database: Path) -> None:
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url, pool_size=1, overflow=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1), (2), (3)"))
            updated = await conn.execute(sa.text("UPDATE t SET x = x + 10 WHERE x > 1"))
        assert updated.rowcount == 2
        async with engine.connect() as conn:
            result = await conn.execute(sa.text("SELECT x FROM t ORDER BY x"))
        async with engine.begin() as conn:  # the connection is reused (and written with) before the rows are read
            await conn.execute(sa.text("DELETE FROM t"))
        assert result.scalars().all() == [1, 12, 13]
    finally:
        await engine.dispose()


async def test_a_connection_returned_in_a_transaction_is_rolled_back(database: Path) -> None:
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url, pool_size=1, overflow=0)
    try:

        def write_behind_sqlalchemys_back(sync: sa.Connection) -> None:
            # Straight on the driver's connection: only the pool's reset can end the transaction SQLite opened.
            sync.connection.dbapi_connection.cursor().execute("INSERT INTO t VALUES (1)")  # type: ignore[union-attr]

        async with engine.connect() as conn:
            await conn.run_sync(write_behind_sqlalchemys_back)
        async with engine.connect() as conn:  # the same pooled connection: it would see its own uncommitted row
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await engine.dispose()


async def test_a_long_read_runs_on_a_thread_and_the_rest_on_the_loop(database: Path) -> None:
    url = f"sqlite:///{database}"
    await _table(url)
    engine = create_engine(url)
    threads: list[int] = []

    def seen(*_: object) -> None:
        threads.append(threading.get_ident())

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1), (2)"))
        async with long_read(engine) as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 2
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT max(x) FROM t"))).scalar() == 2
        loop = threading.get_ident()
        assert [thread == loop for thread in threads] == [True, False, True]
    finally:
        await engine.dispose()
