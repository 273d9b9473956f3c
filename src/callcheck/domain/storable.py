"""What text can be stored: PostgreSQL text holds no NUL character, and no text holds a lone surrogate.

Pure checks on JSON-like data, used at the doors (request bodies, suite files, what ElevenLabs sends) so that a write
never fails half-way through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from callcheck.errors import InvalidInput


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


def parse_json(raw: bytes, what: str, *, drop_nul: bool = False) -> Any:
    """JSON text as Python values, or InvalidInput naming `what` for anything the store could not keep.

    Beyond malformed JSON that is nesting too deep for the parser (a RecursionError, not a ValueError), a lone
    surrogate escape (`"\\ud800"`) or a NUL (`"\\u0000"`): valid JSON, but not text a database can store.
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{what} must be valid JSON.") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what} is nested too deeply.") from exc
    if drop_nul:  # what ElevenLabs sends is kept, less its NULs, rather than refused and re-sent forever
        data = without_nul(data)
    problem = unstorable(data)
    if problem:
        raise InvalidInput(f"{what} must be valid text (it {problem}).")
    return data
