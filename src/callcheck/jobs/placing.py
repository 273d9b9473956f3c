"""Placing a call: record it, dial once, record the answer. The one step that must never run twice blindly."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from callcheck.domain.lifecycle import CallErrorKind, CallState
from callcheck.domain.prompts import caller_prompt, first_message
from callcheck.errors import (
    CallNotPlaced,
    Conflict,
    KeyReused,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamUnreachable,
)
from callcheck.jobs.applying import apply_stored_webhooks
from callcheck.jobs.destinations import check_destination
from callcheck.providers import caller_for
from callcheck.providers.base import PlacedCall
from callcheck.services import Services
from callcheck.store.fields import CallChanges
from callcheck.store.repo import Admission, CallRow, DuplicateKey, new_id

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


async def record_call(
    services: Services, request: CallRequest, state: CallState, *, admission: Admission | None = None
) -> CallRow:
    """Store a call about to be placed (DIALING) or waiting for a worker (QUEUED). Checks settings first.

    A suite run's call brings its `admission` (the run's caps, held by the database across processes)."""
    client_settings = services.settings
    services.require_call_settings()  # raises MissingSettings before anything is stored
    await check_destination(services, request.to_number)  # DestinationRefused; budgets are checked by create_call
    call_id = new_id()
    prompt = request.prompt or caller_prompt(request.description, request.scenario)
    first = request.first_message or first_message(request.scenario)
    caller = caller_for(services)
    payload = caller.call_request(
        request.to_number,
        request.override if request.override is not None else caller.seed_overrides(prompt, first),
        call_id,
        # The conversation may not outlast the time callcheck follows it (the call's timeout, else the default).
        max_duration_s=request.timeout_s or client_settings.call_timeout_s,
    )
    return await services.store.create_call(
        request.run_item_id,
        admission=admission,
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


async def dial(services: Services, call: CallRow, *, kept_webhooks: bool = True) -> PlacedCall:
    """Send the stored payload once and record what came back; what the provider accepted, or the error raised.

    The call must already be DIALING in the database: a crash from here on leaves it DIALING, which recovery
    reconciles by looking the call id up upstream instead of dialing again. `kept_webhooks=False` when the call's
    workflow starts after this answer (it applies the webhooks that beat the answer in its wait step).
    """
    caller = caller_for(services)
    services.require_call_settings()  # raises MissingSettings (names only) before anything is sent
    try:
        placed = await caller.place_call(call.request_payload)
    except UpstreamHTTPError as exc:
        # A refused per-call override comes explained by the provider (naming the command that fixes it).
        await services.store.move_call(
            call.id,
            CallState.FAILED,
            exc.message,
            error=exc.message,
            error_kind=CallErrorKind.REFUSED,
            upstream_response=exc.body,
        )
        services.notifier.publish(call.id)
        raise
    except UpstreamUnreachable as exc:
        if exc.maybe_sent:
            # The request may have reached ElevenLabs: leave the call DIALING for the tracker to reconcile.
            await services.store.update_call(
                call.id, ("note", exc.message), error=exc.message, error_kind=CallErrorKind.UNREACHABLE
            )
        else:
            await services.store.move_call(
                call.id, CallState.FAILED, exc.message, error=exc.message, error_kind=CallErrorKind.UNREACHABLE
            )
        services.notifier.publish(call.id)
        raise
    raw, conversation_id, call_sid = placed.raw, placed.conversation_id, placed.call_sid
    # The answer may be the first to show that "ElevenLabs" is callcheck's sandbox (one started on its own).
    newly_simulated = services.simulated and not call.simulated
    accepted: CallChanges = {"upstream_response": raw, "conversation_id": conversation_id, "call_sid": call_sid}
    if newly_simulated:
        accepted["simulated"] = True
    await services.store.move_call(
        call.id,
        CallState.RINGING,
        "ElevenLabs accepted the call" + ("" if conversation_id else " without a conversation id"),
        **accepted,
    )
    if newly_simulated and call.run_id:
        await services.store.runs.update_run(call.run_id, simulated=True)
    services.notifier.publish(call.id)
    log.info("call %s placed (conversation %s)", call.id, conversation_id)
    if conversation_id is not None and kept_webhooks:
        # A webhook (a fast call_initiation_failure, say) may have beaten this answer and been kept unmatched. Its
        # handler looks the conversation up again after keeping it, and this looks for kept webhooks after storing
        # the id: whichever writes last sees the other's write, so the event is applied with no poll, no workers.
        # (Only the id and the conversation id of the row are used: no read back.)
        await apply_stored_webhooks(services, replace(call, conversation_id=conversation_id))
    if conversation_id is None:
        # `success: true` with `conversation_id: null` is allowed by the SDK's model: look the call up by our
        # user_id tag at once (and on every poll after, until it shows), not after the call's timeout.
        fresh = await services.store.get_call(call.id)
        if fresh is not None:
            try:
                await find_upstream(services, fresh, NO_ID_FOUND)
            except UpstreamError as exc:
                log.warning("call %s not looked up yet: %s", call.id, exc.message)
    return placed


async def find_upstream(services: Services, call: CallRow, how: str) -> bool:
    """Look a call with no conversation id up at ElevenLabs by our user_id tag; True (and the call RINGING with
    its conversation id) when it was placed.

    The list endpoint filters by `?user_id=` (confirmed by the SDK and docs); not shown anywhere is that a Twilio
    call still `initiated` is already listed with it, so a call not found yet is looked up again on the next poll.
    """
    found = await caller_for(services).find_call(call.id)
    if found is None:
        return False
    await attach_conversation(services, call.id, found, how)
    return True


async def attach_conversation(services: Services, call_id: str, conversation_id: str, how: str) -> None:
    """A call found placed (`how` says by what) after its answer was lost (DIALING) or came without a conversation
    id (RINGING): RINGING, with its conversation id."""
    if not await services.store.move_call(call_id, CallState.RINGING, how, conversation_id=conversation_id, error=None):
        call = await services.store.get_call(call_id)
        if call is not None and call.state == CallState.RINGING and not call.conversation_id:
            await services.store.update_call(call_id, ("note", how), conversation_id=conversation_id)
    services.notifier.publish(call_id)


async def place_call(services: Services, request: CallRequest) -> tuple[CallRow, dict[str, Any]]:
    """Record, dial and hand the call to the tracker; (the stored call with the ids the provider gave, the
    upstream's raw answer)."""
    call = await record_call(services, request, CallState.DIALING)
    placed: tuple[float, str | None, str] | None = None
    try:
        # A call whose workflow is started below looks for kept webhooks in its wait step (after this answer is
        # stored; at the next launch after a crash): the dial need not read them too, on the request's path.
        accepted = await dial(services, call, kept_webhooks=services.tracker is None)
        # Placed: its workflow need not look at it again before waiting for its end (the deadline counts from now).
        cap = call.timeout_s or services.settings.call_timeout_s
        placed = (time.time() + cap, call.run_id, CallState.RINGING.value)
    finally:
        # Followed whatever happened: a call left DIALING by a lost answer is reconciled by the tracker. Its
        # workflow starts after the answer: nothing but the two writes and the dial is on the request's path.
        if services.tracker is not None:
            services.tracker.follow_soon(call.id, placed)
    # The ids the answer brought (stored by dial), without reading the row back.
    call = replace(call, conversation_id=accepted.conversation_id, call_sid=accepted.call_sid)
    return call, accepted.raw


KEY_IN_PROGRESS = "A request with this Idempotency-Key is already in progress."
KEY_REUSED = "This Idempotency-Key was used for a different request (another number, description or scenario)."


async def place_once(services: Services, request: CallRequest) -> tuple[CallRow, dict[str, Any]]:
    """place_call, at most once per Idempotency-Key: a request repeating an earlier one gets its answer again.

    Raises what the earlier request raised (its stored error, by its kind), Conflict while it is still dialing,
    KeyReused when the key named another request.
    """
    key = request.idempotency_key
    if key:
        earlier = await _earlier_answer(services, key, request)
        if earlier is not None:
            return earlier
    try:
        return await place_call(services, request)
    except DuplicateKey as exc:
        # Two requests with one key raced; the other one dials.
        raise Conflict(KEY_IN_PROGRESS) from exc


async def _earlier_answer(services: Services, key: str, request: CallRequest) -> tuple[CallRow, dict[str, Any]] | None:
    """The call placed by an earlier request with this key and its answer, or None when this request should dial."""
    call = await services.store.get_call_by_key(key)
    if call is None:
        return None
    if (call.to_number, call.business_description, call.scenario) != (
        request.to_number,
        request.description,
        request.scenario,
    ):
        # Answering with the first call's body would tell the client a number was dialed that was not.
        raise KeyReused(KEY_REUSED)
    if refused_earlier(call):
        # ElevenLabs refused it: nothing was placed, so the key is freed and this request dials (a client retrying
        # after a 429 can succeed).
        await services.store.update_call(call.id, idempotency_key=None)
        return None
    return replayed(call)


def refused_earlier(call: CallRow) -> bool:
    """True for a call ElevenLabs refused to place (its dial answered with an error): nothing was placed."""
    return call.state == CallState.FAILED and call.error_kind == CallErrorKind.REFUSED


def replayed(call: CallRow) -> tuple[CallRow, dict[str, Any]]:
    """An earlier request's call as placed (with its stored answer), or its outcome raised again.

    The stored answer is the upstream's body for failures too (a 4xx `detail`, a 200 `success: false`): only one
    saying `success: true` is a placed call. A call whose answer was lost (a crash, a timeout) and that was then found
    placed has no answer kept, but has its conversation id: it was placed too, and says so (never a 409, which would
    invite a retry under a new key and a second dial). A timeout may hide a placed call, so its error is replayed.
    """
    answer = call.upstream_response if isinstance(call.upstream_response, dict) else None
    settled = call.state not in (CallState.DIALING, CallState.QUEUED)
    if settled and (call.conversation_id or (answer is not None and answer.get("success") is True)):
        return call, answer or {}
    if call.error:
        if call.error_kind in (CallErrorKind.REFUSED, CallErrorKind.UNREACHABLE):
            raise UpstreamError(call.error)
        raise CallNotPlaced(call.error)
    if settled:
        raise CallNotPlaced(f"The call was not placed (it ended {call.state.value}).")
    raise Conflict(KEY_IN_PROGRESS)
