"""Reading request bodies defensively: JSON object only, typed fields with plain-words errors (the size cap is
edge/gate.py's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from callcheck.domain.storable import parse_json
from callcheck.errors import InvalidInput, UnsupportedMediaType

M = TypeVar("M", bound="BodyModel")


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object. InvalidInput for anything else."""
    declared = request.headers.get("content-type")
    media = declared.split(";", 1)[0].strip().lower() if declared is not None else ""
    # No Content-Type at all is read as JSON (a bare client); a declared form or text body is refused rather than
    # guessed at: it is what a cross-site HTML form sends.
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType("Send the body as JSON, with Content-Type: application/json.")
    raw = await request.body()
    if not raw.strip():
        return {}
    data = parse_json(raw, "Request body")
    if not isinstance(data, dict):
        raise InvalidInput("Request body must be a JSON object.")
    return data


def optional_text(data: dict[str, Any], name: str) -> str | None:
    """A string field or None when absent/null; InvalidInput when it is another type."""
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidInput(f"Field '{name}' must be a string.")


class BodyModel(BaseModel):
    """A JSON object body, validated by pydantic (strict: a number is not a string; unknown fields are ignored).

    A field of the wrong type is not raised at once but kept, in the seed's words, until the route `check`s that
    field: the seed reports its errors in an order of its own (no description anywhere comes before a bad number),
    which only the route knows. The same model describes the body in /openapi.json.
    """

    model_config = ConfigDict(strict=True, extra="ignore")
    # A field's own words for its wrong type, instead of "Field 'x' must be a string." (the default).
    problem_words: ClassVar[dict[str, str]] = {}
    _problems: dict[str, str] = PrivateAttr(default_factory=dict)

    def check(self, *names: str) -> Self:
        """Self; InvalidInput for the first of `names` whose value had the wrong type."""
        for name in names:
            if name in self._problems:
                raise InvalidInput(self._problems[name])
        return self


def validated(model: type[M], data: dict[str, Any]) -> M:
    """`data` as `model`; the fields of the wrong type left at their defaults and kept as problems (BodyModel)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else ""
            if name not in model.model_fields:  # a whole-body error: the body's own shape is checked before
                raise InvalidInput(f"Request body is invalid: {error['msg']}.") from exc
            problems.setdefault(name, model.problem_words.get(name) or _problem(name, error))
    body = model.model_validate({key: value for key, value in data.items() if key not in problems})
    body._problems = problems
    return body


def _problem(name: str, error: ErrorDetails) -> str:
    if error["type"] == "string_type":
        return f"Field '{name}' must be a string."
    return f"Field '{name}' is invalid: {error['msg']}."


def body_of(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency reading the request's JSON object body as `model` (json_object, then validated)."""

    async def read(request: Request) -> M:
        return validated(model, await json_object(request))

    read.__name__ = f"read_{model.__name__}"
    return read
