"""The monitors view of the web page: monitors and their status, one monitor's trends, comparing two runs.

`GET /monitors` lists monitors and offers a form to create one from a pasted suite (posted to `POST /api/monitors`);
`GET /monitors/{name}` shows its state, pause / resume / run-now buttons, its figures over time as server-drawn SVG
charts (overall and per scenario; each point links to its run) and its runs, two of which can be compared at
`GET /compare?a=&b=`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from callcheck.domain.trends import FIGURES, TrendPoint, format_delta, format_figure, trends_of
from callcheck.edge.deps import ServicesDep
from callcheck.errors import NotFound
from callcheck.jobs.monitors import MAX_CONCURRENCY, monitor_view
from callcheck.presenters.monitors import comparison, run_row
from callcheck.web.charts import RunMark, Series, line_chart
from callcheck.web.pages import PAGE_METHODS, BrowserContextDep, not_found, page, templates
from callcheck.web.runs import run_state_label, run_tone

router = APIRouter(include_in_schema=False)

TREND_RUNS = 60
HISTORY_RUNS = 30
STATUS_TONES = {"passing": "good", "failing": "bad", "pending": "live", "paused": "none"}

templates.env.filters.update(figure=lambda value, name: format_figure(name, value))
templates.env.filters.update(delta=lambda value, name: format_delta(name, value))


def charts_for(points: list[TrendPoint], prefix: str, title: str) -> list[Markup]:
    """The four charts of a list of points: pass rate, time to first answer p50/p95, duration p50, cost."""
    marks = [RunMark(p.run_id, p.at, p.passed) for p in points]

    def values(name: str) -> list[float | None]:
        return [p.figures.get(name) for p in points]

    return [
        line_chart(
            f"{title}: pass rate", "pass_rate", marks, [Series("pass rate", values("pass_rate"))], f"{prefix}-pass"
        ),
        line_chart(
            f"{title}: time to first answer",
            "first_answer_p50_s",
            marks,
            [Series("p50", values("first_answer_p50_s")), Series("p95", values("first_answer_p95_s"))],
            f"{prefix}-answer",
        ),
        line_chart(
            f"{title}: call duration (p50)",
            "duration_p50_s",
            marks,
            [Series("duration p50", values("duration_p50_s"))],
            f"{prefix}-duration",
        ),
        line_chart(f"{title}: cost", "cost", marks, [Series("cost", values("cost"))], f"{prefix}-cost"),
    ]


@router.api_route("/monitors", methods=PAGE_METHODS, response_class=HTMLResponse)
async def monitors_page(request: Request, services: ServicesDep, _context: BrowserContextDep) -> Response:
    """Every monitor and its status; a form to create one."""
    rows = [monitor_view(m) for m in await services.store.monitors.all()]
    return page(
        request,
        "monitors.html",
        {"title": "Monitors", "rows": rows, "tones": STATUS_TONES, "max_concurrency": MAX_CONCURRENCY},
    )


@router.api_route("/monitors/{name}", methods=PAGE_METHODS, response_class=HTMLResponse)
async def monitor_page(request: Request, name: str, services: ServicesDep, _context: BrowserContextDep) -> Response:
    """One monitor: status, controls, trends, runs."""
    monitor = await services.store.monitors.get(name)
    if monitor is None:
        return not_found(request, "There is no monitor with this name. It may have been removed.")
    runs = await services.store.monitors.runs_of(monitor.id, TREND_RUNS)
    trends = trends_of([run_row(r) for r in runs])
    scenario_charts = [
        {"name": scenario, "charts": charts_for(points, f"scenario-{index}", scenario)}
        for index, (scenario, points) in enumerate(sorted(trends.scenarios.items()))
    ]
    history = [
        {
            "id": r.id,
            "created_at": r.created_at.isoformat(),
            "state": run_state_label(r.state),
            "tone": run_tone(r.state, r.exit_code),
            "result": "—" if r.exit_code is None else {0: "Passed", 1: "Failed"}.get(r.exit_code, "Could not run"),
            "error": r.error,
        }
        for r in reversed(runs[-HISTORY_RUNS:])
    ]
    deliveries = await services.store.monitors.deliveries_of(monitor.id, 10)
    return page(
        request,
        "monitor.html",
        {
            "title": f"Monitor {monitor.name}",
            "monitor": monitor_view(monitor),
            "tones": STATUS_TONES,
            "overall_charts": charts_for(trends.overall, "overall", "All scenarios"),
            "scenario_charts": scenario_charts,
            "history": history,
            "deliveries": deliveries,
            "figures": FIGURES,
        },
    )


@router.api_route("/compare", methods=PAGE_METHODS, response_class=HTMLResponse)
async def compare_page(
    request: Request,
    services: ServicesDep,
    _context: BrowserContextDep,
    a: Annotated[str | None, Query()] = None,
    b: Annotated[str | None, Query()] = None,
) -> Response:
    """What changed between run A and run B."""
    if not a or not b:
        return page(request, "compare.html", {"title": "Compare runs", "result": None, "problem": "Choose two runs."})
    try:
        result = (await comparison(services, a, b)).model_dump(mode="json")
    except NotFound as exc:
        return not_found(request, exc.message)
    return page(request, "compare.html", {"title": "Compare runs", "result": result, "problem": None})
