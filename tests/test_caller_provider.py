"""ElevenLabs behind the CallerProvider protocol (providers/base.py), over real HTTP to a scripted upstream: the
listing pages until every wanted conversation was seen and says how many requests it took (the poller's pace)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from callcheck.config import Settings
from callcheck.providers.base import CallerProvider
from callcheck.providers.elevenlabs.caller import ElevenLabsCaller
from callcheck.providers.elevenlabs.client import ElevenLabsClient
from tests.scripted import ScriptedServer, running


class PagedUpstream(ScriptedServer):
    """Answers the n-th request with the n-th of `pages` (the last one again after that)."""

    pages: list[Any]

    @property
    def reply(self) -> Any:
        return self.pages[min(len(self.requests), len(self.pages)) - 1]

    @reply.setter
    def reply(self, value: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[PagedUpstream]:
    with running(PagedUpstream()) as server:
        yield server


FIRST = {
    "conversations": [
        {"conversation_id": "conv_a", "status": "initiated", "message_count": 0},
        {"conversation_id": "conv_b", "status": "done", "message_count": 4, "call_successful": "success"},
    ],
    "has_more": True,
    "next_cursor": "page-2",
}
SECOND = {"conversations": [{"conversation_id": "conv_c", "status": "in-progress", "message_count": 2}]}


def caller_settings() -> Settings:
    """The agent and phone number the requests name (the client is the test's own, over the scripted upstream)."""
    return Settings(elevenlabs_agent_id="agent_1", elevenlabs_agent_phone_number_id="phone_1")


async def test_changed_conversations_pages_until_every_wanted_one_is_seen(upstream: PagedUpstream) -> None:
    upstream.pages = [FIRST, SECOND]
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(http, "key", upstream.url)
        caller: CallerProvider = ElevenLabsCaller(caller_settings(), http, lambda: client)
        listing = await caller.changed_conversations(1_700_000_000, {"conv_a", "conv_c"})
        assert listing.requests == 2 and set(listing.marks) == {"conv_a", "conv_b", "conv_c"}
        assert listing.marks["conv_a"].untouched and not listing.marks["conv_b"].untouched
        assert listing.marks["conv_b"] != listing.marks["conv_c"]
        second_path = upstream.requests[1][0]
        assert "cursor=page-2" in second_path and "agent_id=agent_1" in second_path

        upstream.requests.clear()
        listing = await caller.changed_conversations(1_700_000_000, {"conv_b"})  # seen on the first page
        assert listing.requests == 1 and len(upstream.requests) == 1


async def test_find_call_is_the_newest_conversation_tagged_with_the_call_id(upstream: PagedUpstream) -> None:
    upstream.pages = [SECOND]
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(http, "key", upstream.url)
        caller = ElevenLabsCaller(caller_settings(), http, lambda: client)
        assert await caller.find_call("call_42") == "conv_c"
        assert "user_id=call_42" in upstream.requests[0][0]
        upstream.pages = [{"conversations": []}]
        assert await caller.find_call("call_43") is None
