"""Small helpers for the sentences callcheck writes to people."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """`1 turn`, `3 turns`: a count and its noun, plural when it is not one (regular nouns only)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
