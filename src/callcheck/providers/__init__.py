"""Caller providers (the engines that place calls) and the LLM client; see providers/base.py and docs/providers.md.

`caller_for(services)` and `caller_from_settings(settings, http)` are the one place that picks the provider: jobs/,
api/, the doctor and the CLI ask them for a `CallerProvider` and never name a concrete one
(tests/test_vendor_boundary.py).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import httpx

    from callcheck.config import Settings
    from callcheck.providers.base import CallerProvider


class Host(Protocol):
    """What a provider needs of the running callcheck (`services.Services` is one): its settings, its shared HTTP
    client, and where to say that the upstream turned out to be callcheck's sandbox."""

    settings: Settings
    http: httpx.AsyncClient

    def sandbox_answered(self) -> None: ...


def caller_for(services: Host) -> CallerProvider:
    """The caller provider of this running callcheck (ElevenLabs, the only one today), on its shared client."""
    from callcheck.providers.elevenlabs.caller import ElevenLabsCaller

    return ElevenLabsCaller(services.settings, services.http, on_sandbox=services.sandbox_answered)


def caller_from_settings(settings: Settings, http: httpx.AsyncClient) -> CallerProvider:
    """The caller provider these settings choose, for a command that runs without a running callcheck's services
    (`callcheck agent setup`, `callcheck doctor`): its API client is built from the settings over `http`."""
    from callcheck.providers.elevenlabs.caller import ElevenLabsCaller

    return ElevenLabsCaller(settings, http)


def webhook_body_schema() -> dict[str, Any]:
    """The JSON schema of the provider's post-call webhook body (for the API's description; a copy)."""
    from callcheck.providers.elevenlabs.webhooks import BODY_SCHEMA

    return copy.deepcopy(BODY_SCHEMA)
