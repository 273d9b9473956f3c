"""The objects a running callcheck shares: built once in the app's lifespan (or by the CLI), never at import."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from callcheck.config import Settings
from callcheck.doctor import DoctorCache
from callcheck.errors import MissingSettings
from callcheck.notifier import Notifier
from callcheck.store.repo import Store

if TYPE_CHECKING:
    from callcheck.jobs.tracking import Tracker


@dataclass
class Services:
    """Settings, store, HTTP client and workers of one running callcheck."""

    settings: Settings
    store: Store
    http: httpx.AsyncClient
    notifier: Notifier = field(default_factory=Notifier)
    # True when ElevenLabs is callcheck's sandbox: from the start under `serve --sandbox`, else from its first answer.
    simulated: bool = False
    tracker: Tracker | None = None
    # This process's executor id on PostgreSQL (jobs/executors.py); None on SQLite.
    executor_id: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    doctor: DoctorCache = field(default_factory=DoctorCache)  # GET /api/doctor and the setup panel, a minute at most

    def require_call_settings(self) -> None:
        """MissingSettings (names only) when the settings a call needs are absent: checked before anything is stored
        or sent."""
        missing = self.settings.missing_call_settings()
        if missing:
            raise MissingSettings(missing)

    def sandbox_answered(self) -> None:
        """The caller provider saw an answer of callcheck's sandbox: this callcheck is simulated from now on."""
        self.simulated = True
