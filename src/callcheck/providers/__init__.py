"""Caller providers (the engines that place calls) and the LLM client; see providers/base.py and docs/providers.md.

`caller_for(services)` is the one place that picks the provider: jobs/ ask it for a `CallerProvider` and never
name a concrete one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callcheck.providers.base import CallerProvider
    from callcheck.services import Services


def caller_for(services: Services) -> CallerProvider:
    """The caller provider of this running callcheck (ElevenLabs, the only one today)."""
    from callcheck.providers.elevenlabs.caller import ElevenLabsCaller

    settings = services.settings
    return ElevenLabsCaller(
        services.client, settings.elevenlabs_agent_id or "", settings.elevenlabs_agent_phone_number_id or ""
    )
