"""POST /api/webhooks/elevenlabs: signature checks, idempotence, late matching, and real delivery."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.config import Settings
from callcheck.domain.lifecycle import CallState
from callcheck.jobs.applying import FINAL_READ_ATTEMPTS, apply_stored_webhooks
from callcheck.jobs.placing import CallRequest, record_call
from callcheck.providers.elevenlabs.sandbox import SandboxConfig, SandboxServer
from callcheck.providers.elevenlabs.webhooks import sign
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.repo import Store
from tests.conftest import settings_for
from tests.scripted import ScriptedServer, running
from tests.servers import HTTP_TIMEOUT_S, AppServer, free_port
from tests.waiting import wait_for_call

SECRET = "whsec-test-0123456789abcdef"
PATH = "/api/webhooks/elevenlabs"


def transcription_event(conversation_id: str, status: str = "done") -> dict[str, Any]:
    return {
        "type": "post_call_transcription",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "agent_sandbox",
            "conversation_id": conversation_id,
            "status": status,
            "transcript": [
                {"role": "agent", "message": "Hi, I'd like a pizza.", "time_in_call_secs": 0},
                {"role": "user", "message": "Sure, what size?", "time_in_call_secs": 2},
            ],
            "metadata": {"start_time_unix_secs": 1700000000, "call_duration_secs": 9, "termination_reason": ""},
            "analysis": {"call_successful": "success", "transcript_summary": "Ordered."},
            "has_audio": False,
        },
    }


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    return {"ElevenLabs-Signature": sign(secret, body, timestamp), "content-type": "application/json"}


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(
        settings_for(sandbox, tmp_path, workers=False, elevenlabs_webhook_secret=SECRET)
    )
    return client


async def placed_conversation(api: httpx.AsyncClient, number: str = "+15550100001") -> tuple[str, str]:
    response = await api.post("/api/call", json={"to_number": number, "business_description": "A pizza shop."})
    body = response.json()
    return body["id"], body["conversation_id"]


async def test_a_signed_transcription_completes_the_call(api: httpx.AsyncClient) -> None:
    call_id, conversation_id = await placed_conversation(api)
    body = json.dumps(transcription_event(conversation_id)).encode()
    response = await api.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 200
    assert response.json() == {"ok": True, "matched": True, "call_id": call_id}
    call = (await api.get(f"/api/calls/{call_id}")).json()
    assert call["state"] == "completed"
    assert [t["speaker"] for t in call["transcript"]] == ["caller", "business"]
    assert call["analysis"]["summary"] == "Ordered."


def forged_variants(body: bytes) -> list[tuple[str, bytes, dict[str, str]]]:
    now = int(time.time())
    good = sign(SECRET, body, now)
    return [
        ("unsigned", body, {}),
        ("empty header", body, {"ElevenLabs-Signature": ""}),
        ("tampered body", body.replace(b"done", b"fail"), {"ElevenLabs-Signature": good}),
        ("wrong secret", body, {"ElevenLabs-Signature": sign("another-secret", body, now)}),
        ("stale (31 min)", body, {"ElevenLabs-Signature": sign(SECRET, body, now - 31 * 60)}),
        ("space after comma", body, {"ElevenLabs-Signature": good.replace(",", ", ")}),
        ("no v0 part", body, {"ElevenLabs-Signature": f"t={now}"}),
        ("v1 scheme", body, {"ElevenLabs-Signature": good.replace("v0=", "v1=")}),
        ("timestamp not a number", body, {"ElevenLabs-Signature": good.replace(f"t={now}", "t=abc")}),
        ("timestamp changed", body, {"ElevenLabs-Signature": good.replace(f"t={now}", f"t={now + 1}")}),
    ]


async def test_every_forged_variant_is_refused_and_changes_nothing(api: httpx.AsyncClient) -> None:
    call_id, conversation_id = await placed_conversation(api)
    body = json.dumps(transcription_event(conversation_id)).encode()
    for name, content, headers in forged_variants(body):
        response = await api.post(PATH, content=content, headers={"content-type": "application/json", **headers})
        assert response.status_code == 401, name
        assert set(response.json()) == {"error"}, name
    call = (await api.get(f"/api/calls/{call_id}")).json()
    assert call["state"] == "ringing"
    assert call["transcript"] == []


async def test_tolerance_accepts_29_minutes_old_and_future(api: httpx.AsyncClient) -> None:
    _, conversation_id = await placed_conversation(api)
    old = json.dumps(transcription_event(conversation_id, status="in-progress")).encode()
    assert (
        await api.post(PATH, content=old, headers=signed(old, timestamp=int(time.time()) - 29 * 60))
    ).status_code == 200
    future = json.dumps(transcription_event(conversation_id)).encode()
    response = await api.post(PATH, content=future, headers=signed(future, timestamp=int(time.time()) + 3600))
    assert response.status_code == 200


async def test_without_a_configured_secret_webhooks_are_refused(
    client_for: Any, sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(sandbox, tmp_path, workers=False))
    body = json.dumps(transcription_event("conv_x")).encode()
    response = await api.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 401
    assert "ELEVENLABS_WEBHOOK_SECRET" in response.json()["error"]


async def test_repeated_delivery_is_accepted_and_changes_nothing(api: httpx.AsyncClient) -> None:
    call_id, conversation_id = await placed_conversation(api)
    body = json.dumps(transcription_event(conversation_id)).encode()
    headers = signed(body)
    first = await api.post(PATH, content=body, headers=headers)
    events_after_first = (await api.get(f"/api/calls/{call_id}")).json()["events"]
    again = await api.post(PATH, content=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == {"ok": True, "duplicate": True}
    assert (await api.get(f"/api/calls/{call_id}")).json()["events"] == events_after_first


async def test_signed_but_malformed_bodies_are_400(api: httpx.AsyncClient) -> None:
    for body in (b"not json", b"[]", b'{"data": {}}'):
        response = await api.post(PATH, content=body, headers=signed(body))
        assert response.status_code == 400, body
        assert "error" in response.json()


def initiation_failure_event(conversation_id: str, reason: str = "busy") -> dict[str, Any]:
    return {
        "type": "call_initiation_failure",
        "event_timestamp": int(time.time()),
        "data": {
            "agent_id": "a",
            "conversation_id": conversation_id,
            "failure_reason": reason,
            "metadata": {"type": "twilio", "body": {"CallStatus": reason}},
        },
    }


async def test_initiation_failure_marks_the_call_busy_with_the_conversations_record(api: httpx.AsyncClient) -> None:
    # Nobody polls here (no workers): what the call keeps comes from the webhook and the read it triggers.
    call_id, conversation_id = await placed_conversation(api, "+15550100004")
    body = json.dumps(initiation_failure_event(conversation_id)).encode()
    assert (await api.post(PATH, content=body, headers=signed(body))).status_code == 200
    call = (await api.get(f"/api/calls/{call_id}")).json()
    assert call["state"] == "busy"
    metadata = call["metadata"]
    assert (metadata["status"], metadata["call_result"]) == ("failed", "busy")
    assert metadata["termination_reason"] == "Call initiation failed: busy"
    assert call["analysis"]["call_successful"] == "failure"
    assert (call["journey"]["reached_human"], call["journey"]["transferred"]) == (False, False)


async def test_initiation_failure_for_an_unreadable_conversation_still_ends_the_call(
    api: httpx.AsyncClient, sandbox: SandboxServer
) -> None:
    # A call whose conversation ElevenLabs cannot show (404): the read is tried a capped number of times, then the
    # event's own reason decides.
    services = api.callcheck_app.state.services  # type: ignore[attr-defined]
    call = await record_call(
        services, CallRequest(to_number="+15550100005", description="d", scenario="s"), CallState.DIALING
    )
    await services.store.move_call(call.id, CallState.RINGING, conversation_id="conv_gone")
    body = json.dumps(initiation_failure_event("conv_gone", "no-answer")).encode()
    assert (await api.post(PATH, content=body, headers=signed(body))).json()["call_id"] == call.id
    ended = (await api.get(f"/api/calls/{call.id}")).json()
    assert ended["state"] == "no_answer"
    assert ended["events"][-1]["detail"] == "call initiation failed: no-answer"
    assert ended["metadata"] is None
    reads = httpx.get(f"{sandbox.url}/_sandbox/requests", params={"path": "/v1/convai/conversations/conv_gone"})
    assert len(reads.json()) == FINAL_READ_ATTEMPTS


PER_CALL = {"start_time_unix_secs", "call_sid", "user_id"}  # differ between any two calls, however they end


def what_a_call_keeps(call: dict[str, Any]) -> dict[str, Any]:
    """The stored call minus what is unique to one call (ids, times)."""
    return {
        "state": call["state"],
        "metadata": {k: v for k, v in call["metadata"].items() if k not in PER_CALL},
        "analysis": call["analysis"],
        "journey": call["journey"],
        "transcript": call["transcript"],
        "recording_url": call["recording_url"],
    }


async def call_through(settings: Settings, number: str, port: int | None = None) -> dict[str, Any]:
    """Place a call through a real callcheck server and wait for its end; the stored call."""
    with AppServer(settings, port=port) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=HTTP_TIMEOUT_S) as api:
            placed = await api.post("/api/call", json={"to_number": number, "business_description": "Pizza."})
            return await wait_for_call(api, placed.json()["id"])


@pytest.mark.parametrize(
    ("number", "state", "reason"),
    [("+15550100004", "busy", "busy"), ("+15550100005", "no_answer", "no-answer")],
)
@pytest.mark.parametrize("workers", [False, True], ids=["webhook-only", "webhook-and-workers"])
async def test_unanswered_calls_are_stored_alike_with_webhooks_and_by_polling(
    sandbox: SandboxServer, tmp_path: Path, number: str, state: str, reason: str, workers: bool
) -> None:
    # By polling: the `sandbox` fixture sends no webhooks; the workers poll.
    polled = await call_through(settings_for(sandbox, tmp_path, data_dir=tmp_path / "polling"), number)

    # With webhooks, as under `callcheck serve --sandbox`. Without workers nothing but the sandbox's
    # call_initiation_failure can end the call; with them, the first poll has stored the ringing call by then.
    port = free_port()
    config = SandboxConfig(time_scale=0.02, webhook_url=f"http://127.0.0.1:{port}{PATH}", webhook_secret=SECRET)
    with SandboxServer(config) as hooked:
        settings = settings_for(
            hooked,
            tmp_path,
            data_dir=tmp_path / "webhooks",
            workers=workers,
            elevenlabs_webhook_secret=SECRET,
            poll_initial_s=60,
            poll_max_s=60,
        )
        hooked_call = await call_through(settings, number, port)
        deliveries = httpx.get(f"{hooked.url}/_sandbox/webhooks").json()
    assert [(d["type"], d["delivered"]) for d in deliveries] == [("call_initiation_failure", True)]

    assert polled["state"] == hooked_call["state"] == state
    assert polled["metadata"]["status"] == "failed"
    assert polled["metadata"]["call_result"] == state
    assert polled["metadata"]["termination_reason"] == f"Call initiation failed: {reason}"
    assert polled["analysis"]["call_successful"] == "failure"
    assert what_a_call_keeps(hooked_call) == what_a_call_keeps(polled)


async def test_a_resent_audio_webhook_changes_nothing(api: httpx.AsyncClient, tmp_path: Path) -> None:
    call_id, conversation_id = await placed_conversation(api)

    def audio_event(audio: bytes, stamp: int) -> bytes:
        data = {"agent_id": "a", "conversation_id": conversation_id, "full_audio": base64.b64encode(audio).decode()}
        return json.dumps({"type": "post_call_audio", "event_timestamp": stamp, "data": data}).encode()

    first = audio_event(b"ID3 first take", 1739537319)
    assert (await api.post(PATH, content=first, headers=signed(first))).json()["matched"] is True
    call = (await api.get(f"/api/calls/{call_id}")).json()
    recording = tmp_path / "data" / "recordings" / f"{call_id}.mp3"
    kept = recording.stat()
    # The same audio again, in an event that differs only in its timestamp: not a duplicate body, same recording.
    again = audio_event(b"ID3 first take", 1739537320)
    assert (await api.post(PATH, content=again, headers=signed(again))).json()["matched"] is True
    assert (await api.get(f"/api/calls/{call_id}")).json()["events"] == call["events"]
    assert recording.stat().st_ino == kept.st_ino  # not rewritten (a rewrite renames a new file into place)
    assert [e["detail"] for e in call["events"] if e["kind"] == "recording"] == ["14 bytes"]
    # Different audio is a new recording.
    other = audio_event(b"ID3 second take!", 1739537321)
    await api.post(PATH, content=other, headers=signed(other))
    events = (await api.get(f"/api/calls/{call_id}")).json()["events"]
    assert [e["detail"] for e in events if e["kind"] == "recording"] == ["14 bytes", "16 bytes"]
    assert (await api.get(f"/api/calls/{call_id}/audio")).content == b"ID3 second take!"


async def test_unknown_conversation_is_kept_and_matched_later(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    settings = settings_for(sandbox, tmp_path, workers=False, elevenlabs_webhook_secret=SECRET)
    api = await client_for(settings)
    # The webhook outruns our own record of the conversation id.
    body = json.dumps(transcription_event("conv_early")).encode()
    response = await api.post(PATH, content=body, headers=signed(body))
    assert response.status_code == 200 and response.json() == {"ok": True, "matched": False}

    engine = db.create_engine(settings.resolved_database_url())
    async with httpx.AsyncClient() as http:
        services = Services(settings=settings, store=Store(engine), http=http)
        call = await record_call(
            services, CallRequest(to_number="+15550100001", description="d", scenario="s"), CallState.DIALING
        )
        await services.store.move_call(call.id, CallState.RINGING, conversation_id="conv_early")
        moved = await services.store.get_call(call.id)
        assert moved is not None
        await apply_stored_webhooks(services, moved)
        final = await services.store.get_call(call.id)
    await engine.dispose()
    assert final is not None and final.state == CallState.COMPLETED
    assert final.transcript and final.transcript[1]["text"] == "Sure, what size?"


async def test_a_webhook_that_beats_the_dials_answer_is_applied_when_the_answer_comes(
    sandbox: SandboxServer, tmp_path: Path, client_for: Any
) -> None:
    # The order that once depended on luck, made certain: the post-call event is kept before the dial's answer
    # stores the conversation id. No workers, no poll: only the dial itself can apply it.
    with running(ScriptedServer()) as upstream:
        upstream.reply = {"success": True, "message": "ok", "conversation_id": "conv_beaten", "callSid": "CA1"}
        settings = settings_for(
            sandbox,
            tmp_path,
            workers=False,
            elevenlabs_webhook_secret=SECRET,
            elevenlabs_api_base=upstream.url,
            allowed_countries="1",
        )
        api = await client_for(settings)
        body = json.dumps(transcription_event("conv_beaten")).encode()
        assert (await api.post(PATH, content=body, headers=signed(body))).json() == {"ok": True, "matched": False}
        placed = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "Pizza."})
        assert placed.status_code == 200, placed.text
        call = (await api.get(f"/api/calls/{placed.json()['id']}")).json()
    assert call["state"] == "completed"
    assert call["transcript"][1]["text"] == "Sure, what size?"
    assert [path for path, _, _ in upstream.requests] == ["/v1/convai/twilio/outbound-call"]  # nothing polled


async def test_real_webhook_delivery_ends_the_call_without_waiting_for_a_poll(tmp_path: Path) -> None:
    port = free_port()
    config = SandboxConfig(
        time_scale=0.02, webhook_url=f"http://127.0.0.1:{port}{PATH}", webhook_secret=SECRET, send_audio_webhook=True
    )
    with SandboxServer(config) as sandbox:
        # Polls are 60 s apart: only the webhook can end this call within the test's deadline.
        settings = settings_for(sandbox, tmp_path, elevenlabs_webhook_secret=SECRET, poll_initial_s=60, poll_max_s=60)
        with AppServer(settings, port=port) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=HTTP_TIMEOUT_S) as api:
                response = await api.post(
                    "/api/call", json={"to_number": "+15550100001", "business_description": "A pizza shop."}
                )
                call_id = response.json()["id"]
                call = await wait_for_call(api, call_id, {"completed"}, recording=True, timeout=20)
                assert call["state"] == "completed", call["events"]
                assert call["recording_url"]
                assert (await api.get(call["recording_url"])).status_code == 200
        deliveries = httpx.get(f"{sandbox.url}/_sandbox/webhooks").json()
    assert {d["type"] for d in deliveries} >= {"post_call_transcription", "post_call_audio"}
