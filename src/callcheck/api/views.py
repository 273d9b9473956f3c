"""Public shapes of stored objects, shared by the JSON API, the pages and the reports."""

from __future__ import annotations

from typing import Any

from callcheck.store.repo import CallEvent, CallRow


def event_view(event: CallEvent) -> dict[str, Any]:
    """One entry of a call's history."""
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "kind": event.kind,
        "state": event.state,
        "detail": event.detail,
    }


def call_summary(call: CallRow) -> dict[str, Any]:
    """A call in a list."""
    facts = call.facts or {}
    analysis = call.analysis or {}
    return {
        "id": call.id,
        "state": call.state.value,
        "simulated": call.simulated,
        "origin": call.origin,
        "to_number": call.to_number,
        "scenario": call.scenario,
        "created_at": call.created_at.isoformat(),
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_secs": facts.get("duration_secs"),
        "outcome": analysis.get("call_successful"),
        "conversation_id": call.conversation_id,
        "run_id": call.run_id,
        "token_name": call.token_name,  # the API token that placed it (None: no token in use)
    }


def call_detail(call: CallRow) -> dict[str, Any]:
    """Everything known about a call."""
    facts = call.facts or {}
    return {
        **call_summary(call),
        "updated_at": call.updated_at.isoformat(),
        "business_description": call.business_description,
        "prompt": call.prompt,
        "first_message": call.first_message,
        "call_sid": call.call_sid,
        "error": call.error,
        "upstream_response": call.upstream_response,  # what ElevenLabs answered the outbound-call POST
        "transcript": call.transcript or [],
        "journey": call.journey,
        "analysis": call.analysis,
        "metadata": call.facts,
        # The figures users ask for first, from the metadata: cost in credits and money, the ringing time, and
        # what ElevenLabs reported as going wrong.
        "cost": {"credits": facts.get("cost"), "usd": facts.get("cost_usd")},
        "time_to_answer_s": (call.journey or {}).get("time_to_answer_s"),
        "upstream_error": (
            {"code": facts.get("error_code"), "reason": facts.get("error_reason")}
            if facts.get("error_code") is not None or facts.get("error_reason")
            else None
        ),
        "warnings": facts.get("warnings") or [],
        "events": [event_view(e) for e in call.events],
        "recording_url": f"/api/calls/{call.id}/audio" if call.recording_path else None,
    }
