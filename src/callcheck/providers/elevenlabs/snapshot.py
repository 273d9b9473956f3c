"""ElevenLabs conversation records and post-call webhooks, read into callcheck's own types.

Everything outside this provider speaks of a `ConversationSnapshot` (our state, turns with their tool calls joined
to their results, the analysis, the facts) and a `WebhookEvent` (what a webhook tells about which call), both in
providers/base.py, never of ElevenLabs' statuses, Twilio's call results or webhook types. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from callcheck.domain.lifecycle import CallState
from callcheck.providers.base import ConversationSnapshot, EventKind, WebhookEvent
from callcheck.providers.elevenlabs import wire
from callcheck.providers.elevenlabs.agent_profile import OVERRIDES_REFUSED

# ElevenLabs conversation status -> our state while the call is live (contract §4.1).
LIVE_STATES = {
    "initiated": CallState.RINGING,
    "in-progress": CallState.IN_PROGRESS,
    "processing": CallState.PROCESSING,
}
# Twilio's call_result of a call that did not connect (already in callcheck's words, see wire.facts_of) -> ours.
UNANSWERED = {"busy": CallState.BUSY, "no_answer": CallState.NO_ANSWER}
# ElevenLabs statuses after which a conversation record no longer changes (contract §4.1).
FINAL_STATUSES = frozenset({"done", "failed"})
# call_initiation_failure's failure_reason (contract §5.4) -> our state.
FAILURE_REASONS = {"busy": CallState.BUSY, "no-answer": CallState.NO_ANSWER, "no_answer": CallState.NO_ANSWER}


def state_for(status: str | None, call_result: str | None) -> CallState | None:
    """Our state for an ElevenLabs status and (normalised) call result, or None when the status is unknown."""
    if status in LIVE_STATES:
        return LIVE_STATES[status]
    if status == "done":
        if call_result in UNANSWERED:
            return UNANSWERED[call_result]
        return CallState.FAILED if call_result == "failed" else CallState.COMPLETED
    if status == "failed":
        return UNANSWERED.get(call_result or "", CallState.FAILED)
    return None


def snapshot_of(conversation: dict[str, Any]) -> ConversationSnapshot:
    """A conversation record (GET conversation, or a post_call_transcription's data) read into our types."""
    facts = wire.facts_of(conversation)
    status = facts.status
    final = status in FINAL_STATUSES
    note = f"ElevenLabs status {status}" + (f", call result {facts.call_result}" if facts.call_result else "")
    conversation_id = conversation.get("conversation_id")
    return ConversationSnapshot(
        conversation_id=conversation_id if isinstance(conversation_id, str) and conversation_id else None,
        state=state_for(status, facts.call_result),
        final=final,
        turns=wire.transcript_of(conversation),
        has_transcript=wire.has_transcript(conversation),
        analysis=wire.analysis_of(conversation),
        facts=facts,
        user_id=facts.user_id,
        status_note=note,
        # Refused at the conversation's start rather than at dial time: say what fixes it.
        setup_error=f"{OVERRIDES_REFUSED[0].upper()}{OVERRIDES_REFUSED[1:]}." if facts.override_refused else None,
        # Only an explicit false in a final record (a payload without the field proves nothing).
        no_recording=final and conversation.get("has_audio") is False,
    )


_KINDS: dict[str, EventKind] = {
    "post_call_transcription": "transcript",
    "post_call_audio": "audio",
    "call_initiation_failure": "initiation_failure",
}


def decode_webhook(event: dict[str, Any]) -> WebhookEvent:
    """A verified webhook body (contract §5.4) in our types; unknown types are "other"."""
    raw_type = event.get("type")
    type_ = raw_type if isinstance(raw_type, str) else ""
    kind = _KINDS.get(type_, "other")
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    conversation_id = data.get("conversation_id") if isinstance(data.get("conversation_id"), str) else None
    user_id = data.get("user_id") if isinstance(data.get("user_id"), str) and data.get("user_id") else None
    stored = {**event, "data": {k: v for k, v in data.items() if k != "full_audio"}}
    if kind == "transcript":
        return WebhookEvent(kind, type_, conversation_id or None, user_id, snapshot=snapshot_of(data), stored=stored)
    if kind == "audio":
        audio = None
        if isinstance(data.get("full_audio"), str):
            try:
                audio = base64.b64decode(data["full_audio"], validate=True)
            except (ValueError, binascii.Error):
                audio = None
        return WebhookEvent(kind, type_, conversation_id or None, user_id, audio=audio, stored=stored)
    if kind == "initiation_failure":
        reason = str(data.get("failure_reason") or "unknown")
        return WebhookEvent(
            kind,
            type_,
            conversation_id or None,
            user_id,
            failure_state=FAILURE_REASONS.get(reason, CallState.FAILED),
            failure_reason=reason,
            stored=stored,
        )
    return WebhookEvent("other", type_, conversation_id or None, user_id, stored=stored)


__all__ = ["ConversationSnapshot", "WebhookEvent", "decode_webhook", "snapshot_of", "state_for"]
