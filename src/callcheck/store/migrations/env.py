"""Alembic environment: runs migrations on the URL callcheck.store.db passes in."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from callcheck.store.tables import metadata

config = context.config


def run_migrations_online() -> None:
    """Migrate over a fresh synchronous connection."""
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "", poolclass=sa.pool.NullPool)
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
