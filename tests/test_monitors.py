"""Monitors end to end in-process: a real app (its scheduler and DBOS workers), the sandbox over real HTTP, real
alert receivers on loopback (HTTP for the webhook and Slack formats, aiosmtpd for email), SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from callcheck.jobs.monitors import MonitorScheduler, claim
from callcheck.jobs.workflows import versioned
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.receivers import HttpReceiver, SmtpReceiver

SECRET = "alert-secret-for-tests-0123456789"


def suite(number: str, name: str = "pizza-line") -> dict[str, Any]:
    """A one-scenario suite that passes on +15550100001 and fails on +15550100002 (never understood)."""
    return {
        "name": name,
        "business": "We are Pizza Palace, a pizza restaurant that takes orders.",
        "number": number,
        "scenarios": [{"name": "order", "goal": "order a large pepperoni pizza", "expect": [{"outcome": "success"}]}],
    }


FAILING = suite("+15550100002")
PASSING = suite("+15550100001")


async def wait_until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60) -> Any:
    """Poll `check` until it returns something truthy (and return it), or fail saying `what` never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver(fail_first={"/flaky": 2}) as running:
        yield running


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as running:
        yield running


def monitor_settings(sandbox: SandboxServer, tmp_path: Path, smtp: SmtpReceiver | None = None, **extra: Any) -> Any:
    values: dict[str, Any] = {
        "monitor_tick_s": 0.2,
        "alert_attempts": 3,
        "alert_backoff_s": 0.1,
        "alert_webhook_secret": SECRET,
        "public_url": "http://callcheck.example",
    }
    if smtp is not None:
        values.update(
            smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="callcheck@example.com", smtp_starttls=False
        )
    values.update(extra)
    return settings_for(sandbox, tmp_path, **values)


async def finished_runs(api: httpx.AsyncClient, name: str) -> list[dict[str, Any]]:
    detail = (await api.get(f"/api/monitors/{name}")).json()
    return [r for r in detail["runs"] if r["state"] not in ("running", "cancelling")]


async def test_a_failing_line_alerts_once_per_channel_and_recovers_once(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any, receiver: HttpReceiver, smtp: SmtpReceiver
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path, smtp))
    created = await api.post(
        "/api/monitors",
        json={
            "suite": FAILING,
            "name": "pizza",
            "every": "10s",
            "alerts": [
                {"kind": "webhook", "target": f"{receiver.url}/hook"},
                {"kind": "slack", "target": f"{receiver.url}/slack/T000/B000/secretpart"},
                {"kind": "email", "target": "oncall@example.com"},
            ],
        },
    )
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["every_s"] == 10 and view["calls_per_day"] == 8640.0
    # Alert URLs are cut to their host wherever they are shown: a Slack webhook's path is its secret.
    assert all("secretpart" not in a["target"] for a in view["alerts"])
    assert "secretpart" not in (await api.get("/api/monitors")).text

    # The first slot runs at once, fails, and alerts on every channel.
    await wait_until(lambda: _status(api, "pizza", "failing"), "the monitor turned failing")
    await wait_until(lambda: _delivered(api, "pizza", 3), "three alerts delivered")
    # A second failing run (the next slot) changes nothing and sends nothing more.
    await wait_until(lambda: _runs_at_least(api, "pizza", 2), "a second finished run")
    assert len(receiver.posts("/hook")) == 1
    assert len(receiver.posts("/slack/T000/B000/secretpart")) == 1
    assert len(smtp.messages) == 1

    alert = receiver.posts("/hook")[0]
    body = alert.json()
    assert body["event"] == "monitor.alert" and body["status"] == "failing" and body["previous_status"] == "pending"
    assert body["monitor"]["name"] == "pizza"
    assert body["monitor"]["url"] == "http://callcheck.example/monitors/pizza"
    run_id = body["run"]["id"]
    assert body["run"]["url"] == f"http://callcheck.example/runs/{run_id}"
    [scenario] = body["failing_scenarios"]
    assert scenario["name"] == "order"
    first = scenario["first_failure"]
    assert first["assertion"] == "outcome" and first["evidence"]
    assert first["call_url"] == f"http://callcheck.example/calls/{first['call_id']}"
    # Signed: t=<unix>,v1=HMAC-SHA256(secret, "<t>.<body>")
    parts = dict(p.split("=", 1) for p in alert.headers["x-callcheck-signature"].split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + alert.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    slack = receiver.posts("/slack/T000/B000/secretpart")[0].json()
    assert slack["text"] == "callcheck monitor pizza is failing"
    assert [b["type"] for b in slack["blocks"]][:2] == ["header", "section"]
    assert "order" in json.dumps(slack["blocks"])
    assert "x-callcheck-signature" not in receiver.posts("/slack/T000/B000/secretpart")[0].headers
    email = smtp.messages[0]
    assert email["Subject"] == "[callcheck] pizza is failing"
    assert email["To"] == "oncall@example.com" and email["From"] == "callcheck@example.com"
    assert f"http://callcheck.example/runs/{run_id}" in email.get_payload()

    # The line is fixed (the monitor's suite now calls a passing number): one recovery on each channel.
    patched = await api.patch("/api/monitors/pizza", json={"suite": PASSING})
    assert patched.status_code == 200, patched.text
    await wait_until(lambda: _status(api, "pizza", "passing"), "the monitor recovered")
    await wait_until(lambda: _delivered(api, "pizza", 6), "three recoveries delivered")
    recovery = [r.json() for r in receiver.posts("/hook")]
    assert [r["event"] for r in recovery] == ["monitor.alert", "monitor.recovery"]
    assert recovery[1]["status"] == "passing" and recovery[1]["previous_status"] == "failing"
    assert recovery[1]["failing_scenarios"] == []
    assert [m["Subject"] for m in smtp.messages] == ["[callcheck] pizza is failing", "[callcheck] pizza has recovered"]
    # ... and nothing more while it keeps passing.
    count = len(await finished_runs(api, "pizza"))
    await wait_until(lambda: _runs_at_least(api, "pizza", count + 1), "another finished run")
    assert len(receiver.posts("/hook")) == 2 and len(smtp.messages) == 2
    assert len(receiver.posts("/slack/T000/B000/secretpart")) == 2
    detail = (await api.get("/api/monitors/pizza")).json()
    assert {(d["kind"], d["channel"], d["outcome"], d["attempts"]) for d in detail["deliveries"]} == {
        (kind, channel, "delivered", 1) for kind in ("alert", "recovery") for channel in ("webhook", "slack", "email")
    }
    # Runs of a monitor are ordinary runs: in the history, with their report and calls.
    run = (await api.get(f"/api/runs/{run_id}")).json()
    assert run["report"]["scenarios"][0]["status"] == "fail"
    assert run["items"][0]["call_state"] == "completed"
    assert (await api.get("/api/runs")).json()["runs"]


async def _status(api: httpx.AsyncClient, name: str, status: str) -> bool:
    return bool((await api.get(f"/api/monitors/{name}")).json()["status"] == status)


async def _delivered(api: httpx.AsyncClient, name: str, count: int) -> bool:
    deliveries = (await api.get(f"/api/monitors/{name}")).json()["deliveries"]
    return sum(1 for d in deliveries if d["outcome"] == "delivered") >= count


async def _runs_at_least(api: httpx.AsyncClient, name: str, count: int) -> bool:
    return len(await finished_runs(api, name)) >= count


async def test_failed_deliveries_are_retried_with_backoff_and_recorded(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any, receiver: HttpReceiver
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path))
    created = await api.post(
        "/api/monitors",
        json={
            "suite": FAILING,
            "name": "retries",
            "every": "1h",
            "alerts": [
                {"kind": "webhook", "target": f"{receiver.url}/flaky"},
                {"kind": "webhook", "target": f"{receiver.url}/dead"},
                {"kind": "email", "target": "nobody@example.com"},  # no SMTP server configured
            ],
        },
    )
    assert created.status_code == 201, created.text

    async def settled() -> list[dict[str, Any]]:
        deliveries = (await api.get("/api/monitors/retries")).json()["deliveries"]
        return deliveries if len(deliveries) == 3 and all(d["outcome"] != "pending" for d in deliveries) else []

    deliveries = await wait_until(settled, "every delivery settled")
    by_target = {(d["channel"], d["outcome"], d["attempts"]) for d in deliveries}
    assert by_target == {("webhook", "delivered", 3), ("webhook", "failed", 3), ("email", "failed", 3)}
    errors = sorted(d["last_error"] or "" for d in deliveries)
    assert errors[0] == ""
    assert "HTTP 500" in errors[2] or "HTTP 500" in errors[1]
    assert any("CALLCHECK_SMTP_HOST" in e for e in errors)
    assert len(receiver.posts("/flaky")) == 3 and len(receiver.posts("/dead")) == 3
    # The retried message is the same message.
    assert len({r.body for r in receiver.posts("/flaky")}) == 1


async def test_a_slot_runs_once_and_is_skipped_while_the_previous_run_runs(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    # The background scheduler ticks once at start (nothing to do), then not for a minute: this test drives ticks.
    api = await client_for(monitor_settings(sandbox, tmp_path, monitor_tick_s=60))
    services = api.callcheck_app.state.services
    slow = suite("+15550119999")  # rings for 9999 simulated seconds: the run stays running
    created = await api.post("/api/monitors", json={"suite": slow, "name": "slow", "every": "10s"})
    assert created.status_code == 201
    monitor = await services.store.monitors.get("slow")
    scheduler = MonitorScheduler(services)
    now = time.time()
    first = await scheduler.tick(now)
    again = await scheduler.tick(now)  # before or after the claim: the same workflow, never a second run
    assert first and set(again) <= set(first)
    slot = (int(now) // 10) * 10
    run = await wait_until(lambda: services.store.monitors.run_for_slot(monitor.id, slot), "the slot's run")
    # Claiming the same slot again (a second process, a re-run step) finds the same run.
    assert (await claim(services, monitor.id, slot, False))["run_id"] == run.id
    # Two claims of a new slot at the same moment (two servers on one database): one run, found by both.
    other = await services.store.monitors.create(
        name="other", suite_text=json.dumps(slow), source_name="t", suite_name="slow", calls_per_run=1,
        every_s=10, cron=None, timezone="UTC", concurrency=1, alert_after=1, channels=[], paused=True,
    )  # fmt: skip
    both = await asyncio.gather(claim(services, other.id, slot, True), claim(services, other.id, slot, True))
    assert both[0]["run_id"] == both[1]["run_id"] is not None
    [only] = await services.store.monitors.runs_of(other.id)
    await services.store.runs.request_cancel(only.id)
    # The next slot comes while that run still runs: skipped, not queued.
    await scheduler.tick(now + 10)
    await wait_until(
        lambda: _skipped(services, "slow", 1),
        "the next slot recorded as skipped",
    )
    assert await services.store.monitors.run_for_slot(monitor.id, slot + 10) is None
    assert [r.id for r in await services.store.monitors.runs_of(monitor.id)] == [run.id]
    # Run-now while it runs is refused with a clear error.
    refused = await api.post("/api/monitors/slow/run")
    assert refused.status_code == 409 and "still running" in refused.json()["error"]
    await services.store.runs.request_cancel(run.id)


async def _skipped(services: Any, name: str, count: int) -> bool:
    monitor = await services.store.monitors.get(name)
    return bool(monitor.skipped_slots >= count)


async def test_paused_monitors_do_not_run_but_run_now_does(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path))
    created = await api.post("/api/monitors", json={"suite": PASSING, "name": "quiet", "every": "1h", "paused": True})
    assert created.status_code == 201 and created.json()["badge"] == "paused" and created.json()["next_run_at"] is None
    services = api.callcheck_app.state.services
    assert await MonitorScheduler(services).tick(time.time()) == []
    asked = await api.post("/api/monitors/quiet/run")
    assert asked.status_code == 202 and asked.json()["run_requested"] is True
    await wait_until(lambda: _status(api, "quiet", "passing"), "the requested run passed")
    detail = (await api.get("/api/monitors/quiet")).json()
    assert len(detail["runs"]) == 1 and detail["run_requested"] is False and detail["paused"] is True
    resumed = await api.patch("/api/monitors/quiet", json={"paused": False})
    assert resumed.json()["paused"] is False and resumed.json()["next_run_at"]


async def test_monitor_api_refuses_bad_input_with_clear_errors(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path, monitor_tick_s=60))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"suite": PASSING, "every": "5s"}, "at least 10 s"),
        ({"suite": PASSING, "every": "often"}, "Cannot read the period"),
        ({"suite": PASSING}, "Give a schedule"),
        ({"suite": PASSING, "every": "1m", "cron": "* * * * *"}, "not both"),
        ({"suite": PASSING, "cron": "61 * * * *"}, "Cannot read the cron expression"),
        ({"suite": PASSING, "cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "Unknown time zone"),
        ({"suite": PASSING, "cron": "0 9 * * *", "timezone": "x" * 5000}, "Unknown time zone"),
        ({"suite": PASSING, "cron": "0 9 31 2 *"}, "never matches"),
        ({"suite": PASSING, "every": "1m", "name": "has space"}, "monitor name"),
        ({"suite": PASSING, "every": "1m", "alerts": [{"kind": "pager", "target": "x"}]}, "Unknown alert channel"),
        (
            {"suite": PASSING, "every": "1m", "alerts": [{"kind": "webhook", "target": "ftp://x"}]},
            "http:// or https://",
        ),
        ({"suite": PASSING, "every": "1m", "alerts": [{"kind": "email", "target": "nobody"}]}, "not an email"),
        ({"suite": PASSING, "every": "1m", "after": 0}, "after must be"),
        ({"suite": {"scenarios": []}, "every": "1m"}, "problem"),
        ({"every": "1m"}, "suite is required"),
        ({"suite": PASSING, "every": "1m", "colour": "red"}, "Unknown field"),
    ]
    for body, message in cases:
        answer = await api.post("/api/monitors", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert message in answer.json()["error"], (body, answer.json())
    assert (await api.post("/api/monitors", json={"suite": PASSING, "every": "1m"})).status_code == 201
    duplicate = await api.post("/api/monitors", json={"suite": PASSING, "every": "1m"})
    assert duplicate.status_code == 409 and "pizza-line" in duplicate.json()["error"]
    assert (await api.get("/api/monitors/nope")).status_code == 404
    assert (await api.patch("/api/monitors/nope", json={"paused": True})).status_code == 404
    assert (await api.delete("/api/monitors/nope")).status_code == 404
    assert (await api.patch("/api/monitors/pizza-line", json={"paused": "yes"})).status_code == 400
    assert (await api.patch("/api/monitors/pizza-line", json={"colour": 1})).status_code == 400
    bad_compare = await api.get("/api/compare", params={"a": "x", "b": "y"})
    assert bad_compare.status_code == 404 and bad_compare.json()["error"]
    assert (await api.post("/api/monitors/pizza-line/test-alert")).status_code == 400  # no channel to test
    assert (await api.delete("/api/monitors/pizza-line")).json() == {"deleted": "pizza-line"}
    assert (await api.get("/api/monitors")).json() == {"monitors": []}


async def test_metrics_parse_and_badges_tell_the_status(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any, receiver: HttpReceiver
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path))
    alerts = [{"kind": "webhook", "target": f"{receiver.url}/hook"}]
    await api.post("/api/monitors", json={"suite": FAILING, "name": "red", "every": "1h", "alerts": alerts})
    await api.post("/api/monitors", json={"suite": PASSING, "name": "green", "every": "1h"})
    await api.post("/api/monitors", json={"suite": PASSING, "name": "sleepy", "every": "1h", "paused": True})
    await wait_until(lambda: _status(api, "red", "failing"), "red failing")
    await wait_until(lambda: _status(api, "green", "passing"), "green passing")
    await wait_until(lambda: _delivered(api, "red", 1), "red's alert delivered")

    answer = await api.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    assert {
        "callcheck_calls",
        "callcheck_runs",
        "callcheck_scenario_verdicts",
        "callcheck_call_verdicts",
        "callcheck_monitor_status",
        "callcheck_upstream_errors",
        "callcheck_webhooks_received",
        "callcheck_alert_deliveries",
        "callcheck_queue_depth",
    } <= set(families)
    current = {
        s.labels["monitor"]: s.labels["status"] for s in families["callcheck_monitor_status"].samples if s.value == 1
    }
    assert current == {"red": "failing", "green": "passing", "sleepy": "paused"}
    calls = {s.labels["state"]: s.value for s in families["callcheck_calls"].samples}
    assert calls["completed"] >= 2
    verdicts = {s.labels["verdict"]: s.value for s in families["callcheck_scenario_verdicts"].samples}
    assert verdicts["pass"] >= 1 and verdicts["fail"] >= 1
    delivered = {
        (s.labels["channel"], s.labels["outcome"]): s.value for s in families["callcheck_alert_deliveries"].samples
    }
    assert delivered[("webhook", "delivered")] == 1

    for name, word, colour in (
        ("red", "failing", "#e05d44"),
        ("green", "passing", "#4c1"),
        ("sleepy", "paused", "#9f9f9f"),
    ):
        badge = await api.get(f"/badge/monitors/{name}.svg")
        assert badge.status_code == 200 and badge.headers["content-type"] == "image/svg+xml"
        assert f">{word}</text>" in badge.text and colour in badge.text and f">{name}</text>" in badge.text
        assert badge.headers["cache-control"] == "no-cache, max-age=0"
    missing = await api.get("/badge/monitors/none.svg")
    assert missing.status_code == 404 and missing.json()["error"]


async def test_trends_and_compare_read_the_monitors_runs(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path))
    await api.post("/api/monitors", json={"suite": FAILING, "name": "t", "every": "1h"})
    await wait_until(lambda: _runs_at_least(api, "t", 1), "the first run")
    await api.patch("/api/monitors/t", json={"suite": PASSING})
    await api.post("/api/monitors/t/run")
    await wait_until(lambda: _runs_at_least(api, "t", 2), "the second run")
    trends = (await api.get("/api/monitors/t/trends")).json()
    assert [p["passed"] for p in trends["overall"]] == [False, True]
    assert [p["figures"]["pass_rate"] for p in trends["overall"]] == [0.0, 1.0]
    assert all(p["figures"]["first_answer_p50_s"] is not None for p in trends["overall"])
    assert list(trends["scenarios"]) == ["order"]
    first, second = (p["run_id"] for p in trends["overall"])
    result = (await api.get("/api/compare", params={"a": first, "b": second})).json()
    assert [(s["name"], s["a_status"], s["b_status"]) for s in result["flipped"]] == [("order", "fail", "pass")]
    pass_rate = next(f for f in result["figures"] if f["name"] == "pass_rate")
    assert (pass_rate["a"], pass_rate["b"], pass_rate["delta"]) == (0.0, 1.0, 1.0)


async def test_cron_slots_fire_on_their_match_and_late_ones_are_skipped(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    api = await client_for(monitor_settings(sandbox, tmp_path, monitor_tick_s=60))  # this test drives the ticks
    services = api.callcheck_app.state.services
    created = await api.post("/api/monitors", json={"suite": PASSING, "name": "cron", "cron": "*/5 * * * *"})
    assert created.status_code == 201 and created.json()["calls_per_day"] == 288
    monitor = await services.store.monitors.get("cron")
    scheduler = MonitorScheduler(services)
    now = time.time()
    assert await scheduler.tick(now) == []  # a new cron monitor waits for its next match
    upcoming = monitor.schedule.next_slot(now)
    assert upcoming % 300 == 0
    assert await scheduler.tick(upcoming + 1) == [versioned(f"monitor-{monitor.id}-{upcoming}")]
    run = await wait_until(lambda: services.store.monitors.run_for_slot(monitor.id, upcoming), "the cron slot's run")
    await wait_until(lambda: _status(api, "cron", "passing"), "the cron run passed")
    # The newest match found 150 s late (no server was running then): skipped, not run; the ones before it are
    # not made up for.
    assert await scheduler.tick(upcoming + 900 + 150) == []
    fresh = await services.store.monitors.get("cron")
    assert fresh.skipped_slots == 1 and fresh.last_slot == upcoming + 900
    assert [r.id for r in await services.store.monitors.runs_of(monitor.id)] == [run.id]
