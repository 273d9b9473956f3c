"""JUnit XML of a suite run: one testcase per call (`name`, `name#2`...), the shape CI systems render.

Choices, so CI reads them right:
- a run with a failed assertion is a `<failure>` listing every failed assertion with its evidence (and the
  not-evaluated ones after them);
- a run with no failure but some assertion not evaluated is an `<error type="not_evaluated">`: the test could not
  be checked, which is not a pass and not a proven failure either, and JUnit's `error` means exactly that;
- a planned call never placed (the run was cancelled, or stopped placing calls) is a testcase with `<skipped>`
  saying why, so a cancelled run never reads as complete;
- the call id, state, figures, notes and transcript excerpt go to `<system-out>`;
- the per-scenario pass rate, Wilson interval and flakiness go to the testsuite's `<properties>`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from callcheck.domain.assertions import AssertionResult
from callcheck.reports.model import NotRun, RunReport, RunResult, ScenarioReport
from callcheck.text import counted

# Characters XML 1.0 cannot carry at all (even escaped); transcripts may hold them.
_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _clean(text: str) -> str:
    return _INVALID_XML.sub("\ufffd", text)


def _seconds(value: float | None) -> str:
    return f"{value or 0:.3f}"


def _line(result: AssertionResult) -> str:
    text = f"[{result.status}] {result.expected} — {result.evidence}"
    return text + (f" ({result.detail})" if result.detail else "")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def scenario_summary(scenario: ScenarioReport) -> str:
    """`2/3 passed (67%, 95% CI 21% to 94%), required 100%: fail`, plus `; 4 not run: cancelled` when some were not."""
    s = scenario.stats
    text = (
        f"{s.passed}/{s.total} passed ({_percent(s.rate)}, 95% CI {_percent(s.low)} to {_percent(s.high)}), "
        f"required {_percent(s.required)}: {scenario.status}"
    )
    not_run = scenario.not_run_summary()
    return f"{text}; {not_run}" if not_run else text


def _cost(usd: float | None, credits: float | None) -> str:
    if usd is None and credits is None:
        return "unknown"
    parts = ([f"${usd:.4f}"] if usd is not None else []) + ([f"{credits:g} credits"] if credits is not None else [])
    return ", ".join(parts)


def _figure(value: float | None, missing: str) -> str:
    # The unit goes with a number only: "duration: 22 s", but "duration: unknown".
    return missing if value is None else f"{value:g} s"


def _system_out(run: RunResult) -> str:
    lines = [
        f"call id: {run.call_id or 'none'}",
        f"state: {run.state}" + (" (simulated)" if run.simulated else ""),
        f"duration: {_figure(run.duration_s, 'unknown')}",
        f"first response: {_figure(run.first_response_s, 'none')}",
        f"time to answer: {_figure(run.time_to_answer_s, 'unknown')}",
        f"cost: {_cost(run.cost_usd, run.cost_credits)}",
    ]
    lines += [f"note: {note}" for note in run.notes]
    lines.append("assertions:")
    lines += [f"  {_line(r)}" for r in run.verdict.results]
    lines.append(f"transcript excerpt ({len(run.transcript_excerpt)} of {run.transcript_turns} turns):")
    lines += [f"  [{t.index}] {t.time_s:g}s {t.speaker}: {t.text}" for t in run.transcript_excerpt]
    return "\n".join(lines)


def _testcase(parent: ET.Element, classname: str, run: RunResult) -> None:
    case = ET.SubElement(
        parent, "testcase", classname=_clean(classname), name=_clean(run.display_name), time=_seconds(run.duration_s)
    )
    failed, unchecked = run.verdict.failed, run.verdict.not_evaluated
    if failed:
        element = ET.SubElement(
            case,
            "failure",
            message=_clean(f"{counted(len(failed), 'assertion')} failed: " + "; ".join(r.expected for r in failed)),
            type="assertion_failed",
        )
        element.text = _clean("\n".join(_line(r) for r in failed + unchecked))
    elif unchecked or not run.verdict.passed:
        message = f"{counted(len(unchecked), 'assertion')} not evaluated: " + "; ".join(r.expected for r in unchecked)
        if not unchecked:
            message = "no assertion was checked"
        element = ET.SubElement(case, "error", message=_clean(message), type="not_evaluated")
        element.text = _clean("\n".join(_line(r) for r in unchecked))
    ET.SubElement(case, "system-out").text = _clean(_system_out(run))


def _skipped_testcase(parent: ET.Element, classname: str, item: NotRun) -> None:
    case = ET.SubElement(parent, "testcase", classname=_clean(classname), name=_clean(item.display_name), time="0.000")
    ET.SubElement(case, "skipped", message=_clean(item.reason))


def render_junit(report: RunReport) -> str:
    """The report as a JUnit XML document."""
    runs = [run for s in report.scenarios for run in s.runs]
    skipped = sum(len(s.not_run) for s in report.scenarios)
    failures = sum(1 for r in runs if r.verdict.failed)
    errors = sum(1 for r in runs if not r.verdict.failed and not r.verdict.passed)
    total_time = _seconds(sum(r.duration_s or 0 for r in runs))
    # JUnit counts skipped testcases among the tests; `skipped` itself is a testsuite attribute only.
    counts = {"tests": str(len(runs) + skipped), "failures": str(failures), "errors": str(errors)}
    root = ET.Element("testsuites", {"name": _clean(report.suite), "time": total_time, **counts})
    suite_attributes = {
        "name": _clean(report.suite),
        "skipped": str(skipped),
        "timestamp": report.started_at.isoformat(timespec="seconds"),
        "time": total_time,
        **counts,
    }
    suite = ET.SubElement(root, "testsuite", suite_attributes)
    properties = ET.SubElement(suite, "properties")
    facts = {"business": report.business, "source": report.source, "cancelled": str(report.cancelled).lower()}
    if report.run_id:
        facts["run_id"] = report.run_id
    if report.token_name:
        facts["started_by_token"] = report.token_name
    if report.simulated:
        facts["simulated"] = "true"
    for scenario in report.scenarios:
        facts[f"scenario.{scenario.name}"] = scenario_summary(scenario)
    for name, value in facts.items():
        ET.SubElement(properties, "property", name=_clean(name), value=_clean(value))
    for scenario in report.scenarios:
        for run in scenario.runs:
            _testcase(suite, report.suite, run)
        for item in scenario.not_run:
            _skipped_testcase(suite, report.suite, item)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
