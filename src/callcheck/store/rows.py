"""Row types and small helpers shared by the store's modules (calls and runs in repo.py, monitors in monitors.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from callcheck.domain.lifecycle import RunState
from callcheck.domain.storable import unstorable


def storable_key(key: str) -> bool:
    """False for a key no row can have (a NUL from a URL's %00, which PostgreSQL would refuse with an error)."""
    return unstorable(key) is None


def utcnow() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def new_id() -> str:
    """A new opaque id (32 hex characters)."""
    return uuid.uuid4().hex


@dataclass
class RunRow:
    """A stored suite run."""

    id: str
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    state: RunState
    name: str
    source_name: str
    suite_text: str
    only: list[str] | None
    concurrency: int
    rate_per_min: float | None
    last_placed_at: float | None
    simulated: bool
    report: dict[str, Any] | None
    exit_code: int | None
    error: str | None
    owner: str | None = None  # the `callcheck run` process's executor id; None: a server's run
    monitor_id: str | None = None  # the monitor this run ran for (jobs/monitors.py)
    monitor_slot: int | None = None  # the slot of the monitor's schedule (unix seconds)
    token_name: str | None = None  # the API token that started it


def _run(row: sa.Row[Any]) -> RunRow:
    data = dict(row._mapping)
    for key in ("created_at", "updated_at", "finished_at"):
        data[key] = _aware(data[key])
    data["state"] = RunState(data["state"])
    return RunRow(**data)
