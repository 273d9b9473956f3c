"""Call budgets (per minute, per day, per number per day, per run) counted in the database, atomically."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from callcheck.domain.lifecycle import CallState
from callcheck.jobs.runs import place_next
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.servers import outbound_calls
from tests.waiting import TERMINAL

PIZZA = "We are Pizza Palace."
NO_LIMITS = {"max_calls_per_minute": 0, "max_calls_per_day": 0, "max_calls_per_number_per_day": 0}


async def call(api: httpx.AsyncClient, number: str = "+15550100001") -> httpx.Response:
    return await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})


def assert_limited(response: httpx.Response, limit: str) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["limit"] == limit and limit in body["error"]
    resets_at = datetime.fromisoformat(body["resets_at"])
    assert resets_at > datetime.now(UTC)
    assert 1 <= int(response.headers["Retry-After"]) <= 24 * 3600 + 1


async def test_the_minute_budget_refuses_with_a_429_naming_it_and_when_it_resets(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_calls_per_minute=2))
    assert (await call(api)).status_code == 200
    assert (await call(api, "+15550100004")).status_code == 200
    refused = await call(api, "+15550100005")
    assert_limited(refused, "CALLCHECK_MAX_CALLS_PER_MINUTE")
    assert int(refused.headers["Retry-After"]) <= 61
    assert len(outbound_calls(sandbox)) == 2  # the refused one was never dialed...
    assert len((await api.get("/api/calls")).json()["calls"]) == 2  # ...nor recorded


async def test_the_per_number_budget_counts_one_number(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_calls_per_number_per_day=1))
    assert (await call(api)).status_code == 200
    assert_limited(await call(api), "CALLCHECK_MAX_CALLS_PER_NUMBER_PER_DAY")
    assert (await call(api, "+15550100004")).status_code == 200


async def test_the_day_budget_counts_every_number(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_calls_per_day=1))
    assert (await call(api)).status_code == 200
    refused = await call(api, "+15550100004")
    assert_limited(refused, "CALLCHECK_MAX_CALLS_PER_DAY")
    assert int(refused.headers["Retry-After"]) > 23 * 3600


async def test_zero_is_no_limit(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_calls_per_day=0, max_calls_per_minute=0))
    for _ in range(3):
        assert (await call(api)).status_code == 200


async def test_concurrent_requests_to_two_servers_on_one_database_never_overspend(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Two apps (two engines, as two processes would have) on one database, twelve requests at once, budget five:
    # exactly five calls are recorded and dialed, whatever the interleaving.
    first = settings_for(sandbox, tmp_path, workers=False, max_calls_per_minute=5)
    second = first.model_copy()
    apis = [await client_for(first), await client_for(second)]
    answers = await asyncio.gather(*(call(apis[i % 2], f"+1555010{i:04d}") for i in range(12)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(429) == 7, [a.text for a in answers]
    assert len(outbound_calls(sandbox)) + statuses.count(502) == 5
    assert len((await apis[0].get("/api/calls")).json()["calls"]) == 5


def suite(scenarios: int, repeat: int = 1) -> dict[str, Any]:
    return {
        "business": "Pizza Palace",
        "number": "+15550100001",
        "scenarios": [
            {"name": f"s{i}", "goal": "order a pizza", "repeat": repeat, "expect": [{"reached_human": False}]}
            for i in range(scenarios)
        ],
    }


async def test_a_run_too_large_is_a_400_naming_the_limit(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(
        settings_for(sandbox, tmp_path, max_calls_per_run=3, max_suite_scenarios=4, max_suite_bytes=2000)
    )
    too_many_calls = await api.post("/api/runs", json=suite(2, repeat=2))
    assert too_many_calls.status_code == 400 and "CALLCHECK_MAX_CALLS_PER_RUN (3)" in too_many_calls.json()["error"]
    assert "4 calls" in too_many_calls.json()["error"]
    too_many_scenarios = await api.post("/api/runs", json=suite(5))
    assert too_many_scenarios.status_code == 400
    assert "CALLCHECK_MAX_SUITE_SCENARIOS (4)" in too_many_scenarios.json()["error"]
    too_big = await api.post("/runs/start", json={"suite": "# padding\n" * 300})
    assert too_big.status_code == 400 and "CALLCHECK_MAX_SUITE_BYTES (2000)" in too_big.json()["error"]
    assert (await api.get("/api/runs")).json()["runs"] == []
    assert outbound_calls(sandbox) == []


async def wait_for_run(api: httpx.AsyncClient, run_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    run: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        run = (await api.get(f"/api/runs/{run_id}")).json()
        if run["state"] in ("completed", "cancelled", "failed"):
            return run
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never finished: {run}")


async def test_a_run_that_spends_the_day_budget_stops_placing_and_says_why(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, max_calls_per_day=2))
    started = await api.post("/api/runs", json=suite(3))
    assert started.status_code == 202, started.text
    run = await wait_for_run(api, started.json()["id"])
    assert run["state"] == "failed" and run["exit_code"] == 2
    assert "CALLCHECK_MAX_CALLS_PER_DAY" in run["error"]
    assert [i["status"] for i in run["items"]] == ["placed", "placed", "skipped"]
    assert all(i["call_state"] in TERMINAL for i in run["items"][:2])
    assert len(outbound_calls(sandbox)) == 2


async def test_a_run_that_spends_the_minute_budget_waits_for_it(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # The run's placing, driven by hand (no workers): the first call is placed, the second waits for the budget
    # rather than failing the run.
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_calls_per_minute=1))
    services = api.callcheck_app.state.services
    text = json.dumps(suite(2))
    run = await services.store.runs.create_run(
        [("s0", "s0", 1), ("s1", "s1", 1)], name="n", source_name="api", suite_text=text, concurrency=2
    )
    first = await place_next(services, run.id)
    assert first["call"] is not None
    second = await place_next(services, run.id)
    assert "call" not in second
    assert 1 < second["wait"] <= 61  # until the minute's budget frees up
    fresh = await services.store.runs.get_run(run.id)
    assert fresh.state == "running" and fresh.error is None
    assert [i.status for i in await services.store.runs.items(run.id)] == ["placed", "pending"]
    assert len(outbound_calls(sandbox)) == 1


async def test_two_processes_placing_one_run_place_no_more_than_its_cap(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    # Two apps (two engines, as two processes would have) place the same run's calls at once, two slots each, twice:
    # the database holds the run's cap across them, so exactly `concurrency` calls are placed (nobody follows them:
    # they stay under way) and every other slot is told to wait.
    first = settings_for(sandbox, tmp_path, workers=False, **NO_LIMITS)
    apis = [await client_for(first), await client_for(first.model_copy())]
    services = [api.callcheck_app.state.services for api in apis]
    items = [(f"s{i}", f"s{i}", 1) for i in range(6)]
    run = await services[0].store.runs.create_run(
        items, name="n", source_name="api", suite_text=json.dumps(suite(6)), concurrency=2
    )
    for _ in range(2):
        tries = await asyncio.gather(*(place_next(s, run.id) for s in services for _ in range(2)))
        assert sum("call" in t for t in tries) <= 2
        assert all("call" in t or t.get("wait") for t in tries)
    assert len(outbound_calls(sandbox)) == 2
    assert [i.status for i in await services[1].store.runs.items(run.id)].count("placed") == 2


async def test_the_account_wide_cap_refuses_a_single_call_and_holds_a_run(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_concurrent_calls=1, **NO_LIMITS))
    services = api.callcheck_app.state.services
    assert (await call(api)).status_code == 200  # under way: nobody follows it to its end here
    refused = await call(api, "+15550100004")
    assert_limited(refused, "CALLCHECK_MAX_CONCURRENT_CALLS")
    run = await services.store.runs.create_run(
        [("s0", "s0", 1)], name="n", source_name="api", suite_text=json.dumps(suite(1)), concurrency=3
    )
    waiting = await place_next(services, run.id)
    assert "call" not in waiting and waiting["wait"] > 0  # the run waits for a place; it does not fail
    assert [i.status for i in await services.store.runs.items(run.id)] == ["pending"]
    assert len(outbound_calls(sandbox)) == 1
    (first,) = (await api.get("/api/calls")).json()["calls"]
    await services.store.move_call(first["id"], CallState.COMPLETED)  # the call under way ends: a place frees up
    placed = await place_next(services, run.id)
    assert placed["call"] is not None
    assert len(outbound_calls(sandbox)) == 2
