"""A tiny OpenAI-compatible chat-completions server on loopback (real HTTP), for the judge and suggest tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scripted import ScriptedServer, running


class FakeOpenAI(ScriptedServer):
    """An OpenAI-compatible chat-completions endpoint: answers what `reply` says, records every request."""

    def answer(self, content: str) -> None:
        self.reply = {
            "id": "x",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with running(FakeOpenAI()) as fake:
        yield fake
