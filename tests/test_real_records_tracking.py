"""Calls followed end to end against the sandbox's real layouts (issue: real ElevenLabs records): each point's
behaviour through callcheck's API, on the test backend (SQLite by default, PostgreSQL with
CALLCHECK_TEST_BACKEND=postgres)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.doctor import run_doctor
from callcheck.domain.prompts import caller_prompt, first_message
from callcheck.providers import caller_from_settings
from callcheck.providers.elevenlabs.sandbox import (
    NUMBER_COMPLETED,
    NUMBER_KEYPAD_FAILS,
    NUMBER_NO_CONVERSATION_ID,
    NUMBER_NO_TRANSCRIPT_WEBHOOK,
    NUMBER_NOT_UNDERSTOOD,
    NUMBER_REFUSES_OVERRIDES,
    NUMBER_TRANSFERRED,
    NUMBER_VANISHES,
    SandboxConfig,
    SandboxServer,
)
from callcheck.providers.elevenlabs.webhooks import sign
from callcheck.store import db
from tests.conftest import settings_for
from tests.servers import HTTP_TIMEOUT_S, AppServer, free_port, outbound_calls
from tests.waiting import wait_for_call

PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."
SCENARIO = "order a large pepperoni pizza for delivery to 123 Main St"
SECRET = "whsec-records-0123456789abcdef"
PATH = "/api/webhooks/elevenlabs"


async def place(api: httpx.AsyncClient, number: str) -> str:
    response = await api.post(
        "/api/call", json={"to_number": number, "business_description": PIZZA, "scenario": SCENARIO}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path, conversation_not_found_s=0.5))
    return client


# 1. A failed press is not sent, and a press with its result in the next item is one press.
async def test_a_failed_keypad_press_is_one_press_and_not_sent(api: httpx.AsyncClient) -> None:
    call = await wait_for_call(api, await place(api, NUMBER_KEYPAD_FAILS))
    assert call["state"] == "completed"
    assert [(p["digits"], p["ok"]) for p in call["journey"]["keypad"]] == [("2", False)]
    press = next(c for t in call["transcript"] for c in t["tool_calls"] if c["kind"] == "keypad")
    assert press["status"] == "failed"


# 3. "..." is silence: not the business's first answer, not a turn.
async def test_silence_is_not_the_first_answer(api: httpx.AsyncClient) -> None:
    call = await wait_for_call(api, await place(api, NUMBER_NOT_UNDERSTOOD))
    silences = [t for t in call["transcript"] if t["silence"]]
    assert [t["text"] for t in silences] == ["..."]
    first_real = next(t for t in call["transcript"] if t["speaker"] == "business" and not t["silence"])
    assert call["journey"]["first_response_s"] == first_real["time_in_call_secs"] > silences[0]["time_in_call_secs"]
    assert call["journey"]["silences"] == 1
    assert call["journey"]["turns"] == sum(1 for t in call["transcript"] if t["text"] and not t["silence"])


# 4. Analysis in list form.
async def test_list_form_analysis_reaches_the_call(api: httpx.AsyncClient) -> None:
    call = await wait_for_call(api, await place(api, NUMBER_TRANSFERRED))
    assert call["analysis"]["criteria"]["goal_achieved"]["result"] == "success"
    assert call["analysis"]["data"]["reached_human"]["value"] is True
    assert call["journey"]["reached_human"] is True and call["journey"]["transferred"] is True


# 7. success with a null conversation id: found by user_id at once, not after the timeout.
async def test_a_null_conversation_id_is_looked_up_at_once(api: httpx.AsyncClient) -> None:
    call_id = await place(api, NUMBER_NO_CONVERSATION_ID)
    call = await wait_for_call(api, call_id, timeout=30)
    assert call["state"] == "completed" and call["conversation_id"]
    assert any("no conversation id" in (e["detail"] or "") for e in call["events"])


# 8. A conversation never found ends the call as failed, not at its timeout (0.5 s of grace here).
async def test_a_conversation_never_found_fails_the_call(api: httpx.AsyncClient) -> None:
    call = await wait_for_call(api, await place(api, NUMBER_VANISHES), timeout=30)
    assert call["state"] == "failed"
    assert "conversation not found upstream" in call["error"]


# 9 and 12. Every call is capped at its timeout and tagged with its id twice; the seed's texts unchanged.
async def test_the_outbound_body_caps_and_tags_the_call(api: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    call_id = await place(api, NUMBER_COMPLETED)
    (sent,) = [r["json"] for r in outbound_calls(sandbox)]
    data = sent["conversation_initiation_client_data"]
    assert data["user_id"] == call_id
    assert data["dynamic_variables"] == {"callcheck_call_id": call_id}
    assert data["conversation_config_override"] == {
        "agent": {"prompt": {"prompt": caller_prompt(PIZZA, SCENARIO)}, "first_message": first_message(SCENARIO)},
        "conversation": {"max_duration_seconds": 1800},  # CALLCHECK_CALL_TIMEOUT_S's default
    }
    await wait_for_call(api, call_id)


# 10. Money cost, credits and ring time on a completed call: API, page.
async def test_cost_and_time_to_answer_are_shown(api: httpx.AsyncClient) -> None:
    call = await wait_for_call(api, await place(api, NUMBER_COMPLETED), recording=True)
    assert call["cost"]["credits"] > 0 and call["cost"]["usd"] > 0
    assert call["time_to_answer_s"] == 3  # the sandbox rings 3 simulated seconds
    assert call["upstream_error"] is None and call["warnings"] == []
    # The business followed the scenario's words.
    assert any(SCENARIO in (t["text"] or "") for t in call["transcript"] if t["speaker"] == "business")
    page = (await api.get(f"/calls/{call['id']}")).text
    assert "Time to answer" in page and "credits" in page and "$" in page


# 10 and 11. An override refused at the start: the fix named; ElevenLabs' error and warnings shown; no audio asked.
async def test_an_override_refused_at_the_start_names_the_fix(api: httpx.AsyncClient, sandbox: SandboxServer) -> None:
    call = await wait_for_call(api, await place(api, NUMBER_REFUSES_OVERRIDES))
    assert call["state"] == "failed"
    assert call["error"] == "The agent does not allow per-call overrides; run `callcheck agent setup`."
    assert call["upstream_error"]["code"] == 1008 and "max_duration_seconds" in call["upstream_error"]["reason"]
    assert call["warnings"] == ["The conversation ended before the agent spoke."]
    page = (await api.get(f"/calls/{call['id']}")).text
    assert "ElevenLabs reported" in page and "The conversation ended before the agent spoke." in page
    # has_audio is false: the recording was never asked for.
    audio = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    assert not [r for r in audio if r["path"].endswith("/audio")]


# 11. The same fix named when the refusal is an HTTP 400 at dial time.
async def test_an_override_refused_at_dial_time_names_the_fix(client_for: Any, tmp_path: Path) -> None:
    with SandboxServer(SandboxConfig(time_scale=0.02, agent_ready=False)) as bare:
        api = await client_for(settings_for(bare, tmp_path))
        response = await api.post("/api/call", json={"to_number": NUMBER_COMPLETED, "business_description": PIZZA})
    assert response.status_code == 502
    assert "The agent does not allow per-call overrides; run `callcheck agent setup`" in response.json()["error"]


# 5. A transcription webhook without its transcript: the conversation is read instead, never stored empty.
async def test_a_webhook_without_transcript_never_empties_the_call(tmp_path: Path) -> None:
    port = free_port()
    config = SandboxConfig(time_scale=0.02, webhook_url=f"http://127.0.0.1:{port}{PATH}", webhook_secret=SECRET)
    with SandboxServer(config) as sandbox:
        # Polls are 60 s apart: the webhook is what ends this call.
        settings = settings_for(sandbox, tmp_path, elevenlabs_webhook_secret=SECRET, poll_initial_s=60, poll_max_s=60)
        with AppServer(settings, port=port) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=HTTP_TIMEOUT_S) as api:
                call = await wait_for_call(api, await place(api, NUMBER_NO_TRANSCRIPT_WEBHOOK), timeout=30)
        deliveries = httpx.get(f"{sandbox.url}/_sandbox/webhooks").json()
    assert [d["type"] for d in deliveries] == ["post_call_transcription"]
    assert call["state"] == "completed"
    assert len(call["transcript"]) > 3 and call["journey"]["turns"] > 3


# 6. Webhooks set for the whole workspace (the usual place) pass the doctor.
async def test_doctor_reads_workspace_level_webhooks(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:5000{PATH}"
    config = SandboxConfig(
        time_scale=0.02, webhook_url=url, webhook_secret=SECRET, workspace_webhook=True, webhook_level="workspace"
    )
    with SandboxServer(config) as sandbox:
        settings = settings_for(sandbox, tmp_path, elevenlabs_webhook_secret=SECRET, public_url="http://127.0.0.1:5000")
        db.upgrade(settings.resolved_database_url())
        agent = httpx.get(
            f"{sandbox.url}/v1/convai/agents/{config.agent_id}", headers={"xi-api-key": config.api_key}
        ).json()
        assert "workspace_overrides" not in agent["platform_settings"]  # nothing set on the agent itself
        async with httpx.AsyncClient() as http:
            report = await run_doctor(settings, caller_from_settings(settings, http))
    check = next(c for c in report.checks if c.name == "agent_webhook")
    assert check.status == "pass", check.message
    assert "workspace setting" in check.message
    assert report.ok, [c for c in report.checks if not c.ok]


def transcription(conversation_id: str, status: str, transcript: list[dict[str, Any]] | None) -> bytes:
    data: dict[str, Any] = {
        "agent_id": "agent_sandbox",
        "conversation_id": conversation_id,
        "status": status,
        "metadata": {"start_time_unix_secs": 1700000000, "call_duration_secs": 9, "termination_reason": ""},
        "analysis": {"call_successful": "success", "transcript_summary": "Ordered."},
        "has_audio": False,
    }
    if transcript is not None:
        data["transcript"] = transcript
    return json.dumps({"type": "post_call_transcription", "event_timestamp": 1, "data": data}).encode()


# 5. ...and when the conversation cannot be read either, the stored transcript stays and the call is not ended.
async def test_a_webhook_without_transcript_never_wipes_a_stored_one(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False, elevenlabs_webhook_secret=SECRET))
    call_id = await place(api, NUMBER_VANISHES)  # its conversation is never found: reading it fails
    conversation_id = (await api.get(f"/api/calls/{call_id}")).json()["conversation_id"]
    turns = [
        {"role": "agent", "message": "Hi, I'd like a pizza.", "time_in_call_secs": 0},
        {"role": "user", "message": "Sure, what size?", "time_in_call_secs": 2},
    ]
    for body in (transcription(conversation_id, "in-progress", turns), transcription(conversation_id, "done", None)):
        headers = {"ElevenLabs-Signature": sign(SECRET, body), "content-type": "application/json"}
        answer = await api.post(PATH, content=body, headers=headers)
        assert answer.status_code == 200 and answer.json()["matched"] is True
    call = (await api.get(f"/api/calls/{call_id}")).json()
    assert [t["text"] for t in call["transcript"]] == ["Hi, I'd like a pizza.", "Sure, what size?"]
    assert call["state"] == "in_progress"  # not ended on an empty conversation: left to polling
