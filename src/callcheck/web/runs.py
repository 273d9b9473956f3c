"""The runs view of the web page: suite runs, their live progress, and the per-scenario report with drill-down.

`GET /runs` lists runs (and offers a form to start one from a pasted suite); `GET /runs/{id}` shows one. While a
run is running its progress part (`/runs/{id}/parts/progress`) is polled by htmx every second; the part rendered
once the run is over carries no trigger, so polling stops by itself. The run's data comes from the same
`presenters.runs.run_view`, which the API answers `GET /api/runs/{id}` with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from callcheck.domain.suite import SuiteError
from callcheck.edge.body import json_object
from callcheck.edge.deps import ServicesDep, token_name_of
from callcheck.errors import InvalidInput
from callcheck.jobs.runs import TERMINAL_RUN_STATES, start_run
from callcheck.presenters.runs import run_view
from callcheck.reports.model import RunReport
from callcheck.store.repo import RunRow
from callcheck.text import counted
from callcheck.web.pages import PAGE_METHODS, STALE_LINK, BrowserContextDep, not_found, page, state_label, templates

router = APIRouter(include_in_schema=False)

POLL_EVERY = "1s"
MAX_CONCURRENCY = 50
RUNS_PAGE_SIZE = 25
PASTED_SOURCE = "pasted suite"  # no file: the run is named after its business

RUN_STATE_LABELS = {
    "running": "Running",
    "cancelling": "Cancelling",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "failed": "Could not run",
}

STATUS_WORDS = {"pass": "Passed", "fail": "Failed", "flaky": "Flaky", "not_evaluated": "Not evaluated"}
STATUS_TONES = {"pass": "good", "fail": "bad", "flaky": "live", "not_evaluated": "none"}


def run_state_label(state: str) -> str:
    """A run's state as a person reads it."""
    return RUN_STATE_LABELS.get(state, state.replace("_", " ").capitalize())


def status_words(status: str) -> str:
    """pass / fail / flaky / not_evaluated in words."""
    return STATUS_WORDS.get(status, status.replace("_", " ").capitalize())


def status_tone(status: str) -> str:
    """The CSS tone of a verdict status."""
    return STATUS_TONES.get(status, "none")


def percent(value: float | None) -> str:
    """0.6667 -> `67%`; an em dash when unknown."""
    return "—" if value is None else f"{value * 100:.0f}%"


templates.env.filters.update(percent=percent)
templates.env.globals.update(run_state_label=run_state_label, status_words=status_words, status_tone=status_tone)


def report_of(run: dict[str, Any]) -> RunReport | None:
    """The run's stored report as the model (its computed stats included), when it has one."""
    if not run.get("report"):
        return None
    try:
        return RunReport.model_validate(run["report"])
    except ValidationError:
        return None


@dataclass
class RunSummary:
    """One row of the runs list."""

    id: str
    name: str
    state: str
    tone: str
    created_at: str
    simulated: bool
    summary: str


def run_tone(state: str, exit_code: int | None) -> str:
    """good when every scenario passed, bad when not (or the run stopped), live while it runs."""
    if state not in TERMINAL_RUN_STATES:
        return "live"
    return "good" if state == "completed" and exit_code == 0 else "bad"


def summary_line(state: str, report: RunReport | None, error: str | None = None) -> str:
    """`5 of 7 scenarios passed, 1 flaky` and the like."""
    if state == "running":
        return "In progress"
    if state == "cancelling":
        return "Cancelling"
    if report is None:
        return error or "No report"
    totals = report.totals
    line = f"{totals['scenarios_passed']} of {totals['scenarios']} scenarios passed"
    if totals["scenarios_flaky"]:
        line += f", {totals['scenarios_flaky']} flaky"
    if report.cancelled:
        line += " (cancelled)"
    return line


def run_summary(run: RunRow) -> RunSummary:
    """The list row of a run."""
    report = report_of({"report": run.report})
    return RunSummary(
        id=run.id,
        name=run.name,
        state=run.state,
        tone=run_tone(run.state, run.exit_code),
        created_at=run.created_at.isoformat(),
        simulated=run.simulated,
        summary=summary_line(run.state, report, run.error),
    )


def run_sentence(run: dict[str, Any], report: RunReport | None) -> str:
    """One sentence saying where the run is, for the live status line."""
    counts = run["counts"]
    total = len(run["items"])
    state = run["state"]
    if state == "running":
        return (
            f"Running: {counts['done']} of {total} calls done, {counts['active']} under way, "
            f"{counts['pending']} waiting."
        )
    if state == "cancelling":
        if not counts["active"]:
            return "Cancelling: no new call is placed; finishing the report."
        under_way = counts["active"]
        return f"Cancelling: no new call is placed; waiting for {counted(under_way, 'call')} under way to end."
    if state == "failed":
        return "This run stopped before placing every call." + (f" {run['error']}" if run.get("error") else "")
    if report is None:
        return f"{run_state_label(state)}."
    if report.cancelled:
        skipped = counts["skipped"]
        verb = "was" if skipped == 1 else "were"
        return f"Cancelled: {summary_line(state, report)}; {counted(skipped, 'call')} {verb} not placed."
    if report.passed:
        return "Passed: every scenario reached its required pass rate."
    return f"Failed: {summary_line(state, report)}."


def item_label(item: dict[str, Any]) -> str:
    """A planned call's status in words."""
    if item["status"] == "skipped":
        return "Not placed (cancelled)"
    if item["call_state"] is None:
        return "Waiting"
    return state_label(item["call_state"])


def progress_view(run: dict[str, Any]) -> dict[str, Any]:
    """Everything the run page's templates read."""
    report = report_of(run)
    total = len(run["items"])
    finished = run["state"] in TERMINAL_RUN_STATES
    return {
        "run": run,
        "report": report,
        "total": total,
        "finished": finished,
        "poll": POLL_EVERY,
        "tone": run_tone(run["state"], run["exit_code"]),
        "sentence": run_sentence(run, report),
        "items": [{**item, "label": item_label(item)} for item in run["items"]],
        "can_cancel": run["state"] == "running",
    }


async def load_run(services: Any, run_id: str) -> dict[str, Any] | None:
    """The API's view of a run (plus its error), or None."""
    row = await services.store.runs.get_run(run_id)
    if row is None:
        return None
    view = (await run_view(services, row)).model_dump(mode="json")
    return view


# -- routes ---------------------------------------------------------------------------------------------------


@router.api_route("/runs", methods=PAGE_METHODS, response_class=HTMLResponse)
async def runs_page(
    request: Request,
    services: ServicesDep,
    _context: BrowserContextDep,
    cursor: Annotated[str | None, Query()] = None,
) -> Response:
    """Suite runs, newest first, a page at a time, and a form to start one."""
    problem = None
    try:
        runs, next_cursor = await services.store.runs.list_runs(cursor=cursor or None, limit=RUNS_PAGE_SIZE)
    except InvalidInput:  # a stale or edited link: show the newest runs, and say so, as the history does
        cursor, problem = None, STALE_LINK.format("runs")
        runs, next_cursor = await services.store.runs.list_runs(limit=RUNS_PAGE_SIZE)
    return page(
        request,
        "runs.html",
        {
            "title": "Runs",
            "rows": [run_summary(r) for r in runs],
            "max_concurrency": MAX_CONCURRENCY,
            "next_cursor": next_cursor,
            "paged": bool(cursor),
            "problem": problem,
        },
    )


@router.api_route("/runs/{run_id}", methods=PAGE_METHODS, response_class=HTMLResponse)
async def run_page(request: Request, run_id: str, services: ServicesDep, _context: BrowserContextDep) -> Response:
    """One run: live progress, then the per-scenario report with a link to each call."""
    run = await load_run(services, run_id)
    if run is None:
        return not_found(request, "There is no run with this id. It may be in another callcheck's database.")
    return page(request, "run.html", {"title": f"Run {run['name']}", **progress_view(run)})


@router.api_route("/runs/{run_id}/parts/progress", methods=PAGE_METHODS, response_class=HTMLResponse)
async def run_progress_part(request: Request, run_id: str, services: ServicesDep) -> Response:
    """The live part of the run page, polled by htmx while the run is running."""
    run = await load_run(services, run_id)
    if run is None:
        return not_found(request, "No such run.")
    return page(request, "parts/run_progress.html", progress_view(run))


@router.post("/runs/start")
async def start_pasted_run(request: Request, services: ServicesDep) -> JSONResponse:
    """Start a run from a pasted suite, YAML or JSON: `{"suite": "...", "concurrency": 2}`.

    The page's form posts here (rather than to POST /api/runs, which takes the suite as JSON) so that YAML, the
    format the docs use, can be pasted as is. A suite with problems answers 400 with every problem by path and line.
    """
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        # Only JSON: a page elsewhere cannot send that without a CORS preflight, which callcheck never grants.
        return JSONResponse({"error": "Send the suite as JSON (Content-Type: application/json)."}, status_code=415)
    data = await json_object(request)
    text = data.get("suite")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("Paste a suite (YAML or JSON) first.")
    concurrency = data.get("concurrency", 1)
    if isinstance(concurrency, str) and concurrency.strip().isdigit():
        concurrency = int(concurrency)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise InvalidInput(f"Concurrency must be a whole number from 1 to {MAX_CONCURRENCY}.")
    try:
        run = await start_run(services, text, PASTED_SOURCE, concurrency=concurrency, token_name=token_name_of(request))
    except SuiteError as exc:
        count = len(exc.problems)
        return JSONResponse(
            {
                "error": f"The suite has {counted(count, 'problem')}; no call was placed.",
                "problems": [str(p) for p in exc.problems],
            },
            status_code=400,
        )
    return JSONResponse({"id": run.id, "url": f"/runs/{run.id}"}, status_code=202)
