"""Shared fixtures: a clean environment, temp data directories, the sandbox as a real loopback upstream."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="session", autouse=True)
def drop_test_databases() -> Iterator[None]:
    """Drop the PostgreSQL databases the tests created."""
    yield
    if not _created_databases:
        return
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        for name in _created_databases:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
