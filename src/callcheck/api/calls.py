"""The seed's routes: POST /api/context and POST /api/call."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Request

from callcheck.api.body import json_object, optional_text
from callcheck.api.deps import SESSION_KEY, ServicesDep, context_id_of, get_context, token_name_of
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
from callcheck.domain.phone import require_e164
from callcheck.domain.prompts import MISSING_DESCRIPTION_ERROR, clean_text, normalize_scenario
from callcheck.errors import InvalidInput
from callcheck.jobs.placing import CallRequest, place_once
from callcheck.providers.elevenlabs.wire import call_sid_of
from callcheck.store.repo import CallRow

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
    call_request = CallRequest(
        to_number=number,
        description=description,
        scenario=scenario,
        origin="api",
        context_id=context_id_of(request),
        idempotency_key=idempotency_key or None,
        token_name=token_name_of(request),
    )
    call, raw = await place_once(services, call_request)
    return initiated_body(call, raw)
