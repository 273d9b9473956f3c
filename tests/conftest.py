"""Shared fixtures: a clean environment, temp data directories, the sandbox as a real loopback upstream."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from callcheck.app import create_app
from callcheck.config import Settings
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer, SteppedClock

# Fixtures shared by several test files, registered once here instead of imported (and shadowed) in each.
pytest_plugins = ["tests.fake_openai"]

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# `CALLCHECK_TEST_BACKEND=postgres pytest` runs every test on a fresh PostgreSQL database instead of SQLite.
BACKEND = os.environ.get("CALLCHECK_TEST_BACKEND", "sqlite")


def fresh_postgres_database() -> str:
    """Create an empty database on the local PostgreSQL server; its URL."""
    import uuid

    import psycopg

    name = f"callcheck_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    _created_databases.append(name)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


_created_databases: list[str] = []


def backend_env() -> dict[str, str]:
    """Environment variables that put a `callcheck` subprocess on the test backend."""
    return {"CALLCHECK_DATABASE_URL": fresh_postgres_database()} if BACKEND == "postgres" else {}


# An e2e test starts processes (a server, a `callcheck run`, a browser), often two in a row; each start can take
# over a minute on a loaded machine, so these tests get a longer deadline than pyproject's default.
E2E_TIMEOUT_S = 600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("e2e") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_S))


class _Dropper:
    """Drops the PostgreSQL databases of finished tests in a thread of its own, while the next tests run.

    They used to be dropped all at once at the end of the session: several hundred drops (each ~1 s, far more
    under load: DROP DATABASE waits on a checkpoint) in the teardown of a worker's last test, counted in that
    test's 120 s timeout, which a loaded machine overran. Dropped in a test's own teardown they would count in its
    timeout instead; here they count in none. A database still in use (a connection left open) is not forced
    while tests run: it is left for `pytest_sessionfinish`.
    """

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.left: list[str] = []  # in use when tried: forced at the end
        self.thread: threading.Thread | None = None

    def drop_later(self, names: list[str]) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="test-db-dropper", daemon=True)
            self.thread.start()
        for name in names:
            self.queue.put(name)

    def _run(self) -> None:
        import psycopg

        while (name := self.queue.get()) is not None:
            try:
                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            except psycopg.Error:
                self.left.append(name)

    def finish(self) -> list[str]:
        """Wait for the drops asked for; the databases still to drop."""
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join()
        return self.left


_dropper = _Dropper()


@pytest.fixture(autouse=True)
def drop_this_tests_databases() -> Iterator[None]:
    """The databases this test created are dropped once it is over (its servers are stopped by then); those of a
    module's server, created before, are left to the end of the session."""
    first = len(_created_databases)
    yield
    mine = _created_databases[first:]
    del _created_databases[first:]
    _dropper.drop_later(mine)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the PostgreSQL databases still left: here, outside any test's timeout."""
    left = _dropper.finish() + _created_databases
    if not left:
        return
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        for name in left:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _created_databases.clear()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's ELEVENLABS_*/CALLCHECK_* variables or .env file."""
    for name in list(os.environ):
        if name.startswith(("ELEVENLABS_", "CALLCHECK_")):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A running sandbox (fast simulated time), polled by callcheck (no webhooks)."""
    with SandboxServer(SandboxConfig(time_scale=0.02)) as server:
        yield server


@pytest.fixture
def clock() -> SteppedClock:
    """The clock of `stepped_sandbox`: it stands still until the test moves it."""
    return SteppedClock()


@pytest.fixture
def stepped_sandbox(clock: SteppedClock) -> Iterator[SandboxServer]:
    """A sandbox whose calls move only when the test advances `clock` (simulated seconds), polled by callcheck:
    for tests that must see a call in a given state, which on the real clock only a lucky poll would catch."""
    with SandboxServer(SandboxConfig(time_scale=1.0, clock=clock)) as server:
        yield server


def settings_for(sandbox: SandboxServer | None, tmp_path: Path, **extra: Any) -> Settings:
    """Settings of a callcheck on a fresh SQLite file, talking to `sandbox` when given."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "secret_key": "test-secret-key-0123456789-abcdefghij",
        "poll_initial_s": 0.05,
        "poll_max_s": 0.2,
    }
    if BACKEND == "postgres":
        values["database_url"] = fresh_postgres_database()
    if sandbox is not None:
        values.update(
            elevenlabs_api_key=sandbox.config.api_key,
            elevenlabs_agent_id=sandbox.config.agent_id,
            elevenlabs_agent_phone_number_id=sandbox.config.phone_number_id,
            elevenlabs_api_base=sandbox.url,
        )
    values.update(extra)
    return Settings(**values)


@pytest.fixture
async def client_for(tmp_path: Path) -> AsyncIterator[Any]:
    """Build apps and in-process HTTP clients; every one is shut down at the end of the test."""
    managers: list[LifespanManager] = []
    clients: list[httpx.AsyncClient] = []

    async def build(settings: Settings) -> httpx.AsyncClient:
        app = create_app(settings)
        manager = LifespanManager(app, startup_timeout=60, shutdown_timeout=60)
        await manager.__aenter__()
        managers.append(manager)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver")
        client.callcheck_app = app  # type: ignore[attr-defined]  # for tests that reach the services directly
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.aclose()
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)
