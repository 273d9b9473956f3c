"""Verifying ElevenLabs webhook signatures (contract §5.2-5.3): `ElevenLabs-Signature: t=<unix>,v0=<hex>`."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from callcheck.errors import Unauthorized

SIGNATURE_HEADER = "ElevenLabs-Signature"
TOLERANCE_S = 30 * 60
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds stay under 12 digits until the year 33658

# The envelope of a post-call event (contract §5.4), for the API's description: `type`, `event_timestamp`, `data`.
# Open-ended on purpose: the `data` of each type carries more (and ElevenLabs adds fields); unknown types are kept
# and ignored. The signature, not this schema, decides what is read.
BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "data"],
    "properties": {
        "type": {
            "type": "string",
            "description": "post_call_transcription, post_call_audio or call_initiation_failure (others are ignored)",
        },
        "event_timestamp": {"type": "integer", "description": "When the event was sent (Unix seconds)."},
        "data": {
            "type": "object",
            "description": "The conversation: its id and agent, and per type its record, audio or failure.",
            "properties": {"conversation_id": {"type": "string"}, "agent_id": {"type": "string"}},
            "additionalProperties": True,
        },
    },
    "additionalProperties": True,
}


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value ElevenLabs would send for `body` (used by the sandbox and tests)."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v0={mac}"


def verify(secret: str | None, header: str | None, body: bytes, now: float | None = None) -> None:
    """Raise Unauthorized unless `header` is a valid, fresh signature of the raw `body` under `secret`.

    Same rules as ElevenLabs' own SDK: parts split on "," with no spaces, the timestamp may not be older than
    30 minutes (a future one is accepted), HMAC-SHA256 over "<t>.<raw body>". Unlike the SDK we compare in
    constant time and sign the raw bytes, so a body that is not valid UTF-8 cannot be re-encoded into a match.
    """
    timestamp, signature = check_header(secret, header, now)
    assert secret is not None
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise Unauthorized("Signature does not match the payload.")


def check_header(secret: str | None, header: str | None, now: float | None = None) -> tuple[str, str]:
    """(timestamp, signature) of a well-formed, fresh signature header; Unauthorized otherwise.

    Needs no body: the webhook route calls it before reading one, so an unsigned or stale request is refused
    without its (up to 64 MB) body ever being read.
    """
    if not secret:
        raise Unauthorized("Webhook secret is not configured (ELEVENLABS_WEBHOOK_SECRET); webhook refused.")
    if not header:
        raise Unauthorized("Missing signature header.")
    timestamp = signature = None
    for part in header.split(","):
        if part.startswith("t="):
            timestamp = part[2:]
        elif part.startswith("v0="):
            signature = part[3:]
    # ASCII digits only (str.isdigit also takes "²" and other scripts' digits, which int() then refuses), and no
    # more of them than a Unix time has: int() of thousands of digits raises instead of comparing.
    if timestamp is None or signature is None or not _ascii_digits(timestamp, MAX_TIMESTAMP_DIGITS):
        raise Unauthorized("No signature hash found with expected scheme v0.")
    if not _ascii_digits(signature, 64, hexadecimal=True):  # lowercase hex, as ElevenLabs sends and its SDK checks
        raise Unauthorized("Signature does not match the payload.")
    current = time.time() if now is None else now
    if int(timestamp) < current - TOLERANCE_S:
        raise Unauthorized("Timestamp outside the tolerance zone.")
    return timestamp, signature


def _ascii_digits(text: str, most: int, *, hexadecimal: bool = False) -> bool:
    allowed = "0123456789abcdef" if hexadecimal else "0123456789"
    return 0 < len(text) <= most and all(c in allowed for c in text)
