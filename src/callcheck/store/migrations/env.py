"""Alembic environment: runs migrations on the URL callcheck.store.db passes in."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from callcheck.store.tables import metadata

config = context.config


def _wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def run_migrations_online() -> None:
    """Migrate over a fresh synchronous connection."""
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.pool.NullPool)
    if engine.dialect.name == "sqlite":
        # The journal mode callcheck's own connections use (store/db.py), set before the first DDL: each of the
        # migrations' statements then appends to the WAL instead of creating, syncing and deleting a rollback journal
        # (most of a fresh database's start-up was those syncs). Same durability as every later write: a commit
        # survives kill -9; only a power cut can lose the last ones.
        sa.event.listen(engine, "connect", _wal)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            # SQLite cannot ALTER most things in place; batch mode rebuilds tables instead.
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
