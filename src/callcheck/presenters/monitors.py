"""Monitors as the API answers them and the CLI prints them; two runs compared (the API, the CLI, the page)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from callcheck.domain.lifecycle import RunState
from callcheck.domain.trends import compare_reports, trends_of
from callcheck.errors import NotFound
from callcheck.jobs.monitors import get_monitor, monitor_view
from callcheck.presenters.calls import Number
from callcheck.services import Services
from callcheck.store.monitors import DeliveryRow, MonitorRow
from callcheck.store.repo import RunRow

RECENT_RUNS = 20


class AlertChannel(BaseModel):
    kind: str = Field(description="webhook, slack or email.")
    target: str = Field(description="Where alerts go; a URL is cut to its host (it may hold a secret).")


class MonitorView(BaseModel):
    """A monitor: its suite, schedule, state and alerts."""

    name: str
    suite: str = Field(description="The suite's name.")
    schedule: str = Field(description="The schedule in words.")
    every_s: int | None = Field(description="Seconds between runs (an `every` schedule).")
    cron: str | None
    timezone: str | None
    status: str = Field(description="pending, passing or failing.")
    paused: bool
    badge: str = Field(description="What the status badge shows: the status, or paused.")
    consecutive_failures: int
    alert_after: int = Field(description="Failing runs in a row before an alert.")
    alerts: list[AlertChannel]
    calls_per_run: int
    calls_per_day: Number
    concurrency: int
    next_run_at: str | None
    run_requested: bool
    last_run_id: str | None
    skipped_slots: int
    status_changed_at: str | None
    created_at: str | None


class MonitorList(BaseModel):
    monitors: list[MonitorView]


class MonitorRun(BaseModel):
    """A run as a line of a monitor's history."""

    id: str
    state: RunState
    exit_code: int | None = Field(description="0 passed, 1 failed, 2 could not run; null while running.")
    created_at: str
    finished_at: str | None
    slot: int | None = Field(description="The schedule's slot (unix seconds) the run was for.")
    error: str | None


class Delivery(BaseModel):
    """An alert sent (or being sent) for a monitor."""

    id: int
    run_id: str | None
    kind: str
    status: str
    channel: str
    outcome: str = Field(description="pending, delivered or failed.")
    attempts: int
    last_error: str | None
    created_at: str
    delivered_at: str | None


class MonitorDetail(MonitorView):
    """A monitor with its recent runs (oldest first) and alert deliveries."""

    runs: list[MonitorRun]
    deliveries: list[Delivery]


class Deleted(BaseModel):
    deleted: str = Field(description="The name of the monitor removed.")


class AlertTried(BaseModel):
    kind: str
    target: str
    outcome: str
    error: str | None


class AlertTest(BaseModel):
    """How the test message went on each channel."""

    results: list[AlertTried]


class TrendPoint(BaseModel):
    run_id: str
    at: str = Field(description="When the run started.")
    passed: bool | None
    figures: dict[str, Number | None]


class Trends(BaseModel):
    """Per run, oldest first: overall and per scenario."""

    monitor: str
    overall: list[TrendPoint]
    scenarios: dict[str, list[TrendPoint]]


class FigureChange(BaseModel):
    name: str
    label: str
    a: Number | None
    b: Number | None
    delta: Number | None


class ScenarioChange(BaseModel):
    name: Any = Field(description="The scenario's name.")
    a_status: str | None
    b_status: str | None
    change: str = Field(description="flipped, added, removed or same.")
    figures: list[FigureChange]


class Verdicts(BaseModel):
    a: bool | None
    b: bool | None


class ComparedRun(MonitorRun):
    name: str


class Comparison(BaseModel):
    """What changed from run `a` to run `b`."""

    passed: Verdicts
    flipped: list[ScenarioChange]
    added: list[Any]
    removed: list[Any]
    scenarios: list[ScenarioChange]
    figures: list[FigureChange]
    a: ComparedRun
    b: ComparedRun


def run_row(run: RunRow) -> dict[str, Any]:
    """A run as a line of a monitor's history, its report included (what trends are computed from)."""
    return {
        "id": run.id,
        "state": run.state,
        "exit_code": run.exit_code,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "slot": run.monitor_slot,
        "error": run.error,
        "report": run.report,
    }


def monitor_run(run: RunRow) -> MonitorRun:
    """A run as a line of a monitor's history."""
    return MonitorRun(
        id=run.id,
        state=run.state,
        exit_code=run.exit_code,
        created_at=run.created_at.isoformat(),
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
        slot=run.monitor_slot,
        error=run.error,
    )


def monitor_model(monitor: MonitorRow) -> MonitorView:
    """The monitor as the API answers it."""
    return MonitorView.model_validate(monitor_view(monitor))


def delivery(d: DeliveryRow) -> Delivery:
    return Delivery(
        id=d.id,
        run_id=d.run_id,
        kind=d.kind,
        status=d.status,
        channel=d.channel,
        outcome=d.outcome,
        attempts=d.attempts,
        last_error=d.last_error,
        created_at=d.created_at.isoformat(),
        delivered_at=d.delivered_at.isoformat() if d.delivered_at else None,
    )


async def monitor_detail(services: Services, name: str) -> MonitorDetail:
    """A monitor with its recent runs and alert deliveries."""
    monitor = await get_monitor(services.store.monitors, name)
    runs = await services.store.monitors.runs_of(monitor.id, RECENT_RUNS)
    deliveries = await services.store.monitors.deliveries_of(monitor.id, RECENT_RUNS)
    return MonitorDetail(
        **monitor_view(monitor),
        runs=[monitor_run(r) for r in reversed(runs)],
        deliveries=[delivery(d) for d in deliveries],
    )


def trends_of_monitor(monitor: MonitorRow, runs: list[RunRow]) -> Trends:
    """The monitor's figures over `runs` (oldest first)."""
    found = trends_of([run_row(r) for r in runs])
    return Trends(
        monitor=monitor.name,
        overall=[TrendPoint(**p.__dict__) for p in found.overall],
        scenarios={name: [TrendPoint(**p.__dict__) for p in points] for name, points in found.scenarios.items()},
    )


async def comparison(services: Services, a: str, b: str) -> Comparison:
    """Compare two stored runs (NotFound when either is missing)."""
    run_a = await services.store.runs.get_run(a)
    run_b = await services.store.runs.get_run(b)
    for run_id, run in ((a, run_a), (b, run_b)):
        if run is None:
            raise NotFound(f"No run with the id {run_id!r}.")
    assert run_a is not None and run_b is not None
    return Comparison(
        **compare_reports(run_a.report, run_b.report),
        a=ComparedRun(**monitor_run(run_a).model_dump(), name=run_a.name),
        b=ComparedRun(**monitor_run(run_b).model_dump(), name=run_b.name),
    )
