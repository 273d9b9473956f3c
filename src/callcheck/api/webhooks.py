"""POST /api/webhooks/elevenlabs: signed post-call events from ElevenLabs."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request

from callcheck.api.body import parse_json
from callcheck.api.deps import ServicesDep
from callcheck.api.schemas import ERRORS, ErrorBody, json_body
from callcheck.domain.lifecycle import CallState
from callcheck.errors import InvalidInput
from callcheck.jobs.tracking import apply_webhook, attach_conversation
from callcheck.providers.elevenlabs.webhooks import SIGNATURE_HEADER, check_header, verify
from callcheck.services import Services
from callcheck.store.repo import CallRow, check_webhook_fields

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "/elevenlabs",
    summary="ElevenLabs post-call webhook",
    openapi_extra=json_body(None, description="A signed ElevenLabs post-call event (header ElevenLabs-Signature)."),
    responses={**ERRORS, 401: {"model": ErrorBody, "description": "The signature is missing, wrong or stale."}},
)
async def elevenlabs_webhook(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Verify, keep once, and apply a post_call_transcription / post_call_audio / call_initiation_failure event."""
    secret = services.settings.elevenlabs_webhook_secret
    secret_value = secret.get_secret_value() if secret else None
    # An unsigned or stale request is refused before its body is read (the body is capped by BodyLimit too).
    check_header(secret_value, request.headers.get(SIGNATURE_HEADER))
    body = await request.body()
    verify(secret_value, request.headers.get(SIGNATURE_HEADER), body)
    event = parse_json(body, "Webhook body", drop_nul=True)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise InvalidInput("Webhook body must be an object with a type.")
    raw_data = event.get("data")
    data: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
    conversation_id = data.get("conversation_id") if isinstance(data.get("conversation_id"), str) else None
    check_webhook_fields(event["type"], conversation_id)  # 400, not a database error, for an over-long id or type
    digest = hashlib.sha256(body).hexdigest()
    if await services.store.webhook_seen(digest):
        return {"ok": True, "duplicate": True}
    call = await services.store.find_call_by_conversation(conversation_id) if conversation_id else None
    if call is None and conversation_id:
        call = await _claimed_by_user_id(services, data, conversation_id)
    # Audio is kept as a file, not twice in the events table.
    stored = {**event, "data": {k: v for k, v in data.items() if k != "full_audio"}}
    if call is None:
        # Kept for later: the call's conversation id may not be stored yet (the webhook beat our own answer).
        if not await services.store.record_webhook(digest, event["type"], conversation_id, stored, None):
            return {"ok": True, "duplicate": True}
        return {"ok": True, "matched": False}
    await apply_webhook(services, event)
    # Marked seen only once applied: a delivery that failed half-way (an error, a crash) is applied when re-sent.
    # Two deliveries of it at once may both apply it, which changes nothing (every write of apply_webhook is
    # conditional or idempotent).
    await services.store.record_webhook(digest, event["type"], conversation_id, stored, call.id)
    if services.tracker is not None:
        await services.tracker.wake(call.id)
    return {"ok": True, "matched": True, "call_id": call.id}


async def _claimed_by_user_id(services: Services, data: dict[str, Any], conversation_id: str) -> CallRow | None:
    """The call whose dial was sent but whose answer was lost, found by the user_id we tagged it with.

    UNCONFIRMED (contract §5.3, §12): that the webhook's conversation data echoes
    `conversation_initiation_client_data.user_id`; the documented example carries a `user_id`.
    """
    user_id = data.get("user_id")
    call = await services.store.get_call(user_id) if isinstance(user_id, str) and user_id else None
    if call is None or call.state != CallState.DIALING or call.conversation_id:
        return None
    await attach_conversation(
        services, call.id, conversation_id, "found by its webhook after the answer to the dial was lost"
    )
    return await services.store.get_call(call.id)
