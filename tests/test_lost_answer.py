"""ElevenLabs got the dial but its answer never reached us (a read timeout): the call is found, not lost.

A holding proxy on loopback stands between callcheck and the sandbox: it forwards the outbound-call POST at once
but answers it only after callcheck's HTTP timeout, so the sandbox places the call while callcheck sees a timeout.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.servers import OUTBOUND, outbound_calls
from tests.test_webhooks import SECRET, signed
from tests.waiting import wait_for_call

HOLD_S = 1.5  # longer than callcheck's HTTP timeout below
SLOW_WINDOW_S = 2.5


@pytest.fixture
def holding_proxy(sandbox: SandboxServer) -> Iterator[str]:
    slow_until = [0.0]

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = httpx.request(self.command, sandbox.url + self.path, content=body, headers=headers)
            if self.path.startswith(OUTBOUND):
                # Placed upstream; the answer arrives too late, and so do the answers of the next few seconds
                # (the first look-up after the timeout fails too: only a later one can find the call).
                slow_until[0] = time.monotonic() + SLOW_WINDOW_S
                time.sleep(HOLD_S)
            elif time.monotonic() < slow_until[0]:
                time.sleep(HOLD_S)
            try:
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # callcheck gave up waiting, as intended

        do_GET = do_POST = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_lost_answer_is_found_by_polling_and_the_call_followed(
    client_for: Any, sandbox: SandboxServer, holding_proxy: str, tmp_path: Path
) -> None:
    # The countries are given: no look-up of the agent's number goes through the slow proxy before the dial.
    api = await client_for(
        settings_for(sandbox, tmp_path, elevenlabs_api_base=holding_proxy, http_timeout_s=0.5, allowed_countries="1")
    )
    response = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "A shop."})
    assert response.status_code == 502 and response.json()["error"].startswith("Could not reach ElevenLabs: timed out")
    (listed,) = (await api.get("/api/calls")).json()["calls"]
    call = await wait_for_call(api, listed["id"], timeout=60)
    assert call["state"] == "completed" and call["conversation_id"] and call["transcript"]
    assert any(e["detail"] == "found upstream after its answer was lost" for e in call["events"]), [
        (e["state"], e["detail"]) for e in call["events"]
    ]
    assert len(outbound_calls(sandbox)) == 1  # found, never dialed again


async def test_a_lost_answer_is_claimed_by_its_webhook(
    client_for: Any, sandbox: SandboxServer, holding_proxy: str, tmp_path: Path
) -> None:
    # No poller: only the post-call webhook, which names our call by the user_id we tagged the dial with.
    settings = settings_for(
        sandbox,
        tmp_path,
        elevenlabs_api_base=holding_proxy,
        http_timeout_s=0.5,
        allowed_countries="1",
        workers=False,
        elevenlabs_webhook_secret=SECRET,
    )
    api = await client_for(settings)
    response = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "A shop."})
    assert response.status_code == 502
    (listed,) = (await api.get("/api/calls")).json()["calls"]
    assert listed["state"] == "dialing" and listed["conversation_id"] is None
    (sent,) = outbound_calls(sandbox)
    assert sent["json"]["conversation_initiation_client_data"]["user_id"] == listed["id"]
    found = httpx.get(
        f"{sandbox.url}/v1/convai/conversations",
        params={"user_id": listed["id"]},
        headers={"xi-api-key": sandbox.config.api_key},
    ).json()["conversations"]
    conversation_id = found[0]["conversation_id"]
    event: dict[str, Any] = {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": sandbox.config.agent_id,
            "conversation_id": conversation_id,
            "user_id": listed["id"],
            "status": "done",
            "transcript": [{"role": "agent", "message": "Hi, I'd like a cake.", "time_in_call_secs": 0}],
            "metadata": {"call_duration_secs": 4, "termination_reason": "end_call tool was called."},
            "analysis": {"call_successful": "success", "transcript_summary": "Ordered."},
        },
    }
    body = json.dumps(event).encode()
    answer = await api.post("/api/webhooks/elevenlabs", content=body, headers=signed(body))
    assert answer.json() == {"ok": True, "matched": True, "call_id": listed["id"]}
    call = (await api.get(f"/api/calls/{listed['id']}")).json()
    assert call["conversation_id"] == conversation_id and call["state"] == "completed"
    assert any(e["detail"] == "found by its webhook after the answer to the dial was lost" for e in call["events"])
    # A stranger's user_id claims nothing: an unknown conversation is kept for later, as before.
    stranger = {**event, "data": {**event["data"], "conversation_id": "conv_other", "user_id": "nope"}}
    body = json.dumps(stranger).encode()
    assert (await api.post("/api/webhooks/elevenlabs", content=body, headers=signed(body))).json() == {
        "ok": True,
        "matched": False,
    }
