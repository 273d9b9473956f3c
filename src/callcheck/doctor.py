"""`callcheck doctor` and `GET /api/doctor`: check the whole set-up and say, in plain words, how to fix each problem.

The caller provider checks its own set-up (`CallerProvider.doctor_checks`: settings, credentials, agent, number,
webhooks); this module adds the database's and makes the report. Each check is `{name, ok, status, message, fix}`
(`providers.base.Check`). `status` is pass, fail, warn (worth fixing, does not stop calls) or skip (it depends on
an earlier check that failed; `ok` is false so a skip never reads as a pass). Messages name settings, never their
values.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from callcheck.config import Settings
from callcheck.providers.base import Check

if TYPE_CHECKING:
    from callcheck.providers.base import CallerProvider


class DoctorReport(BaseModel):
    """Every check; `ok` only when none failed or was skipped."""

    ok: bool
    checks: list[Check]


def _pass(name: str, message: str) -> Check:
    return Check(name=name, ok=True, status="pass", message=message)


def _fail(name: str, message: str, fix: str | None = None) -> Check:
    return Check(name=name, ok=False, status="fail", message=message, fix=fix)


async def run_doctor(settings: Settings, caller: CallerProvider, *, public_url: str | None = None) -> DoctorReport:
    """The caller provider's checks (read-only requests), then the database's. `public_url` overrides
    CALLCHECK_PUBLIC_URL for the webhook checks."""
    checks = await caller.doctor_checks(public_url if public_url is not None else settings.public_url)
    checks.append(await asyncio.to_thread(_database_check, settings))
    return DoctorReport(ok=all(check.ok for check in checks), checks=checks)


def _database_check(settings: Settings) -> Check:
    """Reachable and migrated (blocking: run in a thread)."""
    from sqlalchemy.engine import make_url

    from callcheck.store import db

    url = settings.resolved_database_url()
    fix = "callcheck migrates its database when it starts: run `callcheck serve` once, then try again."
    try:
        parsed = make_url(url)
        if db.is_sqlite(url) and parsed.database not in (None, "", ":memory:"):
            if not Path(parsed.database).expanduser().exists():
                # A fresh data directory: nothing is wrong, the first `serve` or `run` creates and migrates it.
                return _pass(
                    "database",
                    f"The SQLite database {parsed.database} does not exist yet; callcheck creates it when it starts.",
                )
        current = db.current_revision(url)
        head = db.head_revision(url)
    except Exception as exc:
        text = db.scrubbed(str(exc).splitlines()[0] if str(exc) else "", url)
        return _fail(
            "database",
            f"Could not open the database ({type(exc).__name__}: {text[:300]}).",
            "Check CALLCHECK_DATABASE_URL and that the database server is running.",
        )
    if current is None:
        return _fail("database", "The database has not been migrated.", fix)
    if current != head:
        return _fail("database", f"The database is at schema revision {current}; this callcheck needs {head}.", fix)
    return _pass("database", f"The database is reachable and migrated (revision {head}).")


# The page's setup panel and GET /api/doctor ask the caller provider a few times per run: a server answers from a
# report at most this old, and concurrent askers share one run, so neither a reload loop nor a scripted client
# multiplies requests.
DOCTOR_CACHE_S = 60.0


class DoctorCache:
    """The server's last doctor report, reused for DOCTOR_CACHE_S seconds."""

    def __init__(self, max_age_s: float = DOCTOR_CACHE_S) -> None:
        self.max_age_s = max_age_s
        self._report: DoctorReport | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def report(self, settings: Settings, caller: CallerProvider) -> DoctorReport:
        """A report no older than max_age_s: the kept one, or a fresh run (one at a time)."""
        async with self._lock:
            if self._report is None or time.monotonic() - self._at > self.max_age_s:
                self._report = await run_doctor(settings, caller)
                self._at = time.monotonic()
            return self._report
