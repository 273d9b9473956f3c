"""Suite runs against the sandbox: verdicts per assertion, concurrency cap, cancel, reports."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxServer, SteppedClock
from tests.conftest import settings_for

MIXED_SUITE: dict[str, Any] = {
    "business": "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery.",
    "number": "+15550100001",
    "defaults": {"expect": [{"final_state": "completed"}]},
    "scenarios": [
        {
            "name": "order",
            "goal": "order a large pepperoni pizza for delivery",
            "persona": {"name": "Maya", "tone": "friendly and brief", "language": "en"},
            "repeat": 2,
            "expect": [
                {"outcome": "success"},
                {"reached_human": False},
                {"transcript_contains": {"speaker": "caller", "text": "order a large pepperoni pizza"}},
                {"max_duration_s": 600},
                {"criterion": {"id": "goal_achieved", "result": "success"}},
            ],
        },
        {"name": "confused", "goal": "order a pizza", "number": "+15550100002", "expect": [{"outcome": "success"}]},
        {"name": "human", "goal": "order a pizza", "number": "+15550100003", "expect": [{"reached_human": False}]},
        {"name": "busy", "goal": "order a pizza", "number": "+15550100004", "expect": [{"final_state": "busy"}]},
        {"name": "no-answer", "goal": "order a pizza", "number": "+15550100005"},
        {"name": "ivr", "goal": "order a pizza", "number": "+15550100007", "expect": [{"keypad_sent": "2"}]},
        {"name": "judged", "goal": "order a pizza", "expect": [{"judge": "The business confirmed the order."}]},
    ],
}


async def wait_run(api: httpx.AsyncClient, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = (await api.get(f"/api/runs/{run_id}")).json()
        if run["state"] in {"completed", "cancelled", "failed"}:
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run did not finish: {run}")


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    return client


@pytest.fixture
async def stepped_api(client_for: Any, stepped_sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    """On a sandbox whose calls ring until the test moves its clock: a call is surely still in flight when the test
    acts (on the real clock, a 40-second ring is 0.8 s, which a loaded machine can let pass)."""
    client: httpx.AsyncClient = await client_for(settings_for(stepped_sandbox, tmp_path))
    return client


async def wait_item(api: httpx.AsyncClient, run_id: str, state: str, timeout: float = 30) -> None:
    """Until the run's first call is in `state`."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = (await api.get(f"/api/runs/{run_id}")).json()
        if run["items"][0]["call_state"] == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the first call never reached {state}: {run}")


async def test_mixed_suite_gives_the_right_verdict_for_each_assertion(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/runs", params={"concurrency": 3}, json=MIXED_SUITE)
    assert response.status_code == 202, response.text
    run = await wait_run(api, response.json()["id"])
    assert run["state"] == "completed" and run["exit_code"] == 1
    assert run["name"] == "We are Pizza Palace, a pizza restaurant that…"  # unnamed: after its business
    scenarios = {s["name"]: s for s in run["report"]["scenarios"]}

    def statuses(name: str, repeat: int = 0) -> dict[str, str]:
        results = scenarios[name]["runs"][repeat]["verdict"]["results"]
        return {r["kind"]: r["status"] for r in results}

    assert [r["display_name"] for r in scenarios["order"]["runs"]] == ["order", "order#2"]
    assert statuses("order") == {
        "final_state": "pass",
        "outcome": "pass",
        "reached_human": "pass",
        "transcript_contains": "pass",
        "max_duration_s": "pass",
        "criterion": "pass",
    }
    assert scenarios["order"]["status"] == "pass"
    assert statuses("confused") == {"final_state": "pass", "outcome": "fail"}
    assert statuses("human") == {"final_state": "pass", "reached_human": "fail"}
    # An assertion of a kind the scenario states replaces the default of that kind.
    assert statuses("busy") == {"final_state": "pass"}
    assert statuses("no-answer") == {"final_state": "fail"}
    assert statuses("ivr") == {"final_state": "pass", "keypad_sent": "pass"}
    # No judge configured: not evaluated, and so not passed.
    assert statuses("judged") == {"final_state": "pass", "judge": "not_evaluated"}
    assert scenarios["judged"]["status"] != "pass"
    # The persona shaped the caller: its prompt is the seed's with the persona added, language sent.
    call = (await api.get(f"/api/calls/{scenarios['order']['runs'][0]['call_id']}")).json()
    assert call["prompt"].startswith("You are simulating a real customer contacting the business below.")
    assert "Maya" in call["prompt"]
    assert call["first_message"] == "Hi, I'm calling because I'd like to order a large pepperoni pizza for delivery."


async def test_concurrency_cap_is_never_exceeded(api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("callcheck.store.repo.ID_BATCH", 2)  # a run's calls are read in several batches
    suite = {
        "business": "A pizza shop.",
        "number": "+15550100001",
        "scenarios": [
            {"name": "order", "goal": "order a pizza", "repeat": 5, "expect": [{"final_state": "completed"}]}
        ],
    }
    run = await wait_run(api, (await api.post("/api/runs", params={"concurrency": 2}, json=suite)).json()["id"])
    assert run["exit_code"] == 0
    assert run["counts"] == {"pending": 0, "active": 0, "done": 5, "skipped": 0}
    assert len({i["call_id"] for i in run["items"]}) == 5 and {i["call_state"] for i in run["items"]} == {"completed"}
    spans = []
    for item in run["items"]:
        call = (await api.get(f"/api/calls/{item['call_id']}")).json()
        events = [e for e in call["events"] if e["kind"] == "state"]
        spans.append((events[0]["at"], events[-1]["at"]))
    points = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans], key=lambda p: (p[0], p[1]))
    active = peak = 0
    for _, delta in points:
        active += delta
        peak = max(peak, active)
    assert peak == 2


async def test_rate_limit_spaces_the_dials(api: httpx.AsyncClient) -> None:
    suite = {
        "business": "A pizza shop.",
        "number": "+15550100004",
        "scenarios": [{"name": "busy", "goal": "order a pizza", "repeat": 3, "expect": [{"final_state": "busy"}]}],
    }
    created = await api.post("/api/runs", params={"concurrency": 3, "rate": 120}, json=suite)
    run = await wait_run(api, created.json()["id"])
    from datetime import datetime

    starts = []
    for item in run["items"]:
        call = (await api.get(f"/api/calls/{item['call_id']}")).json()
        starts.append(datetime.fromisoformat(call["events"][0]["at"]))
    starts.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.45  # 120 per minute: one every 0.5 s (timestamps are taken just before dialing)


async def test_cancel_places_no_new_call_and_reports_calls_in_flight(
    stepped_api: httpx.AsyncClient, clock: SteppedClock
) -> None:
    api = stepped_api
    suite = {
        "business": "A pizza shop.",
        "number": "+15550100001",
        "scenarios": [{"name": "slow", "goal": "order a pizza", "repeat": 4, "expect": [{"final_state": "completed"}]}],
    }
    created = (await api.post("/api/runs", params={"concurrency": 1}, json=suite)).json()
    await wait_item(api, created["id"], "ringing")  # and it rings until the clock moves
    cancelled = await api.delete(f"/api/runs/{created['id']}")
    assert cancelled.status_code == 202 and cancelled.json()["state"] == "cancelling"
    clock.advance(60)  # the call in flight ends
    run = await wait_run(api, created["id"])
    assert run["state"] == "cancelled"
    placed = [i for i in run["items"] if i["call_id"]]
    assert len(placed) == 1 and placed[0]["call_state"] == "completed"
    assert [i["status"] for i in run["items"]].count("skipped") == 3
    report = run["report"]
    assert report["cancelled"] is True and run["exit_code"] == 1
    assert [r["state"] for r in report["scenarios"][0]["runs"]] == ["completed"]
    again = await api.delete(f"/api/runs/{created['id']}")
    assert again.status_code == 409


async def test_malformed_suite_is_rejected_before_any_call(api: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    bad = {
        "business": "x",
        "number": "+15550100001",
        "scenarios": [{"name": "a", "goal": "g", "expect": [{"outcom": "success"}]}],
    }
    response = await api.post("/api/runs", json=bad)
    assert response.status_code == 400
    assert "scenarios[0].expect[0]" in response.json()["error"] and "outcom" in response.json()["error"]
    assert response.json()["error"].startswith("request body: ")  # no file was sent, none is named
    assert (
        httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": "/v1/convai/twilio/outbound-call"}).json() == []
    )
    assert (await api.get("/api/runs/nope")).status_code == 404


@pytest.mark.parametrize(
    "params", [{"rate": "inf"}, {"rate": "1e309"}, {"rate": "nan"}, {"rate": "0"}, {"rate": "1e-9"}, {"rate": "9e9"}]
)
async def test_unusable_rates_are_400_and_start_nothing(
    api: httpx.AsyncClient, sandbox: SandboxServer, params: dict[str, str]
) -> None:
    suite = {"business": "x", "number": "+15550100001", "scenarios": [{"name": "a", "goal": "g"}]}
    response = await api.post("/api/runs", params=params, json=suite)
    assert response.status_code == 400 and response.json()["error"].startswith("Invalid request: rate:")
    assert (await api.get("/api/runs")).json()["runs"] == []
    assert (
        httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": "/v1/convai/twilio/outbound-call"}).json() == []
    )


async def test_agent_gone_mid_run_stops_placing_and_fails_the_run(
    stepped_api: httpx.AsyncClient, stepped_sandbox: SandboxServer, clock: SteppedClock
) -> None:
    api, sandbox = stepped_api, stepped_sandbox
    suite = {
        "business": "A pizza shop.",
        "number": "+15550100001",
        "scenarios": [{"name": "slow", "goal": "order a pizza", "repeat": 3, "expect": [{"final_state": "completed"}]}],
    }
    created = (await api.post("/api/runs", params={"concurrency": 1}, json=suite)).json()
    # Placed and accepted upstream (not merely dialing), so the agent's removal cannot fail this call.
    await wait_item(api, created["id"], "ringing")
    # The agent is deleted while the first call is in flight: the next calls cannot be placed.
    httpx.delete(
        f"{sandbox.url}/v1/convai/agents/{sandbox.config.agent_id}", headers={"xi-api-key": sandbox.config.api_key}
    )
    clock.advance(60)  # the call in flight ends
    run = await wait_run(api, created["id"])
    assert run["state"] == "failed" and run["exit_code"] == 2
    assert run["error"].startswith("No more calls were placed: ElevenLabs API error (404)")
    assert [i["status"] for i in run["items"]] == ["placed", "skipped", "skipped"]
    assert run["items"][0]["call_state"] == "completed"
    assert run["report"]["cancelled"] is True
    outbound = httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": "/v1/convai/twilio/outbound-call"}).json()
    assert len(outbound) == 1
