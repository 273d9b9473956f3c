"""Suite runs as the API answers them (GET /api/runs, GET /api/runs/{id}) and the pages show them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, WithJsonSchema

from callcheck.domain.lifecycle import CallState, ItemStatus, RunState
from callcheck.presenters.schemas import standalone
from callcheck.reports.model import RunReport
from callcheck.services import Services
from callcheck.store.repo import RunRow

# The stored report is passed through as it was written (RunReport.model_dump(mode="json"), never read again here);
# described as that model's output.
REPORT = WithJsonSchema({"anyOf": [standalone(RunReport.model_json_schema(mode="serialization")), {"type": "null"}]})


class RunItem(BaseModel):
    """A planned call of a run."""

    display_name: str = Field(description="The scenario's name, `#2`... for its repeats.")
    scenario: str
    repeat: int
    status: ItemStatus
    call_id: str | None = Field(description="The call placed for it (GET /api/calls/{id}); null until placed.")
    call_state: CallState | None


class RunCounts(BaseModel):
    """Planned calls by progress."""

    pending: int
    active: int
    done: int
    skipped: int


class RunView(BaseModel):
    """A run with its planned calls, progress counts and (once finished) its report."""

    id: str
    name: str = Field(description="The suite's name.")
    state: RunState
    simulated: bool
    created_at: str
    finished_at: str | None
    concurrency: int
    rate_per_min: int | float | None
    token_name: str | None = Field(description="The API token that started it (null: no token in use).")
    counts: RunCounts
    items: list[RunItem]
    exit_code: int | None = Field(description="0 passed, 1 failed, 2 could not run; null while running.")
    error: str | None
    report: Annotated[dict[str, Any] | None, REPORT] = Field(
        description="The run's JSON report (as `callcheck run --json` writes it), once it is over."
    )


class RunSummary(BaseModel):
    """A run in a list."""

    id: str
    name: str
    state: RunState
    created_at: str
    exit_code: int | None
    simulated: bool
    token_name: str | None


class RunPage(BaseModel):
    """A page of runs, newest first."""

    runs: list[RunSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


async def run_view(services: Services, run: RunRow) -> RunView:
    """A run with its planned calls, their calls' states, progress counts and (when done) its report."""
    rows = []
    counts = RunCounts(pending=0, active=0, done=0, skipped=0)
    for item, call in await services.store.run_calls(run.id):
        if item.status == "skipped":
            counts.skipped += 1
        elif call is None:
            counts.pending += 1
        elif call.state.terminal:
            counts.done += 1
        else:
            counts.active += 1
        rows.append(
            RunItem(
                display_name=item.display_name,
                scenario=item.scenario,
                repeat=item.repeat,
                status=item.status,
                call_id=item.call_id,
                call_state=call.state if call else None,
            )
        )
    return RunView(
        id=run.id,
        name=run.name,
        state=run.state,
        simulated=run.simulated,
        created_at=run.created_at.isoformat(),
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
        concurrency=run.concurrency,
        rate_per_min=run.rate_per_min,
        token_name=run.token_name,
        counts=counts,
        items=rows,
        exit_code=run.exit_code,
        error=run.error,
        report=run.report,
    )


def run_summary(run: RunRow) -> RunSummary:
    """A run in a list."""
    return RunSummary(
        id=run.id,
        name=run.name,
        state=run.state,
        created_at=run.created_at.isoformat(),
        exit_code=run.exit_code,
        simulated=run.simulated,
        token_name=run.token_name,
    )
