"""POST /api/webhooks/elevenlabs: signed post-call events from ElevenLabs (received by jobs/webhooks.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from callcheck.api.schemas import ERRORS, ErrorBody, json_body
from callcheck.edge.deps import ServicesDep
from callcheck.jobs.webhooks import receive_webhook, webhook_secret
from callcheck.providers.elevenlabs.webhooks import SIGNATURE_HEADER, check_header

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])


@router.post(
    "/elevenlabs",
    summary="ElevenLabs post-call webhook",
    openapi_extra=json_body(None, description="A signed ElevenLabs post-call event (header ElevenLabs-Signature)."),
    responses={**ERRORS, 401: {"model": ErrorBody, "description": "The signature is missing, wrong or stale."}},
)
async def elevenlabs_webhook(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Verify, keep once, and apply a post_call_transcription / post_call_audio / call_initiation_failure event."""
    header = request.headers.get(SIGNATURE_HEADER)
    # An unsigned or stale request is refused before its body is read (the body is capped by BodyLimit too).
    check_header(webhook_secret(services), header)
    return await receive_webhook(services, header, await request.body())
