"""`GET /metrics` (Prometheus text format, through the official prometheus_client) and monitor status badges.

The figures are read from the database at scrape time (so every process sharing it tells the same story), except
upstream error responses, which each process counts as they happen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any
from xml.sax.saxutils import escape

import httpx
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from callcheck.edge.deps import ServicesDep
from callcheck.errors import NotFound
from callcheck.services import Services

router = APIRouter()

UPSTREAM_ERRORS = "upstream_errors"
TEXT = {"type": "string"}
VERDICT_CACHE = "verdict_cache"
BADGE_COLOURS = {"passing": "#4c1", "failing": "#e05d44", "paused": "#9f9f9f", "pending": "#dfb317"}


def count_upstream_errors(services: Services) -> None:
    """Count ElevenLabs' error answers (4xx/5xx) as they arrive, by status, for `/metrics`."""
    counts: Counter[str] = Counter()
    services.extras[UPSTREAM_ERRORS] = counts
    upstream_host = httpx.URL(services.settings.elevenlabs_api_base).host

    async def on_response(response: httpx.Response) -> None:
        if response.status_code >= 400 and response.request.url.host == upstream_host:
            counts[str(response.status_code)] += 1

    services.http.event_hooks["response"].append(on_response)


class _Snapshot:
    """A collector that yields metric families computed beforehand (the database is read asynchronously)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


async def _verdicts(services: Services) -> tuple[Counter[str], Counter[str]]:
    """(scenario verdicts, call verdicts) over every finished run; a report never changes, so each is read once."""
    cache: dict[str, tuple[Counter[str], Counter[str]]] = services.extras.setdefault(VERDICT_CACHE, {})
    for run_id in await services.store.monitors.finished_run_ids():
        if run_id in cache:
            continue
        run = await services.store.runs.get_run(run_id)
        scenarios: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        for scenario in (run.report or {}).get("scenarios", []) if run else []:
            scenarios[str(scenario.get("status"))] += 1
            for call in scenario.get("runs", []):
                calls[str(call.get("status"))] += 1
        cache[run_id] = (scenarios, calls)
    total_scenarios: Counter[str] = Counter()
    total_calls: Counter[str] = Counter()
    for scenarios, calls in cache.values():
        total_scenarios.update(scenarios)
        total_calls.update(calls)
    return total_scenarios, total_calls


def _result(state: str, exit_code: int | None) -> str:
    if exit_code is None:
        return "none"
    return {0: "passed", 1: "failed"}.get(exit_code, "could_not_run")


async def metric_families(services: Services) -> list[Metric]:
    """Every metric callcheck exposes, read now."""
    counts: dict[str, Any] = await services.store.monitors.metric_counts()
    calls = GaugeMetricFamily("callcheck_calls", "Calls stored, by state.", labels=["state"])
    for state, n in counts["calls"]:
        calls.add_metric([state], n)
    with_error = GaugeMetricFamily(
        "callcheck_calls_with_upstream_error", "Calls on which ElevenLabs' error (or silence) was recorded."
    )
    with_error.add_metric([], counts["calls_with_error"])
    upstream = CounterMetricFamily(
        "callcheck_upstream_errors", "Error answers from ElevenLabs seen by this process, by status.", labels=["status"]
    )
    for status, n in sorted(services.extras.get(UPSTREAM_ERRORS, Counter()).items()):
        upstream.add_metric([status], n)
    runs: Counter[tuple[str, str]] = Counter()
    for state, exit_code, n in counts["runs"]:
        runs[(state, _result(state, exit_code))] += n
    run_family = GaugeMetricFamily("callcheck_runs", "Suite runs, by state and result.", labels=["state", "result"])
    for (state, result), n in sorted(runs.items()):
        run_family.add_metric([state, result], n)
    scenario_verdicts, call_verdicts = await _verdicts(services)
    scenario_family = GaugeMetricFamily(
        "callcheck_scenario_verdicts", "Scenario verdicts of finished runs (pass, fail, flaky).", labels=["verdict"]
    )
    for verdict, n in sorted(scenario_verdicts.items()):
        scenario_family.add_metric([verdict], n)
    call_family = GaugeMetricFamily(
        "callcheck_call_verdicts", "Call verdicts of finished runs (pass, fail, not_evaluated).", labels=["verdict"]
    )
    for verdict, n in sorted(call_verdicts.items()):
        call_family.add_metric([verdict], n)
    monitor_status = GaugeMetricFamily(
        "callcheck_monitor_status",
        "1 for each monitor's current status (pending, passing, failing, paused).",
        labels=["monitor", "status"],
    )
    failures = GaugeMetricFamily(
        "callcheck_monitor_consecutive_failures", "Failing runs in a row, per monitor.", labels=["monitor"]
    )
    for name, status, paused, consecutive in counts["monitors"]:
        current = "paused" if paused else status
        for option in ("pending", "passing", "failing", "paused"):
            monitor_status.add_metric([name, option], 1 if option == current else 0)
        failures.add_metric([name], consecutive)
    webhooks = GaugeMetricFamily(
        "callcheck_webhooks_received", "ElevenLabs webhook deliveries kept, by event type.", labels=["type"]
    )
    for event_type, n in counts["webhooks"]:
        webhooks.add_metric([event_type], n)
    alerts = GaugeMetricFamily(
        "callcheck_alert_deliveries", "Monitor alert deliveries, by channel and outcome.", labels=["channel", "outcome"]
    )
    for channel, outcome, n in counts["deliveries"]:
        alerts.add_metric([channel, outcome], n)
    queue = GaugeMetricFamily(
        "callcheck_queue_depth", "Work waiting: planned calls of runs not placed yet.", labels=["queue"]
    )
    queue.add_metric(["planned_calls"], counts["pending_items"])
    waiting = sum(n for state, n in counts["calls"] if state in ("queued", "dialing"))
    queue.add_metric(["calls_being_placed"], waiting)
    return [
        calls,
        with_error,
        upstream,
        run_family,
        scenario_family,
        call_family,
        monitor_status,
        failures,
        webhooks,
        alerts,
        queue,
    ]


@router.get(
    "/metrics",
    tags=["meta"],
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}}
    },
)
async def metrics(services: ServicesDep) -> Response:
    """Calls by state, verdicts, monitor status, upstream errors, webhook and alert counts, queue depth."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await metric_families(services)))  # duck-typed collector
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def badge_svg(label: str, message: str, colour: str) -> str:
    """A shields.io-style flat badge."""

    def width(text: str) -> int:
        return 10 + round(sum(7.5 if c.isupper() or c in "mwMW" else 6.2 for c in text))

    left, right = width(label), width(message)
    total = left + right
    label_x, message_x = left / 2, left + right / 2
    safe_label, safe_message = escape(label), escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{safe_label}: {safe_message}"><title>{safe_label}: {safe_message}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3">{safe_label}</text>'
        f'<text x="{label_x}" y="14">{safe_label}</text>'
        f'<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3">{safe_message}</text>'
        f'<text x="{message_x}" y="14">{safe_message}</text></g></svg>'
    )


@router.head("/badge/monitors/{name}.svg", include_in_schema=False)  # status pages probe with HEAD
@router.get(
    "/badge/monitors/{name}.svg",
    tags=["monitors"],
    summary="Status badge",
    response_class=Response,
    responses={200: {"description": "An SVG badge.", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}},
)
async def badge(name: str, services: ServicesDep) -> Response:
    """passing / failing / paused (or pending before the first run), shields-style, never cached."""
    monitor = await services.store.monitors.get(name)
    if monitor is None:
        raise NotFound(f"No monitor named {name!r}.")
    status = "paused" if monitor.paused else monitor.status
    return Response(
        badge_svg(monitor.name, status, BADGE_COLOURS.get(status, "#9f9f9f")),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-cache, max-age=0"},
    )
