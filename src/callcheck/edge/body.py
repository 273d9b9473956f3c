"""Reading request bodies defensively: size cap, JSON object only, typed fields with plain-words errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Self, TypeVar

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcheck.domain.storable import parse_json
from callcheck.edge.errors import error_response
from callcheck.errors import InvalidInput, UnsupportedMediaType

TOO_LARGE = "Request body is too large."
M = TypeVar("M", bound="BodyModel")


class BodyLimit:
    """ASGI middleware refusing bodies over a size with 413, by Content-Length or by counting what arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope["path"], self.max_bytes)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await error_response(TOO_LARGE, 413)(scope, receive, send)
                return
        seen = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not response_started:
                await error_response(TOO_LARGE, 413)(scope, receive, send)


class _TooLarge(Exception):
    pass


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


CROSS_SITE = "Cross-site requests are refused."
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class SameOriginOnly:
    """ASGI middleware refusing state-changing requests that a browser sends on behalf of another site.

    callcheck has no login on a local server, so a page elsewhere could otherwise make a visitor's browser post
    `text/plain` JSON to 127.0.0.1:5000 and place a phone call. Browsers mark such requests (`Origin`,
    `Sec-Fetch-Site`); non-browser clients (curl, CI, ElevenLabs' webhooks) send neither and are unaffected.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE_METHODS:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
            origin = headers.get("origin")
            fetch_site = headers.get("sec-fetch-site")
            host = headers.get("host", "")
            scheme = scope.get("scheme", "http")
            foreign_origin = origin is not None and origin != "null" and origin != f"{scheme}://{host}"
            if fetch_site == "cross-site" or foreign_origin or origin == "null":
                await error_response(CROSS_SITE, 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)
