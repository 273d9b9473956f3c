"""The lifecycle of one call: its states, and the only moves allowed between them."""

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
