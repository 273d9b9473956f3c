"""Following many calls at the cost of their changes: one batched poller per process, and the wake-ups it sends.

Each call's durable workflow (jobs/tracking.py) waits for its call to end in a wait that costs nothing while it
lasts (and is not a recorded step): it registers here and is resolved by whoever sees the call end first —

- a webhook (the first choice: ElevenLabs says when a call ended), through `Follower.ended` with the state it
  just wrote (jobs/webhooks.py);
- the batched poller, the fallback: every sweep lists the agent's recent conversations (a page per 100 calls,
  contract §4.2), compares each followed call's summary (status, message count, outcome) with the last one seen and
  fetches in full only those that changed. The pace is the sweep's, not the number of calls': it starts at
  `poll_initial_s` and doubles while nothing changes, up to `poll_max_s`, and never asks for more than one list
  page per `poll_initial_s` on average (with 1,000 calls, ten pages, sweeps are at least ten such periods apart);
- the deadline: the workflow's wait ends at the call's cap, and the call times out.

A call someone watches (its page or events stream open, or a client reading it through the API) is fetched on its
own every WATCH_POLL_S, so what happens reaches the watcher within a couple of seconds even without webhooks; calls
nobody watches are only swept.

Nothing here is durable, on purpose: the calls' states are in the database and the waits are re-entered by their
workflows when DBOS resumes them, and the first sweep after a start fetches every followed call that moved.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress

from callcheck.domain.lifecycle import CallState
from callcheck.errors import UpstreamError
from callcheck.providers import caller_for
from callcheck.providers.base import ConversationMark
from callcheck.services import Services
from callcheck.store.repo import CallRow, FollowedCall

log = logging.getLogger("callcheck.following")

# How often a watched call is fetched on its own (its updates reach the watcher within about this, plus a request);
# never less often than the sweeps start.
WATCH_POLL_S = 1.0
# A call read through the API (GET /api/calls/{id}) counts as watched for this long after the read: a client polling
# it is watching it.
LOOKED_AT_S = 3.0
# The list is filtered to conversations started after the oldest followed call, less this margin for the clocks of
# ElevenLabs and of this machine disagreeing.
LIST_SLACK_S = 120
# Full fetches in flight at once when many calls changed in one sweep.
FETCHES_AT_ONCE = 8

# Appended to an ended call's state when whoever saw the end also read, in the provider's final record, that the call
# has no recording: its workflow then asks for none (no recorded step, no conversation read again). See `ended`.
NO_RECORDING = ":no-recording"


def ended_state(result: str) -> tuple[CallState | None, bool]:
    """(the state, whether a recording may exist) of what `wait_for_end` returned; (None, True) at the deadline."""
    if not result:
        return None, True
    state, _, note = result.partition(":")
    return CallState(state), f":{note}" != NO_RECORDING


Refresh = Callable[[Services, str], Awaitable[CallState | None]]
Poll = Callable[[Services, str], Awaitable[str]]
Found = Callable[[Services, "str | CallRow"], Awaitable[None]]


class Follower:
    """The calls whose workflows wait in this process, the poller that sweeps them, and the calls being watched."""

    def __init__(self, services: Services, *, refresh: Refresh, poll: Poll, found: Found) -> None:
        self.services = services
        self._refresh = refresh  # fetch one call's conversation and apply it; its state, None when not fetched
        self._poll = poll  # one call's own poll (looks up a call whose dial answer was lost); its state
        self._found = found  # a call just got its conversation id: apply webhooks kept for it
        self._waiting: dict[str, asyncio.Future[str]] = {}
        self._marks: dict[str, ConversationMark] = {}  # by conversation id: the summary last fetched in full
        self._unlisted: dict[str, float] = {}  # by conversation id: when it was last fetched while not on the list
        self._watchers: Counter[str] = Counter()
        self._looked_at: dict[str, float] = {}  # call id -> until when (monotonic) it counts as watched
        self._kick = asyncio.Event()
        # What the bench reads: sweeps made, list pages and full fetches requested.
        self.stats: Counter[str] = Counter()

    # -- the workflows' side --------------------------------------------------------------------------------------

    async def wait_for_end(self, call_id: str, deadline: float) -> str:
        """Wait until the call is final (its state, NO_RECORDING appended when `ended` was told so) or the unix time
        `deadline` passes (""). `ended_state` reads it."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        # Registered before the read below, so a call ending in between is resolved by the next sweep at the latest.
        self._waiting[call_id] = future
        self._kick.set()
        try:
            # One narrow read: the state, and whether webhooks that beat the dial's answer were kept for the call.
            call = await self.services.store.waiting_call(call_id)
            if call is None:
                return CallState.FAILED.value
            if call.state.terminal:
                return call.state.value
            if call.has_kept_webhooks:
                await self._found(self.services, call_id)  # rare: reads the call and applies them
            remaining = deadline - time.time()
            if remaining <= 0:
                return ""
            try:
                return await asyncio.wait_for(asyncio.shield(future), remaining)
            except TimeoutError:
                return ""
        finally:
            if self._waiting.get(call_id) is future:
                del self._waiting[call_id]

    def ended(self, call_id: str, state: CallState, *, recording: bool = True) -> None:
        """The call is final: its waiting workflow (if it waits here) goes on. `recording=False`: the provider's
        final record of the call says it has no recording (its workflow skips the recording step)."""
        future = self._waiting.get(call_id)
        if future is not None and not future.done() and state.terminal:
            future.set_result(state.value if recording else state.value + NO_RECORDING)

    def close(self) -> None:
        """Stop every wait (shutdown): the workflows waiting are cancelled (nothing recorded) and wait again when DBOS
        resumes them."""
        for future in self._waiting.values():
            future.cancel()

    # -- watchers ---------------------------------------------------------------------------------------------

    @contextmanager
    def watching(self, call_id: str) -> Iterator[None]:
        """While inside, the call is fetched every WATCH_POLL_S."""
        self._watchers[call_id] += 1
        self._kick.set()
        try:
            yield
        finally:
            self._watchers[call_id] -= 1
            if self._watchers[call_id] <= 0:
                del self._watchers[call_id]

    def waiting_ids(self) -> list[str]:
        """The calls whose workflows wait for their end in this process."""
        return list(self._waiting)

    def looked_at(self, call_id: str) -> None:
        """Someone read the call (a client polling it): fetch it as a watched call for the next LOOKED_AT_S."""
        fresh = call_id not in self._looked_at
        self._looked_at[call_id] = time.monotonic() + LOOKED_AT_S
        if fresh:
            self._kick.set()

    def _watched(self) -> list[str]:
        now = time.monotonic()
        self._looked_at = {c: until for c, until in self._looked_at.items() if until > now}
        return sorted(set(self._watchers) | set(self._looked_at))

    @property
    def following(self) -> int:
        """How many calls wait for their end in this process."""
        return len(self._waiting)

    # -- the poller ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Sweep and poll watched calls until cancelled."""
        settings = self.services.settings
        interval = settings.poll_initial_s
        next_sweep = 0.0
        known = 0
        while True:
            now = time.monotonic()
            if len(self._waiting) > known:
                # New calls to follow: see them soon, at the first pace.
                interval = settings.poll_initial_s
                next_sweep = min(next_sweep, now + interval)
            known = len(self._waiting)
            if now >= next_sweep:
                pages = self.stats["pages"]
                changed = await self._guarded(self.sweep())
                interval = settings.poll_initial_s if changed else min(interval * 2, settings.poll_max_s)
                # At most one list page per poll_initial_s on average: with more calls than a page holds, sweeps
                # space out, so the requests a minute stay the same whatever the number of calls followed.
                pages = self.stats["pages"] - pages
                next_sweep = time.monotonic() + max(interval, pages * settings.poll_initial_s)
            wait = next_sweep - time.monotonic()
            watched = self._watched()
            if watched:
                await self._guarded(self._poll_watched(watched))
                wait = min(wait, WATCH_POLL_S, settings.poll_initial_s)
            self._kick.clear()
            with suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._kick.wait()

    async def _guarded(self, work: Awaitable[bool | None]) -> bool:
        """Run one round; a failure is logged and the poller goes on (the next round tries again)."""
        try:
            return bool(await work)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following calls: a round failed")
            return False

    async def sweep(self) -> bool:
        """One look at every call waiting here; True when any of them changed."""
        ids = list(self._waiting)
        if not ids:
            self._marks.clear()
            self._unlisted.clear()
            return False
        self.stats["sweeps"] += 1
        rows = await self.services.store.followed_calls(ids)
        changed = False
        live: list[FollowedCall] = []
        for row in rows:
            if row.state.terminal:
                self.ended(row.id, row.state)  # ended by someone else (another process, a webhook we missed)
                changed = True
            else:
                live.append(row)
        by_conversation = {r.conversation_id: r for r in live if r.conversation_id}
        if by_conversation and await self._sweep_listed(by_conversation):
            changed = True
        for row in live:
            if not row.conversation_id and await self._poll_lost(row):
                changed = True
        return changed

    async def _sweep_listed(self, by_conversation: dict[str, FollowedCall]) -> bool:
        """List the followed conversations' summaries and fetch those that changed; True when any did."""
        since = int(min(r.created_at for r in by_conversation.values()).timestamp()) - LIST_SLACK_S
        marks = await self._list(since, set(by_conversation))
        if marks is None:
            return False
        now = time.monotonic()
        due: list[tuple[str, ConversationMark | None]] = []
        for conversation_id in by_conversation:
            mark = marks.get(conversation_id)
            if mark is None:
                # Not on the list (not yet indexed there, say): fetched on its own, at the slowest sweep pace.
                last = self._unlisted.get(conversation_id)
                if last is not None and now - last < self.services.settings.poll_max_s:
                    continue
                self._unlisted[conversation_id] = now
            elif self._marks.get(conversation_id) == mark:
                continue
            elif (
                conversation_id not in self._marks
                and mark.untouched
                and by_conversation[conversation_id].state == CallState.RINGING
            ):
                # A call just placed, still ringing: the list says all a fetch would.
                self._marks[conversation_id] = mark
                continue
            due.append((conversation_id, mark))
        # Forget what is not followed any more.
        self._marks = {k: v for k, v in self._marks.items() if k in by_conversation}
        self._unlisted = {k: v for k, v in self._unlisted.items() if k in by_conversation}
        limit = asyncio.Semaphore(FETCHES_AT_ONCE)

        async def fetch(conversation_id: str, mark: ConversationMark | None) -> bool:
            async with limit:
                row = by_conversation[conversation_id]
                self.stats["fetches"] += 1
                state = await self._refresh(self.services, row.id)
            if state is None:
                return False  # not fetched: its mark is not kept, so the next sweep tries again
            if mark is not None:
                self._marks[conversation_id] = mark
            self.ended(row.id, state)
            return True

        results = await asyncio.gather(*(fetch(c, m) for c, m in due))
        return any(results)

    async def _list(self, since: int, wanted: set[str]) -> dict[str, ConversationMark] | None:
        """The summaries of the agent's conversations started after `since`, page by page until every wanted one was
        seen (or the list ends); None when the provider could not be read."""
        try:
            listing = await caller_for(self.services).changed_conversations(since, wanted)
        except UpstreamError as exc:
            self.stats["pages"] += 1  # the request that failed counts towards the pace too
            log.warning("conversations not listed: %s", exc.message)
            return None
        self.stats["pages"] += listing.requests
        return listing.marks

    async def _poll_lost(self, row: FollowedCall) -> bool:
        """A call left DIALING with no conversation id (its dial's answer was lost): look it up on its own."""
        state = CallState(await self._poll(self.services, row.id))
        if state == row.state:
            return False
        self.ended(row.id, state)
        if not state.terminal:
            await self._found(self.services, row.id)
        return True

    async def _poll_watched(self, watched: list[str]) -> None:
        """Fetch each watched call (wherever its workflow runs) so its watcher sees news within WATCH_POLL_S."""
        for call_id in watched:
            self.stats["watched_polls"] += 1
            state = CallState(await self._poll(self.services, call_id))
            self.ended(call_id, state)
