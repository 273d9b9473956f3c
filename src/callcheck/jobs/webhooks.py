"""Receiving a post-call webhook: verify → dedupe → claim → apply → wake. The route (api/webhooks.py) only hands
over the signature header and the raw body; everything a delivery sets in motion is here, and so is the provider's
part of it (the header's name and its check), so the route names no vendor.

One delivery costs, in the usual case (a call this server placed, a post-call event not seen before): one read on
one connection (was this body seen? which call has this conversation?), one write transaction (the conversation's
fields, the final state and their events, and the delivery's record: it is marked seen exactly when it is applied),
and an in-process wake of the call's waiting workflow with the state just written (no read back). Everything else
(the recording, a run's next call) happens after the answer, in the call's workflow.
"""

from __future__ import annotations

import hashlib
from typing import Any

from callcheck.domain.lifecycle import CallState
from callcheck.domain.storable import parse_json
from callcheck.errors import InvalidInput
from callcheck.jobs.applying import apply_kept_webhooks, apply_webhook_to
from callcheck.jobs.placing import attach_conversation
from callcheck.providers import caller_for
from callcheck.providers.base import WebhookEvent
from callcheck.services import Services
from callcheck.store.repo import AlreadyKept, CallRow, KeptWebhook, check_webhook_fields

DUPLICATE = {"ok": True, "duplicate": True}


def signature_header(services: Services) -> str:
    """The HTTP header the caller provider signs its webhooks in."""
    return caller_for(services).signature_header


def check_signature_header(services: Services, header: str | None) -> None:
    """Unauthorized unless the signature header is well-formed and fresh: checked before the body is read."""
    caller_for(services).check_webhook_header(webhook_secret(services), header)


async def receive_webhook(services: Services, header: str | None, body: bytes) -> dict[str, Any]:
    """Verify, keep once and apply one delivery; the route's answer (`matched`, or `duplicate`)."""
    event, digest = _verified(services, header, body)
    conversation_id = event.conversation_id
    seen, call = await services.store.webhook_and_call(digest, conversation_id)
    if seen:
        return dict(DUPLICATE)
    if call is None:
        call = await _claim(services, event)
    if call is None:
        # Kept for later: the call's conversation id may not be stored yet (the webhook beat our own answer).
        if not await services.store.record_webhook(digest, event.type, conversation_id, event.stored, None):
            return dict(DUPLICATE)
        return await _late_match(services, conversation_id)
    kept = KeptWebhook(digest, event.type, conversation_id, event.stored, call.id)
    try:
        state = await apply_webhook_to(services, call, event, kept)
    except AlreadyKept:
        return dict(DUPLICATE)  # the same delivery, applied by a concurrent request meanwhile
    # Marked seen only once applied: a delivery that failed half-way (an error, a crash) is applied when re-sent.
    # Usually it was kept by the write that ended the call; otherwise (an audio event, a call that had ended
    # already) now. Two deliveries of it at once may both get here: state moves are conditional and a recording is
    # kept whole, so the worst is an event told twice.
    if not kept.kept:
        await services.store.record_webhook(digest, event.type, conversation_id, event.stored, call.id)
    if services.tracker is not None and state is not None:
        services.tracker.ended(call.id, state, recording=_may_have_recording(event))
    return {"ok": True, "matched": True, "call_id": call.id}


def _may_have_recording(event: WebhookEvent) -> bool:
    """False when the event carries the provider's final record of the call and it says there is no recording:
    a final record is the last word, so the call's workflow need not read the conversation again to be sure."""
    return event.snapshot is None or not event.snapshot.no_recording


async def _late_match(services: Services, conversation_id: str | None) -> dict[str, Any]:
    """The dial's answer may have stored the id between the look-ups and the keeping: it looked for kept webhooks
    before this one was kept, so look once more, now that it is kept (see jobs/placing.dial)."""
    late = await services.store.find_call_by_conversation(conversation_id) if conversation_id else None
    if late is None:
        return {"ok": True, "matched": False}
    await apply_kept_webhooks(services, late.id)
    fresh = await services.store.get_call(late.id)
    if services.tracker is not None and fresh is not None:
        services.tracker.ended(late.id, fresh.state)
    return {"ok": True, "matched": True, "call_id": late.id}


def webhook_secret(services: Services) -> str | None:
    """The secret webhooks are signed with (None: not configured, every webhook is refused)."""
    secret = services.settings.elevenlabs_webhook_secret
    return secret.get_secret_value() if secret else None


def _verified(services: Services, header: str | None, body: bytes) -> tuple[WebhookEvent, str]:
    """(the decoded event, the body's digest) of a correctly signed body; Unauthorized or InvalidInput otherwise."""
    caller = caller_for(services)
    caller.verify_webhook(webhook_secret(services), header, body)
    raw = parse_json(body, "Webhook body", drop_nul=True)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidInput("Webhook body must be an object with a type.")
    event = caller.decode_webhook(raw)
    check_webhook_fields(event.type, event.conversation_id)  # 400, not a database error, for an over-long id or type
    return event, hashlib.sha256(body).hexdigest()


async def _claim(services: Services, event: WebhookEvent) -> CallRow | None:
    """The call this event is about when no call has its conversation id yet, or None (not known yet: the event
    is kept for when it is)."""
    conversation_id = event.conversation_id
    if not conversation_id:
        return None
    call = await _claimed_by_user_id(services, event.user_id, conversation_id)
    # Or the dial's own answer stored the id since the look-up (its claim then finds nothing to claim).
    return call or await services.store.find_call_by_conversation(conversation_id)


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
