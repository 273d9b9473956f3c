"""Durability: a call in flight survives `kill -9` of the server and is completed exactly once."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.domain.lifecycle import CallState
from callcheck.jobs.placing import CallRequest, record_call
from callcheck.providers.elevenlabs.outbound import outbound_payload, seed_override
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.repo import Store
from tests.conftest import backend_env, settings_for
from tests.servers import free_port, outbound_calls, sandbox_env, serve_process, wait_healthy
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
    # Rings for 50 simulated seconds (2.5 s real; under the 60 s ring timeout): time to kill the server meanwhile.
    with SandboxServer(SandboxConfig(time_scale=0.05)) as sandbox:
        env = env_for(sandbox, tmp_path / "data")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        first = serve_process(env, port, tmp_path)
        try:
            wait_healthy(url, process=first)
            response = httpx.post(
                f"{url}/api/call", json={"to_number": "+15550110050", "business_description": "A pizza shop."}
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
        placed = await services.client().outbound_call(call.request_payload)
        await services.store.engine.dispose()
    api = await client_for(settings)
    final = await wait_for_call(api, call.id)
    assert final["state"] == "completed"
    assert final["conversation_id"] == placed["conversation_id"]
    assert "found upstream after an interruption" in [e["detail"] for e in final["events"]]
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
