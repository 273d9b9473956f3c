"""The outbound-call request (contract §2) and its answer, in and out of callcheck's words. Pure: no I/O."""

from __future__ import annotations

import math
from typing import Any

from callcheck.providers.elevenlabs.wire import call_sid_of

# Our call id, sent as a dynamic variable beside `user_id` (see outbound_payload).
CALL_ID_VARIABLE = "callcheck_call_id"
# The per-call override that caps a conversation's length (contract README: it exists, with its override flag).
MAX_DURATION_PATH = ("conversation", "max_duration_seconds")


def seed_override(prompt: str, first: str) -> dict[str, Any]:
    """The seed's per-call override: the caller prompt and the first message."""
    return {"agent": {"prompt": {"prompt": prompt}, "first_message": first}}


def outbound_payload(
    agent_id: str,
    phone_number_id: str,
    to_number: str,
    override: dict[str, Any],
    call_id: str,
    max_duration_s: float | None = None,
) -> dict[str, Any]:
    """The seed's outbound-call payload, plus three things in `conversation_initiation_client_data`:

    - `user_id` = our call id: a field that needs no override permission, echoed as the conversation's `user_id`
      (and as `data.user_id` in post-call webhooks) and filterable in the conversations list (`?user_id=`, confirmed
      by the SDK and docs). It lets a restart find out whether a call whose answer was lost was placed, instead of
      dialing again. The cost: ElevenLabs' Users view shows every call as a separate end user.
    - `dynamic_variables.callcheck_call_id` = our call id too: also free of permissions and echoed with the
      conversation, so the call can be found by it if `user_id` is ever put to another use.
    - `conversation.max_duration_seconds` = the call's timeout, as a per-call override: there is no endpoint that
      hangs up one call, so this is what keeps a call from running past callcheck's limit. The agent must allow
      the override (`callcheck agent setup` does).
    """
    full = {**override}
    if max_duration_s is not None:
        conversation = {**(full.get(MAX_DURATION_PATH[0]) or {})}
        conversation[MAX_DURATION_PATH[1]] = max(1, math.ceil(max_duration_s))
        full[MAX_DURATION_PATH[0]] = conversation
    return {
        "agent_id": agent_id,
        "agent_phone_number_id": phone_number_id,
        "to_number": to_number,
        "conversation_initiation_client_data": {
            "conversation_config_override": full,
            "user_id": call_id,
            "dynamic_variables": {CALL_ID_VARIABLE: call_id},
        },
    }


def sent_override(payload: dict[str, Any]) -> dict[str, Any]:
    """The per-call override a stored outbound payload carried."""
    client_data = payload.get("conversation_initiation_client_data")
    sent = client_data.get("conversation_config_override") if isinstance(client_data, dict) else None
    return sent if isinstance(sent, dict) else {}


def placed_ids(answer: dict[str, Any]) -> tuple[str | None, str | None]:
    """(conversation id, Twilio call SID) of an accepted outbound call; either may be null even on success."""
    conversation_id = answer.get("conversation_id")
    return (conversation_id if isinstance(conversation_id, str) and conversation_id else None), call_sid_of(answer)
