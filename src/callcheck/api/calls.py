"""The seed's routes: POST /api/context and POST /api/call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request

from callcheck.api.body import json_object, optional_text
from callcheck.api.deps import SESSION_KEY, ServicesDep, context_id_of, get_context, token_name_of
from callcheck.api.errors import error_response
from callcheck.api.schemas import (
    DIALING_ERRORS,
    ERRORS,
    CallBody,
    CallInitiated,
    ContextBody,
    ContextSaved,
    ErrorBody,
    json_body,
)
from callcheck.domain.lifecycle import CallState
from callcheck.domain.phone import require_e164
from callcheck.domain.prompts import MISSING_DESCRIPTION_ERROR, clean_text, normalize_scenario
from callcheck.errors import Conflict, InvalidInput
from callcheck.jobs.placing import CallRequest, place_call
from callcheck.providers.elevenlabs.wire import call_sid_of
from callcheck.store.repo import CallRow, DuplicateKey

router = APIRouter(prefix="/api", tags=["calls"])


def initiated_body(call: CallRow, raw: dict[str, Any]) -> dict[str, Any]:
    """The seed's success body for a placed call, plus the call's id."""
    status = raw.get("status")
    return {
        "ok": True,
        # ElevenLabs' answer has no status field (contract §2.2); the seed reports "initiated" for an accepted call.
        "status": status if isinstance(status, str) and status else "initiated",
        "message": "Call initiated.",
        "to_number": call.to_number,
        "scenario": call.scenario,
        # From the answer; for a call found placed after its answer was lost (no answer kept), from the call.
        "call_sid": call_sid_of(raw) or call.call_sid,
        "conversation_id": raw.get("conversation_id")
        if isinstance(raw.get("conversation_id"), str)
        else call.conversation_id,
        "raw": raw,
        "id": call.id,
    }


@router.post(
    "/context",
    summary="Set the business context of this session",
    openapi_extra=json_body(ContextBody),
    responses={200: {"model": ContextSaved}, **ERRORS},
)
async def set_context(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Store `description` (required) and `scenario` for the current session."""
    data = await json_object(request)
    description = clean_text(optional_text(data, "description"))
    scenario_in = clean_text(optional_text(data, "scenario"))
    if not description:
        raise InvalidInput(MISSING_DESCRIPTION_ERROR)
    context_id = context_id_of(request)
    await services.store.save_context(context_id, description, scenario_in or None)
    request.session[SESSION_KEY] = context_id
    return {"ok": True, "scenario": normalize_scenario(scenario_in)}


@router.post(
    "/call",
    summary="Initiate Call",
    openapi_extra=json_body(CallBody),
    responses={
        200: {"model": CallInitiated},
        **ERRORS,
        **DIALING_ERRORS,
        409: {"model": ErrorBody, "description": "A request with this Idempotency-Key is still in progress."},
        422: {"model": ErrorBody, "description": "This Idempotency-Key was used for a different request."},
        415: {"model": ErrorBody, "description": "The body is not declared as JSON."},
        500: {"model": ErrorBody, "description": "Missing required environment variables."},
        502: {"model": ErrorBody, "description": "ElevenLabs answered with an error or could not be reached."},
    },
)
async def initiate_call(
    request: Request,
    services: ServicesDep,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=255),
) -> Any:
    """Phone `to_number` with the AI caller and try to complete `scenario` (the seed's contract, to the letter)."""
    data = await json_object(request)
    # The seed's order: the description, then the number, then the rest; each field's type is checked in its turn.
    description = clean_text(optional_text(data, "business_description"))
    # The session's stored context is read only when the request leaves something to it (a read less per call).
    context = None if description else await get_context(request, services)
    description = description or (context.description if context else "")
    if not description:
        raise InvalidInput(MISSING_DESCRIPTION_ERROR)
    number = require_e164(optional_text(data, "to_number"))
    scenario_in = optional_text(data, "scenario")
    if context is None and not clean_text(scenario_in):
        context = await get_context(request, services)
    scenario = normalize_scenario(scenario_in, context.scenario if context else None)
    if idempotency_key:
        replay = await _replay(services, idempotency_key, (number, description, scenario))
        if replay is not None:
            return replay
    call_request = CallRequest(
        to_number=number,
        description=description,
        scenario=scenario,
        origin="api",
        context_id=context_id_of(request),
        idempotency_key=idempotency_key or None,
        token_name=token_name_of(request),
    )
    try:
        call, raw = await place_call(services, call_request)
    except DuplicateKey as exc:
        # Two requests with one key raced; the other one dials.
        raise Conflict("A request with this Idempotency-Key is already in progress.") from exc
    return initiated_body(call, raw)


async def _replay(services: ServicesDep, key: str, asked: tuple[str, str, str]) -> Any:
    """The stored answer to an earlier request with this Idempotency-Key, or None when this one should dial.

    The key names one request: used again for another number, description or scenario, it is a 422 (answering
    with the first call's body would tell the client a number was dialed that was not). An earlier attempt that
    ElevenLabs refused (an error status, or `success: false`) placed nothing: its key is freed and this request
    dials, so a client retrying after a 429 can succeed. A timeout may hide a placed call, so it is replayed.
    """
    call = await services.store.get_call_by_key(key)
    if call is None:
        return None
    if (call.to_number, call.business_description, call.scenario) != asked:
        return error_response(
            "This Idempotency-Key was used for a different request (another number, description or scenario).", 422
        )
    if call.state == CallState.FAILED and (call.error or "").startswith("ElevenLabs API error"):
        await services.store.update_call(call.id, idempotency_key=None)
        return None
    # The stored answer is the upstream's body for failures too (a 4xx `detail`, a 200 `success: false`): only one
    # saying `success: true` is a placed call. A call whose answer was lost (a crash, a timeout) and that was then
    # found placed has no answer kept, but has its conversation id: it was placed too, and says so (never a 409,
    # which would invite a retry under a new key and a second dial).
    answer = call.upstream_response if isinstance(call.upstream_response, dict) else None
    settled = call.state not in (CallState.DIALING, CallState.QUEUED)
    if settled and (call.conversation_id or (answer is not None and answer.get("success") is True)):
        return initiated_body(call, answer or {})
    if call.error:
        status = 502 if call.error.startswith(("ElevenLabs API error", "Could not reach")) else 500
        return error_response(call.error, status)
    if settled:
        return error_response(f"The call was not placed (it ended {call.state.value}).", 500)
    raise Conflict("A request with this Idempotency-Key is already in progress.")
