"""The seed's routes: POST /api/context and POST /api/call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

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
from callcheck.edge.body import body_of
from callcheck.edge.deps import SESSION_KEY, ServicesDep, context_id_of, get_context, token_name_of
from callcheck.errors import InvalidInput
from callcheck.jobs.placing import CallRequest, place_once
from callcheck.store.repo import CallRow

router = APIRouter(prefix="/api", tags=["calls"])


def initiated(call: CallRow, raw: dict[str, Any]) -> CallInitiated:
    """The seed's success body for a placed call, plus the call's id."""
    status = raw.get("status")
    conversation_id = raw.get("conversation_id")
    return CallInitiated(
        ok=True,
        # ElevenLabs' answer has no status field (contract §2.2); the seed reports "initiated" for an accepted call.
        status=status if isinstance(status, str) and status else "initiated",
        message="Call initiated.",
        to_number=call.to_number,
        scenario=call.scenario,
        # Read out of the answer by the provider when it was placed (or found placed after its answer was lost).
        call_sid=call.call_sid,
        conversation_id=conversation_id if isinstance(conversation_id, str) else call.conversation_id,
        raw=raw,
        id=call.id,
    )


@router.post(
    "/context",
    summary="Set the business context of this session",
    openapi_extra=json_body(ContextBody),
    response_model=ContextSaved,
    responses=ERRORS,
)
async def set_context(
    request: Request, services: ServicesDep, body: Annotated[ContextBody, Depends(body_of(ContextBody))]
) -> ContextSaved:
    """Store `description` (required) and `scenario` for the current session."""
    body.check("description", "scenario")
    description, scenario_in = clean_text(body.description), clean_text(body.scenario)
    if not description:
        raise InvalidInput(MISSING_DESCRIPTION_ERROR)
    context_id = context_id_of(request)
    await services.store.save_context(context_id, description, scenario_in or None)
    request.session[SESSION_KEY] = context_id
    return ContextSaved(ok=True, scenario=normalize_scenario(scenario_in))


@router.post(
    "/call",
    summary="Initiate Call",
    openapi_extra=json_body(CallBody),
    response_model=CallInitiated,
    responses={
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
    body: Annotated[CallBody, Depends(body_of(CallBody))],
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", max_length=255),
) -> CallInitiated:
    """Phone `to_number` with the AI caller and try to complete `scenario` (the seed's contract, to the letter)."""
    # The seed's order: the description, then the number, then the rest; each field's type is checked in its turn.
    description = clean_text(body.check("business_description").business_description)
    # The session's stored context is read only when the request leaves something to it (a read less per call).
    context = None if description else await get_context(request, services)
    description = description or (context.description if context else "")
    if not description:
        raise InvalidInput(MISSING_DESCRIPTION_ERROR)
    number = require_e164(body.check("to_number").to_number)
    scenario_in = body.check("scenario").scenario
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
    return initiated(call, raw)
