"""Assertions on how the call went, read from its state and facts: `final_state`, `max_duration_s`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from callcheck.domain.assertions.base import (
    Assertion,
    AssertionResult,
    CallEvidence,
    Parsed,
    Status,
    SyntaxProblem,
    choice,
    is_number,
    not_value,
    num,
)
from callcheck.domain.lifecycle import TERMINAL_STATES, CallState

FINAL_STATES: tuple[str, ...] = tuple(state.value for state in CallState if state in TERMINAL_STATES)


class FinalStateExpectation(Assertion):
    """The call ended in `state` (completed, busy, no_answer...)."""

    kinds: ClassVar[tuple[str, ...]] = ("final_state",)
    kind: Literal["final_state"] = "final_state"
    state: CallState

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`final_state: <a terminal state>`."""
        problems = choice(value, FINAL_STATES, "final_state")
        return (None, problems) if problems else (cls(state=CallState(value)), [])

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"final_state: {self.state.value}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """Compare the call's final state."""
        status: Status = "pass" if ev.state == self.state else "fail"
        return self.answer(status, f"call state = {ev.state.value}")


class MaxDurationExpectation(Assertion):
    """The call lasted at most `seconds`."""

    kinds: ClassVar[tuple[str, ...]] = ("max_duration_s",)
    kind: Literal["max_duration_s"] = "max_duration_s"
    seconds: float

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`max_duration_s: <seconds above 0>`."""
        return seconds_above_zero(cls, value)

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"max_duration_s: {num(self.seconds)}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The duration the provider reported (else the transcript's) against the limit."""
        duration = ev.facts.duration_secs if ev.facts.duration_secs is not None else ev.figures.duration_secs
        if ev.state == CallState.TIMED_OUT:
            # callcheck stopped following the call; whatever duration was last read says nothing of its length.
            return self.answer("not_evaluated", "call state = timed_out", "the call was not followed to its end")
        if duration is None:
            return self.answer("not_evaluated", "facts.duration_secs = none", "the call's duration is not known")
        status: Status = "pass" if duration <= self.seconds else "fail"
        return self.answer(status, f"facts.duration_secs = {num(duration)}")


def seconds_above_zero(cls: type[Assertion], value: Any) -> Parsed:
    """An assertion whose one value is a number of seconds above 0."""
    if is_number(value) and value > 0:
        return cls.model_validate({"seconds": float(value)}), []
    return None, [SyntaxProblem(message=f"must be a number of seconds above 0{not_value(value)}")]
