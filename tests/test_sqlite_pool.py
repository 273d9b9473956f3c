"""A SQLite connection going back to the pool is rolled back when, and only when, a transaction is open on it
(store/db.py `_rollback_if_open`): a committed write costs no second round trip to aiosqlite's thread, and a
connection left in a transaction never reaches the next user with it. SQLite only: PostgreSQL keeps the pool's own
reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
import sqlalchemy as sa

from callcheck.store.db import create_engine


@pytest.fixture
def rollbacks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per rollback aiosqlite is asked for."""
    seen: list[int] = []
    original = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        seen.append(1)
        await original(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    return seen


async def test_a_committed_write_is_not_rolled_back_on_its_way_back(tmp_path: Path, rollbacks: list[int]) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        rollbacks.clear()
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert rollbacks == []
        async with engine.connect() as conn:
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 1
    finally:
        await engine.dispose()


async def test_a_connection_returned_in_a_transaction_is_rolled_back(tmp_path: Path, rollbacks: list[int]) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))

        def write_behind_sqlalchemys_back(sync: Any) -> None:
            # Straight on the driver's connection: SQLAlchemy begins no transaction of its own, so only the pool's
            # reset can end the one SQLite opened for this INSERT.
            sync.connection.dbapi_connection.cursor().execute("INSERT INTO t VALUES (1)")

        rollbacks.clear()
        async with engine.connect() as conn:
            await conn.run_sync(write_behind_sqlalchemys_back)
        assert rollbacks == [1]
        async with engine.connect() as conn:  # the same pooled connection: it would see its own uncommitted row
            assert (await conn.execute(sa.text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await engine.dispose()
