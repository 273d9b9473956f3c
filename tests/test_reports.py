"""JUnit XML, JSON and HTML reports rendered from one result model."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from callcheck.domain.assertions import CallEvidence, offline_verdict
from callcheck.domain.evidence import Analysis, CallFacts, ToolCall, Turn
from callcheck.domain.lifecycle import CallState
from callcheck.domain.suite import Suite, load_suite
from callcheck.reports import (
    RunReport,
    build_report,
    read_json,
    render_html,
    render_json,
    render_junit,
    run_result,
    transcript_excerpt,
)

SUITE = """\
name: pizza <script>alert(1)</script>
business: Pizza Palace & Sons <b>bold</b>
number: "+15551234567"
defaults:
  expect: [{final_state: completed}]
scenarios:
  - name: order
    goal: order a pizza
    repeat: 3
    required_pass_rate: 0.8
    expect:
      - outcome: success
  - name: <script>alert("x")</script>
    goal: ask the hours
  - name: hours
    goal: ask the hours
    expect:
      - transcript_contains: open
"""

STARTED = datetime(2025, 1, 2, 10, 0, tzinfo=UTC)
FINISHED = datetime(2025, 1, 2, 10, 5, tzinfo=UTC)


def answered(call_id: str, outcome: str, duration: float, text: str = "We are open until 10pm.") -> CallEvidence:
    return CallEvidence(
        state=CallState.COMPLETED,
        call_id=call_id,
        turns=[
            Turn(speaker="business", text=text, time_in_call_secs=duration / 10),
            Turn(speaker="caller", text="Thanks\x00 bye", time_in_call_secs=duration / 2),
        ],
        analysis=Analysis(call_successful=outcome),
        facts=CallFacts(duration_secs=duration, call_result="answered"),
    )


def make_report() -> tuple[Suite, RunReport]:
    suite = load_suite(SUITE, "pizza.yaml")
    evidence = {
        "order": answered("c1", "success", 40),
        "order#2": answered("c2", "failure", 55),
        "order#3": answered("c3", "success", 35),
        '<script>alert("x")</script>': CallEvidence(
            state=CallState.BUSY, call_id="c4", facts=CallFacts(call_result="busy")
        ),
        "hours": answered("c5", "success", 20, text="<script>alert('t')</script> we are open today"),
    }
    results = []
    for planned in suite.planned_calls():
        ev = evidence[planned.display_name]
        results.append(run_result(planned, ev, offline_verdict(ev, planned.expectations), simulated=True))
    # One run whose analysis never arrived: not evaluated, neither a pass nor a failure.
    hours = suite.planned_calls(only=["hours"])[0]
    pending = answered("c6", "success", 25).model_copy(update={"analysis": None})
    unevaluated = run_result(
        hours, pending, offline_verdict(pending, [*hours.expectations, *suite.scenario("order").expect[1:]])
    )
    results.append(unevaluated.model_copy(update={"display_name": "hours#2", "repeat": 2}))
    return suite, build_report(suite, results, started_at=STARTED, finished_at=FINISHED)


def test_model_groups_runs_and_computes_rates() -> None:
    _, report = make_report()
    order, script, hours = report.scenarios
    assert [r.display_name for r in order.runs] == ["order", "order#2", "order#3"]
    # 2/3 misses the required 80%, but its interval (21% to 94%) contains it: flaky.
    assert (order.stats.passed, order.stats.total, order.status) == (2, 3, "flaky")
    assert script.status == "fail" and script.runs[0].status == "fail"
    assert [r.status for r in hours.runs] == ["pass", "not_evaluated"]
    assert not hours.passed  # not evaluated never counts as passed
    # 1/2 at the default 100%: the interval (9% to 91%) lies below, so a failure, not flaky.
    assert hours.status == "fail"
    assert report.totals == {
        "scenarios": 3,
        "scenarios_passed": 0,
        "scenarios_flaky": 1,
        "runs": 6,
        "runs_passed": 3,
        "runs_failed": 2,
        "runs_not_evaluated": 1,
        "runs_not_run": 0,
    }
    assert not report.passed and report.exit_code == 1
    assert report.simulated is False  # one run was not marked simulated


def test_junit_is_valid_xml_with_the_right_counts() -> None:
    _, report = make_report()
    root = ET.fromstring(render_junit(report).encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "2", "1")
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "6",
        "2",
        "1",
        "0",
    )
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "order",
        "order#2",
        "order#3",
        '<script>alert("x")</script>',
        "hours",
        "hours#2",
    ]
    assert {c.get("classname") for c in cases} == {"pizza <script>alert(1)</script>"}
    assert cases[0].find("failure") is None and cases[0].find("error") is None

    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "1 assertion failed: outcome: success"
    assert "[fail] outcome: success — analysis.call_successful = failure" in (failure.text or "")

    error = cases[5].find("error")
    assert error is not None and error.get("type") == "not_evaluated"
    assert "not evaluated" in (error.get("message") or "")

    out = cases[1].findtext("system-out") or ""
    assert "call id: c2" in out and "transcript excerpt (2 of 2 turns)" in out
    assert "[0] 5.5s business: We are open until 10pm." in out
    assert "\x00" not in out  # XML cannot carry NUL; it is replaced, not fatal

    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["scenario.order"] == "2/3 passed (67%, 95% CI 21% to 94%), required 80%: flaky"
    assert props["scenario.hours"] == "1/2 passed (50%, 95% CI 9% to 91%), required 100%: fail"
    assert props["business"] == "Pizza Palace & Sons <b>bold</b>"
    assert cases[1].get("time") == "55.000"


def test_json_has_everything_and_round_trips() -> None:
    _, report = make_report()
    text = render_json(report)
    data = json.loads(text)
    assert data["format_version"] == 1
    assert data["passed"] is False and data["totals"]["runs"] == 6
    order = data["scenarios"][0]
    assert order["status"] == "flaky"
    assert order["stats"]["low"] == pytest.approx(0.2077, abs=1e-4)
    run = order["runs"][1]
    assert run["display_name"] == "order#2" and run["call_id"] == "c2" and run["status"] == "fail"
    assert run["verdict"]["results"][1]["evidence"] == "analysis.call_successful = failure"
    assert run["transcript_excerpt"][0]["text"] == "We are open until 10pm."
    assert read_json(text) == report


def test_html_is_self_contained() -> None:
    _, report = make_report()
    page = render_html(report)
    assert page.startswith("<!doctype html>")
    assert "<script" not in page.lower()  # user text is escaped; the report itself has no script
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page or "&lt;script&gt;alert(&quot;x&quot;)" in page
    assert "Pizza Palace &amp; Sons &lt;b&gt;bold&lt;/b&gt;" in page
    # No external resource of any kind: nothing fetched, nothing linked off the page.
    assert "http://" not in page and "https://" not in page
    links = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page)
    assert links and all(link.startswith("#") for link in links), links  # in-page anchors only
    assert "src=" not in page
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<svg") == 3  # pass rate, durations, first responses
    assert ".charts svg { max-width: 100%; height: auto; }" in page  # the charts shrink on a phone
    assert "<style>" in page


def test_html_charts_carry_the_figures() -> None:
    _, report = make_report()
    page = render_html(report)
    assert "2/3 passed (67%, 95% CI 21% to 94%), required 80%: flaky" in page  # bar tooltip and summary
    assert "order#2: 55s (fail)" in page  # a dot of the duration chart
    assert "required 100%" in page


def test_html_with_no_runs_still_renders() -> None:
    suite = load_suite(SUITE, "pizza.yaml")
    report = build_report(suite, [], started_at=STARTED, cancelled=True)
    page = render_html(report)
    assert "no data" in page and "The run was cancelled." in page
    # Sentences keep their spaces (the template's block tags must not swallow them).
    assert "The run was cancelled. 5 planned calls were not run." in " ".join(page.split())
    assert "cancelled.5" not in page
    assert not report.passed
    root = ET.fromstring(render_junit(report).encode())
    # Cancelled before any call: every planned call is a skipped testcase, none is a pass.
    (suite_element,) = root.findall("testsuite")
    assert (root.get("tests"), suite_element.get("skipped")) == ("5", "5")
    assert root.get("failures") == "0" and root.get("errors") == "0"


def test_transcript_excerpt_keeps_head_and_tail() -> None:
    turns = [Turn(speaker="business" if i % 2 else "caller", text=f"line {i}", time_in_call_secs=i) for i in range(40)]
    kept = transcript_excerpt(turns, head=3, tail=2)
    assert [t.index for t in kept] == [0, 1, 2, 38, 39]
    long = transcript_excerpt([Turn(speaker="caller", text="x" * 1000)])
    assert len(long[0].text) <= 240


def cancelled_report(stopped: str | None = None) -> RunReport:
    """order (3 planned) cancelled after two calls passed; the other scenarios never started."""
    suite = load_suite(SUITE, "pizza.yaml")
    results = []
    for planned in suite.planned_calls(only=["order"])[:2]:
        ev = answered(f"c{planned.repeat}", "success", 30)
        results.append(run_result(planned, ev, offline_verdict(ev, planned.expectations), simulated=True))
    return build_report(
        suite, results, started_at=STARTED, finished_at=FINISHED, cancelled=True, only=["order"], stopped=stopped
    )


def test_a_cancelled_run_reports_the_calls_it_never_placed() -> None:
    report = cancelled_report()
    (order,) = report.scenarios
    assert [(n.display_name, n.cause) for n in order.not_run] == [("order#3", "cancelled")]
    assert order.not_run_summary() == "1 not run: cancelled"
    assert report.totals["runs_not_run"] == 1 and not report.passed

    root = ET.fromstring(render_junit(report).encode())
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("skipped"), suite.get("failures"), suite.get("errors")) == (
        "3",
        "1",
        "0",
        "0",
    )
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["order", "order#2", "order#3"]
    assert cases[0].find("skipped") is None
    skipped = cases[2].find("skipped")
    assert skipped is not None and skipped.get("message") == "run cancelled before this call was placed"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert (props["scenario.order"] or "").endswith("required 80%: pass; 1 not run: cancelled")

    data = json.loads(render_json(report))
    assert data["scenarios"][0]["not_run"][0]["reason"] == "run cancelled before this call was placed"
    assert read_json(render_json(report)) == report
    page = render_html(report)
    assert "order#3" in page and "1 not run: cancelled" in page


def test_a_run_that_stopped_placing_calls_says_why_each_was_skipped() -> None:
    report = cancelled_report(stopped="No more calls were placed: ElevenLabs API error (404): agent not found")
    (item,) = report.scenarios[0].not_run
    assert item.cause == "stopped"
    assert item.reason == (
        "run stopped before this call was placed (No more calls were placed: ElevenLabs API error (404): "
        "agent not found)"
    )
    assert report.scenarios[0].not_run_summary() == "1 not run: the run stopped placing calls"
    skipped = ET.fromstring(render_junit(report).encode()).find(".//skipped")
    assert skipped is not None and "agent not found" in (skipped.get("message") or "")


def test_json_carries_the_full_transcript_and_the_run_settings() -> None:
    suite = load_suite(SUITE, "pizza.yaml")
    planned = suite.planned_calls(only=["hours"])[0]
    long_text = "We are open " + "every day " * 60 + "until 10pm."
    turns = [
        Turn(speaker="business", text="Press 2 for hours.", time_in_call_secs=1),
        # A tool-only turn: no text, just the keypad press.
        Turn(
            speaker="caller",
            text=None,
            time_in_call_secs=3,
            tool_calls=[ToolCall(name="keypad", kind="keypad", keys="2", status="succeeded")],
        ),
        Turn(speaker="business", text=long_text, time_in_call_secs=5),
    ]
    evidence = CallEvidence(
        state=CallState.COMPLETED,
        call_id="c9",
        turns=turns,
        analysis=Analysis(call_successful="success", summary="Hours given."),
        facts=CallFacts(duration_secs=12, call_result="answered", termination_reason="end_call tool was called."),
    )
    result = run_result(planned, evidence, offline_verdict(evidence, planned.expectations))
    report = build_report(
        suite, [result], started_at=STARTED, only=["hours"], run_id="run_42", concurrency=3, rate_per_min=10.0
    )
    data = json.loads(render_json(report))
    assert (data["run_id"], data["concurrency"], data["rate_per_min"]) == ("run_42", 3, 10.0)
    run = data["scenarios"][0]["runs"][0]
    assert [t["speaker"] for t in run["transcript"]] == ["business", "caller", "business"]
    assert run["transcript"][1]["text"] is None
    assert run["transcript"][1]["tool_calls"][0]["keys"] == "2"
    assert run["transcript"][2]["text"] == long_text  # untruncated
    assert len(run["transcript_excerpt"]) == 2 and run["transcript_excerpt"][1]["text"] != long_text
    assert run["analysis"]["summary"] == "Hours given."
    assert run["facts"]["termination_reason"] == "end_call tool was called."
    assert read_json(render_json(report)) == report
    # JUnit keeps an excerpt: the long turn is cut there.
    out = ET.fromstring(render_junit(report).encode()).findtext(".//system-out") or ""
    assert long_text not in out and "transcript excerpt (2 of 3 turns)" in out


def test_notes_reach_every_report_and_missing_figures_have_no_unit() -> None:
    suite = load_suite(SUITE, "pizza.yaml")
    planned = suite.planned_calls(only=["hours"])[0]
    evidence = CallEvidence(state=CallState.FAILED, call_id="c7")
    result = run_result(
        planned,
        evidence,
        offline_verdict(evidence, planned.expectations),
        note="ElevenLabs API error (500):\nAn internal error occurred.",
        overrides_not_sent=["agent.language", "tts.voice_id"],
    )
    assert result.notes == [
        "ElevenLabs API error (500): An internal error occurred.",
        "not sent (the agent does not allow overriding them): agent.language, tts.voice_id",
    ]
    report = build_report(suite, [result], started_at=STARTED, only=["hours"])
    out = ET.fromstring(render_junit(report).encode()).findtext(".//system-out") or ""
    lines = out.splitlines()
    assert "duration: unknown" in lines and "first response: none" in lines
    assert "note: not sent (the agent does not allow overriding them): agent.language, tts.voice_id" in lines
    assert "note: ElevenLabs API error (500): An internal error occurred." in lines
    data = json.loads(render_json(report))
    assert data["scenarios"][0]["runs"][0]["overrides_not_sent"] == ["agent.language", "tts.voice_id"]
    assert data["scenarios"][0]["runs"][0]["notes"] == result.notes
    assert "agent.language, tts.voice_id" in render_html(report)


def test_known_figures_keep_their_unit() -> None:
    _, report = make_report()
    out = ET.fromstring(render_junit(report).encode()).findall(".//system-out")[1].text or ""
    assert "duration: 55 s" in out.splitlines() and "first response: 5.5 s" in out.splitlines()


def test_long_wide_scenario_names_are_squeezed_into_the_chart_labels() -> None:
    from callcheck.reports.html import LABEL_W, _label

    wide = _label(0, "WHAT-MOM-WANTS-WHEN-WE-MEET-AGAIN")
    assert f'textLength="{LABEL_W - 12}"' in wide and "<title>WHAT-MOM-WANTS-WHEN-WE-MEET-AGAIN</title>" in wide
    assert "textLength" not in _label(0, "order")


def test_cost_ring_time_and_upstream_errors_reach_the_reports() -> None:
    suite = load_suite(SUITE, "pizza.yaml")
    planned = suite.planned_calls(only=["hours"])[0]
    facts = CallFacts(
        start_time_unix_secs=100,
        accepted_time_unix_secs=104,
        cost=12,
        cost_usd=0.0021,
        error_code=1011,
        error_reason="Internal error",
        warnings=["The LLM was slow."],
    )
    evidence = CallEvidence(state=CallState.FAILED, call_id="c8", facts=facts)
    result = run_result(planned, evidence, offline_verdict(evidence, planned.expectations))
    assert (result.time_to_answer_s, result.cost_credits, result.cost_usd) == (4.0, 12, 0.0021)
    assert result.notes == ["ElevenLabs reported error 1011: Internal error", "ElevenLabs warning: The LLM was slow."]
    report = build_report(suite, [result], started_at=STARTED, only=["hours"])
    lines = (ET.fromstring(render_junit(report).encode()).findtext(".//system-out") or "").splitlines()
    assert "time to answer: 4 s" in lines and "cost: $0.0021, 12 credits" in lines
    assert "note: ElevenLabs reported error 1011: Internal error" in lines
    html = render_html(report)
    assert "answered after 4 s" in html and "$0.0021" in html and "ElevenLabs warning: The LLM was slow." in html
    assert json.loads(render_json(report))["scenarios"][0]["runs"][0]["cost_usd"] == 0.0021
