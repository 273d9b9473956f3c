"""The `judge` assertion: a plain-language criterion an LLM decides over the transcript (domain/judge.py builds
the request and reads the reply; providers/llm.py asks)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from callcheck.domain.assertions.base import (
    Assertion,
    AssertionResult,
    CallEvidence,
    Judge,
    Parsed,
    quoted,
    text_problems,
)


class JudgeExpectation(Assertion):
    """A plain-language criterion checked by an LLM over the transcript."""

    kinds: ClassVar[tuple[str, ...]] = ("judge",)
    kind: Literal["judge"] = "judge"
    criterion: str

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """`judge: "<criterion>"`."""
        problems = text_problems(value)
        return (None, problems) if problems else (cls(criterion=value.strip()), [])

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"judge: {quoted(self.criterion)}"

    def check(self, ev: CallEvidence) -> AssertionResult:
        """not_evaluated: only `verdict_for`, with a judge, can decide it."""
        return self.answer("not_evaluated", "no judge", "the judge runs only through verdict_for with a judge")

    async def check_with_judge(self, ev: CallEvidence, judge: Judge | None) -> AssertionResult:
        """Ask the judge, once the call ended with something said."""
        if judge is None:
            return self.answer(
                "not_evaluated",
                "judge = not configured",
                "set CALLCHECK_JUDGE_BASE_URL and CALLCHECK_JUDGE_MODEL to evaluate judge assertions",
            )
        if not ev.ended:
            return self.answer("not_evaluated", f"call state = {ev.state.value}", "the call has not ended yet")
        if not ev.connected or not any(t.spoken for t in ev.turns):
            return self.not_connected(ev)
        answer = await judge.judge(self.criterion, ev)
        return self.answer(answer.status, f"judge: {answer.status}", answer.reason)
