"""The start-up's "is the database current?" check, read without Alembic, agrees with Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from callcheck.store import db
from tests.conftest import BACKEND, fresh_postgres_database


def _url(tmp_path: Path) -> str:
    return fresh_postgres_database() if BACKEND == "postgres" else f"sqlite:///{tmp_path / 'head.db'}"


def _alembic_current(url: str) -> str | None:
    engine = sa.create_engine(db.sync_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_the_head_read_from_the_migration_files_is_alembics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    alembic_head = ScriptDirectory.from_config(db.alembic_config(url)).get_current_head()
    assert alembic_head is not None
    assert db._head_from_files() == alembic_head
    assert db.head_revision(url) == alembic_head


def test_the_current_revision_is_alembics_before_between_and_after_migrating(tmp_path: Path) -> None:
    url = _url(tmp_path)
    assert db.current_revision(url) is None and _alembic_current(url) is None  # never migrated: no table
    command.upgrade(db.alembic_config(url), "0003")
    assert db.current_revision(url) == _alembic_current(url) == "0003"
    db.upgrade(url)
    head = db.head_revision(url)
    assert db.current_revision(url) == _alembic_current(url) == head


def test_a_start_on_a_current_database_does_not_import_alembic(tmp_path: Path) -> None:
    url = _url(tmp_path)
    db.upgrade(url)
    probe = (
        "import sys; from callcheck.store import db; db.upgrade(sys.argv[1]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    out = subprocess.run([sys.executable, "-c", probe, url], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
