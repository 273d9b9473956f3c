"""Figures of suite runs over time, and what changed between two runs (pure: reads stored reports, no I/O).

Per run (and per scenario of a run): pass rate of its calls, time to first answer (p50 / p95), call duration (p50)
and cost (the sum of what ElevenLabs reported; None when it reported nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

FIGURES: dict[str, str] = {
    "pass_rate": "Pass rate",
    "first_answer_p50_s": "Time to first answer, p50 (s)",
    "first_answer_p95_s": "Time to first answer, p95 (s)",
    "duration_p50_s": "Call duration, p50 (s)",
    "cost": "Cost",
}


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _calls(scenarios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [run for s in scenarios for run in s.get("runs", [])]


def figures_of(calls: list[dict[str, Any]]) -> dict[str, float | None]:
    """The figures of some calls (RunResult dicts of a stored report)."""
    answers = [float(c["first_response_s"]) for c in calls if isinstance(c.get("first_response_s"), int | float)]
    durations = [float(c["duration_s"]) for c in calls if isinstance(c.get("duration_s"), int | float)]
    costs = [
        float(c["facts"]["cost"])
        for c in calls
        if isinstance(c.get("facts"), dict) and isinstance(c["facts"].get("cost"), int | float)
    ]
    passed = sum(1 for c in calls if c.get("status") == "pass")
    return {
        "pass_rate": passed / len(calls) if calls else None,
        "first_answer_p50_s": percentile(answers, 50),
        "first_answer_p95_s": percentile(answers, 95),
        "duration_p50_s": percentile(durations, 50),
        "cost": sum(costs) if costs else None,
    }


@dataclass
class TrendPoint:
    """One run's figures, for a chart's point (linking to the run)."""

    run_id: str
    at: str  # ISO time the run started
    passed: bool | None  # None: not finished, or could not run
    figures: dict[str, float | None]


@dataclass
class Trends:
    """A monitor's runs as points: overall, and per scenario."""

    overall: list[TrendPoint] = field(default_factory=list)
    scenarios: dict[str, list[TrendPoint]] = field(default_factory=dict)


def trends_of(runs: list[dict[str, Any]]) -> Trends:
    """Trends from runs oldest first, each `{"id", "created_at", "state", "exit_code", "report"}`; unfinished runs
    are left out (their figures would move)."""
    trends = Trends()
    for run in runs:
        report = run.get("report")
        if run.get("state") in ("running", "cancelling"):
            continue
        scenarios = (report or {}).get("scenarios", [])
        passed = None if run.get("exit_code") not in (0, 1) else run.get("exit_code") == 0
        trends.overall.append(TrendPoint(run["id"], run["created_at"], passed, figures_of(_calls(scenarios))))
        for scenario in scenarios:
            trends.scenarios.setdefault(scenario.get("name", "?"), []).append(
                TrendPoint(
                    run["id"],
                    run["created_at"],
                    scenario.get("status") == "pass",
                    figures_of(scenario.get("runs", [])),
                )
            )
    return trends


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _figure_rows(fa: dict[str, float | None], fb: dict[str, float | None]) -> list[dict[str, Any]]:
    return [
        {"name": key, "label": label, "a": fa.get(key), "b": fb.get(key), "delta": _delta(fa.get(key), fb.get(key))}
        for key, label in FIGURES.items()
    ]


def _change(sa: dict[str, Any] | None, sb: dict[str, Any] | None) -> str:
    if sa is None:
        return "added"
    if sb is None:
        return "removed"
    return "flipped" if sa.get("status") != sb.get("status") else "same"


def _scenario_row(name: Any, sa: dict[str, Any] | None, sb: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": name,
        "a_status": sa.get("status") if sa else None,
        "b_status": sb.get("status") if sb else None,
        "change": _change(sa, sb),
        "figures": _figure_rows(
            figures_of(sa.get("runs", [])) if sa else {}, figures_of(sb.get("runs", [])) if sb else {}
        ),
    }


def compare_reports(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any]:
    """What changed from report `a` to report `b`: scenarios that flipped (or appeared, or went), and figures that
    moved, overall and per scenario."""
    report_a, report_b = a or {}, b or {}
    scenarios_a = {s.get("name"): s for s in report_a.get("scenarios", [])}
    scenarios_b = {s.get("name"): s for s in report_b.get("scenarios", [])}
    names = [*scenarios_a, *[n for n in scenarios_b if n not in scenarios_a]]
    rows = [_scenario_row(name, scenarios_a.get(name), scenarios_b.get(name)) for name in names]
    return {
        "passed": {"a": report_a.get("passed"), "b": report_b.get("passed")},
        "flipped": [r for r in rows if r["change"] == "flipped"],
        "added": [r["name"] for r in rows if r["change"] == "added"],
        "removed": [r["name"] for r in rows if r["change"] == "removed"],
        "scenarios": rows,
        "figures": _figure_rows(
            figures_of(_calls(report_a.get("scenarios", []))), figures_of(_calls(report_b.get("scenarios", [])))
        ),
    }


def format_figure(name: str, value: float | None) -> str:
    """A figure as people read it: 67%, 4.2 s, $0.12; an em dash when unknown."""
    if value is None:
        return "—"
    if name == "pass_rate":
        return f"{value * 100:.0f}%"
    if name == "cost":
        return f"{value:.4g}"
    return f"{value:.1f} s"


def format_delta(name: str, value: float | None) -> str:
    """A change of a figure, signed: +12%, -0.8 s; empty when unknown or nil."""
    if value is None or value == 0:
        return ""
    sign = "+" if value > 0 else "-"
    if name == "pass_rate":
        return f"{sign}{abs(value) * 100:.0f} pts"
    if name == "cost":
        return f"{sign}{abs(value):.4g}"
    return f"{sign}{abs(value):.1f} s"
