"""The pure part of monitors: schedules and slots, when a state change alerts, alert messages, trends, comparisons."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from callcheck.domain.alerts import alert_message, email_message, signature, slack_message
from callcheck.domain.monitoring import (
    AlertKind,
    MonitorStatus,
    after_run,
    calls_per_day_sentence,
    check_channel,
    name_from,
    parse_every,
    schedule_from,
    shown_target,
)
from callcheck.domain.trends import compare_reports, figures_of, format_delta, format_figure, percentile, trends_of
from callcheck.errors import InvalidInput

# Monday 2026-11-30 12:00:00 UTC
MONDAY_NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10), ("15m", 900), ("2h", 7200), ("600", 600), (" 90 sec ", 90), ("5MIN", 300)],
)
def test_periods_read_in_seconds_minutes_and_hours(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize(("text", "message"), [("9s", "at least 10 s"), ("1d", "Cannot read"), ("", "Cannot read")])
def test_bad_periods_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_every(text)


def test_every_slots_sit_on_multiples_of_the_period() -> None:
    schedule = schedule_from("15m", None, None)
    assert schedule.latest_slot(MONDAY_NOON + 899) == MONDAY_NOON
    assert schedule.next_slot(MONDAY_NOON + 1) == MONDAY_NOON + 900
    # A new monitor (no slot yet) runs its current slot at once; a claimed slot is not due again.
    assert schedule.due(None, MONDAY_NOON + 5) == (MONDAY_NOON, False)
    assert schedule.due(int(MONDAY_NOON), MONDAY_NOON + 899) == (None, False)
    assert schedule.due(int(MONDAY_NOON), MONDAY_NOON + 900) == (MONDAY_NOON + 900, False)
    # Down for hours: only the newest slot is due, once (no pile-up), and an `every` slot is never "late".
    assert schedule.due(int(MONDAY_NOON), MONDAY_NOON + 4 * 3600 + 60) == (MONDAY_NOON + 4 * 3600, False)
    assert schedule.runs_per_day(MONDAY_NOON) == 96


def test_cron_slots_follow_the_expression_in_its_time_zone_and_late_ones_are_skipped() -> None:
    business_hours = schedule_from(None, "*/30 8-20 * * 1-5", "UTC")
    assert business_hours.latest_slot(MONDAY_NOON + 60) == MONDAY_NOON
    assert business_hours.latest_slot(MONDAY_NOON) == MONDAY_NOON
    assert business_hours.next_slot(MONDAY_NOON) == MONDAY_NOON + 1800
    assert business_hours.due(int(MONDAY_NOON) - 1800, MONDAY_NOON + 30) == (MONDAY_NOON, False)
    # A server started at 23:00 finds the 20:30 slot: too late to call a line that keeps business hours.
    night = MONDAY_NOON + 11 * 3600
    assert business_hours.due(int(MONDAY_NOON), night) == (MONDAY_NOON + 8 * 3600 + 1800, True)
    # 26 slots a weekday, 5 days out of 7.
    assert business_hours.runs_per_day(MONDAY_NOON) == pytest.approx(26 * 5 / 7)
    assert schedule_from(None, "* * * * *", None).runs_per_day(MONDAY_NOON) == 1440
    assert schedule_from(None, "0 9 1,15 * *", None).runs_per_day(MONDAY_NOON) == pytest.approx(2 / 30.44)
    assert schedule_from(None, "0 */6 * 1-6 *", None).runs_per_day(MONDAY_NOON) == 2
    paris = schedule_from(None, "0 9 * * *", "Europe/Paris")
    assert datetime.fromtimestamp(paris.next_slot(MONDAY_NOON), UTC).hour == 8  # 09:00 in Paris is 08:00 UTC
    assert paris.describe() == 'cron "0 9 * * *" (Europe/Paris)'


def test_calls_per_day_are_said_plainly() -> None:
    assert calls_per_day_sentence(schedule_from("15m", None, None), 3, MONDAY_NOON) == (
        "This schedule places up to 288 calls a day (96 runs of 3 calls)."
    )
    assert calls_per_day_sentence(schedule_from(None, "0 9 * * 1-5", None), 1, MONDAY_NOON) == (
        "This schedule places up to 1 call a day (about 0.7 runs of 1 call)."
    )


def test_state_changes_alert_once_and_only_after_n_failures() -> None:
    s = MonitorStatus
    # The first run failing alerts; further failures do not.
    first = after_run(s.PENDING, 0, False, 1)
    assert (first.status, first.consecutive_failures, first.alert) == (s.FAILING, 1, AlertKind.ALERT)
    again = after_run(s.FAILING, 1, False, 1)
    assert (again.status, again.alert) == (s.FAILING, None)
    recovered = after_run(s.FAILING, 2, True, 1)
    assert (recovered.status, recovered.consecutive_failures, recovered.alert) == (s.PASSING, 0, AlertKind.RECOVERY)
    steady = after_run(s.PASSING, 0, True, 1)
    assert steady.alert is None
    # --after 3: two failures keep it passing, the third alerts; a pass in between starts the count again.
    one = after_run(s.PASSING, 0, False, 3)
    two = after_run(one.status, one.consecutive_failures, False, 3)
    assert (two.status, two.alert) == (s.PASSING, None)
    three = after_run(two.status, two.consecutive_failures, False, 3)
    assert (three.status, three.alert) == (s.FAILING, AlertKind.ALERT)
    reset = after_run(s.PASSING, 2, True, 3)
    assert reset.consecutive_failures == 0 and reset.alert is None
    # The first run passing is no recovery.
    assert after_run(s.PENDING, 0, True, 1).alert is None


def test_channels_are_checked_and_shown_without_their_secret_path() -> None:
    slack = check_channel("slack", " https://hooks.slack.com/services/T0/B0/XXXXSECRET ")
    assert slack == {"kind": "slack", "target": "https://hooks.slack.com/services/T0/B0/XXXXSECRET"}
    assert shown_target(slack) == "https://hooks.slack.com/…"
    assert shown_target(check_channel("webhook", "http://127.0.0.1:9000/x?token=1")) == "http://127.0.0.1:9000/…"
    assert shown_target(check_channel("email", "ops@example.com")) == "ops@example.com"
    with pytest.raises(InvalidInput):
        check_channel("email", "ops@example")
    assert name_from("Pizza line!") == "Pizza-line"
    assert name_from("¡¡") == "monitor"


REPORT: dict[str, Any] = {
    "passed": False,
    "scenarios": [
        {
            "name": "order",
            "status": "fail",
            "stats": {"rate": 0.5, "required": 1.0},
            "runs": [
                {
                    "call_id": "c1",
                    "state": "completed",
                    "status": "pass",
                    "first_response_s": 2.0,
                    "duration_s": 30.0,
                    "facts": {"cost": 0.1},
                    "verdict": {"passed": True, "results": [{"kind": "outcome", "status": "pass"}]},
                },
                {
                    "call_id": "c2",
                    "state": "completed",
                    "status": "fail",
                    "first_response_s": 4.0,
                    "duration_s": 50.0,
                    "facts": {"cost": 0.2},
                    "verdict": {
                        "passed": False,
                        "results": [
                            {"kind": "final_state", "status": "pass"},
                            {"kind": "outcome", "expected": "success", "status": "fail", "evidence": "failure"},
                            {"kind": "says", "expected": "order", "status": "fail", "evidence": "never said"},
                        ],
                    },
                },
            ],
        },
        {"name": "hours", "status": "pass", "stats": {"rate": 1.0}, "runs": [{"call_id": "c3", "status": "pass"}]},
    ],
}


def test_an_alert_names_the_failing_scenarios_first_failing_assertion_and_links() -> None:
    sent = datetime(2026, 12, 1, tzinfo=UTC)
    message = alert_message(
        kind=AlertKind.ALERT,
        monitor={"name": "pizza", "status": "failing", "previous_status": "passing", "consecutive_failures": 1},
        run={"id": "r1", "state": "completed", "exit_code": 1, "report": REPORT, "simulated": True},
        base_url="https://cc.example/",
        sent_at=sent,
    )
    assert message["event"] == "monitor.alert" and message["run"]["url"] == "https://cc.example/runs/r1"
    [order] = message["failing_scenarios"]
    assert order["first_failure"] == {
        "call_id": "c2",
        "call_url": "https://cc.example/calls/c2",
        "assertion": "outcome",
        "expected": "success",
        "evidence": "failure",
        "detail": "",
    }
    assert [c["id"] for c in order["calls"]] == ["c1", "c2"]
    slack = slack_message(message)
    assert slack["text"] == "callcheck monitor pizza is failing"
    assert "<https://cc.example/runs/r1|run r1>" in str(slack["blocks"])
    subject, body = email_message(message)
    assert subject == "[callcheck] pizza is failing"
    assert "order: fail — outcome expected success; failure" in body and "SIMULATED" in body
    # Without a public URL, links are paths on this server.
    local = alert_message(
        kind=AlertKind.RECOVERY, monitor={"name": "p", "status": "passing"}, run=None, base_url="", sent_at=sent
    )
    assert local["monitor"]["url"] == "/monitors/p" and local["failing_scenarios"] == []


def test_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    value = signature("k", 1700000000, b'{"a":1}')
    assert value == "t=1700000000,v1=" + hmac.new(b"k", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()


def test_figures_trends_and_comparisons() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 95) == pytest.approx(3.85)
    figures = figures_of(REPORT["scenarios"][0]["runs"])
    assert figures["pass_rate"] == 0.5 and figures["first_answer_p50_s"] == 3.0
    assert figures["cost"] == pytest.approx(0.3) and figures["duration_p50_s"] == 40.0
    runs: list[dict[str, Any]] = [
        {"id": "a", "created_at": "2026-12-01T10:00:00+00:00", "state": "completed", "exit_code": 1, "report": REPORT},
        {"id": "b", "created_at": "2026-12-01T10:10:00+00:00", "state": "running", "exit_code": None, "report": None},
    ]
    trends = trends_of(runs)
    assert [p.run_id for p in trends.overall] == ["a"]  # an unfinished run is no point yet
    assert trends.overall[0].passed is False and set(trends.scenarios) == {"order", "hours"}
    better = {
        "passed": True,
        "scenarios": [
            {**REPORT["scenarios"][0], "status": "pass", "runs": [REPORT["scenarios"][0]["runs"][0]]},
            {"name": "new", "status": "pass", "runs": []},
        ],
    }
    result = compare_reports(REPORT, better)
    assert [(s["name"], s["a_status"], s["b_status"]) for s in result["flipped"]] == [("order", "fail", "pass")]
    assert result["added"] == ["new"] and result["removed"] == ["hours"]
    pass_rate = next(f for f in result["figures"] if f["name"] == "pass_rate")
    assert pass_rate["a"] == pytest.approx(2 / 3) and pass_rate["b"] == 1.0
    assert format_figure("pass_rate", 0.5) == "50%" and format_figure("duration_p50_s", None) == "—"
    assert format_delta("pass_rate", 0.25) == "+25 pts" and format_delta("first_answer_p50_s", -0.5) == "-0.5 s"
