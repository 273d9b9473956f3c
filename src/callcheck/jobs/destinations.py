"""Applying the dialing rules (domain/destinations.py) before a call is recorded: the one place that learns the
country of the agent's own phone number from ElevenLabs, and keeps it for the life of the process."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from callcheck.domain.destinations import Rule, calling_code, refusal
from callcheck.errors import DestinationRefused
from callcheck.providers import caller_for
from callcheck.services import Services

log = logging.getLogger("callcheck.destinations")

_HOME_KEY = "agent_calling_code"


@dataclass
class _Home:
    """The agent's calling code, once learned (a phone number id names one number for good)."""

    phone_number_id: str | None = None
    code: int | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def agent_calling_code(services: Services) -> int | None:
    """The calling code of ELEVENLABS_AGENT_PHONE_NUMBER_ID's number, asked once per process and then kept.

    None when ElevenLabs does not list that id (or lists it without a number we can read); nothing is kept then,
    so the next call asks again. An upstream error (unreachable, refused key) is raised as it is: nothing is dialed
    and the request fails as the dial itself would have.
    """
    home: _Home = services.extras.setdefault(_HOME_KEY, _Home())
    wanted = services.settings.elevenlabs_agent_phone_number_id or ""
    async with home.lock:  # concurrent first calls ask ElevenLabs once
        if home.code is not None and home.phone_number_id == wanted:
            return home.code
        number = await caller_for(services).own_number()
        code = calling_code(number) if number and number.startswith("+") else None
        if code is None:
            log.warning("the agent's phone number %s is not listed by ElevenLabs with an E.164 number", wanted)
            return None
        home.phone_number_id, home.code = wanted, code
        return code


async def check_destination(services: Services, number: str) -> None:
    """DestinationRefused, naming the rule, unless the dialing rules allow calling `number`."""
    rules = services.settings.dial_rules()
    decided = refusal(number, rules, home=None)
    # The agent's own country is asked for only when it decides: the default rule, for a number not named.
    if decided is not None and decided.rule is Rule.HOME_UNKNOWN:
        decided = refusal(number, rules, home=await agent_calling_code(services))
    if decided is not None:
        raise DestinationRefused(decided.message, decided.rule.value)
