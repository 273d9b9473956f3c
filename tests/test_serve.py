"""`callcheck serve` as a real subprocess, driven with curl exactly as the seed's examples are written."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from tests.conftest import backend_env
from tests.servers import HTTP_TIMEOUT_S, free_port, sandbox_env, serve_process, wait_healthy
from tests.waiting import wait_for_call_sync

pytestmark = pytest.mark.e2e  # every test here runs `callcheck serve` as a subprocess


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, SandboxServer, Path]]:
    with SandboxServer(SandboxConfig(time_scale=0.02)) as sandbox:
        port = free_port()
        data_dir = tmp_path / "data"
        env = {
            **sandbox_env(sandbox),
            "CALLCHECK_DATA_DIR": str(data_dir),
            **backend_env(),
        }
        process = serve_process(env, port, tmp_path)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, process=process)
            yield url, sandbox, data_dir
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


def curl(*args: str) -> tuple[int, dict[str, Any]]:
    """Run curl; (HTTP status, JSON body)."""
    out = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    body, status = out.rsplit("\n", 1)
    return int(status), json.loads(body)


def test_the_seeds_curl_examples_verbatim(served: tuple[str, SandboxServer, Path]) -> None:
    url, sandbox, data_dir = served
    status, body = curl(
        "-X",
        "POST",
        f"{url}/api/call",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{\n    "to_number": "+15551234567",\n    "business_description": "We are Pizza Palace, a pizza restaurant '
        'that takes orders and handles delivery inquiries.",\n    "scenario": "order a large pepperoni pizza for '
        'delivery to 123 Main St"\n  }',
    )
    assert status == 200
    assert body["ok"] is True and body["status"] == "initiated" and body["message"] == "Call initiated."
    assert body["scenario"] == "order a large pepperoni pizza for delivery to 123 Main St"
    assert body["call_sid"] == body["raw"]["callSid"]

    status, body = curl(
        "-X",
        "POST",
        f"{url}/api/context",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{\n    "description": "We are a tech support helpdesk.",\n    "scenario": "report a login issue"\n  }',
    )
    assert (status, body) == (200, {"ok": True, "scenario": "report a login issue"})
    status, body = curl(
        "-X",
        "POST",
        f"{url}/api/call",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{\n    "to_number": "+15551234567"\n  }',
    )
    assert status == 200 and body["scenario"] == "report a login issue"

    # This server was not started with --sandbox, but its "ElevenLabs" is a `callcheck sandbox`: the calls say they
    # are simulated, and so does every page from then on.
    assert httpx.get(f"{url}/api/calls/{body['id']}").json()["simulated"] is True
    assert "SIMULATED (sandbox)" in httpx.get(f"{url}/").text

    # The API key never lands in the database or the generated files.
    key = sandbox.config.api_key.encode()
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path
    secret = data_dir / "secret_key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_health_openapi_and_docs(served: tuple[str, SandboxServer, Path]) -> None:
    url, _, _ = served
    assert httpx.get(f"{url}/healthz").json()["ok"] is True
    spec = httpx.get(f"{url}/openapi.json").json()
    for path in (
        "/api/call",
        "/api/context",
        "/api/calls",
        "/api/calls/{call_id}",
        "/api/calls/{call_id}/events",
        "/api/calls/{call_id}/audio",
        "/api/webhooks/elevenlabs",
        "/healthz",
    ):
        assert path in spec["paths"], path
    # The seed's bodies are described, and the errors as they are answered: 400 {"error"}, never FastAPI's 422.
    call_body = spec["paths"]["/api/call"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"to_number", "business_description", "scenario"} <= set(call_body["properties"])
    assert call_body["properties"]["to_number"]["pattern"] == r"^\+[1-9]\d{7,14}$"
    context_body = spec["paths"]["/api/context"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(context_body["properties"]) == {"description", "scenario"}
    # The one 422 is the reused Idempotency-Key of POST /api/call (its own error), never a validation error.
    with_422 = {
        (path, method) for path, ops in spec["paths"].items() for method, op in ops.items() if "422" in op["responses"]
    }
    assert with_422 == {("/api/call", "post")}
    assert "Idempotency-Key" in spec["paths"]["/api/call"]["post"]["responses"]["422"]["description"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    docs = httpx.get(f"{url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_serve_with_sandbox_needs_no_account(tmp_path: Path, how: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"CALLCHECK_DATA_DIR": str(tmp_path / "data"), "CALLCHECK_SANDBOX_TIME_SCALE": "0.02", **backend_env()}
    # `--sandbox`, or CALLCHECK_SANDBOX=true as docs/configuration.md offers: the same ready set-up either way.
    if how == "environment":
        env["CALLCHECK_SANDBOX"] = "true"
    process = serve_process(env, port, tmp_path, *(["--sandbox"] if how == "flag" else []))
    try:
        wait_healthy(url, process=process)
        response = httpx.post(
            f"{url}/api/call",
            json={"to_number": "+15550100001", "business_description": "A pizza shop."},
            timeout=HTTP_TIMEOUT_S,
        )
        assert response.status_code == 200, response.text
        call = wait_for_call_sync(url, response.json()["id"], {"completed"}, recording=True, timeout=120)
        assert call["state"] == "completed" and call["simulated"] is True
        assert call["recording_url"]
        # Delivered by the in-process sandbox's signed webhooks, verified by our endpoint.
        assert any(e["kind"] == "recording" for e in call["events"])
        # The in-process sandbox is a ready account, webhook included: the set-up check finds nothing to fix.
        doctor = httpx.get(f"{url}/api/doctor", timeout=HTTP_TIMEOUT_S).json()
        assert doctor["ok"] is True, [c for c in doctor["checks"] if c["status"] != "pass"]
        assert {c["name"]: c["status"] for c in doctor["checks"]}["agent_webhook"] == "pass"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
