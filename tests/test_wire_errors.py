"""One readable line from each shape of ElevenLabs error body (contract §9), as literal payloads."""

from __future__ import annotations

from typing import Any

import pytest

from callcheck.providers.elevenlabs.wire import error_message

CASES: list[tuple[Any, str]] = [
    ({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, "Invalid API key"),
    ({"detail": {"msg": "  legacy message  "}}, "legacy message"),
    ({"detail": {"status": "quota_exceeded"}}, "quota_exceeded"),
    ({"detail": {"code": "E42", "message": "   "}}, "E42"),
    ({"detail": {}}, "Bad Request"),
    ({"detail": "  plain text detail "}, "plain text detail"),
    ({"detail": "   ", "message": "top-level message"}, "top-level message"),
    (
        {"detail": [{"loc": ["body", "to_number"], "msg": "field required"}, {"loc": [], "msg": "bad"}, "raw item"]},
        "to_number: field required; bad; raw item",
    ),
    ({"detail": [{"loc": ["body", "agent_id"]}]}, "agent_id: invalid"),
    ({"detail": [1, None]}, "Bad Request"),
    ([{"loc": ["query", "page_size"], "msg": "too large"}], "query.page_size: too large"),
    ({"message": "only a message"}, "only a message"),
    ({"unrelated": True}, "Bad Request"),
    ("<html><body>502 Bad Gateway</body></html>", "Bad Request"),
    ("upstream said\nno", "upstream said no"),
    ("   ", "Bad Request"),
    (None, "Bad Request"),
]


@pytest.mark.parametrize(("body", "expected"), CASES)
def test_error_message_of_each_shape(body: Any, expected: str) -> None:
    assert error_message(body, "Bad Request") == expected
