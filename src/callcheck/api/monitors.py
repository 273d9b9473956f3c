"""Monitors over the API: suites on a schedule, their state, trends, alerts; comparing two runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from callcheck.api.schemas import ERRORS, EVERY_OR_CRON, ErrorBody, MonitorBody, MonitorChange, json_body
from callcheck.edge.body import json_object, validated
from callcheck.edge.deps import ServicesDep
from callcheck.errors import InvalidInput, NotFound
from callcheck.jobs.monitors import change_monitor, create_monitor, get_monitor, request_run, test_alert
from callcheck.presenters.monitors import (
    AlertTest,
    Comparison,
    Deleted,
    MonitorDetail,
    MonitorList,
    MonitorView,
    Trends,
    comparison,
    monitor_detail,
    monitor_model,
    trends_of_monitor,
)

router = APIRouter(tags=["monitors"])

CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "The name is taken, or a run of the monitor is still running."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such run."}}
TREND_RUNS = 200


def _suite_text(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value.strip():
        return value
    raise InvalidInput("suite is required: the suite as a JSON object, or its YAML or JSON text.")


@router.post(
    "/api/monitors",
    status_code=201,
    summary="Create a monitor",
    openapi_extra=json_body(MonitorBody),
    response_model=MonitorView,
    responses={**ERRORS, **CONFLICT},
)
async def create(request: Request, services: ServicesDep) -> MonitorView:
    """A suite plus a schedule; a running server runs it. Answers 201 with the monitor."""
    data = await json_object(request)
    unknown = sorted(set(data) - set(MonitorBody.model_fields))
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(unknown)}.")
    body = validated(MonitorBody, data).check("name")
    if body.every is not None and not isinstance(body.every, str | int):
        raise InvalidInput(EVERY_OR_CRON)
    body.check("cron", "timezone", "paused")
    monitor = await create_monitor(
        services.store.monitors,
        _suite_text(body.suite),
        "request body",
        name=body.name,
        every=body.every,
        cron=body.cron,
        timezone=body.timezone,
        alerts=body.alerts,
        after=body.after,
        concurrency=body.concurrency,
        paused=body.paused,
        settings=services.settings,
    )
    return monitor_model(monitor)


@router.get("/api/monitors", summary="List monitors", response_model=MonitorList)
async def list_monitors(services: ServicesDep) -> MonitorList:
    """Every monitor with its schedule and state."""
    return MonitorList(monitors=[monitor_model(m) for m in await services.store.monitors.all()])


@router.get(
    "/api/monitors/{name}",
    summary="A monitor, its recent runs and alerts",
    response_model=MonitorDetail,
    responses=ERRORS,
)
async def get_one(name: str, services: ServicesDep) -> MonitorDetail:
    """The monitor, its newest runs and its alert deliveries (alert URLs are cut to their host)."""
    return await monitor_detail(services, name)


@router.patch(
    "/api/monitors/{name}",
    summary="Change a monitor",
    openapi_extra=json_body(MonitorChange),
    response_model=MonitorView,
    responses={**ERRORS, **CONFLICT},
)
async def patch(name: str, request: Request, services: ServicesDep) -> MonitorView:
    """Change the suite, schedule, alerts, threshold or pause; a running server uses the change at its next slot."""
    body = await json_object(request)
    monitor = await change_monitor(services.store.monitors, name, body, services.settings)
    return monitor_model(monitor)


@router.delete("/api/monitors/{name}", summary="Remove a monitor", response_model=Deleted, responses=ERRORS)
async def delete(name: str, services: ServicesDep) -> Deleted:
    """The monitor stops; its runs stay in the history."""
    if not await services.store.monitors.delete(name):
        raise NotFound(f"No monitor named {name!r}.")
    return Deleted(deleted=name)


@router.post(
    "/api/monitors/{name}/run",
    status_code=202,
    summary="Run a monitor now",
    response_model=MonitorView,
    responses={**ERRORS, **CONFLICT},
)
async def run_now(name: str, services: ServicesDep) -> MonitorView:
    """A running server starts the run on its next tick (409 while a run of the monitor is under way)."""
    return monitor_model(await request_run(services.store.monitors, name))


@router.post("/api/monitors/{name}/test-alert", summary="Send a test alert", response_model=AlertTest, responses=ERRORS)
async def send_test_alert(name: str, services: ServicesDep) -> AlertTest:
    """One test message on each channel of the monitor, and how each went."""
    return AlertTest.model_validate({"results": await test_alert(services, name)})


@router.get(
    "/api/monitors/{name}/trends", summary="A monitor's figures over time", response_model=Trends, responses=ERRORS
)
async def trends(name: str, services: ServicesDep, limit: Annotated[int, Query(ge=1, le=1000)] = TREND_RUNS) -> Trends:
    """Per run, overall and per scenario: pass rate, time to first answer p50/p95, call duration p50, cost."""
    monitor = await get_monitor(services.store.monitors, name)
    return trends_of_monitor(monitor, await services.store.monitors.runs_of(monitor.id, limit))


@router.get(
    "/api/compare",
    summary="What changed between two runs",
    response_model=Comparison,
    responses={**ERRORS, **NOT_FOUND},
)
async def compare(
    services: ServicesDep,
    a: Annotated[str, Query(description="The earlier run's id.")],
    b: Annotated[str, Query(description="The later run's id.")],
) -> Comparison:
    """Scenarios that flipped, appeared or went, and the figures that moved."""
    return await comparison(services, a, b)
