"""Suite runs over the API: start one from a suite as JSON, follow it, cancel it."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request

from callcheck.api.schemas import DIALING_ERRORS, ERRORS, ErrorBody, SuiteBody, json_body
from callcheck.domain.pacing import MAX_RATE_PER_MIN, MIN_RATE_PER_MIN
from callcheck.edge.body import json_object
from callcheck.edge.deps import ServicesDep, token_name_of
from callcheck.errors import Conflict, NotFound
from callcheck.jobs.runs import cancel_run, start_run
from callcheck.presenters.runs import RunPage, RunView, run_summary, run_view

router = APIRouter(prefix="/api/runs", tags=["runs"])


@router.post(
    "",
    status_code=202,
    summary="Start a suite run",
    response_model=RunView,
    openapi_extra=json_body(SuiteBody, description="A suite, as in docs/suites.md (the YAML file's content, as JSON)."),
    responses={
        **ERRORS,
        **DIALING_ERRORS,
        500: {"model": ErrorBody, "description": "Missing required environment variables, or the agent is not set up."},
        502: {"model": ErrorBody, "description": "ElevenLabs answered with an error or could not be reached."},
    },
)
async def create_run(
    request: Request,
    services: ServicesDep,
    concurrency: Annotated[int, Query(ge=1, le=50, description="Most calls active at once.")] = 1,
    rate: Annotated[
        float | None,
        Query(
            ge=MIN_RATE_PER_MIN,
            le=MAX_RATE_PER_MIN,
            description=f"Most calls placed per minute ({MIN_RATE_PER_MIN} to {MAX_RATE_PER_MIN}).",
        ),
    ] = None,
    only: Annotated[list[str] | None, Query(description="Run only these scenarios.")] = None,
) -> RunView:
    """The body is a suite (the YAML file's content, as JSON). Answers 202 with the run."""
    suite = await json_object(request)
    # The body as sent, so problems are reported by the lines the client wrote (re-dumped, all would be line 1).
    try:
        text = (await request.body()).decode("utf-8")
    except UnicodeDecodeError:  # JSON in UTF-16/32, which json.loads reads: fall back to a re-dump
        text = json.dumps(suite, ensure_ascii=False)
    run = await start_run(
        services,
        text,
        "request body",
        concurrency=concurrency,
        rate_per_min=rate,
        only=only,
        token_name=token_name_of(request),
    )
    return await run_view(services, run)


@router.get("", summary="List runs, newest first", response_model=RunPage)
async def list_runs(
    services: ServicesDep,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RunPage:
    """Runs without their items, newest first, with cursor pagination."""
    runs, next_cursor = await services.store.runs.list_runs(cursor=cursor, limit=limit)
    return RunPage(runs=[run_summary(r) for r in runs], next_cursor=next_cursor)


@router.get("/{run_id}", summary="A run, its calls and its report", response_model=RunView)
async def get_run(run_id: str, services: ServicesDep) -> RunView:
    """Progress while running; the report once finished."""
    run = await services.store.runs.get_run(run_id)
    if run is None:
        raise NotFound("No run with this id.")
    return await run_view(services, run)


@router.delete("/{run_id}", status_code=202, summary="Cancel a run", response_model=RunView)
async def delete_run(run_id: str, services: ServicesDep) -> RunView:
    """Place no new call; calls in flight are followed to their end and reported."""
    run = await services.store.runs.get_run(run_id)
    if run is None:
        raise NotFound("No run with this id.")
    if not await cancel_run(services, run_id):
        raise Conflict(f"This run is {run.state}; only a running run can be cancelled.")
    fresh = await services.store.runs.get_run(run_id)
    assert fresh is not None
    return await run_view(services, fresh)
