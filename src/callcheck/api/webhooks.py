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
from callcheck.jobs.tracking import apply_kept_webhooks, apply_webhook, attach_conversation
from callcheck.providers.elevenlabs.snapshot import decode_webhook
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
    raw = parse_json(body, "Webhook body", drop_nul=True)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidInput("Webhook body must be an object with a type.")
    event = decode_webhook(raw)
    conversation_id = event.conversation_id
    check_webhook_fields(event.type, conversation_id)  # 400, not a database error, for an over-long id or type
    digest = hashlib.sha256(body).hexdigest()
    if await services.store.webhook_seen(digest):
        return {"ok": True, "duplicate": True}
    call = await services.store.find_call_by_conversation(conversation_id) if conversation_id else None
    if call is None and conversation_id:
        # Or the dial's own answer stored the id since the look-up above (its claim then finds nothing to claim).
        call = await _claimed_by_user_id(services, event.user_id, conversation_id)
        call = call or await services.store.find_call_by_conversation(conversation_id)
    if call is None:
        # Kept for later: the call's conversation id may not be stored yet (the webhook beat our own answer).
        if not await services.store.record_webhook(digest, event.type, conversation_id, event.stored, None):
            return {"ok": True, "duplicate": True}
        # The dial's answer may have stored the id between the look-ups above and this keeping: it looked for kept
        # webhooks before this one was kept, so look once more, now that it is kept (see jobs/placing.dial).
        late = await services.store.find_call_by_conversation(conversation_id) if conversation_id else None
        if late is None:
            return {"ok": True, "matched": False}
        await apply_kept_webhooks(services, late.id)
        if services.tracker is not None:
            await services.tracker.wake(late.id)
        return {"ok": True, "matched": True, "call_id": late.id}
    await apply_webhook(services, event)
    # Marked seen only once applied: a delivery that failed half-way (an error, a crash) is applied when re-sent.
    # Two deliveries of it at once may both apply it: state moves are conditional and a recording is kept whole,
    # so the worst is an event told twice.
    await services.store.record_webhook(digest, event.type, conversation_id, event.stored, call.id)
    if services.tracker is not None:
        await services.tracker.wake(call.id)
    return {"ok": True, "matched": True, "call_id": call.id}


async def _claimed_by_user_id(services: Services, user_id: str | None, conversation_id: str) -> CallRow | None:
    """The call whose dial was sent but whose answer was lost (or came without a conversation id), found by the
    user_id we tagged it with (sent as `data.user_id` in post-call webhooks: confirmed by the docs)."""
    call = await services.store.get_call(user_id) if user_id else None
    if call is None or call.conversation_id or call.state not in (CallState.DIALING, CallState.RINGING):
        return None
    how = (
        "found by its webhook after the answer to the dial was lost"
        if call.state == CallState.DIALING
        else "found by its webhook's call id (the answer had no conversation id)"
    )
    await attach_conversation(services, call.id, conversation_id, how)
    return await services.store.get_call(call.id)
