"""Monitors over the API: suites on a schedule, their state, trends, alerts; comparing two runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from callcheck.api.body import json_object
from callcheck.api.deps import ServicesDep
from callcheck.api.schemas import ERRORS, ErrorBody, json_body
from callcheck.domain.trends import compare_reports, trends_of
from callcheck.errors import InvalidInput, NotFound
from callcheck.jobs.monitors import (
    change_monitor,
    create_monitor,
    get_monitor,
    monitor_view,
    request_run,
    test_alert,
)
from callcheck.services import Services
from callcheck.store.repo import RunRow

router = APIRouter(tags=["monitors"])

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The name is taken, or a run of the monitor is still running."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such run."}}
RECENT_RUNS = 20
TREND_RUNS = 200


def _suite_text(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.strip():
        return value
    raise InvalidInput("suite is required: the suite as a JSON object, or its YAML or JSON text.")


def run_row(run: RunRow) -> dict[str, Any]:
    """A run as a line of a monitor's history."""
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


async def monitor_detail(services: Services, name: str) -> dict[str, Any]:
    """A monitor with its recent runs and alert deliveries."""
    monitor = await get_monitor(services.store.monitors, name)
    runs = await services.store.monitors.runs_of(monitor.id, RECENT_RUNS)
    deliveries = await services.store.monitors.deliveries_of(monitor.id, RECENT_RUNS)
    view = monitor_view(monitor)
    view["runs"] = [{k: v for k, v in run_row(r).items() if k != "report"} for r in reversed(runs)]
    view["deliveries"] = [
        {
            "id": d.id,
            "run_id": d.run_id,
            "kind": d.kind,
            "status": d.status,
            "channel": d.channel,
            "outcome": d.outcome,
            "attempts": d.attempts,
            "last_error": d.last_error,
            "created_at": d.created_at.isoformat(),
            "delivered_at": d.delivered_at.isoformat() if d.delivered_at else None,
        }
        for d in deliveries
    ]
    return view


@router.post(
    "/api/monitors",
    status_code=201,
    summary="Create a monitor",
    openapi_extra=json_body(
        None,
        description='{"suite": {...} or "yaml text", "every": "15m" | "cron": "*/30 8-20 * * 1-5", "timezone", '
        '"name", "alerts": [{"kind": "webhook|slack|email", "target": "..."}], "after": 1, "concurrency": 1, '
        '"paused": false}',
    ),
    responses={**ERRORS, **CONFLICT},
)
async def create(request: Request, services: ServicesDep) -> JSONResponse:
    """A suite plus a schedule; a running server runs it. Answers 201 with the monitor."""
    body = await json_object(request)
    unknown = sorted(
        set(body) - {"suite", "every", "cron", "timezone", "name", "alerts", "after", "concurrency", "paused"}
    )
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(unknown)}.")
    name = body.get("name")
    if name is not None and not isinstance(name, str):
        raise InvalidInput("name must be a string.")
    every, cron, timezone = body.get("every"), body.get("cron"), body.get("timezone")
    if (every is not None and not isinstance(every, str | int)) or (cron is not None and not isinstance(cron, str)):
        raise InvalidInput('every is a duration such as "15m"; cron a five-field expression.')
    if timezone is not None and not isinstance(timezone, str):
        raise InvalidInput("timezone must be an IANA name such as Europe/Paris.")
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        raise InvalidInput("paused must be true or false.")
    monitor = await create_monitor(
        services.store.monitors,
        _suite_text(body.get("suite")),
        "request body",
        name=name,
        every=every,
        cron=cron,
        timezone=timezone,
        alerts=body.get("alerts"),
        after=body.get("after", 1),
        concurrency=body.get("concurrency", 1),
        paused=paused,
        settings=services.settings,
    )
    return JSONResponse(monitor_view(monitor), status_code=201)


@router.get("/api/monitors", summary="List monitors")
async def list_monitors(services: ServicesDep) -> dict[str, Any]:
    """Every monitor with its schedule and state."""
    return {"monitors": [monitor_view(m) for m in await services.store.monitors.all()]}


@router.get("/api/monitors/{name}", summary="A monitor, its recent runs and alerts", responses=ERRORS)
async def get_one(name: str, services: ServicesDep) -> dict[str, Any]:
    """The monitor, its newest runs and its alert deliveries (alert URLs are cut to their host)."""
    return await monitor_detail(services, name)


@router.patch(
    "/api/monitors/{name}",
    summary="Change a monitor",
    openapi_extra=json_body(
        None, description="Any of suite, every, cron, timezone, alerts, after, concurrency, paused, name."
    ),
    responses={**ERRORS, **CONFLICT},
)
async def patch(name: str, request: Request, services: ServicesDep) -> dict[str, Any]:
    """Change the suite, schedule, alerts, threshold or pause; a running server uses the change at its next slot."""
    body = await json_object(request)
    monitor = await change_monitor(services.store.monitors, name, body, services.settings)
    return monitor_view(monitor)


@router.delete("/api/monitors/{name}", summary="Remove a monitor", responses=ERRORS)
async def delete(name: str, services: ServicesDep) -> dict[str, Any]:
    """The monitor stops; its runs stay in the history."""
    if not await services.store.monitors.delete(name):
        raise NotFound(f"No monitor named {name!r}.")
    return {"deleted": name}


@router.post("/api/monitors/{name}/run", status_code=202, summary="Run a monitor now", responses={**ERRORS, **CONFLICT})
async def run_now(name: str, services: ServicesDep) -> dict[str, Any]:
    """A running server starts the run on its next tick (409 while a run of the monitor is under way)."""
    return monitor_view(await request_run(services.store.monitors, name))


@router.post("/api/monitors/{name}/test-alert", summary="Send a test alert", responses=ERRORS)
async def send_test_alert(name: str, services: ServicesDep) -> dict[str, Any]:
    """One test message on each channel of the monitor, and how each went."""
    return {"results": await test_alert(services, name)}


@router.get("/api/monitors/{name}/trends", summary="A monitor's figures over time", responses=ERRORS)
async def trends(
    name: str, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = TREND_RUNS
) -> dict[str, Any]:
    """Per run, overall and per scenario: pass rate, time to first answer p50/p95, call duration p50, cost."""
    monitor = await get_monitor(services.store.monitors, name)
    runs = await services.store.monitors.runs_of(monitor.id, limit)
    found = trends_of([run_row(r) for r in runs])
    return {
        "monitor": monitor.name,
        "overall": [p.__dict__ for p in found.overall],
        "scenarios": {name: [p.__dict__ for p in points] for name, points in found.scenarios.items()},
    }


@router.get("/api/compare", summary="What changed between two runs", responses={**ERRORS, **NOT_FOUND})
async def compare(
    services: ServicesDep,
    a: Annotated[str, Query(description="The earlier run's id.")],
    b: Annotated[str, Query(description="The later run's id.")],
) -> dict[str, Any]:
    """Scenarios that flipped, appeared or went, and the figures that moved."""
    return await comparison(services, a, b)


async def comparison(services: Services, a: str, b: str) -> dict[str, Any]:
    """Compare two stored runs (NotFound when either is missing)."""
    run_a = await services.store.runs.get_run(a)
    run_b = await services.store.runs.get_run(b)
    for run_id, run in ((a, run_a), (b, run_b)):
        if run is None:
            raise NotFound(f"No run with the id {run_id!r}.")
    assert run_a is not None and run_b is not None
    result = compare_reports(run_a.report, run_b.report)
    result["a"] = {k: v for k, v in run_row(run_a).items() if k != "report"} | {"name": run_a.name}
    result["b"] = {k: v for k, v in run_row(run_b).items() if k != "report"} | {"name": run_b.name}
    return result
