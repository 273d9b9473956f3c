"""What text can be stored: PostgreSQL text holds no NUL character, and no text holds a lone surrogate.

Pure checks on JSON-like data, used at the doors (request bodies, suite files, what ElevenLabs sends) so that a write
never fails half-way through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def unstorable(data: Any) -> str | None:
    """Why JSON-like `data` cannot be stored as text, in words; None when it can.

    A NUL character is valid JSON ("\\u0000") and fine in SQLite, but PostgreSQL text cannot hold it; a lone surrogate
    ("\\ud800") is no text at all. Both are refused at the door rather than failing half-way through a write.
    """
    for text in _strings(data):
        if "\x00" in text:
            return "holds a NUL character (\\u0000)"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "holds an unpaired surrogate escape"
    return None


def without_nul(data: Any) -> Any:
    """`data` with every NUL character removed from its strings (for what ElevenLabs sends, which we keep)."""
    if isinstance(data, str):
        return data.replace("\x00", "") if "\x00" in data else data
    if isinstance(data, dict):
        return {without_nul(k): without_nul(v) for k, v in data.items()}
    if isinstance(data, list):
        return [without_nul(v) for v in data]
    return data


def _strings(data: Any) -> Iterator[str]:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
