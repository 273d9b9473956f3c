"""Placing a call: record it, dial once, record the answer. The one step that must never run twice blindly."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from callcheck.domain.lifecycle import CallState
from callcheck.domain.prompts import caller_prompt, first_message
from callcheck.errors import UpstreamError, UpstreamHTTPError, UpstreamUnreachable
from callcheck.jobs.destinations import check_destination
from callcheck.providers.elevenlabs.agent_profile import explain_refused_override
from callcheck.providers.elevenlabs.outbound import outbound_payload, placed_ids, seed_override
from callcheck.services import Services
from callcheck.store.repo import CallRow, new_id

log = logging.getLogger("callcheck.placing")

NO_ID_FOUND = "found upstream by its call id (the answer had no conversation id)"


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
    token_name: str | None = None  # the API token that asked for it (a run's calls: the run's)


async def record_call(services: Services, request: CallRequest, state: CallState) -> CallRow:
    """Store a call about to be placed (DIALING) or waiting for a worker (QUEUED). Checks settings first."""
    client_settings = services.settings
    services.client()  # raises MissingSettings before anything is stored
    await check_destination(services, request.to_number)  # DestinationRefused; budgets are checked by create_call
    call_id = new_id()
    prompt = request.prompt or caller_prompt(request.description, request.scenario)
    first = request.first_message or first_message(request.scenario)
    payload = outbound_payload(
        client_settings.elevenlabs_agent_id or "",
        client_settings.elevenlabs_agent_phone_number_id or "",
        request.to_number,
        request.override if request.override is not None else seed_override(prompt, first),
        call_id,
        # The conversation may not outlast the time callcheck follows it (the call's timeout, else the default).
        max_duration_s=request.timeout_s or client_settings.call_timeout_s,
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
        token_name=request.token_name,
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
    conversation_id, call_sid = placed_ids(raw)
    # The answer may be the first to show that "ElevenLabs" is callcheck's sandbox (one started on its own).
    newly_simulated = services.simulated and not call.simulated
    simulated: dict[str, Any] = {"simulated": True} if newly_simulated else {}
    await services.store.move_call(
        call.id,
        CallState.RINGING,
        "ElevenLabs accepted the call" + ("" if conversation_id else " without a conversation id"),
        upstream_response=raw,
        conversation_id=conversation_id,
        call_sid=call_sid,
        **simulated,
    )
    if newly_simulated and call.run_id:
        await services.store.runs.update_run(call.run_id, simulated=True)
    services.notifier.publish(call.id)
    log.info("call %s placed (conversation %s)", call.id, conversation_id)
    if conversation_id is None:
        # `success: true` with `conversation_id: null` is allowed by the SDK's model: look the call up by our
        # user_id tag at once (and on every poll after, until it shows), not after the call's timeout.
        from callcheck.jobs.tracking import find_upstream

        fresh = await services.store.get_call(call.id)
        if fresh is not None:
            try:
                await find_upstream(services, fresh, NO_ID_FOUND)
            except UpstreamError as exc:
                log.warning("call %s not looked up yet: %s", call.id, exc.message)
    return raw


async def place_call(services: Services, request: CallRequest) -> tuple[CallRow, dict[str, Any]]:
    """Record, dial and hand the call to the tracker; (the stored call, the upstream's raw answer)."""
    call = await record_call(services, request, CallState.DIALING)
    placed: tuple[float, str | None, str] | None = None
    try:
        raw = await dial(services, call)
        # Placed: its workflow need not look at it again before waiting for its end (the deadline counts from now).
        cap = call.timeout_s or services.settings.call_timeout_s
        placed = (time.time() + cap, call.run_id, CallState.RINGING.value)
    finally:
        # Followed whatever happened: a call left DIALING by a lost answer is reconciled by the tracker. Its
        # workflow starts after the answer: nothing but the two writes and the dial is on the request's path.
        if services.tracker is not None:
            services.tracker.follow_soon(call.id, placed)
    return call, raw
