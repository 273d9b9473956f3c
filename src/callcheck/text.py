"""Words for people: counts with their nouns, text cut to one line. (What text can be stored: domain/storable.py.)"""

from __future__ import annotations

import re

_BLANKS = re.compile(r"\s+")


def counted(n: int, noun: str) -> str:
    """`1 turn`, `3 turns`: a count and its noun, plural when it is not one (regular nouns only)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (every run of blanks and newlines becomes one space), cut to `limit` characters with `…`."""
    flat = _BLANKS.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
