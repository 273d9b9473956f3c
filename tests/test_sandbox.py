"""The sandbox over real loopback HTTP: payloads, errors, overrides, magic numbers, audio, lists, agents, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from callcheck.domain.evidence import (
    CRITERION_GOAL_ACHIEVED,
    DATA_CONFIRMATION_NUMBER,
    DATA_REACHED_HUMAN,
    DATA_TRANSFERRED,
)
from callcheck.providers.elevenlabs import wire
from callcheck.providers.elevenlabs.sandbox import (
    MAGIC_NUMBERS,
    NUMBER_BUSY,
    NUMBER_COMPLETED,
    NUMBER_HTTP_429,
    NUMBER_HTTP_500,
    NUMBER_IVR,
    NUMBER_IVR_DEAD_END,
    NUMBER_KEYPAD_FAILS,
    NUMBER_NO_ANSWER,
    NUMBER_NO_CONVERSATION_ID,
    NUMBER_NO_TRANSCRIPT_WEBHOOK,
    NUMBER_NOT_SUCCESS,
    NUMBER_NOT_UNDERSTOOD,
    NUMBER_REFUSES_OVERRIDES,
    NUMBER_TRANSFERRED,
    NUMBER_VANISHES,
    NUMBER_VOICEMAIL,
    SandboxConfig,
    SandboxServer,
    SteppedClock,
    delayed_answer_number,
)

SCALE = 0.02  # 50 simulated seconds per real second: a whole call takes well under a second
KEY = "sandbox-key"
AGENT = "agent_sandbox"
PHONE = "phnum_sandbox"
FINAL = ("done", "failed")


def call_body(to: str, **extra: Any) -> dict[str, Any]:
    return {"agent_id": AGENT, "agent_phone_number_id": PHONE, "to_number": to, **extra}


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., tuple[SandboxServer, httpx.Client]]]:
    started: list[tuple[SandboxServer, httpx.Client]] = []

    def make(**config: Any) -> tuple[SandboxServer, httpx.Client]:
        config.setdefault("time_scale", SCALE)
        server = SandboxServer(SandboxConfig(**config)).start()
        client = httpx.Client(base_url=server.url, headers={"xi-api-key": KEY}, timeout=10)
        started.append((server, client))
        return server, client

    yield make
    for server, client in started:
        client.close()
        server.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]]) -> httpx.Client:
    return make_sandbox()[1]


@pytest.fixture(scope="module")
def shared() -> Iterator[httpx.Client]:
    """One sandbox for the read-only magic-number tests."""
    with SandboxServer(SandboxConfig(time_scale=SCALE)) as server:
        with httpx.Client(base_url=server.url, headers={"xi-api-key": KEY}, timeout=10) as client:
            yield client


def place(client: httpx.Client, to: str, **extra: Any) -> str:
    response = client.post("/v1/convai/twilio/outbound-call", json=call_body(to, **extra))
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True
    return str(response.json()["conversation_id"])


def wait_until(predicate: Callable[[], Any], timeout: float = 8.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        time.sleep(interval)


def wait_final(client: httpx.Client, conversation_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any] | None:
        body = client.get(f"/v1/convai/conversations/{conversation_id}").json()
        return body if body["status"] in FINAL else None

    result: dict[str, Any] = wait_until(final)
    return result


def tool_names(conversation: dict[str, Any]) -> list[str]:
    return [c["tool_name"] for t in conversation["transcript"] for c in t.get("tool_calls") or []]


# ------------------------------------------------------------------------------------------------ placing a call


def test_outbound_call_is_recorded_exactly_and_echoed(sandbox: httpx.Client) -> None:
    payload = call_body(
        "+15551234567",
        conversation_initiation_client_data={
            "conversation_config_override": {
                "agent": {"first_message": "Hi {{name}}, I'd like a table.", "prompt": {"prompt": "P"}},
                "tts": {"voice_id": "v1"},
            },
            "dynamic_variables": {"name": "Bob", "n": 3},
            "user_id": "call-42",
        },
        call_recording_enabled=False,
    )
    response = sandbox.post("/v1/convai/twilio/outbound-call", json=payload)
    assert response.status_code == 200
    assert response.headers["x-callcheck-sandbox"] == "1"
    answer = response.json()
    assert set(answer) == {"success", "message", "conversation_id", "callSid"}
    assert answer["success"] is True and answer["conversation_id"].startswith("conv_")
    assert answer["callSid"].startswith("CA") and wire.call_sid_of(answer) == answer["callSid"]

    log = httpx.get(f"{sandbox.base_url}/_sandbox/requests").json()
    assert [(r["method"], r["path"]) for r in log] == [("POST", "/v1/convai/twilio/outbound-call")]
    assert log[0]["json"] == payload
    assert log[0]["headers"]["xi-api-key"] == "<redacted>" and log[0]["api_key_valid"] is True
    assert KEY not in json.dumps(log)
    assert log[0]["status_code"] == 200

    conversation = wait_final(sandbox, answer["conversation_id"])
    assert conversation["user_id"] == "call-42"
    echoed = conversation["conversation_initiation_client_data"]
    assert (
        echoed["conversation_config_override"]
        == payload["conversation_initiation_client_data"]["conversation_config_override"]
    )
    assert echoed["user_id"] == "call-42"
    assert echoed["dynamic_variables"]["name"] == "Bob" and echoed["dynamic_variables"]["n"] == 3
    assert echoed["dynamic_variables"]["system__call_sid"] == answer["callSid"]
    phone_call = conversation["metadata"]["phone_call"]
    assert phone_call == {
        "type": "twilio",
        "direction": "outbound",
        "phone_number_id": PHONE,
        "agent_number": "+15550009999",
        "external_number": "+15551234567",
        "stream_sid": phone_call["stream_sid"],
        "call_sid": answer["callSid"],
        "call_result": "answered",
    }
    assert phone_call["stream_sid"].startswith("MZ")
    assert conversation["metadata"]["conversation_initiation_source"] == "twilio"
    first = conversation["transcript"][0]
    assert (first["role"], first["message"], first["time_in_call_secs"]) == ("agent", "Hi Bob, I'd like a table.", 0)


def test_every_response_is_marked_and_the_log_can_be_cleared(sandbox: httpx.Client) -> None:
    assert sandbox.get("/v1/convai/phone-numbers").headers["x-callcheck-sandbox"] == "1"
    assert sandbox.get("/v1/convai/agents/nope").headers["x-callcheck-sandbox"] == "1"
    base = str(sandbox.base_url)
    assert len(httpx.get(f"{base}/_sandbox/requests").json()) == 2
    assert httpx.delete(f"{base}/_sandbox/requests").json() == {"cleared": 2}
    assert httpx.get(f"{base}/_sandbox/requests").json() == []


@pytest.mark.parametrize("headers", [{}, {"xi-api-key": "wrong"}])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/convai/twilio/outbound-call"),
        ("GET", "/v1/convai/conversations"),
        ("GET", "/v1/convai/conversations/conv_x"),
        ("GET", "/v1/convai/conversations/conv_x/audio"),
        ("GET", "/v1/convai/agents/agent_sandbox"),
        ("PATCH", "/v1/convai/agents/agent_sandbox"),
        ("POST", "/v1/convai/agents/create"),
        ("GET", "/v1/convai/phone-numbers"),
    ],
)
def test_missing_or_wrong_api_key_is_401(shared: httpx.Client, headers: dict[str, str], method: str, path: str) -> None:
    response = httpx.request(method, f"{shared.base_url}{path}", headers=headers, json={})
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert {k: detail[k] for k in ("type", "code", "status", "message")} == {
        "type": "authentication_error",
        "code": "invalid_api_key",
        "status": "invalid_api_key",
        "message": "Invalid API key",
    }
    assert len(detail["request_id"]) == 32 and int(detail["request_id"], 16) >= 0


def test_inspection_needs_no_api_key(shared: httpx.Client) -> None:
    assert httpx.get(f"{shared.base_url}/_sandbox/requests").status_code == 200
    info = httpx.get(f"{shared.base_url}/_sandbox").json()
    assert info["simulated"] is True and info["magic_numbers"][NUMBER_BUSY] == "busy"


def test_missing_and_mistyped_fields_are_422(sandbox: httpx.Client) -> None:
    body = call_body("+15551234567")
    del body["to_number"]
    response = sandbox.post("/v1/convai/twilio/outbound-call", json=body)
    assert response.status_code == 422
    assert [(d["loc"], d["msg"], d["type"]) for d in response.json()["detail"]] == [
        (["body", "to_number"], "Field required", "missing")
    ]
    nested = call_body("+15551234567", conversation_initiation_client_data={"dynamic_variables": {"x": [1]}})
    response = sandbox.post("/v1/convai/twilio/outbound-call", json=nested)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:4] == [
        "body",
        "conversation_initiation_client_data",
        "dynamic_variables",
        "x",
    ]
    assert sandbox.post("/v1/convai/agents/create", json={"name": "x"}).status_code == 422
    assert sandbox.get("/v1/convai/conversations", params={"page_size": 101}).status_code == 422


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"agent_id": "agent_nope"}, "agent_not_found"),
        ({"agent_phone_number_id": "phnum_nope"}, "phone_number_not_found"),
    ],
)
def test_unknown_agent_or_number_is_404(shared: httpx.Client, body: dict[str, str], code: str) -> None:
    response = shared.post("/v1/convai/twilio/outbound-call", json={**call_body(NUMBER_COMPLETED), **body})
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert (detail["type"], detail["code"], detail["status"]) == ("not_found", code, code)
    assert wire.error_message(response.json(), "?") == detail["message"]


def test_unknown_conversation_and_agent_are_404(shared: httpx.Client) -> None:
    for path in ("/v1/convai/conversations/conv_nope", "/v1/convai/conversations/conv_nope/audio"):
        response = shared.get(path)
        assert response.status_code == 404 and response.json()["detail"]["code"] == "conversation_not_found"
    assert shared.get("/v1/convai/agents/agent_nope").json()["detail"]["code"] == "agent_not_found"
    assert shared.patch("/v1/convai/agents/agent_nope", json={}).status_code == 404


# ------------------------------------------------------------------------------------------------ overrides


def test_overrides_the_agent_does_not_enable_are_refused(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    _, bare = make_sandbox(agent_ready=False)
    data = {"conversation_config_override": {"agent": {"prompt": {"prompt": "You are..."}}}}
    response = bare.post(
        "/v1/convai/twilio/outbound-call", json=call_body(NUMBER_COMPLETED, conversation_initiation_client_data=data)
    )
    assert response.status_code == 400
    assert response.json()["detail"]["message"] == (
        "Override for field 'agent.prompt.prompt' is not allowed by the agent's configuration."
    )
    several = {
        "conversation_config_override": {"agent": {"first_message": "Hi", "language": "es"}, "tts": {"voice_id": "v"}}
    }
    response = bare.post(
        "/v1/convai/twilio/outbound-call",
        json=call_body(NUMBER_COMPLETED, conversation_initiation_client_data=several),
    )
    assert response.status_code == 400
    message = response.json()["detail"]["message"]
    for field in ("agent.first_message", "agent.language", "tts.voice_id"):
        assert f"'{field}'" in message
    # Dynamic variables and user_id need no permission, and nulls are not overrides.
    free = {
        "dynamic_variables": {"a": "b"},
        "user_id": "u",
        "conversation_config_override": {"agent": {"first_message": None}},
    }
    place(bare, NUMBER_COMPLETED, conversation_initiation_client_data=free)
    # Enabling the flag on the agent makes the same override acceptable.
    flags = {"conversation_config_override": {"agent": {"prompt": {"prompt": True}}}}
    assert bare.patch(f"/v1/convai/agents/{AGENT}", json={"platform_settings": {"overrides": flags}}).status_code == 200
    place(bare, NUMBER_COMPLETED, conversation_initiation_client_data=data)


def test_ready_agent_accepts_what_callcheck_sends_but_not_more(sandbox: httpx.Client) -> None:
    callcheck = {
        "agent": {"first_message": "Hi", "language": "en", "prompt": {"prompt": "P"}},
        "tts": {"voice_id": "v1"},
    }
    place(sandbox, NUMBER_COMPLETED, conversation_initiation_client_data={"conversation_config_override": callcheck})
    response = sandbox.post(
        "/v1/convai/twilio/outbound-call",
        json=call_body(
            NUMBER_COMPLETED,
            conversation_initiation_client_data={"conversation_config_override": {"agent": {"prompt": {"llm": "x"}}}},
        ),
    )
    assert response.status_code == 400 and "'agent.prompt.llm'" in response.json()["detail"]["message"]


# ------------------------------------------------------------------------------------------------ magic numbers

EXPECTED: dict[str, dict[str, Any]] = {
    NUMBER_COMPLETED: {
        "status": "done",
        "call_result": "answered",
        "success": "success",
        "human": False,
        "transferred": False,
        "confirmation": True,
        "tools": ["end_call"],
    },
    "+15557654321": {
        "status": "done",
        "call_result": "answered",
        "success": "success",
        "human": False,
        "transferred": False,
        "confirmation": True,
        "tools": ["end_call"],
    },
    NUMBER_NOT_UNDERSTOOD: {
        "status": "done",
        "call_result": "answered",
        "success": "failure",
        "human": False,
        "transferred": False,
        "confirmation": False,
        "tools": ["end_call"],
    },
    NUMBER_TRANSFERRED: {
        "status": "done",
        "call_result": "answered",
        "success": "success",
        "human": True,
        "transferred": True,
        "confirmation": False,
        "tools": ["end_call"],
    },
    NUMBER_VOICEMAIL: {
        "status": "done",
        "call_result": "voicemail",
        "success": "failure",
        "human": False,
        "transferred": False,
        "confirmation": False,
        "tools": ["voicemail_detection"],
    },
    NUMBER_IVR: {
        "status": "done",
        "call_result": "answered",
        "success": "success",
        "human": True,
        "transferred": False,
        "confirmation": True,
        "tools": ["play_keypad_touch_tone", "end_call"],
    },
    NUMBER_IVR_DEAD_END: {
        "status": "done",
        "call_result": "answered",
        "success": "failure",
        "human": False,
        "transferred": False,
        "confirmation": False,
        "tools": ["play_keypad_touch_tone", "play_keypad_touch_tone", "end_call"],
    },
    NUMBER_NO_TRANSCRIPT_WEBHOOK: {
        "status": "done",
        "call_result": "answered",
        "success": "success",
        "human": False,
        "transferred": False,
        "confirmation": True,
        "tools": ["end_call"],
    },
    NUMBER_KEYPAD_FAILS: {
        "status": "done",
        "call_result": "answered",
        "success": "failure",
        "human": False,
        "transferred": False,
        "confirmation": False,
        "tools": ["play_keypad_touch_tone", "end_call"],
    },
    NUMBER_REFUSES_OVERRIDES: {"status": "failed", "call_result": "failed", "tools": []},
    NUMBER_BUSY: {"status": "failed", "call_result": "busy", "tools": []},
    NUMBER_NO_ANSWER: {"status": "failed", "call_result": "no_answer", "tools": []},
}


@pytest.mark.parametrize("number", list(EXPECTED))
def test_magic_number_outcomes(shared: httpx.Client, number: str) -> None:
    expected = EXPECTED[number]
    conversation = wait_final(shared, place(shared, number))
    assert conversation["status"] == expected["status"]
    assert conversation["metadata"]["phone_call"]["call_result"] == expected["call_result"]
    assert tool_names(conversation) == expected["tools"]
    facts = wire.facts_of(conversation)
    assert facts.call_result == expected["call_result"]
    analysis = wire.analysis_of(conversation)
    assert analysis is not None
    if expected["status"] == "failed":
        assert conversation["transcript"] == [] and conversation["has_audio"] is False
        assert conversation["metadata"]["call_duration_secs"] == 0
        return
    assert analysis.call_successful == expected["success"]
    assert analysis.criteria[CRITERION_GOAL_ACHIEVED].result == expected["success"]
    assert analysis.data[DATA_REACHED_HUMAN].value is expected["human"]
    assert analysis.data[DATA_TRANSFERRED].value is expected["transferred"]
    assert bool(analysis.data[DATA_CONFIRMATION_NUMBER].value) is expected["confirmation"]
    if expected["confirmation"]:
        said = " ".join(t["message"] or "" for t in conversation["transcript"] if t["role"] == "user")
        assert analysis.data[DATA_CONFIRMATION_NUMBER].value in said
    assert conversation["has_audio"] is True and conversation["metadata"]["call_duration_secs"] > 0
    assert conversation["metadata"]["termination_reason"]
    turns = conversation["transcript"]
    assert turns[0]["role"] == "agent" and turns[0]["message"]
    assert [t["time_in_call_secs"] for t in turns] == sorted(t["time_in_call_secs"] for t in turns)
    # As in a real record: the calling item, then a separate item with the result, matched by request_id.
    last_call = turns[-2]["tool_calls"][0]
    last_result = turns[-1]["tool_results"][0]
    assert turns[-2]["tool_results"] == [] and turns[-1]["tool_calls"] == []
    assert last_call["request_id"] == last_result["request_id"]
    if expected["tools"][-1] == "end_call":
        assert last_result["result"]["result_type"] == "end_call_success"


def test_ivr_presses_2_with_the_keypad_tool(shared: httpx.Client) -> None:
    conversation = wait_final(shared, place(shared, NUMBER_IVR))
    menu = next(t for t in conversation["transcript"] if t["role"] == "user")
    assert "press 2 for orders" in menu["message"]
    press = next(t for t in conversation["transcript"] if t["tool_calls"])
    assert json.loads(press["tool_calls"][0]["params_as_json"])["dtmf_tones"] == "2"
    result = next(t for t in conversation["transcript"] if t["tool_results"])["tool_results"][0]
    assert result["request_id"] == press["tool_calls"][0]["request_id"]
    assert result["result"] == {
        "result_type": "play_dtmf_success",
        "status": "success",
        "dtmf_tones": "2",
        "reason": result["result"]["reason"],
    }
    assert result["is_error"] is False


def test_delayed_answer_rings_for_the_given_time(shared: httpx.Client) -> None:
    started = time.monotonic()
    conversation_id = place(shared, delayed_answer_number(40))  # 40 simulated seconds = 0.8 s here
    wait_until(lambda: shared.get(f"/v1/convai/conversations/{conversation_id}").json()["status"] != "initiated")
    assert time.monotonic() - started >= 40 * SCALE
    assert wait_final(shared, conversation_id)["analysis"]["call_successful"] == "success"


def test_a_ring_longer_than_the_ringing_timeout_is_no_answer(shared: httpx.Client) -> None:
    conversation_id = place(shared, delayed_answer_number(30), telephony_call_config={"ringing_timeout_secs": 10})
    conversation = wait_final(shared, conversation_id)
    assert (conversation["status"], conversation["metadata"]["phone_call"]["call_result"]) == ("failed", "no_answer")


@pytest.mark.parametrize(
    ("number", "status", "code"),
    [(NUMBER_HTTP_500, 500, "internal_error"), (NUMBER_HTTP_429, 429, "concurrent_limit_exceeded")],
)
def test_error_numbers_answer_http_errors(sandbox: httpx.Client, number: str, status: int, code: str) -> None:
    response = sandbox.post("/v1/convai/twilio/outbound-call", json=call_body(number))
    assert response.status_code == status
    assert response.json()["detail"]["code"] == code
    assert response.headers.get("retry-after") == ("1" if status == 429 else None)
    assert sandbox.get("/v1/convai/conversations").json()["conversations"] == []


def test_not_success_number_answers_200_with_success_false(sandbox: httpx.Client) -> None:
    response = sandbox.post("/v1/convai/twilio/outbound-call", json=call_body(NUMBER_NOT_SUCCESS))
    assert response.status_code == 200
    assert response.json()["success"] is False and response.json()["message"]
    assert response.json()["conversation_id"] is None and response.json()["callSid"] is None


def test_every_magic_number_is_tested() -> None:
    # The null-id and vanishing numbers are tested in test_sdk_oracle.py (they have no plain final record here).
    covered = {
        *EXPECTED,
        NUMBER_HTTP_500,
        NUMBER_HTTP_429,
        NUMBER_NOT_SUCCESS,
        NUMBER_NO_CONVERSATION_ID,
        NUMBER_VANISHES,
    }
    assert set(MAGIC_NUMBERS) <= covered


def test_bare_agent_gets_no_analysis_items_and_cannot_press_keys(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    _, bare = make_sandbox(agent_ready=False)
    conversation = wait_final(bare, place(bare, NUMBER_IVR))
    assert tool_names(conversation) == []  # no keypad, no end_call: the caller says "2" and the line hangs up
    assert conversation["analysis"]["call_successful"] == "failure"
    assert conversation["analysis"]["evaluation_criteria_results"] == {}
    assert conversation["analysis"]["data_collection_results"] == {}
    assert conversation["metadata"]["termination_reason"] == "Call ended by remote party"


# ------------------------------------------------------------------------------------------------ progress and audio


def test_transcript_grows_while_in_progress_and_audio_waits_for_done(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    # On a stepped clock, read every half simulated second: each status and each turn is seen, however slow the
    # machine (on the real clock a loaded machine's reads can miss the 3 s of `processing` or a turn).
    clock = SteppedClock()
    _, sandbox = make_sandbox(time_scale=1.0, clock=clock)
    conversation_id = place(sandbox, NUMBER_COMPLETED)
    seen: list[tuple[str, int]] = []
    audio_codes: dict[str, int] = {}
    while not seen or seen[-1][0] != "done":
        body = sandbox.get(f"/v1/convai/conversations/{conversation_id}").json()
        seen.append((body["status"], len(body["transcript"])))
        audio_codes.setdefault(
            body["status"], sandbox.get(f"/v1/convai/conversations/{conversation_id}/audio").status_code
        )
        assert body["analysis"] is None or body["status"] == "done"
        assert len(seen) < 200
        clock.advance(0.5)
    statuses = [s for s, _ in seen]
    order = ["initiated", "in-progress", "processing", "done"]
    assert sorted(set(statuses), key=order.index) == order
    assert statuses == sorted(statuses, key=order.index)  # never goes backwards
    lengths = [n for _, n in seen]
    assert lengths == sorted(lengths)
    assert seen[0] == ("initiated", 0)
    # A poller sees the items arrive (at 0, 4, 9, 14 and 19 s in call); at 21 s the end_call item and the separate
    # item holding its result (as in a real record) arrive together: 5 items, then 7.
    assert sorted({n for s, n in seen if s == "in-progress"}) == [1, 2, 3, 4, 5, 7]
    assert audio_codes == {"initiated": 404, "in-progress": 404, "processing": 404, "done": 200}


def _mp3_frames(data: bytes) -> int:
    assert data[:3] == b"ID3"
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    rest = data[10 + size :]
    frames = 0
    while rest:
        header = int.from_bytes(rest[:4], "big")
        assert header >> 21 == 0x7FF, "frame sync"
        assert (header >> 19) & 3 == 3 and (header >> 17) & 3 == 1, "MPEG-1 Layer III"
        bitrate = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320][(header >> 12) & 0xF]
        rate = [44100, 48000, 32000][(header >> 10) & 3]
        length = 144 * bitrate * 1000 // rate + ((header >> 9) & 1)
        rest = rest[length:]
        frames += 1
    return frames


def test_audio_is_a_valid_mp3_as_long_as_the_call(shared: httpx.Client) -> None:
    conversation = wait_final(shared, place(shared, NUMBER_COMPLETED))
    response = shared.get(f"/v1/convai/conversations/{conversation['conversation_id']}/audio")
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
    seconds = _mp3_frames(response.content) * 1152 / 32000
    assert abs(seconds - conversation["metadata"]["call_duration_secs"]) < 0.1
    busy = wait_final(shared, place(shared, NUMBER_BUSY))
    assert shared.get(f"/v1/convai/conversations/{busy['conversation_id']}/audio").status_code == 404


# ------------------------------------------------------------------------------------------------ listing


def test_list_filters_by_user_and_pages_newest_first(sandbox: httpx.Client) -> None:
    ids = [place(sandbox, NUMBER_BUSY, conversation_initiation_client_data={"user_id": f"u{i}"}) for i in range(5)]
    only = sandbox.get("/v1/convai/conversations", params={"user_id": "u3"}).json()
    assert [c["conversation_id"] for c in only["conversations"]] == [ids[3]]
    assert only["has_more"] is False and only["next_cursor"] is None
    assert sandbox.get("/v1/convai/conversations", params={"user_id": "nobody"}).json()["conversations"] == []
    assert sandbox.get("/v1/convai/conversations", params={"agent_id": "agent_x"}).json()["conversations"] == []

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"page_size": 2, "agent_id": AGENT}
        if cursor:
            params["cursor"] = cursor
        page = sandbox.get("/v1/convai/conversations", params=params).json()
        pages.append([c["conversation_id"] for c in page["conversations"]])
        assert page["has_more"] is (page["next_cursor"] is not None)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[:1]]
    summary = sandbox.get("/v1/convai/conversations").json()["conversations"][0]
    for key in (
        "agent_id",
        "conversation_id",
        "start_time_unix_secs",
        "call_duration_secs",
        "message_count",
        "status",
        "call_successful",
    ):
        assert key in summary
    bad = sandbox.get("/v1/convai/conversations", params={"cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["detail"]["code"] == "invalid_cursor"


def assert_row_says_what_the_conversation_says(row: dict[str, Any], full: dict[str, Any]) -> None:
    analysis = full["analysis"] or {}
    assert row["status"] == full["status"]
    assert row["call_duration_secs"] == full["metadata"]["call_duration_secs"]
    assert row["cost"] == full["metadata"]["cost"]
    assert row["termination_reason"] == full["metadata"]["termination_reason"]
    assert row["user_message_count"] == full["user_message_count"]
    assert row["agent_message_count"] == full["agent_message_count"]
    assert row["message_count"] == full["user_message_count"] + full["agent_message_count"]
    assert row["call_successful"] == analysis.get("call_successful", "unknown")
    assert row["transcript_summary"] == analysis.get("transcript_summary")
    assert row["call_summary_title"] == analysis.get("call_summary_title")
    assert row["tool_names"] == sorted(set(tool_names(full)))


def listed_ids(client: httpx.Client, **params: Any) -> list[str]:
    return [c["conversation_id"] for c in client.get("/v1/convai/conversations", params=params).json()["conversations"]]


def test_list_summaries_say_what_each_conversation_says_at_every_step(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    # A list row is built without rendering the whole conversation: it must still agree with GET, field by field,
    # in every state (ringing, in progress, processing, done, failed), and the status/success filters with it.
    clock = SteppedClock()
    _, sandbox = make_sandbox(time_scale=1.0, clock=clock)
    ids = [place(sandbox, number) for number in (NUMBER_COMPLETED, NUMBER_BUSY, NUMBER_IVR, NUMBER_NOT_UNDERSTOOD)]
    seen: set[str] = set()
    for _ in range(40):
        rows = sandbox.get("/v1/convai/conversations", params={"summary_mode": "include"}).json()["conversations"]
        assert [r["conversation_id"] for r in rows] == ids[::-1]
        for row in rows:
            full = sandbox.get(f"/v1/convai/conversations/{row['conversation_id']}").json()
            assert_row_says_what_the_conversation_says(row, full)
            seen.add(full["status"])
        for status in {r["status"] for r in rows}:
            expected = [r["conversation_id"] for r in rows if r["status"] != status]
            assert listed_ids(sandbox, exclude_statuses=status) == expected
        for verdict in ("success", "failure", "unknown"):
            expected = [r["conversation_id"] for r in rows if r["call_successful"] == verdict]
            assert listed_ids(sandbox, call_successful=verdict) == expected
        clock.advance(1.5)
    assert seen == {"initiated", "in-progress", "processing", "done", "failed"}


# ------------------------------------------------------------------------------------------------ agents, numbers


def test_agents_create_get_patch_keep_what_the_client_stored(sandbox: httpx.Client) -> None:
    body = {
        "name": "My caller",
        "tags": ["mine"],
        "conversation_config": {
            "agent": {
                "first_message": "Hello",
                "language": "en",
                "prompt": {"prompt": "P", "llm": "gpt-4o-mini", "my_setting": 7},
            },
            "tts": {"voice_id": "voice_1"},
        },
        "platform_settings": {"evaluation": {"criteria": [{"id": "a", "name": "A", "conversation_goal_prompt": "?"}]}},
        "unknown_top_level": {"x": 1},
    }
    agent_id = sandbox.post("/v1/convai/agents/create", json=body).json()["agent_id"]
    agent = sandbox.get(f"/v1/convai/agents/{agent_id}").json()
    assert agent["agent_id"] == agent_id and agent["name"] == "My caller"
    assert agent["conversation_config"] == body["conversation_config"]
    assert agent["unknown_top_level"] == {"x": 1}
    assert set(agent["metadata"]) == {"created_at_unix_secs", "updated_at_unix_secs"}

    patch = {
        "conversation_config": {
            "agent": {
                "first_message": "Hi",
                "prompt": {
                    "built_in_tools": {"end_call": {"name": "end_call", "params": {"system_tool_type": "end_call"}}}
                },
            }
        },
        "platform_settings": {"evaluation": {"criteria": [{"id": "b", "name": "B", "conversation_goal_prompt": "?"}]}},
    }
    patched = sandbox.patch(f"/v1/convai/agents/{agent_id}", json=patch).json()
    prompt = patched["conversation_config"]["agent"]["prompt"]
    assert patched["conversation_config"]["agent"]["first_message"] == "Hi"
    assert (prompt["prompt"], prompt["llm"], prompt["my_setting"]) == ("P", "gpt-4o-mini", 7)  # merged, kept
    assert prompt["built_in_tools"]["end_call"]["params"]["system_tool_type"] == "end_call"
    assert [c["id"] for c in patched["platform_settings"]["evaluation"]["criteria"]] == ["b"]  # arrays replace
    assert patched["conversation_config"]["tts"] == {"voice_id": "voice_1"}
    assert sandbox.get(f"/v1/convai/agents/{agent_id}").json() == patched
    listed = sandbox.get("/v1/convai/agents").json()
    assert {a["agent_id"] for a in listed["agents"]} == {AGENT, agent_id}


def test_default_agent_is_ready_and_labelled_sandbox(sandbox: httpx.Client) -> None:
    agent = sandbox.get(f"/v1/convai/agents/{AGENT}").json()
    assert "sandbox" in agent["name"]
    tools = agent["conversation_config"]["agent"]["prompt"]["built_in_tools"]
    for name in ("end_call", "play_keypad_touch_tone", "voicemail_detection", "skip_turn"):
        assert tools[name]["params"]["system_tool_type"] == name
    flags = agent["platform_settings"]["overrides"]["conversation_config_override"]
    assert flags["agent"] == {"first_message": True, "language": True, "prompt": {"prompt": True}}
    assert flags["tts"] == {"voice_id": True, "speed": True}
    assert [c["id"] for c in agent["platform_settings"]["evaluation"]["criteria"]] == [CRITERION_GOAL_ACHIEVED]
    assert set(agent["platform_settings"]["data_collection"]) == {
        DATA_REACHED_HUMAN,
        DATA_TRANSFERRED,
        DATA_CONFIRMATION_NUMBER,
    }


def test_phone_numbers_is_a_bare_array_with_configured_extras(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    _, client = make_sandbox(
        extra_phone_numbers=[
            {"phone_number_id": "phnum_sip", "provider": "sip_trunk", "phone_number": "+15550001111"},
            {"phone_number_id": "phnum_in", "supports_outbound": False, "phone_number": "+15550002222"},
        ]
    )
    numbers = client.get("/v1/convai/phone-numbers").json()
    assert isinstance(numbers, list)
    assert [n["phone_number_id"] for n in numbers] == [PHONE, "phnum_sip", "phnum_in"]
    assert numbers[0] == {
        "provider": "twilio",
        "phone_number": "+15550009999",
        "label": numbers[0]["label"],
        "phone_number_id": PHONE,
        "supports_inbound": True,
        "supports_outbound": True,
        "assigned_agent": {
            "agent_id": AGENT,
            "agent_name": numbers[0]["assigned_agent"]["agent_name"],
            "environment": None,
            "branch_id": None,
        },
    }
    assert numbers[1]["provider"] == "sip_trunk" and numbers[2]["supports_outbound"] is False
    assert [
        n["phone_number_id"] for n in client.get("/v1/convai/phone-numbers", params={"provider": "sip_trunk"}).json()
    ] == ["phnum_sip"]
    for number_id in ("phnum_sip", "phnum_in"):
        response = client.post(
            "/v1/convai/twilio/outbound-call", json={**call_body(NUMBER_COMPLETED), "agent_phone_number_id": number_id}
        )
        assert response.status_code == 400, number_id


# ------------------------------------------------------------------------------------------------ webhooks


class Receiver:
    """A real HTTP server on loopback that records every POST; `fail_first` answers 500 to that many."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                code = 500 if len(outer.received) < outer.fail_first else 200
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body, code))
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body, code in self.received if code == 200]


def verify(secret: str, headers: dict[str, str], body: bytes) -> None:
    """Independent check of ElevenLabs' scheme (§5.2/5.3): t=<unix>,v0=<hex hmac_sha256(secret, t.body)>."""
    parts = dict(part.split("=", 1) for part in headers["elevenlabs-signature"].split(","))
    assert set(parts) == {"t", "v0"}
    expected = hmac.new(secret.encode(), f"{parts['t']}.{body.decode()}".encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v0"], expected)
    assert abs(int(parts["t"]) - time.time()) < 60


def test_signed_webhooks_arrive_exactly_once(make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]]) -> None:
    secret = "whsec_test_0123456789"
    with Receiver() as receiver:
        _, client = make_sandbox(webhook_url=receiver.url, webhook_secret=secret, send_audio_webhook=True)
        done_id = place(client, NUMBER_COMPLETED)
        busy_id = place(client, NUMBER_BUSY)
        no_answer_id = place(client, NUMBER_NO_ANSWER, telephony_call_config={"ringing_timeout_secs": 5})
        wait_until(lambda: len(receiver.received) >= 4)
        time.sleep(0.3)  # long enough for a duplicate or a stray extra event to show up
        assert len(receiver.received) == 4
        for headers, body, _ in receiver.received:
            verify(secret, headers, body)
            assert headers["content-type"] == "application/json"
        events = {(e["type"], e["data"]["conversation_id"]): e for e in receiver.events()}
        assert set(events) == {
            ("post_call_transcription", done_id),
            ("post_call_audio", done_id),
            ("call_initiation_failure", busy_id),
            ("call_initiation_failure", no_answer_id),
        }
        transcription = events[("post_call_transcription", done_id)]
        assert isinstance(transcription["event_timestamp"], int)
        assert transcription["data"] == client.get(f"/v1/convai/conversations/{done_id}").json()
        assert transcription["data"]["status"] == "done"
        audio = events[("post_call_audio", done_id)]["data"]
        assert set(audio) == {"agent_id", "conversation_id", "full_audio"}
        assert base64.b64decode(audio["full_audio"]) == client.get(f"/v1/convai/conversations/{done_id}/audio").content
        busy = events[("call_initiation_failure", busy_id)]["data"]
        assert busy["failure_reason"] == "busy" and busy["agent_id"] == AGENT
        assert busy["metadata"]["type"] == "twilio"
        assert busy["metadata"]["body"]["CallStatus"] == "busy"
        assert (
            busy["metadata"]["body"]["CallSid"]
            == client.get(f"/v1/convai/conversations/{busy_id}").json()["metadata"]["phone_call"]["call_sid"]
        )
        assert all(isinstance(v, str) for v in busy["metadata"]["body"].values())
        no_answer = events[("call_initiation_failure", no_answer_id)]["data"]
        assert (no_answer["failure_reason"], no_answer["metadata"]["body"]["CallStatus"]) == ("no-answer", "no-answer")


def test_a_failed_delivery_is_retried_and_logged(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    with Receiver(fail_first=1) as receiver:
        server, client = make_sandbox(webhook_url=receiver.url, webhook_retry_delay_secs=0.05)
        conversation_id = place(client, NUMBER_BUSY)
        wait_until(lambda: len(receiver.received) >= 2)
        time.sleep(0.2)
        assert [code for _, _, code in receiver.received] == [500, 200]
        assert receiver.received[0][1] == receiver.received[1][1]  # the same event, re-signed
        log = httpx.get(f"{server.url}/_sandbox/webhooks").json()
        assert [(d["attempt"], d["status_code"], d["delivered"]) for d in log] == [(1, 500, False), (2, 200, True)]
        assert {d["conversation_id"] for d in log} == {conversation_id}


def test_no_webhook_url_sends_nothing_and_two_sandboxes_share_nothing(
    make_sandbox: Callable[..., tuple[SandboxServer, httpx.Client]],
) -> None:
    first, a = make_sandbox()
    second, b = make_sandbox()
    wait_final(a, place(a, NUMBER_BUSY))
    assert httpx.get(f"{first.url}/_sandbox/webhooks").json() == []
    assert b.get("/v1/convai/conversations").json()["conversations"] == []
    assert httpx.get(f"{second.url}/_sandbox/requests").json()[0]["path"] == "/v1/convai/conversations"


def test_the_business_follows_the_scenario_and_the_persona(shared: httpx.Client) -> None:
    from callcheck.domain.suite import Persona, caller_config

    caller = caller_config("A pizza shop.", "book a table for two", Persona(name="Lucía Pérez", language="es"))
    override = {"agent": {"prompt": {"prompt": caller.prompt}, "first_message": caller.first_message, "language": "es"}}
    spanish = wait_final(
        shared,
        place(shared, NUMBER_COMPLETED, conversation_initiation_client_data={"conversation_config_override": override}),
    )
    said = [(t["role"], t["message"]) for t in spanish["transcript"] if t["message"]]
    assert ("agent", "A nombre de Lucía Pérez.") in said
    assert any(role == "user" and "Gracias, Lucía" in text for role, text in said)

    english = {"agent": {"prompt": {"prompt": caller_config("A pizza shop.", "book a table for two").prompt}}}
    plain = wait_final(
        shared,
        place(shared, NUMBER_COMPLETED, conversation_initiation_client_data={"conversation_config_override": english}),
    )
    business = [t["message"] for t in plain["transcript"] if t["role"] == "user"]
    assert "Sure, I can help you book a table for two." in business[0]


def test_a_call_is_cut_at_its_max_duration_override(shared: httpx.Client) -> None:
    override = {"conversation": {"max_duration_seconds": 10}}
    record = wait_final(
        shared,
        place(shared, NUMBER_COMPLETED, conversation_initiation_client_data={"conversation_config_override": override}),
    )
    assert record["metadata"]["call_duration_secs"] == 10
    assert record["metadata"]["termination_reason"] == "Maximum call duration reached."
    assert all(t["time_in_call_secs"] < 10 for t in record["transcript"])
