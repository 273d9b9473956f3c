"""The objects a running callcheck shares: built once in the app's lifespan (or by the CLI), never at import."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from callcheck.config import Settings
from callcheck.doctor import DoctorCache
from callcheck.domain.lifecycle import CallState
from callcheck.notifier import Notifier
from callcheck.store.repo import Store

# What a call's placer knows of it: (its deadline as unix time, its run's id, its state once placed).
Placed = tuple[float, str | None, str]


class CallTracker(Protocol):
    """What the rest of callcheck asks of the process's tracker (jobs/tracking.py's `Tracker` is the one): follow a
    call placed here, hear of a state written here, watch a call someone is looking at. A protocol, so that this
    module (below jobs/) need not import jobs/."""

    run_owner: str | None  # the owner written on the runs this process starts (a `callcheck run` process's id)

    def follow_soon(self, call_id: str, placed: Placed | None = None) -> None: ...

    def ended(self, call_id: str, state: CallState, *, recording: bool = True) -> None: ...

    def watching(self, call_id: str) -> AbstractContextManager[None]: ...

    def looked_at(self, call_id: str) -> None: ...

    async def settle(self, call_ids: list[str], most_s: float = ...) -> None: ...


@dataclass
class Services:
    """Settings, store, HTTP client and workers of one running callcheck."""

    settings: Settings
    store: Store
    http: httpx.AsyncClient
    notifier: Notifier = field(default_factory=Notifier)
    # True when ElevenLabs is callcheck's sandbox: from the start under `serve --sandbox`, else from its first answer.
    simulated: bool = False
    tracker: CallTracker | None = None
    # This process's executor id on PostgreSQL (jobs/executors.py); None on SQLite.
    executor_id: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    doctor: DoctorCache = field(default_factory=DoctorCache)  # GET /api/doctor and the setup panel, a minute at most

    def require_call_settings(self) -> None:
        """MissingSettings (names only) when the settings a call needs are absent: checked before anything is stored
        or sent."""
        self.settings.require_call_settings()

    def sandbox_answered(self) -> None:
        """The caller provider saw an answer of callcheck's sandbox: this callcheck is simulated from now on."""
        self.simulated = True
