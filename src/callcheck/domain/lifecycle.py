"""Lifecycles of a call, a suite run and a run's planned call: their states, and the only moves between them."""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    """Where a call is. Terminal states never change again."""

    QUEUED = "queued"  # stored, waiting for a worker to place it
    DIALING = "dialing"  # the outbound-call request is being (or may have been) sent; never re-sent blindly
    RINGING = "ringing"  # ElevenLabs accepted the call; the business's phone is ringing
    IN_PROGRESS = "in_progress"  # the business answered; the conversation is under way
    PROCESSING = "processing"  # the call has ended; ElevenLabs is analysing it
    COMPLETED = "completed"  # ended and analysed: the conversation happened (its outcome is judged elsewhere)
    FAILED = "failed"  # could not be placed, or the conversation failed
    NO_ANSWER = "no_answer"  # rang out with nobody picking up
    BUSY = "busy"  # the line was busy
    TIMED_OUT = "timed_out"  # we stopped following it after the overall cap
    CANCELLED = "cancelled"  # cancelled before it was placed

    @property
    def terminal(self) -> bool:
        """True for a state that never changes again."""
        return self in TERMINAL_STATES

    @property
    def may_have_recording(self) -> bool:
        """True for a final state whose call may have a recording to fetch: the one place that decides it."""
        return self in RECORDED_STATES


class CallErrorKind(StrEnum):
    """What a call's stored error means for whoever asks again (an Idempotency-Key replay). Stored as text;
    an error of no kind (NULL) is one that happened after the dial: the call was not placed, or it failed later."""

    REFUSED = "refused"  # ElevenLabs answered the dial with an error (or success: false): nothing was placed
    UNREACHABLE = "unreachable"  # ElevenLabs could not be reached: the call may or may not have been placed


TERMINAL_STATES = frozenset(
    {
        CallState.COMPLETED,
        CallState.FAILED,
        CallState.NO_ANSWER,
        CallState.BUSY,
        CallState.TIMED_OUT,
        CallState.CANCELLED,
    }
)

# Final states of calls that may have been answered, so ElevenLabs may hold a recording. A timed-out call is one we
# stopped following, not one known to be unanswered: its recording is looked for once, like a finished call's.
RECORDED_STATES = frozenset({CallState.COMPLETED, CallState.FAILED, CallState.TIMED_OUT})

# The order a call moves forward in; a live call may skip states (a fast call is seen first as done) but never
# goes back.
_PROGRESS = [
    CallState.QUEUED,
    CallState.DIALING,
    CallState.RINGING,
    CallState.IN_PROGRESS,
    CallState.PROCESSING,
]


class IllegalTransition(ValueError):
    """A move the lifecycle does not allow."""


def can_move(current: CallState, new: CallState) -> bool:
    """True when a call in `current` may move to `new` (staying put is not a move)."""
    if current.terminal or current == new:
        return False
    if new.terminal:
        # Cancelling only stops a call that has not been placed yet.
        return new != CallState.CANCELLED or current in (CallState.QUEUED,)
    return _PROGRESS.index(new) > _PROGRESS.index(current)


def check_move(current: CallState, new: CallState) -> None:
    """Raise IllegalTransition unless `current -> new` is allowed."""
    if not can_move(current, new):
        raise IllegalTransition(f"a call cannot move from {current.value} to {new.value}")


class RunState(StrEnum):
    """Where a suite run is (stored as its value)."""

    RUNNING = "running"  # placing its planned calls under its concurrency cap, and following them
    CANCELLING = "cancelling"  # asked to stop: places nothing more, waits for the calls in flight, then reports
    COMPLETED = "completed"  # every planned call was placed and ended; its report is written
    CANCELLED = "cancelled"  # stopped on request; calls never placed are reported as not run
    FAILED = "failed"  # could not run to the end (the suite could not start, its owner stopped...); `error` says why

    @property
    def terminal(self) -> bool:
        """True for a run that is over (its report written, or about to be)."""
        return self in TERMINAL_RUN_STATES


TERMINAL_RUN_STATES = frozenset({RunState.COMPLETED, RunState.CANCELLED, RunState.FAILED})

# The one table of a run's moves. A cancel can race a run finishing on its own, so a cancelling run may still end
# completed or failed.
RUN_MOVES: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset({RunState.CANCELLING, RunState.COMPLETED, RunState.FAILED}),
    RunState.CANCELLING: frozenset({RunState.CANCELLED, RunState.COMPLETED, RunState.FAILED}),
    RunState.COMPLETED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.FAILED: frozenset(),
}


def can_move_run(current: RunState, new: RunState) -> bool:
    """True when a run in `current` may move to `new` (staying put is not a move)."""
    return new in RUN_MOVES[current]


def run_sources(new: RunState) -> list[str]:
    """The stored states a run may move to `new` from (a conditional update's WHERE clause)."""
    return [state.value for state in RunState if can_move_run(state, new)]


def check_run_move(current: RunState, new: RunState) -> None:
    """Raise IllegalTransition unless a run may move `current -> new`."""
    if not can_move_run(current, new):
        raise IllegalTransition(f"a run cannot move from {current.value} to {new.value}")


class ItemStatus(StrEnum):
    """Where one planned call of a suite run is (stored as its value)."""

    PENDING = "pending"  # not placed yet
    PLACED = "placed"  # placed: its call is `call_id` (marked in the transaction that records the call)
    SKIPPED = "skipped"  # never placed: the run was cancelled or stopped first

    @property
    def terminal(self) -> bool:
        """True once the planned call was placed or skipped: it never changes again."""
        return self is not ItemStatus.PENDING


# A planned call is placed or skipped once, from pending.
ITEM_MOVES: dict[ItemStatus, frozenset[ItemStatus]] = {
    ItemStatus.PENDING: frozenset({ItemStatus.PLACED, ItemStatus.SKIPPED}),
    ItemStatus.PLACED: frozenset(),
    ItemStatus.SKIPPED: frozenset(),
}


def can_mark_item(current: ItemStatus, new: ItemStatus) -> bool:
    """True when a planned call in `current` may be marked `new`."""
    return new in ITEM_MOVES[current]


def item_sources(new: ItemStatus) -> list[str]:
    """The stored statuses a planned call may be marked `new` from (a conditional update's WHERE clause)."""
    return [status.value for status in ItemStatus if can_mark_item(status, new)]
