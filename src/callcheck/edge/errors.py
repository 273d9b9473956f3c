"""The one place where errors become `{"error": "..."}` with a status code."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from callcheck.errors import (
    CallcheckError,
    CallNotPlaced,
    ConfigurationError,
    Conflict,
    DestinationRefused,
    InvalidInput,
    KeyReused,
    LimitReached,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
)

log = logging.getLogger("callcheck.api")

# Most specific first: the first class an error is an instance of decides its status.
STATUS_BY_ERROR: list[tuple[type[CallcheckError], int]] = [
    (UnsupportedMediaType, 415),
    (InvalidInput, 400),
    (Unauthorized, 401),
    (NotFound, 404),
    (DestinationRefused, 403),
    (LimitReached, 429),
    (Conflict, 409),
    (KeyReused, 422),
    (CallNotPlaced, 500),
    (ConfigurationError, 500),
    (UpstreamError, 502),
]


def status_for(error: CallcheckError) -> int:
    """The HTTP status of a callcheck error."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


def error_response(message: str, status: int) -> JSONResponse:
    """`{"error": message}` with `status`."""
    return JSONResponse({"error": message}, status_code=status)


def refusal_response(exc: LimitReached | DestinationRefused) -> JSONResponse:
    """A 403 naming the dialing rule, or a 429 naming the budget, when it resets and (Retry-After) in how long."""
    if isinstance(exc, DestinationRefused):
        return JSONResponse({"error": exc.message, "rule": exc.rule}, status_code=403)
    wait = max(1, math.ceil((exc.resets_at - datetime.now(UTC)).total_seconds()))
    return JSONResponse(
        {"error": exc.message, "limit": exc.limit, "resets_at": exc.resets_at.isoformat()},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for item in exc.errors():
        loc = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        msg = str(item.get("msg", "is invalid"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "Invalid request: " + "; ".join(parts) if parts else "Invalid request."


def _wants_a_page(request: Request) -> bool:
    """A person's browser asking for a page (not the API, not a script, not a static file)."""
    path = request.url.path
    machine = path.startswith(("/api/", "/static/")) or path in ("/api", "/openapi.json")
    ready = getattr(request.app.state, "services", None) is not None
    return ready and not machine and request.method == "GET" and "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: FastAPI, not_found_page: Callable[[Request, str], Response] | None = None) -> None:
    """Map every error, ours and the framework's, to the JSON error shape.

    `not_found_page` renders a person's 404 (the web's page, given by create_app: the API does not import the web).
    """

    @app.exception_handler(CallcheckError)
    async def _callcheck(_request: Request, exc: CallcheckError) -> JSONResponse:
        if isinstance(exc, LimitReached | DestinationRefused):
            return refusal_response(exc)
        return error_response(exc.message, status_for(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_message(exc), 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not_found_page is not None and _wants_a_page(request):
            return not_found_page(request, "There is no page at this address.")
        messages = {404: "Not found.", 405: "Method not allowed."}
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code not in messages else None
        response = error_response(detail or messages.get(exc.status_code, "Request failed."), exc.status_code)
        if exc.headers:  # a 405's Allow (RFC 9110 §15.5.6), a 401's WWW-Authenticate
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for the operator; the client gets no internals.
        log.exception("unexpected error", exc_info=exc)
        return error_response("Internal error.", 500)
