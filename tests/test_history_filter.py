"""GET /api/calls?number=: the filter is checked and normalised, never silently empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from callcheck.domain.phone import E164_ERROR
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.waiting import wait_for_call


@pytest.fixture
async def api(client_for: Any, sandbox: SandboxServer, tmp_path: Path) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await client_for(settings_for(sandbox, tmp_path))
    return client


async def test_number_filter_is_normalised_and_checked(api: httpx.AsyncClient) -> None:
    placed = []
    for number in ("+15550100001", "+15550100004"):
        response = await api.post("/api/call", json={"to_number": number, "business_description": "A bakery."})
        placed.append(response.json()["id"])
    for call_id in placed:
        await wait_for_call(api, call_id)
    # Encoded, unencoded (the "+" arrives as a space), with blanks, or without the "+": the same one call.
    for query in (
        "number=%2B15550100001",
        "number=+15550100001",
        "number=%2B1%20555%200100%20001",
        "number=15550100001",
    ):
        listed = (await api.get(f"/api/calls?{query}")).json()["calls"]
        assert [c["id"] for c in listed] == [placed[0]], query
    for bad in ("abc", "+0123", "555"):
        response = await api.get("/api/calls", params={"number": bad})
        assert response.status_code == 400 and response.json() == {"error": E164_ERROR}, bad
