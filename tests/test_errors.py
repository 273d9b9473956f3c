"""The one JSON error shape, for every kind of error in the tree and the framework's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter

from callcheck.app import create_app
from callcheck.edge.errors import status_for
from callcheck.errors import (
    CallcheckError,
    ConfigurationError,
    Conflict,
    InvalidInput,
    MissingSettings,
    NotFound,
    Unauthorized,
    UpstreamHTTPError,
    UpstreamUnreachable,
)
from tests.conftest import settings_for


@pytest.mark.parametrize(
    ("error", "status", "message"),
    [
        (InvalidInput("bad"), 400, "bad"),
        (Unauthorized("who"), 401, "who"),
        (NotFound("gone"), 404, "gone"),
        (Conflict("busy"), 409, "busy"),
        (ConfigurationError("setup"), 500, "setup"),
        (MissingSettings(["ELEVENLABS_API_KEY"]), 500, "Missing required environment variables: ELEVENLABS_API_KEY"),
        (UpstreamHTTPError(403, "Invalid API key"), 502, "ElevenLabs API error (403): Invalid API key"),
        (UpstreamUnreachable("boom"), 502, "Could not reach ElevenLabs: boom"),
        (CallcheckError("other"), 500, "other"),
    ],
)
async def test_each_error_kind_maps_to_its_status_and_shape(
    error: CallcheckError, status: int, message: str, tmp_path: Path
) -> None:
    assert status_for(error) == status
    app = create_app(settings_for(None, tmp_path, workers=False))
    router = APIRouter()

    @router.get("/api/raise")
    async def raise_it() -> Any:
        raise error

    app.include_router(router)
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/raise")
    assert response.status_code == status
    assert response.json() == {"error": message}


async def test_an_unexpected_exception_is_a_500_without_internals(tmp_path: Path) -> None:
    import httpx

    app = create_app(settings_for(None, tmp_path, workers=False))
    router = APIRouter()

    @router.get("/api/crash")
    async def crash() -> Any:
        raise RuntimeError("secret internals /etc/passwd")

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/api/crash")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal error."}


async def test_framework_validation_errors_are_json_400(client_for: Any, tmp_path: Path) -> None:
    api = await client_for(settings_for(None, tmp_path, workers=False))
    response = await api.get("/api/calls", params={"limit": "many"})
    assert response.status_code == 400
    assert set(response.json()) == {"error"} and "limit" in response.json()["error"]
