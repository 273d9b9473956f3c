"""Suite runs over the API: start one from a suite as JSON, follow it, cancel it."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from callcheck.api.body import json_object
from callcheck.api.deps import ServicesDep, token_name_of
from callcheck.api.schemas import DIALING_ERRORS, ERRORS, ErrorBody, json_body
from callcheck.domain.pacing import MAX_RATE_PER_MIN, MIN_RATE_PER_MIN
from callcheck.errors import Conflict, NotFound
from callcheck.jobs.runs import cancel_run, start_run
from callcheck.services import Services
from callcheck.store.repo import RunRow

router = APIRouter(prefix="/api/runs", tags=["runs"])


async def run_view(services: Services, run: RunRow) -> dict[str, Any]:
    """A run with its planned calls, their calls' states, progress counts and (when done) its report."""
    rows = []
    counts = {"pending": 0, "active": 0, "done": 0, "skipped": 0}
    for item, call in await services.store.run_calls(run.id):
        if item.status == "skipped":
            counts["skipped"] += 1
        elif call is None:
            counts["pending"] += 1
        elif call.state.terminal:
            counts["done"] += 1
        else:
            counts["active"] += 1
        rows.append(
            {
                "display_name": item.display_name,
                "scenario": item.scenario,
                "repeat": item.repeat,
                "status": item.status,
                "call_id": item.call_id,
                "call_state": call.state.value if call else None,
            }
        )
    return {
        "id": run.id,
        "name": run.name,
        "state": run.state,
        "simulated": run.simulated,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "concurrency": run.concurrency,
        "rate_per_min": run.rate_per_min,
        "token_name": run.token_name,
        "counts": counts,
        "items": rows,
        "exit_code": run.exit_code,
        "error": run.error,
        "report": run.report,
    }


@router.post(
    "",
    status_code=202,
    summary="Start a suite run",
    openapi_extra=json_body(None, description="A suite, as in docs/suites.md (the YAML file's content, as JSON)."),
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
) -> JSONResponse:
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
    return JSONResponse(await run_view(services, run), status_code=202)


@router.get("", summary="List runs, newest first")
async def list_runs(
    services: ServicesDep,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Runs without their items, newest first, with cursor pagination."""
    runs, next_cursor = await services.store.runs.list_runs(cursor=cursor, limit=limit)
    return {
        "runs": [
            {
                "id": r.id,
                "name": r.name,
                "state": r.state,
                "created_at": r.created_at.isoformat(),
                "exit_code": r.exit_code,
                "simulated": r.simulated,
                "token_name": r.token_name,
            }
            for r in runs
        ],
        "next_cursor": next_cursor,
    }


@router.get("/{run_id}", summary="A run, its calls and its report")
async def get_run(run_id: str, services: ServicesDep) -> dict[str, Any]:
    """Progress while running; the report once finished."""
    run = await services.store.runs.get_run(run_id)
    if run is None:
        raise NotFound("No run with this id.")
    return await run_view(services, run)


@router.delete("/{run_id}", status_code=202, summary="Cancel a run")
async def delete_run(run_id: str, services: ServicesDep) -> dict[str, Any]:
    """Place no new call; calls in flight are followed to their end and reported."""
    run = await services.store.runs.get_run(run_id)
    if run is None:
        raise NotFound("No run with this id.")
    if not await cancel_run(services, run_id):
        raise Conflict(f"This run is {run.state}; only a running run can be cancelled.")
    fresh = await services.store.runs.get_run(run_id)
    assert fresh is not None
    return await run_view(services, fresh)
