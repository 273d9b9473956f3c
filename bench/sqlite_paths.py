"""What a store transaction costs by the path its statements take to SQLite, measured side by side in one process.

    .venv/bin/python bench/sqlite_paths.py [--calls 3000] [--concurrency 50]

Each "call" is what placing one costs the store at its least: a write transaction (INSERT the call with a 2 KB
payload, INSERT its event), a second (UPDATE it, INSERT an event) and a read, `--concurrency` at once, writes one at
a time as the store takes them. Three paths, each twice, interleaved, each on a fresh WAL file (synchronous=NORMAL):

- aiosqlite: SQLAlchemy's async engine, every statement a hop to aiosqlite's thread (callcheck until session 13);
- thread per transaction: the synchronous driver, each transaction one `asyncio.to_thread`;
- on the loop: the synchronous driver on the loop's own thread (store/sqlite.py, callcheck since).

Prints the wall time and the process's CPU per call. The aiosqlite row needs aiosqlite (`pip install aiosqlite`;
callcheck no longer depends on it) and is left out without it. No test asserts any of these times.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

meta = sa.MetaData()
calls = sa.Table(
    "calls",
    meta,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("state", sa.String),
    sa.Column("payload", sa.Text),
)
events = sa.Table(
    "events",
    meta,
    sa.Column("n", sa.Integer, primary_key=True),
    sa.Column("call_id", sa.String),
    sa.Column("state", sa.String),
)
PAYLOAD = "y" * 2000


def pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def record(conn: sa.Connection, call_id: str) -> None:
    conn.execute(calls.insert().values(id=call_id, state="dialing", payload=PAYLOAD))
    conn.execute(events.insert().values(call_id=call_id, state="dialing"))


def answer(conn: sa.Connection, call_id: str) -> None:
    conn.execute(calls.update().where(calls.c.id == call_id).values(state="ringing"))
    conn.execute(events.insert().values(call_id=call_id, state="ringing"))


def read(conn: sa.Connection, call_id: str) -> None:
    conn.execute(sa.select(calls.c.state).where(calls.c.id == call_id)).one()


async def via_aiosqlite(path: Path) -> Callable[[str], Awaitable[None]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}", pool_size=10, max_overflow=5)
    sa.event.listen(engine.sync_engine, "connect", pragmas)
    async with engine.begin() as conn:
        await conn.run_sync(meta.create_all)
    writer = asyncio.Lock()

    async def one(call_id: str) -> None:
        # Each statement awaited, as the store's code does.
        async with writer, engine.begin() as conn:
            await conn.execute(calls.insert().values(id=call_id, state="dialing", payload=PAYLOAD))
            await conn.execute(events.insert().values(call_id=call_id, state="dialing"))
        async with writer, engine.begin() as conn:
            await conn.execute(calls.update().where(calls.c.id == call_id).values(state="ringing"))
            await conn.execute(events.insert().values(call_id=call_id, state="ringing"))
        async with engine.connect() as conn:
            (await conn.execute(sa.select(calls.c.state).where(calls.c.id == call_id))).one()

    return one


def sync_engine(path: Path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=10, max_overflow=5)
    sa.event.listen(engine, "connect", pragmas)
    meta.create_all(engine)
    return engine


async def via_threads(path: Path) -> Callable[[str], Awaitable[None]]:
    engine = sync_engine(path)
    writer = threading.Lock()

    def write(work: Callable[[sa.Connection, str], None], call_id: str) -> None:
        with writer, engine.begin() as conn:
            work(conn, call_id)

    def look(call_id: str) -> None:
        with engine.connect() as conn:
            read(conn, call_id)

    async def one(call_id: str) -> None:
        await asyncio.to_thread(write, record, call_id)
        await asyncio.to_thread(write, answer, call_id)
        await asyncio.to_thread(look, call_id)

    return one


async def on_the_loop(path: Path) -> Callable[[str], Awaitable[None]]:
    engine = sync_engine(path)

    async def one(call_id: str) -> None:
        with engine.begin() as conn:
            record(conn, call_id)
        await asyncio.sleep(0)  # the other requests' turn, as between a call's transactions
        with engine.begin() as conn:
            answer(conn, call_id)
        await asyncio.sleep(0)
        with engine.connect() as conn:
            read(conn, call_id)

    return one


async def measure(
    build: Callable[[Path], Awaitable[Callable[[str], Awaitable[None]]]], n: int, at_once: int
) -> tuple[float, float]:
    one = await build(Path(tempfile.mkdtemp()) / "paths.db")
    limit = asyncio.Semaphore(at_once)

    async def limited(i: int) -> None:
        async with limit:
            await one(f"call-{i}")

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(limited(i) for i in range(n)))
    return (time.perf_counter() - wall) / n * 1000, (time.process_time() - cpu) / n * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    paths: list[tuple[str, Callable[[Path], Awaitable[Callable[[str], Awaitable[None]]]]]] = []
    if importlib.util.find_spec("aiosqlite") is not None:
        paths.append(("aiosqlite", via_aiosqlite))
    paths += [("thread per transaction", via_threads), ("on the loop", on_the_loop)]
    print(f"{args.calls} calls, {args.concurrency} at once; per call:")
    for name, build in paths * 2:
        wall, cpu = asyncio.run(measure(build, args.calls, args.concurrency))
        print(f"  {name:24s} wall {wall:.2f} ms, CPU {cpu:.2f} ms")


if __name__ == "__main__":
    main()
