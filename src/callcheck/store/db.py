"""Engines and migrations. SQLite by default (WAL, busy timeout), PostgreSQL through psycopg 3."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from callcheck.errors import ConfigurationError
from callcheck.store.files import private_dir, private_sqlite
from callcheck.store.sqlite import BUSY_TIMEOUT_MS, SQLiteEngine

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("callcheck.store")

MIGRATIONS = Path(__file__).parent / "migrations"


def _urls(url: str) -> tuple[sa.URL, sa.URL]:
    """(async URL, sync URL) for a user-given URL such as sqlite:///x.db or postgresql://u@h/db."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(f"CALLCHECK_DATABASE_URL is not a database URL: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        # No async driver: store/sqlite.py runs the synchronous one on the event loop.
        return parsed.set(drivername="sqlite"), parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg"), parsed.set(drivername="postgresql+psycopg")
    raise ConfigurationError(f"Unsupported database {backend!r}: use sqlite:/// or postgresql://")


def sync_url(url: str) -> str:
    """The URL with a synchronous driver (for Alembic and DBOS)."""
    return _urls(url)[1].render_as_string(hide_password=False)


def shown_url(url: str) -> str:
    """The database URL for a person: without its password or query (which may carry one)."""
    return make_url(url).set(query={}).render_as_string(hide_password=True)


def scrubbed(text: str, url: str) -> str:
    """`text` (a driver's error, say) with the URL's password, wherever it appears, replaced by ***."""
    try:
        password = make_url(url).password
    except (sa.exc.ArgumentError, ValueError):
        return text
    return text.replace(str(password), "***") if password else text


def is_sqlite(url: str) -> bool:
    """True for a SQLite URL."""
    return _urls(url)[1].get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: sa.URL) -> None:
    if url.database and url.database != ":memory:":
        path = Path(url.database).expanduser()
        if not path.parent.exists():
            private_dir(path.parent)  # only a directory callcheck makes: never loosen or tighten someone else's
        private_sqlite(path)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the page, SSE) run beside the one writer.
    mode = str(cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]).lower()
    # In WAL mode NORMAL syncs at checkpoints, not on every commit: a commit survives the process being killed
    # (kill -9), only a power cut can lose the last ones. Each write is then no longer an fsync.
    cursor.execute("PRAGMA synchronous=NORMAL")
    if mode in ("wal", "memory"):
        # Statements run on the event loop's thread (store/sqlite.py), which must never sleep waiting for a lock: a
        # statement refused one fails at once and waits for it on a thread, with store/sqlite.BUSY_TIMEOUT_MS.
        cursor.execute("PRAGMA busy_timeout=0")
    else:
        # No WAL (a file system that cannot share its memory file, say): a COMMIT must wait for another process's
        # readers, which the transaction's own lock does not cover. It waits, on the loop's thread, rather than fail.
        _warn_once(f"the SQLite database is in {mode!r} journal mode, not WAL: writes wait for other processes' reads")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


# DBOS's own SQLite file beside callcheck's (jobs/tracking.py names it: `<database>-dbos.sqlite`).
DBOS_FILE_SUFFIX = "-dbos.sqlite"


def _dbos_file_synced_like_ours(dbapi_connection: Any, _record: Any) -> None:
    """On each new connection of a synchronous engine to DBOS's SQLite file: `synchronous=NORMAL`, as callcheck's
    own connections have it (_sqlite_pragmas). DBOS leaves SQLite's default, FULL, which syncs the file on every
    commit (0.26 ms each here, 0.01 ms with NORMAL); in WAL mode NORMAL keeps every commit across kill -9 and can
    lose the last ones only to a power cut, after which DBOS re-runs the steps whose records were lost (our steps
    are safe to run again)."""
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    row = dbapi_connection.execute("PRAGMA database_list").fetchone()  # (seq, name, file) of "main"
    if row is not None and str(row[2]).endswith(DBOS_FILE_SUFFIX):
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def sync_dbos_file_like_ours() -> None:
    """Apply _dbos_file_synced_like_ours to every synchronous engine made from now on (DBOS makes its own; once per
    process is enough)."""
    if not sa.event.contains(sa.engine.Engine, "connect", _dbos_file_synced_like_ours):
        sa.event.listen(sa.engine.Engine, "connect", _dbos_file_synced_like_ours)


def use_wal(path: Path) -> None:
    """Put a SQLite file (made if missing) in WAL mode, which the file keeps for every later connection (blocking)."""
    import sqlite3

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


# Connections an engine keeps open once opened, and how many more it may open (closed again when returned). With
# SQLAlchemy's default (5 kept, 10 more), concurrent requests kept opening and closing connections, each a
# PostgreSQL backend started (or, then, an aiosqlite thread and its pragmas): about one for every 20 calls placed by 50
# clients at once. The most open at once stays 15, as before (a test run starts many servers on one PostgreSQL).
POOL_SIZE = 10
POOL_OVERFLOW = 5


def create_engine(url: str, *, pool_size: int = POOL_SIZE, overflow: int = POOL_OVERFLOW) -> AsyncEngine:
    """An engine for the URL, keeping `pool_size` connections and opening up to `overflow` more: SQLAlchemy's async
    engine on PostgreSQL; on SQLite one running its statements on the event loop (store/sqlite.py), used alike, with
    no limit to the connections it opens."""
    async_url, sync = _urls(url)
    if sync.get_backend_name() == "sqlite":
        _prepare_sqlite_file(sync)
        if sync.database in (None, "", ":memory:"):
            # One connection, shared (every connection to :memory: is a database of its own).
            pool: dict[str, Any] = {"poolclass": sa.pool.StaticPool, "connect_args": {"check_same_thread": False}}
        else:
            # No limit to the connections opened beyond `pool_size`: a checkout waiting for one would wait on the
            # event loop (store/sqlite.py), the whole process with it. Few are ever out at once: a statement on the
            # loop returns its connection before anything else runs.
            pool = {"pool_size": pool_size, "max_overflow": -1}
        engine = sa.create_engine(sync, **pool)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return SQLiteEngine(engine).as_async()
    # Pinged before each use: a connection the server dropped (a restart) is replaced instead of failing a request.
    return create_async_engine(async_url, pool_pre_ping=True, pool_size=pool_size, max_overflow=overflow)


@asynccontextmanager
async def lease_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """A connection of its own for a process's lease (jobs/executors.py): a heartbeat never waits behind the
    requests and workflows that use up the main pool under load, so a busy process is not taken for dead."""
    engine = create_engine(url, pool_size=1, overflow=0)
    try:
        yield engine
    finally:
        await engine.dispose()


def alembic_config(url: str) -> Config:
    """Alembic configuration for the URL (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; escape it for passwords with %.
    config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


# PostgreSQL advisory lock held while migrating: processes starting together on one database migrate one at a time.
MIGRATION_LOCK = 0x63616C6C  # "call"


def upgrade(url: str) -> None:
    """Migrate the database to the newest schema (blocking; run it in a thread from async code).

    On PostgreSQL several processes may start at once (docs/production.md): an advisory lock lets one migrate while
    the others wait, then find nothing left to do.
    """
    _, sync = _urls(url)
    if sync.get_backend_name() == "sqlite":
        _prepare_sqlite_file(sync)
    if current_revision(url) == head_revision(url):
        return  # already current (`serve` checks before its app's startup does): nothing to run twice
    # Imported only when there is something to migrate: Alembic (and the Mako and Pygments it pulls in) is about a
    # tenth of a second of every start otherwise.
    from alembic import command

    if sync.get_backend_name() == "sqlite":
        command.upgrade(alembic_config(url), "head")
        return
    engine = sa.create_engine(sync, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as lock:
            lock.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(url), "head")
            finally:
                lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database is at, or None when it was never migrated (blocking).

    Read with one query rather than through Alembic's MigrationContext (no Alembic import on a start with nothing
    to migrate); Alembic is asked only when the table holds several rows (it then names the problem).
    """
    engine = sa.create_engine(sync_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(VERSION_TABLE):
                return None
            rows = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
            if len(rows) <= 1:
                return rows[0] if rows else None
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


VERSION_TABLE = "alembic_version"  # Alembic's default; migrations/env.py names no other
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)
_head: str | None = None


def head_revision(url: str) -> str | None:
    """The newest revision this build knows.

    Read from the `revision = ...` and `down_revision = ...` lines of the migration files (the one revision no other
    names as its parent), without importing Alembic; Alembic's own answer when the files are not one plain chain
    (tests/test_migrations_head.py checks both agree)."""
    global _head
    if _head is None:
        _head = _head_from_files() or _alembic_head(url)
    return _head


def _head_from_files() -> str | None:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        values = {match.group(1): match.group(2) for match in _REVISION_LINE.finditer(text)}
        revision, parent = values.get("revision", ""), values.get("down_revision", "")
        if not re.fullmatch(r"[\"'][\w.-]+[\"']", revision) or not re.fullmatch(r"None|[\"'][\w.-]+[\"']", parent):
            return None  # not the plain form (a merge's tuple, say): Alembic decides
        revisions.add(revision.strip("\"'"))
        if parent != "None":
            parents.add(parent.strip("\"'"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def _alembic_head(url: str) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()
