"""Odd signature headers are refused as unsigned (401), never an error of ours (500)."""

from __future__ import annotations

import time

import pytest

from callcheck.errors import Unauthorized
from callcheck.providers.elevenlabs.webhooks import sign, verify

SECRET = "whsec-test"
BODY = b'{"type": "post_call_transcription", "data": {}}'


def test_a_good_signature_verifies() -> None:
    verify(SECRET, sign(SECRET, BODY), BODY)


@pytest.mark.parametrize(
    "header",
    [
        # Not ASCII in the hash: hmac.compare_digest refuses to compare such text at all.
        "t={now},v0=\u00e9" + "0" * 63,
        # A superscript two passes str.isdigit, and int() then refuses it.
        "t=\u00b2,v0=" + "0" * 64,
        # Thousands of digits: int() of that many raises instead of comparing.
        "t=" + "9" * 5000 + ",v0=" + "0" * 64,
        "t={now},v0=",
        "t=,v0=" + "0" * 64,
        "t={now},v0=" + "0" * 65,
        "t={now},v0=" + "A" * 64,  # capitals: ElevenLabs sends lowercase hex, and its SDK compares as text
    ],
)
def test_malformed_headers_are_unauthorized(header: str) -> None:
    with pytest.raises(Unauthorized):
        verify(SECRET, header.format(now=int(time.time())), BODY)
