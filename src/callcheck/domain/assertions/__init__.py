"""Assertions of a suite scenario and the verdict they give on one call's evidence.

Each assertion answers pass, fail or not_evaluated, and names the evidence that decided it: the transcript
turn (index, speaker, time, excerpt) or the field. Something that could not be checked is
`not_evaluated`, and a verdict is passed only when every assertion passed: not evaluated never counts
as passed.

Each kind is one class (base.py's `Assertion`) declaring its names, parse, describe and check together; `KINDS`
below is the one list of them, from which the suite syntax (`parse_assertion`, `ASSERTION_KINDS`), the pydantic
union (`Expectation`) and evaluation are all derived. Adding a kind: a class in a module here, one entry in
`KINDS`, a row in docs/suites.md.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from callcheck.domain.assertions.analysis import (
    CriterionExpectation,
    DataCollectedExpectation,
    OutcomeExpectation,
    ReachedHumanExpectation,
)
from callcheck.domain.assertions.base import (
    ANALYSIS_RESULTS,
    EXCERPT_CHARS,
    AnalysisResult,
    Assertion,
    AssertionResult,
    CallEvidence,
    Judge,
    JudgeAnswer,
    Status,
    SyntaxProblem,
    Verdict,
    describe_turn,
    did_you_mean,
    evaluate,
    excerpt,
    not_value,
    quoted,
    shown_value,
    verdict_from,
)
from callcheck.domain.assertions.call import FINAL_STATES, FinalStateExpectation, MaxDurationExpectation
from callcheck.domain.assertions.judge import JudgeExpectation
from callcheck.domain.assertions.transcript import (
    KEYPAD_PATTERN,
    SPEAKERS,
    KeypadSentExpectation,
    MaxFirstResponseExpectation,
    MaxTurnsExpectation,
    TranscriptExpectation,
)

# The assertion kinds, in the order the docs list them (and did-you-mean considers them).
KINDS: tuple[type[Assertion], ...] = (
    OutcomeExpectation,
    FinalStateExpectation,
    ReachedHumanExpectation,
    TranscriptExpectation,
    MaxDurationExpectation,
    MaxTurnsExpectation,
    MaxFirstResponseExpectation,
    KeypadSentExpectation,
    DataCollectedExpectation,
    CriterionExpectation,
    JudgeExpectation,
)
REGISTRY: dict[str, type[Assertion]] = {name: cls for cls in KINDS for name in cls.kinds}
ASSERTION_KINDS: tuple[str, ...] = tuple(REGISTRY)

if TYPE_CHECKING:
    Expectation = Assertion
else:
    # A discriminated union of every kind, so a scenario's `expect` validates (and dumps) each as its own class.
    Expectation = Annotated[functools.reduce(operator.or_, KINDS), Field(discriminator="kind")]


def unknown_kind_message(kind: str) -> str:
    """The message for an assertion name that does not exist."""
    return f"unknown assertion '{kind}'{did_you_mean(kind, ASSERTION_KINDS)}"


def parse_assertion(kind: str, value: Any) -> tuple[Expectation | None, list[SyntaxProblem]]:
    """The assertion `{kind: value}` as written in a suite, or every problem with it."""
    cls = REGISTRY.get(kind)
    if cls is None:
        return None, [SyntaxProblem(message=unknown_kind_message(kind))]
    built, problems = cls.parse(kind, value)
    return (None if problems else built), problems


def merge_expectations(defaults: Sequence[Expectation], own: Sequence[Expectation]) -> list[Expectation]:
    """The scenario's own assertions, plus each default whose kind the scenario does not state itself."""
    stated = {expectation.kind for expectation in own}
    return [d for d in defaults if d.kind not in stated] + list(own)


async def verdict_for(
    evidence: CallEvidence, expectations: Sequence[Expectation], judge: Judge | None = None
) -> Verdict:
    """The verdict on a call: each assertion evaluated (judge ones through `judge`, when given)."""
    return verdict_from([await expectation.check_with_judge(evidence, judge) for expectation in expectations])


def offline_verdict(evidence: CallEvidence, expectations: Sequence[Expectation]) -> Verdict:
    """The verdict without an LLM judge (judge assertions are not_evaluated), for sync callers."""
    return verdict_from([evaluate(e, evidence) for e in expectations])


__all__ = [
    "ANALYSIS_RESULTS",
    "ASSERTION_KINDS",
    "EXCERPT_CHARS",
    "FINAL_STATES",
    "KEYPAD_PATTERN",
    "KINDS",
    "REGISTRY",
    "SPEAKERS",
    "AnalysisResult",
    "Assertion",
    "AssertionResult",
    "CallEvidence",
    "CriterionExpectation",
    "DataCollectedExpectation",
    "Expectation",
    "FinalStateExpectation",
    "Judge",
    "JudgeAnswer",
    "JudgeExpectation",
    "KeypadSentExpectation",
    "MaxDurationExpectation",
    "MaxFirstResponseExpectation",
    "MaxTurnsExpectation",
    "OutcomeExpectation",
    "ReachedHumanExpectation",
    "Status",
    "SyntaxProblem",
    "TranscriptExpectation",
    "Verdict",
    "describe_turn",
    "did_you_mean",
    "evaluate",
    "excerpt",
    "merge_expectations",
    "not_value",
    "offline_verdict",
    "parse_assertion",
    "quoted",
    "shown_value",
    "unknown_kind_message",
    "verdict_for",
    "verdict_from",
]
