"""The official `elevenlabs` SDK as the oracle of what ElevenLabs sends (a test-only dependency).

`strictly(Model, body)` validates a body against the SDK's pydantic model and fails on any field the SDK does not
know anywhere in the tree: the models accept extra fields, so plain validation would let an invented one through.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every field a validated SDK object kept as an extra (a field the SDK does not declare)."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}" if path else key for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += unknown_fields(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unknown_fields(item, f"{path}.{key}")
    return found


def strictly(model: type[M], body: Any) -> M:
    """`body` validated by the SDK's `model`, asserting it carries no field the SDK does not know."""
    validated = model.model_validate(body)
    extra = unknown_fields(validated)
    assert not extra, f"fields unknown to the SDK's {model.__name__}: {extra}"
    return validated
