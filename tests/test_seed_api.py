"""POST /api/context and POST /api/call exactly as the seed documents them, against the sandbox over real HTTP."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.domain.prompts import DEFAULT_SCENARIO
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.scripted import ScriptedServer, running

PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."
ORDER = "order a large pepperoni pizza for delivery to 123 Main St"
E164_ERROR = "Phone number must be in E.164 format, for example +15551234567."
NO_DESCRIPTION = "Provide a business description first."
PROMPT_HEAD = (
    "You are simulating a real customer contacting the business below. The other side is the company, an "
    "operator, or an IVR. Stay in character as the caller/customer, try to complete the task, and avoid "
    "escalating to a human unless the flow requires it."
)
PROMPT_TAIL = "Speak naturally, ask one thing at a time, and keep each response concise."


def outbound_requests(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """Bodies of the outbound-call requests the sandbox received."""
    log = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    return [r["json"] for r in log if r["path"] == "/v1/convai/twilio/outbound-call"]


def expected_payload(
    sandbox: SandboxServer, number: str, description: str, scenario: str, call_id: str
) -> dict[str, Any]:
    """The seed's documented payload, plus (providers/elevenlabs/outbound.py) our call id as user_id and as a dynamic
    variable, and the call's cap (CALLCHECK_CALL_TIMEOUT_S's default) as conversation.max_duration_seconds."""
    goal_for_first = scenario.rstrip(".")
    return {
        "agent_id": sandbox.config.agent_id,
        "agent_phone_number_id": sandbox.config.phone_number_id,
        "to_number": number,
        "conversation_initiation_client_data": {
            "conversation_config_override": {
                "agent": {
                    "prompt": {
                        "prompt": f"{PROMPT_HEAD}\n\nBusiness description: {description}\n\n"
                        f"Caller goal: {scenario}\n\n{PROMPT_TAIL}"
                    },
                    "first_message": f"Hi, I'm calling because I'd like to {goal_for_first}.",
                },
                "conversation": {"max_duration_seconds": 1800},
            },
            "user_id": call_id,
            "dynamic_variables": {"callcheck_call_id": call_id},
        },
    }


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path, workers=False))
    return client


async def test_documented_example_succeeds_and_sends_the_documented_payload(
    api: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    response = await api.post(
        "/api/call", json={"to_number": "+15551234567", "business_description": PIZZA, "scenario": ORDER}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    raw = body["raw"]
    assert raw["success"] is True
    assert body == {
        "ok": True,
        "status": "initiated",
        "message": "Call initiated.",
        "to_number": "+15551234567",
        "scenario": ORDER,
        "call_sid": raw["callSid"],
        "conversation_id": raw["conversation_id"],
        "raw": raw,
        "id": body["id"],
    }
    assert body["call_sid"].startswith("CA") and body["conversation_id"]
    assert outbound_requests(sandbox) == [expected_payload(sandbox, "+15551234567", PIZZA, ORDER, body["id"])]
    flattened = " ".join(
        outbound_requests(sandbox)[0]["conversation_initiation_client_data"]["conversation_config_override"]["agent"][
            "prompt"
        ]["prompt"].split()
    )
    # The seed's prompt text, read as one paragraph, with the description and goal where it names them.
    assert flattened == f"{PROMPT_HEAD} Business description: {PIZZA} Caller goal: {ORDER} {PROMPT_TAIL}"


async def test_session_context_from_the_seed_curl_pair_without_cookies(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path, workers=False)
    first = await client_for(settings)
    context = await first.post(
        "/api/context",
        json={"description": "We are a tech support helpdesk.", "scenario": "report a login issue"},
    )
    assert context.status_code == 200
    assert context.json() == {"ok": True, "scenario": "report a login issue"}
    # A second client with an empty cookie jar: like two separate curl commands.
    second = httpx.AsyncClient(transport=first._transport, base_url="http://testserver")
    response = await second.post("/api/call", json={"to_number": "+15551234567"})
    assert response.status_code == 200, response.text
    assert response.json()["scenario"] == "report a login issue"
    sent = outbound_requests(sandbox)[0]
    agent = sent["conversation_initiation_client_data"]["conversation_config_override"]["agent"]
    assert "Business description: We are a tech support helpdesk." in agent["prompt"]["prompt"]
    assert agent["first_message"] == "Hi, I'm calling because I'd like to report a login issue."
    await second.aclose()


async def test_request_fields_override_session_and_session_overrides_default(api: httpx.AsyncClient) -> None:
    await api.post("/api/context", json={"description": "Session business.", "scenario": "session goal"})
    both = await api.post("/api/call", json={"to_number": "+15551234567", "scenario": "request goal"})
    assert both.json()["scenario"] == "request goal"
    session = await api.post("/api/call", json={"to_number": "+15551234567", "scenario": "   "})
    assert session.json()["scenario"] == "session goal"
    await api.post("/api/context", json={"description": "Session business."})
    default = await api.post("/api/call", json={"to_number": "+15551234567"})
    assert default.json()["scenario"] == DEFAULT_SCENARIO


async def test_first_message_drops_the_scenarios_trailing_period(
    api: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    response = await api.post(
        "/api/call",
        json={"to_number": "+15551234567", "business_description": PIZZA, "scenario": " order a pizza. "},
    )
    assert response.json()["scenario"] == "order a pizza."
    agent = outbound_requests(sandbox)[0]["conversation_initiation_client_data"]["conversation_config_override"]
    assert agent["agent"]["first_message"] == "Hi, I'm calling because I'd like to order a pizza."


async def test_default_scenario_is_the_seeds(api: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    response = await api.post("/api/call", json={"to_number": "+15551234567", "business_description": PIZZA})
    assert response.json()["scenario"] == (
        "check availability, complete a typical customer task, and avoid speaking to a human if possible"
    )
    agent = outbound_requests(sandbox)[0]["conversation_initiation_client_data"]["conversation_config_override"]
    assert agent["agent"]["first_message"] == f"Hi, I'm calling because I'd like to {DEFAULT_SCENARIO}."


async def test_missing_description_is_checked_before_the_number(api: httpx.AsyncClient) -> None:
    for body in (
        {"to_number": "+15551234567"},
        {"to_number": "nonsense"},
        {},
        {"business_description": "  "},
    ):
        response = await api.post("/api/call", json=body)
        assert response.status_code == 400
        assert response.json() == {"error": NO_DESCRIPTION}


@pytest.mark.parametrize(
    "number",
    [
        "5551234567",
        "+0551234567",
        "+1555",
        "+155512345678901234",
        "",
        "+1555123456a",
        "+15551234567\n",
        "+1\u0665\u0665\u0665\u0661\u0662\u0663\u0664\u0665\u0666\u0667",  # Arabic-Indic digits are not E.164
    ],
)
async def test_invalid_numbers_get_the_seeds_message(
    api: httpx.AsyncClient, sandbox: SandboxServer, number: str
) -> None:
    response = await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})
    if number.strip() == "+15551234567":
        # Surrounding blanks are not part of the number.
        assert response.status_code == 200
        return
    assert response.status_code == 400
    assert response.json() == {"error": E164_ERROR}
    assert outbound_requests(sandbox) == []


@pytest.mark.parametrize("number", ["+15551234567", "+442071234567", "+81312345678", "+12345678"])
async def test_valid_numbers_from_the_seed_are_accepted(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path, number: str
) -> None:
    # Valid E.164 numbers of every country pass the seed's check; calling another country than the agent's own
    # (+1 in the sandbox) needs it allowed (tests/test_destinations.py tests the default).
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, allowed_countries="*"))
    response = await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})
    assert response.status_code == 200, response.text
    assert response.json()["to_number"] == number


async def test_missing_settings_are_named_after_validation(client_for: Any, tmp_path: Path) -> None:
    api = await client_for(settings_for(None, tmp_path, workers=False))
    invalid = await api.post("/api/call", json={"to_number": "123", "business_description": PIZZA})
    assert invalid.json() == {"error": E164_ERROR}
    response = await api.post("/api/call", json={"to_number": "+15551234567", "business_description": PIZZA})
    assert response.status_code == 500
    assert response.json() == {
        "error": "Missing required environment variables: "
        "ELEVENLABS_API_KEY, ELEVENLABS_AGENT_ID, ELEVENLABS_AGENT_PHONE_NUMBER_ID"
    }


async def test_only_the_missing_settings_are_named(client_for: Any, tmp_path: Path) -> None:
    api = await client_for(
        settings_for(None, tmp_path, workers=False, elevenlabs_agent_id="agent_1", elevenlabs_api_key="  ")
    )
    response = await api.post("/api/call", json={"to_number": "+15551234567", "business_description": PIZZA})
    assert response.json() == {
        "error": "Missing required environment variables: ELEVENLABS_API_KEY, ELEVENLABS_AGENT_PHONE_NUMBER_ID"
    }


async def test_invalid_api_key_is_a_502_with_elevenlabs_message(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, elevenlabs_api_key="wrong-key"))
    response = await api.post("/api/call", json={"to_number": "+15551234567", "business_description": PIZZA})
    assert response.status_code == 502
    assert response.json() == {"error": "ElevenLabs API error (401): Invalid API key"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_upstream_is_a_502(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(
        settings_for(sandbox, tmp_path, workers=False, elevenlabs_api_base=f"http://127.0.0.1:{_closed_port()}")
    )
    response = await api.post("/api/call", json={"to_number": "+15551234567", "business_description": PIZZA})
    assert response.status_code == 502
    assert response.json()["error"].startswith("Could not reach ElevenLabs: ConnectError")


@pytest.mark.parametrize(
    ("number", "status"),
    [("+15550100500", 500), ("+15550100429", 429), ("+15550100200", 200)],
)
async def test_upstream_failures_are_502_with_a_readable_line(
    api: httpx.AsyncClient, sandbox: SandboxServer, number: str, status: int
) -> None:
    response = await api.post("/api/call", json={"to_number": number, "business_description": PIZZA})
    assert response.status_code == 502
    error = response.json()["error"]
    # A 200 saying `success: false` is worded without "(200)", which would read as if a success were the error.
    prefix = "ElevenLabs API error: " if status == 200 else f"ElevenLabs API error ({status}): "
    assert error.startswith(prefix)
    assert "{" not in error and len(error) > len(prefix)
    if status == 200:
        assert "(200)" not in error and "success: false; no call was placed" in error
    # Never retried: a POST that failed is not sent again.
    assert len(outbound_requests(sandbox)) == 1


@pytest.mark.parametrize(
    ("content", "headers", "status", "error"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "Request body must be valid JSON."),
        (b"[1, 2]", {"content-type": "application/json"}, 400, "Request body must be a JSON object."),
        (b'"text"', {"content-type": "application/json"}, 400, "Request body must be a JSON object."),
        (
            b'{"to_number": 15551234567, "business_description": "x"}',
            {},
            400,
            "Field 'to_number' must be a string.",
        ),
        (b'{"business_description": ["x"]}', {}, 400, "Field 'business_description' must be a string."),
        (
            b'{"scenario": 3, "business_description": "x", "to_number": "+15551234567"}',
            {},
            400,
            "Field 'scenario' must be a string.",
        ),
        # The seed's order holds whatever the types: no description anywhere is reported before a bad number.
        (b'{"to_number": 15551234567}', {}, 400, "Provide a business description first."),
        (b"\xff\xfe", {}, 400, "Request body must be valid JSON."),
        (b"[" * 50_000 + b"]" * 50_000, {}, 400, "Request body is nested too deeply."),
        (
            b'{"business_description": "\\ud800", "to_number": "+15551234567"}',
            {},
            400,
            "Request body must be valid text (it holds an unpaired surrogate escape).",
        ),
        (
            b'{"business_description": "x", "to_number": "+15551234567"}',
            {"content-type": "text/plain"},
            415,
            "Send the body as JSON, with Content-Type: application/json.",
        ),
        (
            b"to_number=%2B15551234567&business_description=x",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "Send the body as JSON, with Content-Type: application/json.",
        ),
    ],
)
async def test_bad_bodies_get_a_json_4xx(
    api: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, error: str
) -> None:
    # The shape errors apply to /api/context as well; its field errors are tested below.
    paths = ("/api/call",) if "Field" in error or "description" in error else ("/api/call", "/api/context")
    for path in paths:
        response = await api.post(path, content=content, headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/json")
        assert response.json() == {"error": error}


async def test_oversized_body_is_413(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, max_body_bytes=1000))
    big = json.dumps({"business_description": "x" * 5000, "to_number": "+15551234567"})
    response = await api.post("/api/call", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "Request body is too large."}

    async def chunks() -> Any:
        # No Content-Length: the limit must hold while the body streams in.
        for _ in range(10):
            yield b"x" * 500

    streamed = await api.post("/api/call", content=chunks())
    assert streamed.status_code == 413
    assert streamed.json() == {"error": "Request body is too large."}


async def test_context_fields_must_be_strings(api: httpx.AsyncClient) -> None:
    for body, field in (
        ({"description": 5}, "description"),
        ({"description": "x", "scenario": {}}, "scenario"),
    ):
        response = await api.post("/api/context", json=body)
        assert response.status_code == 400
        assert response.json() == {"error": f"Field '{field}' must be a string."}


async def test_context_requires_a_description(api: httpx.AsyncClient) -> None:
    for body in ({}, {"description": ""}, {"description": "   ", "scenario": "x"}, {"scenario": "x"}):
        response = await api.post("/api/context", json=body)
        assert response.status_code == 400
        assert response.json() == {"error": NO_DESCRIPTION}
    ok = await api.post("/api/context", json={"description": "A shop."})
    assert ok.json() == {"ok": True, "scenario": DEFAULT_SCENARIO}


async def test_unknown_routes_and_methods_are_json(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/nothing-here")
    assert missing.status_code == 404 and missing.json() == {"error": "Not found."}
    wrong = await api.get("/api/call")
    assert wrong.status_code == 405 and wrong.json() == {"error": "Method not allowed."}
    # A person's browser gets the not-found page for a page address; a script still gets JSON.
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = await api.get("/nope", headers=browser)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in page.text and "<h1>Not found</h1>" in page.text
    assert (await api.get("/api/nope", headers=browser)).json() == {"error": "Not found."}
    assert (await api.get("/nope")).json() == {"error": "Not found."}


@pytest.mark.parametrize(
    ("status", "content_type", "raw", "error"),
    [
        # A proxy's error page says nothing readable: the reason phrase stands for it.
        (502, "text/html", "<html>\n<head><title>502</title></head>\n<body>Bad gateway</body></html>", "Bad Gateway"),
        # Whatever the body, the error is one line.
        (500, "application/json", '{"detail": "first line\\nsecond line"}', "first line second line"),
        (503, "text/plain", "down\n  for maintenance", "down for maintenance"),
        # A redirect is not an answer from ElevenLabs' API.
        (302, "application/json", "{}", "Found"),
        # success is a required boolean (contract §2.2): without `success: true` no call was placed.
        (200, "application/json", '{"success": "false", "message": "Not placed"}', "Not placed"),
        (200, "application/json", "{}", "the call was not initiated"),
    ],
)
async def test_odd_upstream_answers_are_one_readable_line_and_kept(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path, status: int, content_type: str, raw: str, error: str
) -> None:
    with running(ScriptedServer()) as upstream:
        upstream.status, upstream.content_type, upstream.raw = status, content_type, raw
        # The countries allowed are given, so the agent's own number is not asked of this scripted upstream.
        api = await client_for(
            settings_for(sandbox, tmp_path, workers=False, elevenlabs_api_base=upstream.url, allowed_countries="1")
        )
        response = await api.post("/api/call", json={"to_number": "+15551234567", "business_description": PIZZA})
    assert response.status_code == 502
    if status == 200:  # a 200 that is not `success: true`: no "(200)", which would read as if success failed
        line = f"ElevenLabs API error: {error} (ElevenLabs answered success: false; no call was placed)"
    else:
        line = f"ElevenLabs API error ({status}): {error}"
    assert response.json() == {"error": line}
    assert len(upstream.requests) == 1  # never sent twice
    # The attempt keeps what was answered, not only the line made of it.
    (stored,) = (await api.get("/api/calls")).json()["calls"]
    call = (await api.get(f"/api/calls/{stored['id']}")).json()
    assert call["state"] == "failed" and call["error"] == response.json()["error"]
    answered = call["upstream_response"]
    assert answered == (json.loads(raw) if content_type == "application/json" else raw)
