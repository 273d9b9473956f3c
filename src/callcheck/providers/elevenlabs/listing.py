"""What the conversations list says about which calls changed (contract §4.2), for the batched poller.

One `GET /v1/convai/conversations` page (filtered by agent and start time, newest first, up to 100 a page) carries a
summary of each conversation: its status and message count change whenever the call does, so comparing them with
the last ones seen tells which conversations to fetch in full. Pure functions: no I/O.
"""

from __future__ import annotations

from typing import Any

from callcheck.providers.base import ConversationMark

PAGE_SIZE = 100  # the list's largest page (contract §4.2)


def recent_query(agent_id: str, started_after_unix: int, cursor: str | None) -> dict[str, Any]:
    """Query parameters of one page of the agent's conversations started after `started_after_unix`."""
    query: dict[str, Any] = {
        "agent_id": agent_id,
        "call_start_after_unix": started_after_unix,
        "page_size": PAGE_SIZE,
    }
    if cursor:
        query["cursor"] = cursor
    return query


def marks_of(page: dict[str, Any]) -> dict[str, ConversationMark]:
    """The mark of each conversation on a list page, by conversation id (malformed items skipped)."""
    marks: dict[str, ConversationMark] = {}
    items = page.get("conversations")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("conversation_id"), str):
            continue
        count = item.get("message_count")
        status = item.get("status")
        outcome = item.get("call_successful")
        status = status if isinstance(status, str) else None
        count = count if isinstance(count, int) and not isinstance(count, bool) else None
        outcome = outcome if isinstance(outcome, str) else None
        # Fetching a conversation that has not started yet (still ringing, nothing said) tells nothing a freshly
        # placed call does not already know.
        untouched_now = status == "initiated" and not count
        marks[item["conversation_id"]] = ConversationMark((status, count, outcome), untouched=untouched_now)
    return marks


def next_cursor(page: dict[str, Any]) -> str | None:
    """The cursor of the next page, or None on the last one."""
    cursor = page.get("next_cursor")
    return cursor if page.get("has_more") is True and isinstance(cursor, str) and cursor else None
