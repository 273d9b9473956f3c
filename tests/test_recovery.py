"""Durability: a call in flight survives `kill -9` of the server and is completed exactly once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from dbos import DBOS, WorkflowHandleAsync

from callcheck.app import create_app
from callcheck.domain.lifecycle import CallState
from callcheck.jobs import tracking, workflows
from callcheck.jobs.placing import CallRequest, record_call
from callcheck.providers import caller_for
from callcheck.providers.elevenlabs.outbound import outbound_payload, seed_override
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer, SteppedClock
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.repo import SERVER_OWNER, Store
from tests.conftest import backend_env, settings_for
from tests.servers import HTTP_TIMEOUT_S, free_port, outbound_calls, sandbox_env, serve_process, wait_healthy
from tests.waiting import wait_for_call, wait_for_call_sync


def env_for(sandbox: SandboxServer, data_dir: Path) -> dict[str, str]:
    return {
        **sandbox_env(sandbox),
        "CALLCHECK_DATA_DIR": str(data_dir),
        "CALLCHECK_SECRET_KEY": "recovery-test-secret-0123456789-abcdef",
        "CALLCHECK_POLL_INITIAL_S": "0.1",
        "CALLCHECK_POLL_MAX_S": "0.3",
        **backend_env(),
    }


@pytest.mark.e2e
def test_kill_9_mid_call_then_restart_completes_it_exactly_once(tmp_path: Path) -> None:
    # Rings until the test moves the sandbox's clock: the server is killed mid-call however slow it is to see the
    # ringing. (On the real clock it rang 2.5 s, which a loaded machine could outlast before a poll saw `ringing`.)
    clock = SteppedClock()
    with SandboxServer(SandboxConfig(time_scale=1.0, clock=clock)) as sandbox:
        env = env_for(sandbox, tmp_path / "data")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        first = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=first)
            response = httpx.post(
                f"{url}/api/call",
                json={"to_number": "+15550110050", "business_description": "A pizza shop."},
                timeout=HTTP_TIMEOUT_S,
            )
            assert response.status_code == 200, response.text
            call_id = response.json()["id"]
            wait_for_call_sync(url, call_id, {"ringing"})
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        assert len(outbound_calls(sandbox)) == 1

        second = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=second)
            clock.advance(1000.0)  # past the answer at 50 s (under the 60 s ring timeout) and the conversation
            call = wait_for_call_sync(url, call_id, {"completed", "failed", "timed_out"})
            assert call["state"] == "completed"
            call = wait_for_call_sync(url, call_id, {"completed"})
            assert call["transcript"] and call["analysis"]["call_successful"] == "success"
            states = [e["state"] for e in call["events"] if e["kind"] == "state"]
            assert states.count("completed") == 1 and states.count("dialing") == 1
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert len(outbound_calls(sandbox)) == 1


async def _services(settings: Any, http: httpx.AsyncClient) -> Services:
    await __import__("asyncio").to_thread(db.upgrade, settings.resolved_database_url())
    return Services(settings=settings, store=Store(db.create_engine(settings.resolved_database_url())), http=http)


@pytest.mark.parametrize("origin", ["api", "suite"])
async def test_call_left_dialing_and_placed_upstream_is_found_not_redialed(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any, origin: str
) -> None:
    """The server died after ElevenLabs accepted the call but before the answer was stored."""
    settings = settings_for(sandbox, tmp_path)
    async with httpx.AsyncClient() as http:
        services = await _services(settings, http)
        call = await record_call(
            services,
            CallRequest(to_number="+15550100001", description="d", scenario="s", origin=origin),
            CallState.DIALING,
        )
        # What the lost request did upstream: the call exists there, tagged with our id.
        placed = await caller_for(services).place_call(call.request_payload)
        await services.store.engine.dispose()
    api = await client_for(settings)
    final = await wait_for_call(api, call.id)
    assert final["state"] == "completed"
    assert final["conversation_id"] == placed.conversation_id
    # Found once, by whichever looked first: the call's workflow reconciling it at launch ("after an interruption"),
    # or the poll of a call someone reads (the test's own reads make it watched: "after its answer was lost").
    found = [e["detail"] for e in final["events"] if (e["detail"] or "").startswith("found upstream after")]
    assert len(found) == 1 and found[0] in (
        "found upstream after an interruption",
        "found upstream after its answer was lost",
    ), found
    assert len(outbound_calls(sandbox)) == 1


async def test_call_left_dialing_and_never_placed(sandbox: SandboxServer, tmp_path: Path, client_for: Any) -> None:
    """Not found upstream: an interactive call is reported failed, a suite call is dialed (its first dial)."""
    settings = settings_for(sandbox, tmp_path)
    async with httpx.AsyncClient() as http:
        services = await _services(settings, http)
        interactive = await record_call(
            services, CallRequest(to_number="+15550100001", description="d", scenario="s"), CallState.DIALING
        )
        suite = await record_call(
            services,
            CallRequest(to_number="+15550100001", description="d", scenario="s", origin="suite"),
            CallState.DIALING,
        )
        await services.store.engine.dispose()
    api = await client_for(settings)
    assert (await wait_for_call(api, interactive.id))["state"] == "failed"
    assert (await wait_for_call(api, suite.id))["state"] == "completed"
    sent = outbound_calls(sandbox)
    assert [r["json"]["conversation_initiation_client_data"]["user_id"] for r in sent] == [suite.id]


async def test_a_call_whose_workflow_raises_ends_failed_with_the_error(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    """Every call ends: an exception escaping a step of the call's workflow (here the placing step, resumed by a
    server started without ELEVENLABS_API_KEY) ends the call failed, once, saying why, and the workflow returns."""
    from dbos import DBOS

    from callcheck.jobs.workflows import workflow_id

    settings = settings_for(sandbox, tmp_path)
    async with httpx.AsyncClient() as http:
        services = await _services(settings, http)
        queued = await record_call(
            services,
            CallRequest(to_number="+15550100001", description="d", scenario="s", origin="suite"),
            CallState.QUEUED,
        )
        await services.store.engine.dispose()
    api = await client_for(settings.model_copy(update={"elevenlabs_api_key": None}))
    # The workflow's own result: it returned (recorded by DBOS), rather than ending in an error that left the call
    # dialing for good.
    handle: WorkflowHandleAsync[str] = await DBOS.retrieve_workflow_async(workflow_id(queued.id))
    assert await handle.get_result() == "failed"
    final = await wait_for_call(api, queued.id)
    assert final["state"] == "failed"
    assert final["error"] == (
        "callcheck could not go on following this call: Missing required environment variables: ELEVENLABS_API_KEY"
    )
    states = [e["state"] for e in final["events"] if e["kind"] == "state"]
    assert states == ["queued", "dialing", "failed"]
    assert outbound_calls(sandbox) == []


def test_payload_helper_matches_the_seed_shape() -> None:
    payload = outbound_payload("a", "p", "+15551234567", seed_override("P", "F"), "cid")
    assert payload == {
        "agent_id": "a",
        "agent_phone_number_id": "p",
        "to_number": "+15551234567",
        "conversation_initiation_client_data": {
            "conversation_config_override": {"agent": {"prompt": {"prompt": "P"}, "first_message": "F"}},
            "user_id": "cid",
            "dynamic_variables": {"callcheck_call_id": "cid"},
        },
    }


class Recorded(logging.Handler):
    """Keeps the records of a logger (DBOS logs to its own, which need not reach pytest's capture)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("calls", [1, 4])
async def test_a_server_stopped_mid_call_stops_its_workflows_cleanly_and_resumes_them(
    stepped_sandbox: SandboxServer, clock: SteppedClock, tmp_path: Path, calls: int
) -> None:
    """Stopping the app while calls are followed (some polling, some waiting to poll again) ends their workflows
    without an error: nothing runs on into a DBOS already shut down, and each call is resumed at the next start."""
    settings = settings_for(stepped_sandbox, tmp_path)
    dbos_log = logging.getLogger("dbos")
    recorded = Recorded()
    dbos_log.addHandler(recorded)
    try:
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as api:
                ids = []
                for _ in range(calls):
                    body = {"to_number": "+15550100001", "business_description": "d"}
                    placed = await api.post("/api/call", json=body)
                    assert placed.status_code == 200, placed.text
                    ids.append(placed.json()["id"])
                for call_id in ids:
                    # Ringing for ever (the clock stands still): the workflows poll on until the app stops.
                    await wait_for_call(api, call_id, {"ringing"})
    finally:
        dbos_log.removeHandler(recorded)
    errors = [r for r in recorded.records if r.levelno >= logging.ERROR]
    assert errors == [], [logging.Formatter().format(r) for r in errors]

    clock.advance(60)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as api:
            for call_id in ids:
                call = await wait_for_call(api, call_id, {"completed"}, recording=True)
                assert [e["state"] for e in call["events"] if e["kind"] == "state"].count("completed") == 1
    assert len(outbound_calls(stepped_sandbox)) == calls


UPGRADE_SUITE = {
    "business": "A pizza shop.",
    "number": "+15550100001",
    "scenarios": [{"name": "order", "goal": "order a pizza", "repeat": 2, "expect": [{"final_state": "completed"}]}],
}


async def _in_flight(api: httpx.AsyncClient, what: str) -> tuple[list[str], str | None]:
    """(the calls, and the run when `what` is "run") left ringing by the older version."""
    if what == "call":
        placed = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "d"})
        assert placed.status_code == 200, placed.text
        return [placed.json()["id"]], None
    created = await api.post("/api/runs", params={"concurrency": 1}, json=UPGRADE_SUITE)
    assert created.status_code in (200, 201, 202), created.text
    run_id = created.json()["id"]
    for _ in range(600):
        items = (await api.get(f"/api/runs/{run_id}")).json()["items"]
        if items and items[0].get("call_id"):
            return [items[0]["call_id"]], run_id
        await asyncio.sleep(0.05)
    raise AssertionError("the run placed no call")


@pytest.mark.parametrize("what", ["call", "run", "adopted run"])
async def test_work_in_flight_across_an_upgrade_is_taken_over_by_the_new_version(
    stepped_sandbox: SandboxServer, clock: SteppedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """DBOS resumes only its own version's workflows, and a start under an existing id runs nothing: a call (or a
    run, with the call it had placed) left by an older callcheck (another WORKFLOW_VERSION) must still be followed to
    its end by the new one, from the database's state, and nothing dialed twice."""
    settings = settings_for(stepped_sandbox, tmp_path)
    with monkeypatch.context() as old:
        old.setattr(workflows, "WORKFLOW_VERSION", "callcheck-follow-older")
        old.setattr(tracking, "WORKFLOW_VERSION", "callcheck-follow-older")
        app = create_app(settings)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as api:
                call_ids, run_id = await _in_flight(api, what)
                if what == "adopted run":
                    # A run this server took over from a stopped `callcheck run` process is owned by the server.
                    await app.state.services.store.runs.update_run(run_id, owner=SERVER_OWNER)
                await wait_for_call(api, call_ids[0], {"ringing"})
                old_id = workflows.workflow_id(call_ids[0])
                # Its workflow (of the older version) is waiting when that callcheck stops.
                waiting = app.state.services.tracker.follower.waiting_ids
                for _ in range(200):
                    if call_ids[0] in waiting():
                        break
                    await asyncio.sleep(0.05)
                assert call_ids[0] in waiting()

    clock.advance(60)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as api:
            if run_id is not None:
                for _ in range(1200):
                    run = (await api.get(f"/api/runs/{run_id}")).json()
                    if run["state"] in {"completed", "cancelled", "failed"}:
                        break
                    clock.advance(60)  # the run's second call rings until the clock moves too
                    await asyncio.sleep(0.05)
                assert run["state"] == "completed", run
                assert run["counts"]["done"] == 2 and run["exit_code"] == 0, run
                call_ids = [i["call_id"] for i in run["items"]]
            for call_id in call_ids:
                call = await wait_for_call(api, call_id, {"completed"}, recording=True)
                assert [e["state"] for e in call["events"] if e["kind"] == "state"].count("completed") == 1
            new_id = workflows.workflow_id(call_ids[0])
            assert new_id != old_id
            assert await (await DBOS.retrieve_workflow_async(new_id)).get_result() == "completed"
            if run_id is not None:
                # The run was finished by a workflow of the new version.
                run_workflow: WorkflowHandleAsync[int] = await DBOS.retrieve_workflow_async(
                    workflows.run_workflow_id(run_id)
                )
                assert await run_workflow.get_result() == run["exit_code"]
    assert len(outbound_calls(stepped_sandbox)) == (1 if what == "call" else 2)
