"""Queries. Everything that reads or writes the database goes through `Store`."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, Unpack

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcheck.domain.lifecycle import (
    TERMINAL_STATES,
    CallErrorKind,
    CallState,
    ItemStatus,
    RunState,
    can_move,
    item_sources,
    run_sources,
)
from callcheck.domain.limits import CallLimits, Window, concurrent_refusal
from callcheck.errors import InvalidInput, LimitReached
from callcheck.store.fields import CallChanges, NewCall, NewRun, RunChanges
from callcheck.store.monitors import MonitorStore

# RunRow, new_id, storable_key and utcnow are re-exported: the rest of callcheck reads them from the store's face.
from callcheck.store.rows import RunRow as RunRow
from callcheck.store.rows import _aware, _run
from callcheck.store.rows import new_id as new_id
from callcheck.store.rows import storable_key as storable_key
from callcheck.store.rows import utcnow as utcnow
from callcheck.store.tables import Timestamp, call_events, calls, contexts, run_items, runs, webhook_events
from callcheck.store.tokens import TokenStore

# The PostgreSQL advisory lock that makes "count the recent calls, then record one" atomic across processes.
CALLS_LOCK_KEY = 0x63616C6C73  # "calls"

# The states of calls under way (not final): what the concurrency caps count.
_TERMINAL = sorted(state.value for state in TERMINAL_STATES)
# When a single call refused by CALLCHECK_MAX_CONCURRENT_CALLS is told to try again (calls last minutes; a guess).
CONCURRENT_RETRY = timedelta(seconds=10)


@dataclass(frozen=True)
class Admission:
    """A suite run's call asking for a place: at most `concurrency` of its calls under way, one every `interval_s`."""

    run_id: str
    concurrency: int
    interval_s: float = 0.0


class RunBusy(Exception):
    """A run's call may not be placed now; `wait_s`: when it may (None: when one of the calls under way ends)."""

    def __init__(self, wait_s: float | None) -> None:
        super().__init__(wait_s)
        self.wait_s = wait_s


# The owner of a run a server took over from a stopped `callcheck run` (its DBOS executor id).
SERVER_OWNER = "local"


def check_lengths(table: sa.Table, values: dict[str, Any]) -> None:
    """InvalidInput when a text value is longer than its column allows: PostgreSQL would refuse it with an error
    (and SQLite keep it silently), so it is refused the same way on both, by name, before it reaches either."""
    for name, value in values.items():
        column = table.c.get(name)
        length = getattr(column.type, "length", None) if column is not None else None
        if isinstance(value, str) and length is not None and len(value) > length:
            raise InvalidInput(f"{name} is too long (over {length} characters).")


def check_webhook_fields(event_type: str, conversation_id: str | None) -> None:
    """InvalidInput when a webhook's type or conversation id is longer than the database keeps."""
    for name, value, column in (
        ("type", event_type, webhook_events.c.event_type),
        ("data.conversation_id", conversation_id, webhook_events.c.conversation_id),
    ):
        length = column.type.length  # type: ignore[attr-defined]  # both are String(n)
        if value is not None and len(value) > length:
            raise InvalidInput(f"Webhook {name} is too long (over {length} characters).")


@dataclass
class Context:
    """The business context of a session: what the caller is told about the business, and its goal."""

    id: str
    description: str
    scenario: str | None


@dataclass
class CallEvent:
    """One entry of a call's history."""

    id: int
    at: datetime
    kind: str
    state: str | None
    detail: str | None
    turns: int | None = None  # `transcript` events: the transcript's length when it was written


@dataclass
class CallRow:
    """A stored call, as the rest of callcheck sees it."""

    id: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    state: CallState
    simulated: bool
    origin: str
    context_id: str | None
    run_id: str | None
    to_number: str
    business_description: str
    scenario: str
    prompt: str
    first_message: str
    request_payload: dict[str, Any]
    upstream_response: Any
    error: str | None
    conversation_id: str | None
    call_sid: str | None
    transcript: list[dict[str, Any]] | None
    analysis: dict[str, Any] | None
    facts: dict[str, Any] | None
    journey: dict[str, Any] | None
    recording_path: str | None
    idempotency_key: str | None
    timeout_s: float | None = None
    token_name: str | None = None  # the API token that placed it
    events: list[CallEvent] = field(default_factory=list)
    placed_by: str | None = None  # the executor that dialed it (PostgreSQL; jobs/executors.py)
    error_kind: CallErrorKind | None = None  # what `error` means for a replay; None: no error, or of no kind


def _call(row: sa.Row[Any]) -> CallRow:
    return _call_of(dict(row._mapping))


def _call_of(data: dict[str, Any]) -> CallRow:
    """The CallRow of a row's values (the calls table's columns, by name)."""
    data["state"] = CallState(data["state"])
    data["error_kind"] = CallErrorKind(data["error_kind"]) if data.get("error_kind") else None
    for key in ("created_at", "updated_at", "ended_at"):
        data[key] = _aware(data[key])
    return CallRow(**data)


def _call_from_values(values: dict[str, Any]) -> CallRow:
    """The CallRow of a call just inserted with these values (columns not given are empty)."""
    data: dict[str, Any] = dict.fromkeys(calls.columns.keys())
    data["simulated"] = False
    data.update(values)
    data["state"] = CallState(data["state"])
    data["error_kind"] = CallErrorKind(data["error_kind"]) if data.get("error_kind") else None
    return CallRow(**data)


def _error_with_its_kind(values: dict[str, Any]) -> None:
    """A cleared error clears its kind. An error written without a kind keeps the one stored: a call left DIALING
    by a lost answer is failed later with the same error text, which is still of the dial's kind."""
    if "error" in values and values["error"] is None:
        values["error_kind"] = None
    elif values.get("error_kind") is not None:
        values["error_kind"] = CallErrorKind(values["error_kind"]).value


@dataclass
class KeptWebhook:
    """A verified webhook delivery, kept in the same transaction as the write that applies it (Store.move_call):
    a delivery is then marked seen exactly when it is applied. `kept` tells whether that write kept it."""

    digest: str  # sha256 of the raw body: a repeated delivery is recognised by it
    event_type: str
    conversation_id: str | None
    payload: Any
    call_id: str | None
    kept: bool = False


class AlreadyKept(Exception):
    """The very same webhook delivery was kept meanwhile (by a concurrent request): nothing was written."""


@dataclass
class FollowedCall:
    """What the batched poller needs of a followed call (a few columns, not the transcript)."""

    id: str
    state: CallState
    conversation_id: str | None
    created_at: datetime


@dataclass
class WaitingCall:
    """What a call's wait for its end needs first: its state, and whether webhooks were kept for its conversation
    before its id was known (one narrow read, instead of the whole row and then the kept webhooks)."""

    state: CallState
    conversation_id: str | None
    has_kept_webhooks: bool


# The statements of a webhook delivery and of a state move, built once: building a statement and its cache key costs
# 0.1-0.2 ms a time, a share of a delivery's CPU (bench/README.md, "Webhook ingestion, session 12"); the values are
# parameters.
_SEEN = sa.select(webhook_events.c.id).where(webhook_events.c.digest == sa.bindparam("digest")).scalar_subquery()
_SEEN_ONLY = sa.select(_SEEN.label("seen_id"))
# One row whether or not a call has the conversation id: the call's columns are NULL when none has.
_SEEN_AND_CALL = sa.select(_SEEN.label("seen_id"), calls).select_from(
    sa.select(sa.literal(1).label("one"))
    .subquery()
    .outerjoin(calls, calls.c.conversation_id == sa.bindparam("conversation_id"))
)
_KEEP_WEBHOOK = sa.insert(webhook_events)
# A call's state move (Store.move_call): conditional on the states it may move from.
_MOVE_CALL = sa.update(calls).where(
    calls.c.id == sa.bindparam("_call_id"), calls.c.state.in_(sa.bindparam("_sources", expanding=True))
)
_INSERT_EVENT = sa.insert(call_events)

ID_BATCH = 500  # ids per IN (...) list: well under every database's bound-parameter limit


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """An opaque cursor for keyset pagination (newest first)."""
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor stands for; InvalidInput for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, row_id = json.loads(raw)
        return datetime.fromisoformat(stamp), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("Invalid cursor.") from exc


def newest_first(table: sa.Table, cursor: str | None, limit: int) -> sa.Select[Any]:
    """A table's rows newest first by (created_at, id), after the cursor; one row more than a page shows more follow."""
    query = sa.select(table).order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        # A row-value comparison lets both SQLite and PostgreSQL seek the (created_at, id) index directly.
        query = query.where(
            sa.tuple_(table.c.created_at, table.c.id) < sa.tuple_(sa.literal(stamp, Timestamp), sa.literal(last_id))
        )
    return query


class Keyed(Protocol):
    """A row that newest_first can page through."""

    @property
    def id(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...


K = TypeVar("K", bound=Keyed)


def page_of(rows: list[K], limit: int) -> tuple[list[K], str | None]:
    """The page (at most limit rows) and the cursor of the next one (None on the last)."""
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id)
    return rows, None


class Store:
    """callcheck's database."""

    def __init__(self, engine: AsyncEngine, limits: CallLimits | None = None) -> None:
        # On SQLite, write transactions are one at a time in this process (store/sqlite.py, SQLiteEngine.begin).
        self.engine = engine
        self.runs = RunStore(self.engine)
        self.tokens = TokenStore(self.engine)
        # The call budgets create_call enforces (none when not given: tools and tests that build a Store by hand).
        self.limits = limits or CallLimits()

        self.monitors = MonitorStore(engine)

    # -- contexts ---------------------------------------------------------------------------------------------

    async def get_context(self, context_id: str) -> Context | None:
        """The context with this id, if any."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(contexts).where(contexts.c.id == context_id))).first()
        return Context(row.id, row.description, row.scenario) if row else None

    async def save_context(self, context_id: str, description: str, scenario: str | None) -> Context:
        """Create or replace the context with this id."""
        check_lengths(contexts, {"id": context_id})
        now = utcnow()
        async with self.engine.begin() as conn:
            updated = await conn.execute(
                sa.update(contexts)
                .where(contexts.c.id == context_id)
                .values(description=description, scenario=scenario, updated_at=now)
            )
            if updated.rowcount == 0:
                await conn.execute(
                    sa.insert(contexts).values(
                        id=context_id,
                        description=description,
                        scenario=scenario,
                        created_at=now,
                        updated_at=now,
                    )
                )
        return Context(context_id, description, scenario)

    # -- calls ------------------------------------------------------------------------------------------------

    async def create_call(
        self, run_item_id: int | None = None, *, admission: Admission | None = None, **fields: Unpack[NewCall]
    ) -> CallRow:
        """Store a new call (state and origin given by the caller) and its first event.

        With `run_item_id`, the suite run's planned call is marked placed with this call in the same transaction,
        so a crash can never leave a planned call without its call, or give it two. LimitReached, storing nothing,
        when the call would overspend a budget (`self.limits`). With `admission` (a run's call), RunBusy, storing
        nothing, when the run already has its cap of calls under way, placed its last call too recently for its
        rate, or CALLCHECK_MAX_CONCURRENT_CALLS calls are under way: the run waits, it does not stop.

        Every check counts what is committed, under one lock (PostgreSQL's advisory lock; SQLite's single writer),
        so the caps hold across every process on the database, not only within one.
        """
        now = utcnow()
        values: dict[str, Any] = dict(fields)
        values.setdefault("id", new_id())
        values.setdefault("created_at", now)
        values["updated_at"] = now
        check_lengths(calls, values)
        try:
            async with self.engine.begin() as conn:
                windows = self.limits.windows()
                if (windows or admission or self.limits.concurrent) and conn.dialect.name == "postgresql":
                    # One call recorded at a time, in every process: the counts below then see every call committed
                    # before it. (On SQLite the INSERT's write lock does the same: one writer at a time.)
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(CALLS_LOCK_KEY)))
                if admission is not None:
                    # Stamped once admitted (the lock may have been waited for): the rate counts from the same time.
                    now = utcnow()
                    values["created_at"] = values["updated_at"] = now
                    await self._admit(conn, admission, now.timestamp())
                await conn.execute(sa.insert(calls).values(**values))
                await self._within_concurrency(conn, admission is not None)
                for window in windows:
                    await self._within_budget(conn, window, values["to_number"], values["created_at"])
                await self._event(conn, values["id"], "state", str(values["state"]), None, now)
                if run_item_id is not None:
                    await self._mark_placed(conn, run_item_id, values["id"])
        except IntegrityError as exc:
            if values.get("idempotency_key"):
                raise DuplicateKey(values["idempotency_key"]) from exc
            raise
        # Built from what was written, not read back: placing a call stays one round trip before the dial.
        return _call_from_values(values)

    @staticmethod
    async def _mark_placed(conn: AsyncConnection, run_item_id: int, call_id: str) -> None:
        marked = await conn.execute(
            sa.update(run_items)
            .where(run_items.c.id == run_item_id, run_items.c.status.in_(item_sources(ItemStatus.PLACED)))
            .values(status=ItemStatus.PLACED.value, call_id=call_id)
        )
        if marked.rowcount != 1:
            raise ItemAlreadyPlaced(run_item_id)

    @staticmethod
    async def _admit(conn: AsyncConnection, admission: Admission, now: float) -> None:
        """RunBusy when the run may not place a call now: its cap is reached, or its rate says wait."""
        active = await conn.execute(
            sa.select(sa.func.count())
            .select_from(run_items.join(calls, calls.c.id == run_items.c.call_id))
            .where(run_items.c.run_id == admission.run_id, calls.c.state.not_in(_TERMINAL))
        )
        if active.scalar_one() >= admission.concurrency:
            raise RunBusy(None)
        last = (await conn.execute(sa.select(runs.c.last_placed_at).where(runs.c.id == admission.run_id))).scalar()
        if admission.interval_s and last is not None and now - last < admission.interval_s:
            raise RunBusy(admission.interval_s - (now - last))
        await conn.execute(sa.update(runs).where(runs.c.id == admission.run_id).values(last_placed_at=now))

    async def _within_concurrency(self, conn: AsyncConnection, waits: bool) -> None:
        """Over CALLCHECK_MAX_CONCURRENT_CALLS (the call just inserted included): RunBusy for a run's call (it
        waits), LimitReached for a single call (a 429)."""
        limit = self.limits.concurrent
        if not limit:
            return
        count = await conn.execute(sa.select(sa.func.count()).select_from(calls).where(calls.c.state.not_in(_TERMINAL)))
        if count.scalar_one() <= limit:
            return
        if waits:
            raise RunBusy(None)
        raise LimitReached(concurrent_refusal(limit), "CALLCHECK_MAX_CONCURRENT_CALLS", utcnow() + CONCURRENT_RETRY)

    async def _within_budget(self, conn: AsyncConnection, window: Window, number: str, now: datetime) -> None:
        """LimitReached when the calls in `window` (the one just inserted included) are over its limit."""
        recent = calls.c.created_at > now - window.span
        if window.per_number:
            recent = recent & (calls.c.to_number == number)
        count = (await conn.execute(sa.select(sa.func.count()).select_from(calls).where(recent))).scalar_one()
        if count <= window.limit:
            return
        # Before another call fits, the calls over the limit (the new one aside) must age out of the window: the
        # window frees up when the last of those, the (count - limit)-th oldest, is older than its span.
        oldest = await conn.execute(
            sa.select(calls.c.created_at).where(recent).order_by(calls.c.created_at).offset(count - window.limit - 1)
        )
        stamp = _aware(oldest.scalars().first()) or now
        resets_at = stamp + window.span
        raise LimitReached(window.refusal(resets_at, now), window.setting, resets_at)

    async def get_call(self, call_id: str, *, with_events: bool = False) -> CallRow | None:
        """The call with this id."""
        if not storable_key(call_id):
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(calls).where(calls.c.id == call_id))).first()
            if row is None:
                return None
            call = _call(row)
            if with_events:
                call.events = await self._events(conn, call_id, after=0)
        return call

    async def run_calls(self, run_id: str) -> list[tuple[RunItem, CallRow | None]]:
        """A run's planned calls in order, each with its call (None while not placed), in two queries whatever the
        run's size: the run's progress is read every tick and every poll."""
        items = await self.runs.items(run_id)
        ids = [i.call_id for i in items if i.call_id]
        found: dict[str, CallRow] = {}
        async with self.engine.connect() as conn:
            for start in range(0, len(ids), ID_BATCH):
                rows = await conn.execute(sa.select(calls).where(calls.c.id.in_(ids[start : start + ID_BATCH])))
                found.update((r.id, _call(r)) for r in rows.all())
        return [(item, found.get(item.call_id) if item.call_id else None) for item in items]

    async def get_call_by_key(self, key: str) -> CallRow | None:
        """The call created with this idempotency key."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(calls).where(calls.c.idempotency_key == key))).first()
        return _call(row) if row else None

    async def find_call_by_conversation(self, conversation_id: str) -> CallRow | None:
        """The call ElevenLabs knows by this conversation id."""
        if not storable_key(conversation_id):
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(calls).where(calls.c.conversation_id == conversation_id))).first()
        return _call(row) if row else None

    async def list_calls(
        self,
        *,
        state: str | None = None,
        number: str | None = None,
        run_id: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> tuple[list[CallRow], str | None]:
        """Calls newest first, filtered; and the cursor of the next page (None on the last)."""
        query = newest_first(calls, cursor, limit)
        if state:
            query = query.where(calls.c.state == state)
        if number:
            query = query.where(calls.c.to_number == number)
        if run_id:
            query = query.where(calls.c.run_id == run_id)
        async with self.engine.connect() as conn:
            rows = [_call(r) for r in (await conn.execute(query)).all()]
        return page_of(rows, limit)

    async def unfinished_calls(self) -> list[CallRow]:
        """Every call not yet in a terminal state that a server follows, oldest first: calls of a run that a
        `callcheck run` process owns are that process's (or, once it is gone, whoever adopts its run)."""
        terminal = [s.value for s in TERMINAL_STATES]
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(calls)
                .select_from(calls.outerjoin(runs, calls.c.run_id == runs.c.id))
                .where(calls.c.state.not_in(terminal), runs.c.owner.is_(None) | (runs.c.owner == SERVER_OWNER))
                .order_by(calls.c.created_at)
            )
            return [_call(r) for r in rows.all()]

    async def waiting_call(self, call_id: str) -> WaitingCall | None:
        """The call's state and conversation id, and whether unmatched webhooks are kept for that conversation."""
        kept = (
            sa.select(webhook_events.c.id)
            .where(webhook_events.c.conversation_id == calls.c.conversation_id, webhook_events.c.call_id.is_(None))
            .exists()
        )
        query = sa.select(calls.c.state, calls.c.conversation_id, kept.label("kept")).where(calls.c.id == call_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return WaitingCall(CallState(row.state), row.conversation_id, bool(row.kept))

    async def followed_calls(self, call_ids: list[str]) -> list[FollowedCall]:
        """State and conversation id of these calls (those that exist), in batches whatever their number."""
        found: list[FollowedCall] = []
        columns = (calls.c.id, calls.c.state, calls.c.conversation_id, calls.c.created_at)
        async with self.engine.connect() as conn:
            for start in range(0, len(call_ids), ID_BATCH):
                rows = await conn.execute(sa.select(*columns).where(calls.c.id.in_(call_ids[start : start + ID_BATCH])))
                found.extend(
                    FollowedCall(r.id, CallState(r.state), r.conversation_id, _aware(r.created_at) or r.created_at)
                    for r in rows.all()
                )
        return found

    async def update_call(
        self,
        call_id: str,
        event: tuple[str, str | None] | None = None,
        *,
        while_live: bool = False,
        **fields: Unpack[CallChanges],
    ) -> bool:
        """Set fields of a call (not its state: see move_call), with an event (kind, detail) in the same
        transaction when given: a reader never sees the change without the event that tells of it.

        `while_live`: only while the call is not final (what a snapshot of a call in progress says must not replace
        what its end wrote meanwhile); False, and nothing written, when it is final. True otherwise."""
        values: dict[str, Any] = dict(fields)
        _error_with_its_kind(values)
        check_lengths(calls, values)
        now = utcnow()
        values["updated_at"] = now
        # A transcript event counts the turns written with it, as data: a resuming live stream reads it.
        transcript = values.get("transcript")
        told_turns = event is not None and event[0] == "transcript" and isinstance(transcript, list)
        turns = len(transcript) if told_turns and isinstance(transcript, list) else None
        update = sa.update(calls).where(calls.c.id == call_id)
        if while_live:
            update = update.where(calls.c.state.notin_([s.value for s in TERMINAL_STATES]))
        async with self.engine.begin() as conn:
            written = (await conn.execute(update.values(**values))).rowcount == 1
            if event is not None and written:
                await self._event(conn, call_id, event[0], None, event[1], now, turns)
        return written

    async def move_call(
        self,
        call_id: str,
        new: CallState,
        detail: str | None = None,
        *,
        told_first: tuple[str, str | None] | None = None,
        webhook: KeptWebhook | None = None,
        **fields: Unpack[CallChanges],
    ) -> bool:
        """Move a call to `new` if its lifecycle allows, with other fields, atomically; False when not allowed (and
        nothing is written).

        The update is conditional on the state read, so two writers (webhook and poller) cannot both move the call.
        `told_first` is an event (kind, detail) told before the state's, in the same transaction (as update_call
        tells it: a transcript event counts the turns written with it). `webhook`, the delivery that says so, is
        kept in the same transaction (its `kept` set); AlreadyKept, nothing written, when it was kept meanwhile.
        """
        values: dict[str, Any] = dict(fields)
        _error_with_its_kind(values)
        check_lengths(calls, values)
        sources = [s.value for s in CallState if can_move(s, new)]
        if not sources:
            return False
        now = utcnow()
        if new.terminal:
            values["ended_at"] = now
        transcript = values.get("transcript")
        told_turns = told_first is not None and told_first[0] == "transcript" and isinstance(transcript, list)
        turns = len(transcript) if told_turns and isinstance(transcript, list) else None
        try:
            async with self.engine.begin() as conn:
                # One conditional statement (no read first): the lifecycle's allowed sources are the WHERE clause.
                # Built once: the columns set are the parameters' names (each set of them is compiled once).
                parameters = {"_call_id": call_id, "_sources": sources, "state": new.value, "updated_at": now}
                result = await conn.execute(_MOVE_CALL, {**parameters, **values})
                if result.rowcount != 1:
                    return False
                # The events in one call (the told one first: ids follow the rows' order), as parameter sets of one
                # cached statement: a multi-row VALUES is compiled anew on every call (SQLAlchemy keeps no key for it).
                told = [] if told_first is None else [(told_first[0], None, told_first[1], turns)]
                rows = [*told, ("state", new.value, detail, None)]
                await conn.execute(
                    _INSERT_EVENT,
                    [
                        {"call_id": call_id, "at": now, "kind": k, "state": st, "detail": d, "turns": t}
                        for k, st, d, t in rows
                    ],
                )
                if webhook is not None:
                    await self._keep_webhook(conn, webhook, now)
        except IntegrityError:
            if webhook is None:
                raise
            raise AlreadyKept() from None
        if webhook is not None:
            webhook.kept = True
        return True

    async def add_event(self, call_id: str, kind: str, detail: str | None = None) -> None:
        """Record something that happened to a call (other than a state change)."""
        async with self.engine.begin() as conn:
            await self._event(conn, call_id, kind, None, detail, utcnow())

    async def events_after(self, call_id: str, after: int) -> list[CallEvent]:
        """A call's events with an id greater than `after`, in order."""
        async with self.engine.connect() as conn:
            return await self._events(conn, call_id, after)

    async def _event(
        self,
        conn: AsyncConnection,
        call_id: str,
        kind: str,
        state: str | None,
        detail: str | None,
        at: datetime,
        turns: int | None = None,
    ) -> None:
        await conn.execute(
            sa.insert(call_events).values(call_id=call_id, at=at, kind=kind, state=state, detail=detail, turns=turns)
        )

    async def _events(self, conn: AsyncConnection, call_id: str, after: int) -> list[CallEvent]:
        rows = await conn.execute(
            sa.select(call_events)
            .where(call_events.c.call_id == call_id, call_events.c.id > after)
            .order_by(call_events.c.id)
        )
        return [CallEvent(r.id, _aware(r.at) or r.at, r.kind, r.state, r.detail, r.turns) for r in rows.all()]

    # -- webhooks ---------------------------------------------------------------------------------------------

    async def record_webhook(
        self, digest: str, event_type: str, conversation_id: str | None, payload: Any, call_id: str | None
    ) -> bool:
        """Keep a verified webhook delivery; False when the very same delivery was kept before."""
        check_webhook_fields(event_type, conversation_id)
        try:
            async with self.engine.begin() as conn:
                await self._keep_webhook(
                    conn, KeptWebhook(digest, event_type, conversation_id, payload, call_id), utcnow()
                )
        except IntegrityError:
            return False
        return True

    @staticmethod
    async def _keep_webhook(conn: AsyncConnection, webhook: KeptWebhook, now: datetime) -> None:
        values = {
            "received_at": now,
            "event_type": webhook.event_type,
            "conversation_id": webhook.conversation_id,
            "digest": webhook.digest,
            "payload": webhook.payload,
            "call_id": webhook.call_id,
        }
        await conn.execute(_KEEP_WEBHOOK, values)

    async def webhook_seen(self, digest: str) -> bool:
        """True when this very delivery (its body's sha256) was kept before."""
        async with self.engine.connect() as conn:
            found = await conn.execute(sa.select(webhook_events.c.id).where(webhook_events.c.digest == digest))
            return found.first() is not None

    async def webhook_and_call(self, digest: str, conversation_id: str | None) -> tuple[bool, CallRow | None]:
        """(was this very delivery kept before?, the call of this conversation id or None): the two reads a webhook
        delivery starts with, in one statement (one round trip to the database, not two; on PostgreSQL each is a wait
        for the server, and each statement a measurable share of a webhook's CPU; bench/README.md)."""
        if not conversation_id or not storable_key(conversation_id):
            async with self.engine.connect() as conn:
                return (await conn.execute(_SEEN_ONLY, {"digest": digest})).scalar() is not None, None
        async with self.engine.connect() as conn:
            row = (await conn.execute(_SEEN_AND_CALL, {"digest": digest, "conversation_id": conversation_id})).first()
        if row is None:  # never: the outer join keeps the one row
            return False, None
        data = dict(row._mapping)
        if data.pop("seen_id") is not None:
            return True, None
        return False, _call_of(data) if data["id"] is not None else None

    async def unmatched_webhooks(self, conversation_id: str) -> list[dict[str, Any]]:
        """Webhook payloads that arrived for this conversation before its call was known, oldest first."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(webhook_events.c.id, webhook_events.c.payload)
                    .where(
                        webhook_events.c.conversation_id == conversation_id,
                        webhook_events.c.call_id.is_(None),
                    )
                    .order_by(webhook_events.c.id)
                )
            ).all()
            return [r.payload for r in rows]

    async def match_webhooks(self, conversation_id: str, call_id: str) -> None:
        """Mark this conversation's stored webhooks as belonging to the call."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(webhook_events)
                .where(webhook_events.c.conversation_id == conversation_id, webhook_events.c.call_id.is_(None))
                .values(call_id=call_id)
            )

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))


@dataclass
class RunItem:
    """One planned call of a suite run."""

    id: int
    position: int
    display_name: str
    scenario: str
    repeat: int
    status: ItemStatus
    call_id: str | None


class RunStore:
    """Suite runs and their planned calls."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_run(self, items: list[tuple[str, str, int]], **fields: Unpack[NewRun]) -> RunRow:
        """Store a run (running) and its planned calls (display name, scenario, repeat), all pending."""
        now = utcnow()
        values: dict[str, Any] = dict(fields)
        values.setdefault("id", new_id())
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(runs).values(created_at=now, updated_at=now, state=RunState.RUNNING.value, **values)
            )
            if items:
                await conn.execute(
                    sa.insert(run_items),
                    [
                        {
                            "run_id": values["id"],
                            "position": i,
                            "display_name": d,
                            "scenario": s,
                            "repeat": r,
                            "status": ItemStatus.PENDING.value,
                        }
                        for i, (d, s, r) in enumerate(items)
                    ],
                )
        run = await self.get_run(values["id"])
        assert run is not None
        return run

    async def get_run(self, run_id: str) -> RunRow | None:
        """The run with this id."""
        if not storable_key(run_id):
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(runs).where(runs.c.id == run_id))).first()
        return _run(row) if row else None

    async def list_runs(self, *, cursor: str | None = None, limit: int = 50) -> tuple[list[RunRow], str | None]:
        """Runs newest first; and the cursor of the next page (None on the last)."""
        async with self.engine.connect() as conn:
            rows = [_run(r) for r in (await conn.execute(newest_first(runs, cursor, limit))).all()]
        return page_of(rows, limit)

    async def unfinished_runs(self, *, owned: bool = False) -> list[RunRow]:
        """Runs still running or being cancelled: the servers' (`owned=False`: a server's own, and those a server
        adopted from a stopped `callcheck run` process, owned by SERVER_OWNER) or `callcheck run` processes'."""
        servers = sa.or_(runs.c.owner.is_(None), runs.c.owner == SERVER_OWNER)
        owner = sa.not_(servers) if owned else servers
        async with self.engine.connect() as conn:
            unfinished = [state.value for state in RunState if not state.terminal]
            rows = await conn.execute(sa.select(runs).where(runs.c.state.in_(unfinished), owner))
            return [_run(r) for r in rows.all()]

    async def items(self, run_id: str) -> list[RunItem]:
        """The planned calls of a run, in order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(run_items).where(run_items.c.run_id == run_id).order_by(run_items.c.position)
            )
            return [
                RunItem(r.id, r.position, r.display_name, r.scenario, r.repeat, ItemStatus(r.status), r.call_id)
                for r in rows.all()
            ]

    async def progress(self, run_id: str) -> tuple[int, int]:
        """(planned calls still pending, calls placed and not final yet) of a run, in one query."""
        placed_active = (run_items.c.status == ItemStatus.PLACED.value) & calls.c.state.not_in(_TERMINAL)
        query = (
            sa.select(
                sa.func.count().filter(run_items.c.status == ItemStatus.PENDING.value),
                sa.func.count().filter(placed_active),
            )
            .select_from(run_items.outerjoin(calls, calls.c.id == run_items.c.call_id))
            .where(run_items.c.run_id == run_id)
        )
        async with self.engine.connect() as conn:
            pending, active = (await conn.execute(query)).one()
        return int(pending), int(active)

    async def next_pending(self, run_id: str, limit: int) -> list[RunItem]:
        """The first `limit` planned calls of a run not placed yet, in order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(run_items)
                .where(run_items.c.run_id == run_id, run_items.c.status == ItemStatus.PENDING.value)
                .order_by(run_items.c.position)
                .limit(limit)
            )
            return [
                RunItem(r.id, r.position, r.display_name, r.scenario, r.repeat, ItemStatus(r.status), r.call_id)
                for r in rows.all()
            ]

    async def skip_pending(self, run_id: str) -> None:
        """Mark every planned call of a run not placed yet skipped (a cancel, a run that gave up)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(run_items)
                .where(run_items.c.run_id == run_id, run_items.c.status == ItemStatus.PENDING.value)
                .values(status=ItemStatus.SKIPPED.value)
            )

    async def update_run(self, run_id: str, **fields: Unpack[RunChanges]) -> bool:
        """Set fields of a run; with a state, only when the run may move to it (RUN_MOVES). False when not written."""
        values: dict[str, Any] = dict(fields, updated_at=utcnow())
        where = runs.c.id == run_id
        new = fields.get("state")
        if new is not None:
            # Conditional on the state, in the one statement: a run finished twice (two processes) is written once.
            where = where & runs.c.state.in_(run_sources(RunState(new)))
            values["state"] = RunState(new).value
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.update(runs).where(where).values(**values))
        return result.rowcount == 1

    async def request_cancel(self, run_id: str) -> bool:
        """Ask a running run to stop placing calls; False when it is not running."""
        if not storable_key(run_id):
            return False
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(runs)
                .where(runs.c.id == run_id, runs.c.state.in_(run_sources(RunState.CANCELLING)))
                .values(state=RunState.CANCELLING.value, updated_at=utcnow())
            )
        return result.rowcount == 1

    async def mark_items(self, item_ids: list[int], status: ItemStatus) -> None:
        """Set the status of planned calls that may take it (placing one goes through Store.create_call instead)."""
        if not item_ids:
            return
        sources = item_sources(ItemStatus(status))
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(run_items)
                .where(run_items.c.id.in_(item_ids), run_items.c.status.in_(sources))
                .values(status=ItemStatus(status).value)
            )


class ItemAlreadyPlaced(Exception):
    """A suite run's planned call already has its call."""


class DuplicateKey(Exception):
    """An idempotency key was used before."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
