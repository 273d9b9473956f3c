"""POST /api/webhooks/elevenlabs: signed post-call events from ElevenLabs (received by jobs/webhooks.py).

No vendor import here: the signature header's name and its check come from the caller provider."""

from __future__ import annotations

from fastapi import APIRouter, Request

from callcheck.api.schemas import ERRORS, ErrorBody, WebhookReceipt, json_body
from callcheck.edge.deps import ServicesDep
from callcheck.jobs.webhooks import check_signature_header, receive_webhook, signature_header
from callcheck.providers import webhook_body_schema

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "/elevenlabs",
    summary="ElevenLabs post-call webhook",
    openapi_extra=json_body(
        webhook_body_schema(), description="A post-call event, signed in the provider's signature header."
    ),
    response_model=WebhookReceipt,
    response_model_exclude_none=True,
    responses={**ERRORS, 401: {"model": ErrorBody, "description": "The signature is missing, wrong or stale."}},
)
async def elevenlabs_webhook(request: Request, services: ServicesDep) -> WebhookReceipt:
    """Verify, keep once, and apply a post_call_transcription / post_call_audio / call_initiation_failure event."""
    header = request.headers.get(signature_header(services))
    # An unsigned or stale request is refused before its body is read (the body is capped by the Gate too).
    check_signature_header(services, header)
    return WebhookReceipt(**await receive_webhook(services, header, await request.body()))
