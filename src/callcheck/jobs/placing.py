"""Placing a call: record it, dial once, record the answer. The one step that must never run twice blindly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from callcheck.domain.agent_profile import explain_refused_override
from callcheck.domain.lifecycle import CallState
from callcheck.domain.prompts import caller_prompt, first_message
from callcheck.errors import UpstreamHTTPError, UpstreamUnreachable
from callcheck.providers.elevenlabs.wire import call_sid_of
from callcheck.services import Services
from callcheck.store.repo import CallRow, new_id

log = logging.getLogger("callcheck.placing")


@dataclass
class CallRequest:
    """A validated request to phone a business."""

    to_number: str
    description: str
    scenario: str
    origin: str = "api"  # api | web | suite
    context_id: str | None = None
    run_id: str | None = None
    idempotency_key: str | None = None
    # A suite's persona replaces the seed's prompt and first message and may add overrides (voice, language):
    # then `override` is the whole conversation_config_override, holding only fields the agent allows.
    prompt: str | None = None
    first_message: str | None = None
    override: dict[str, Any] | None = None
    timeout_s: float | None = None
    run_item_id: int | None = None  # the suite run's planned call this places, marked in the same transaction


def seed_override(prompt: str, first: str) -> dict[str, Any]:
    """The seed's per-call override: the caller prompt and the first message."""
    return {"agent": {"prompt": {"prompt": prompt}, "first_message": first}}


def outbound_payload(
    agent_id: str, phone_number_id: str, to_number: str, override: dict[str, Any], call_id: str
) -> dict[str, Any]:
    """The seed's outbound-call payload, plus our call id as `user_id`.

    `conversation_initiation_client_data.user_id` is a top-level field that needs no override permission and is
    echoed as the conversation's `user_id` and filterable in the conversations list (contract §2.3, §4.1-4.2;
    inferred from the schema, UNCONFIRMED on the live service, and what the sandbox implements). It lets a restart
    find out whether a call whose answer was lost was placed, instead of dialing again.
    """
    return {
        "agent_id": agent_id,
        "agent_phone_number_id": phone_number_id,
        "to_number": to_number,
        "conversation_initiation_client_data": {"conversation_config_override": override, "user_id": call_id},
    }


async def record_call(services: Services, request: CallRequest, state: CallState) -> CallRow:
    """Store a call about to be placed (DIALING) or waiting for a worker (QUEUED). Checks settings first."""
    client_settings = services.settings
    services.client()  # raises MissingSettings before anything is stored
    call_id = new_id()
    prompt = request.prompt or caller_prompt(request.description, request.scenario)
    first = request.first_message or first_message(request.scenario)
    payload = outbound_payload(
        client_settings.elevenlabs_agent_id or "",
        client_settings.elevenlabs_agent_phone_number_id or "",
        request.to_number,
        request.override if request.override is not None else seed_override(prompt, first),
        call_id,
    )
    return await services.store.create_call(
        request.run_item_id,
        id=call_id,
        state=state.value,
        simulated=services.simulated,
        origin=request.origin,
        context_id=request.context_id,
        run_id=request.run_id,
        to_number=request.to_number,
        business_description=request.description,
        scenario=request.scenario,
        prompt=prompt,
        first_message=first,
        request_payload=payload,
        idempotency_key=request.idempotency_key,
        timeout_s=request.timeout_s,
        placed_by=services.executor_id,
    )


async def dial(services: Services, call: CallRow) -> dict[str, Any]:
    """Send the stored payload once and record what came back; the upstream's answer, or the error raised.

    The call must already be DIALING in the database: a crash from here on leaves it DIALING, which recovery
    reconciles by looking the call id up upstream instead of dialing again.
    """
    client = services.client()
    try:
        raw = await client.outbound_call(call.request_payload)
    except UpstreamHTTPError as raw_exc:
        # A refused per-call override means the agent is not set up: say so, and name the command that fixes it.
        exc = explain_refused_override(raw_exc)
        await services.store.move_call(
            call.id, CallState.FAILED, exc.message, error=exc.message, upstream_response=exc.body
        )
        services.notifier.publish(call.id)
        if exc is raw_exc:
            raise
        raise exc from raw_exc
    except UpstreamUnreachable as exc:
        if exc.maybe_sent:
            # The request may have reached ElevenLabs: leave the call DIALING for the tracker to reconcile.
            await services.store.update_call(call.id, error=exc.message)
            await services.store.add_event(call.id, "note", exc.message)
        else:
            await services.store.move_call(call.id, CallState.FAILED, exc.message, error=exc.message)
        services.notifier.publish(call.id)
        raise
    conversation_id = raw.get("conversation_id") if isinstance(raw.get("conversation_id"), str) else None
    # The answer may be the first to show that "ElevenLabs" is callcheck's sandbox (one started on its own).
    newly_simulated = services.simulated and not call.simulated
    await services.store.move_call(
        call.id,
        CallState.RINGING,
        "ElevenLabs accepted the call",
        upstream_response=raw,
        conversation_id=conversation_id,
        call_sid=call_sid_of(raw),
        **({"simulated": True} if newly_simulated else {}),
    )
    if newly_simulated and call.run_id:
        await services.store.runs.update_run(call.run_id, simulated=True)
    services.notifier.publish(call.id)
    log.info("call %s placed (conversation %s)", call.id, conversation_id)
    return raw


async def place_call(services: Services, request: CallRequest) -> tuple[CallRow, dict[str, Any]]:
    """Record, dial and hand the call to the tracker; (the stored call, the upstream's raw answer)."""
    call = await record_call(services, request, CallState.DIALING)
    try:
        raw = await dial(services, call)
    finally:
        # Followed whatever happened: a call left DIALING by a lost answer is reconciled by the tracker. Its
        # workflow starts after the answer: nothing but the two writes and the dial is on the request's path.
        if services.tracker is not None:
            services.tracker.follow_soon(call.id)
    return call, raw
