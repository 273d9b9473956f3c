"""Phone numbers in E.164, exactly as the seed validates them."""

from __future__ import annotations

import re

from callcheck.errors import InvalidInput

# The seed's pattern, read with ASCII semantics: Python's `\d` would otherwise accept other scripts' digits too.
E164_PATTERN = re.compile(r"^\+[1-9]\d{7,14}$", re.ASCII)
E164_ERROR = "Phone number must be in E.164 format, for example +15551234567."


def is_e164(number: str) -> bool:
    """True when `number` matches the seed's pattern ^\\+[1-9]\\d{7,14}$."""
    # fullmatch, not match: `$` alone would accept a trailing newline.
    return E164_PATTERN.fullmatch(number) is not None


def require_e164(number: object) -> str:
    """The number, stripped of surrounding blanks, or InvalidInput with the seed's message."""
    if not isinstance(number, str) or not is_e164(number.strip()):
        raise InvalidInput(E164_ERROR)
    return number.strip()


def number_filter(raw: str | None) -> str | None:
    """A number to filter calls by, as E.164; None for no filter; InvalidInput with the seed's message otherwise.

    Blanks are dropped ("+1 555 123 4567"), and a number of bare digits gets its "+" back: in a URL query an
    unencoded "+" arrives as a space (`?number=+15551234567`), which would otherwise match nothing, silently.
    """
    compact = "".join((raw or "").split())
    if not compact:
        return None
    if compact.isdigit() and compact.isascii():
        compact = "+" + compact
    return require_e164(compact)
