"""The official `elevenlabs` SDK (2.78) is the oracle: every body the sandbox produces validates against the SDK's
models with no field the SDK does not know, and the SDK's `construct_event` accepts every webhook it signs.

What no SDK model describes (the `post_call_audio` and `call_initiation_failure` data) is checked against the
fields ElevenLabs' docs give them; a `post_call_transcription` that leaves its transcript out is validated with
the list the model requires restored as empty (the model has no notion of `exclude_transcript`).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from elevenlabs import ElevenLabs
from elevenlabs.types import (
    GetConvAiSettingsResponseModel,
    GetConversationResponseModel,
    GetConversationsPageResponseModel,
    TwilioOutboundCallResponse,
)

from callcheck.providers.elevenlabs.outbound import outbound_payload, seed_override
from callcheck.providers.elevenlabs.sandbox import (
    MAGIC_NUMBERS,
    NUMBER_BUSY,
    NUMBER_COMPLETED,
    NUMBER_NO_ANSWER,
    NUMBER_NO_CONVERSATION_ID,
    NUMBER_NO_TRANSCRIPT_WEBHOOK,
    NUMBER_VANISHES,
    Outcome,
    SandboxConfig,
    SandboxServer,
    delayed_answer_number,
)
from tests.oracle import strictly

SECRET = "whsec_oracle"
SCALE = 0.02
HTTP_ONLY = {Outcome.HTTP_500, Outcome.HTTP_429, Outcome.NOT_SUCCESS}


class Capture:
    """A loopback HTTP server that keeps every webhook it receives: (raw body, signature header)."""

    def __init__(self) -> None:
        received: list[tuple[str, str]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append((body.decode("utf-8"), self.headers.get("ElevenLabs-Signature", "")))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Capture:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self, conversation_id: str) -> list[tuple[dict[str, Any], str, str]]:
        """(parsed body, raw body, signature) of each webhook for a conversation."""
        found = []
        for raw, signature in list(self.received):
            body = json.loads(raw)
            if body.get("data", {}).get("conversation_id") == conversation_id:
                found.append((body, raw, signature))
        return found


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[httpx.Client, Capture]]:
    with Capture() as capture:
        config = SandboxConfig(
            time_scale=SCALE, webhook_url=capture.url, webhook_secret=SECRET, send_audio_webhook=True
        )
        with SandboxServer(config) as server:
            headers = {"xi-api-key": config.api_key}
            with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
                yield client, capture


def wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def dial(client: httpx.Client, number: str, call_id: str) -> dict[str, Any]:
    """Place a call with callcheck's own outbound body; the answer, validated by the SDK."""
    body = outbound_payload(
        "agent_sandbox", "phnum_sandbox", number, seed_override("You call a shop.", "Hi there."), call_id, 600
    )
    answer = client.post("/v1/convai/twilio/outbound-call", json=body)
    assert answer.status_code == 200, answer.text
    strictly(TwilioOutboundCallResponse, answer.json())
    result: dict[str, Any] = answer.json()
    return result


def conversation_id_of(client: httpx.Client, answer: dict[str, Any], call_id: str) -> str:
    if answer["conversation_id"]:
        return str(answer["conversation_id"])
    page = client.get("/v1/convai/conversations", params={"user_id": call_id}).json()
    return str(page["conversations"][0]["conversation_id"])


def final(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(f"/v1/convai/conversations/{conversation_id}").json()
        return body if body["status"] in ("done", "failed") else None

    result: dict[str, Any] = wait(done)
    return result


NUMBERS = [n for n, o in MAGIC_NUMBERS.items() if o not in HTTP_ONLY and o is not Outcome.VANISHES]


@pytest.mark.parametrize("number", [*NUMBERS, delayed_answer_number(2)])
def test_every_conversation_the_sandbox_serves_is_a_valid_sdk_record(
    world: tuple[httpx.Client, Capture], number: str
) -> None:
    client, capture = world
    call_id = f"call-{number[1:]}"
    conversation_id = conversation_id_of(client, dial(client, number, call_id), call_id)
    # Every stage of the record, not just the last: ringing, in progress, final.
    seen = set()

    def read_until_final() -> bool:
        body = client.get(f"/v1/convai/conversations/{conversation_id}").json()
        strictly(GetConversationResponseModel, body)
        seen.add(body["status"])
        return body["status"] in ("done", "failed")

    wait(read_until_final)
    assert seen & {"done", "failed"}
    page = client.get("/v1/convai/conversations", params={"user_id": call_id, "summary_mode": "include"}).json()
    strictly(GetConversationsPageResponseModel, page)
    assert [c["conversation_id"] for c in page["conversations"]] == [conversation_id]

    webhooks = ElevenLabs(api_key="unused", base_url="http://127.0.0.1:9").webhooks
    events = wait(lambda: capture.events(conversation_id) or None)
    if MAGIC_NUMBERS.get(number) is not Outcome.REFUSES_OVERRIDES and final(client, conversation_id)["has_audio"]:
        events = wait(lambda: (e := capture.events(conversation_id)) and len(e) >= 2 and e)
    for body, raw, signature in events:
        assert webhooks.construct_event(raw, signature, SECRET) == body  # the SDK accepts the sandbox's signature
        data = body["data"]
        if body["type"] == "post_call_transcription":
            strictly(GetConversationResponseModel, {"transcript": [], **data})
        elif body["type"] == "post_call_audio":
            assert set(data) == {"agent_id", "conversation_id", "full_audio"}
            assert base64.b64decode(data["full_audio"], validate=True)
        else:
            assert body["type"] == "call_initiation_failure"
            assert set(data) == {"agent_id", "conversation_id", "failure_reason", "metadata"}
            assert data["failure_reason"] in ("busy", "no-answer", "unknown")


def test_the_layouts_the_new_numbers_promise(world: tuple[httpx.Client, Capture]) -> None:
    client, capture = world
    # No conversation id in the answer, yet the call is found by its user_id.
    answer = dial(client, NUMBER_NO_CONVERSATION_ID, "call-null-id")
    assert answer["success"] is True and answer["conversation_id"] is None and answer["callSid"]
    assert conversation_id_of(client, answer, "call-null-id").startswith("conv_")
    # Accepted, then never found.
    vanished = dial(client, NUMBER_VANISHES, "call-vanishes")["conversation_id"]
    assert client.get(f"/v1/convai/conversations/{vanished}").status_code == 404
    assert client.get("/v1/convai/conversations", params={"user_id": "call-vanishes"}).json()["conversations"] == []
    # The transcription webhook leaves the transcript out; the conversation itself has one.
    bare = dial(client, NUMBER_NO_TRANSCRIPT_WEBHOOK, "call-bare")["conversation_id"]
    assert final(client, bare)["transcript"]
    events = wait(lambda: [b for b, _, _ in capture.events(bare) if b["type"] == "post_call_transcription"] or None)
    assert "transcript" not in events[0]["data"]


def test_results_come_in_the_next_item_and_silence_as_dots(world: tuple[httpx.Client, Capture]) -> None:
    client, _ = world
    record = final(client, str(dial(client, NUMBER_COMPLETED, "call-layout")["conversation_id"]))
    items = record["transcript"]
    calls = [i for i, item in enumerate(items) if item["tool_calls"]]
    assert calls and all(items[i]["tool_results"] == [] for i in calls)
    for i in calls:
        result = items[i + 1]["tool_results"][0]
        assert result["request_id"] == items[i]["tool_calls"][0]["request_id"]
    assert record["metadata"]["cost_fiat"] is not None and record["metadata"]["charging"]["call_charge"] > 0
    assert record["metadata"]["accepted_time_unix_secs"] >= record["metadata"]["start_time_unix_secs"]


def test_unanswered_calls_and_settings_are_valid_too(world: tuple[httpx.Client, Capture]) -> None:
    client, _ = world
    for number in (NUMBER_BUSY, NUMBER_NO_ANSWER):
        record = final(client, str(dial(client, number, f"call-{number}")["conversation_id"]))
        strictly(GetConversationResponseModel, record)
    strictly(GetConvAiSettingsResponseModel, client.get("/v1/convai/settings").json())
