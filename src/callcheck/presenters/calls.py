"""Calls as the API answers them (GET /api/calls, GET /api/calls/{id}, the `end` event), the pages show them and the
reports link them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from callcheck.domain.lifecycle import CallState
from callcheck.store.repo import CallEvent, CallRow

# A figure as stored: an int stays an int (42, not 42.0), so the answer is what it was before it had a model.
Number = int | float


class EventView(BaseModel):
    """One entry of a call's history."""

    id: int
    at: str = Field(description="When, in ISO 8601.")
    kind: str = Field(description="What happened: state, transcript, recording, webhook...")
    state: str | None = Field(description="The state the call moved to, for a state change.")
    detail: str | None


class CallSummary(BaseModel):
    """A call in a list."""

    id: str
    state: CallState
    simulated: bool = Field(description="Placed against the sandbox, not a real phone line.")
    origin: str = Field(description="What placed it: api, web, run...")
    to_number: str
    scenario: str
    created_at: str
    ended_at: str | None
    duration_secs: Number | None
    outcome: str | None = Field(description="ElevenLabs' verdict on the call (success, failure, unknown).")
    conversation_id: str | None
    run_id: str | None = Field(description="The suite run the call belongs to.")
    token_name: str | None = Field(description="The API token that placed it (null: no token in use).")


class CallPage(BaseModel):
    """A page of calls, newest first."""

    calls: list[CallSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class Cost(BaseModel):
    credits: Number | None
    usd: Number | None


class UpstreamError(BaseModel):
    """What ElevenLabs reported as going wrong."""

    code: int | str | None
    reason: str | None


class CallDetail(CallSummary):
    """Everything known about a call."""

    updated_at: str
    business_description: str
    prompt: str
    first_message: str
    call_sid: str | None
    error: str | None
    upstream_response: Any = Field(description="What ElevenLabs answered the outbound-call request.")
    transcript: list[dict[str, Any]]
    journey: dict[str, Any] | None = Field(description="Timings of the call's journey (ringing, answer...).")
    analysis: dict[str, Any] | None = Field(description="ElevenLabs' post-call analysis.")
    metadata: dict[str, Any] | None = Field(description="ElevenLabs' metadata of the call.")
    cost: Cost
    time_to_answer_s: Number | None
    upstream_error: UpstreamError | None
    warnings: list[Any]
    events: list[EventView]
    recording_url: str | None = Field(description="GET it for the MP3; null while there is none.")


def event_view(event: CallEvent) -> EventView:
    """One entry of a call's history."""
    return EventView(id=event.id, at=event.at.isoformat(), kind=event.kind, state=event.state, detail=event.detail)


def _summary_fields(call: CallRow) -> dict[str, Any]:
    facts = call.facts or {}
    analysis = call.analysis or {}
    return {
        "id": call.id,
        "state": call.state,
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


def call_summary(call: CallRow) -> CallSummary:
    """A call in a list."""
    return CallSummary(**_summary_fields(call))


def call_detail(call: CallRow) -> CallDetail:
    """Everything known about a call."""
    facts = call.facts or {}
    return CallDetail(
        **_summary_fields(call),
        updated_at=call.updated_at.isoformat(),
        business_description=call.business_description,
        prompt=call.prompt,
        first_message=call.first_message,
        call_sid=call.call_sid,
        error=call.error,
        upstream_response=call.upstream_response,  # what ElevenLabs answered the outbound-call POST
        transcript=call.transcript or [],
        journey=call.journey,
        analysis=call.analysis,
        metadata=call.facts,
        # The figures users ask for first, from the metadata: cost in credits and money, the ringing time, and
        # what ElevenLabs reported as going wrong.
        cost=Cost(credits=facts.get("cost"), usd=facts.get("cost_usd")),
        time_to_answer_s=(call.journey or {}).get("time_to_answer_s"),
        upstream_error=(
            UpstreamError(code=facts.get("error_code"), reason=facts.get("error_reason"))
            if facts.get("error_code") is not None or facts.get("error_reason")
            else None
        ),
        warnings=facts.get("warnings") or [],
        events=[event_view(e) for e in call.events],
        recording_url=f"/api/calls/{call.id}/audio" if call.recording_path else None,
    )
