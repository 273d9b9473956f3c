"""What every assertion kind shares: the base class, the evidence it reads, the result it gives, and the helpers
its parse and describe use (values shown as the user wrote them, syntax problems with a did-you-mean).

A kind is one `Assertion` subclass that declares, in one place, the names it is written with (`kinds`), how it is
parsed from a suite (`parse`), how it reads to a person (`describe`) and how it is checked (`check`); the registry
in `callcheck.domain.assertions` lists the classes.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callcheck.domain.evidence import Analysis, CallFacts, Journey, Turn, journey_for
from callcheck.domain.lifecycle import TERMINAL_STATES, CallState

Status = Literal["pass", "fail", "not_evaluated"]
AnalysisResult = Literal["success", "failure", "unknown"]

ANALYSIS_RESULTS: tuple[str, ...] = ("success", "failure", "unknown")
EXCERPT_CHARS = 120


# --- evidence and results -------------------------------------------------------------------------


class CallEvidence(BaseModel):
    """Everything known about one call that a verdict may read. `journey` is computed when not given."""

    state: CallState
    turns: list[Turn] = Field(default_factory=list)
    analysis: Analysis | None = None
    facts: CallFacts = Field(default_factory=CallFacts)
    journey: Journey | None = None
    call_id: str | None = None

    @model_validator(mode="after")
    def _fill_journey(self) -> CallEvidence:
        if self.journey is None:
            self.journey = journey_for(self.turns, self.analysis, self.facts)
        return self

    @property
    def figures(self) -> Journey:
        """The journey figures (always present after validation)."""
        assert self.journey is not None  # filled by the validator
        return self.journey

    @property
    def ended(self) -> bool:
        """True once the call is in a terminal state."""
        return self.state in TERMINAL_STATES

    @property
    def connected(self) -> bool:
        """True when a conversation took place: something was said, or the line was answered."""
        return bool(self.turns) or self.facts.call_result == "answered" or self.state == CallState.COMPLETED


class AssertionResult(BaseModel):
    """One assertion's answer on one call, with the evidence that decided it."""

    kind: str
    expected: str
    status: Status
    evidence: str
    detail: str = ""
    turn_index: int | None = None  # the transcript turn that decided it, for drill-down


class Verdict(BaseModel):
    """The verdict on one call: passed only when every assertion passed."""

    passed: bool
    results: list[AssertionResult]

    @property
    def failed(self) -> list[AssertionResult]:
        """The assertions that failed."""
        return [r for r in self.results if r.status == "fail"]

    @property
    def not_evaluated(self) -> list[AssertionResult]:
        """The assertions that could not be evaluated."""
        return [r for r in self.results if r.status == "not_evaluated"]

    @property
    def status(self) -> Status:
        """`pass`, else `fail` when any assertion failed, else `not_evaluated`."""
        if self.passed:
            return "pass"
        return "fail" if self.failed or not self.results else "not_evaluated"


def verdict_from(results: Sequence[AssertionResult]) -> Verdict:
    """The verdict of these results; no results at all is not a pass (nothing was checked)."""
    return Verdict(passed=bool(results) and all(r.status == "pass" for r in results), results=list(results))


class JudgeAnswer(BaseModel):
    """What the LLM judge concluded: pass, fail, or not_evaluated with the reason it could not judge."""

    status: Status
    reason: str


class Judge(Protocol):
    """An LLM deciding whether a plain-language criterion holds for a call (see callcheck.providers.llm)."""

    async def judge(self, criterion: str, evidence: CallEvidence) -> JudgeAnswer:
        """Decide `criterion` over the call's transcript."""
        ...


# --- syntax problems --------------------------------------------------------------------------------


class SyntaxProblem(BaseModel):
    """One thing wrong with an assertion as written; `field` names the sub-key it is about, if any."""

    message: str
    field: str | None = None


Parsed = tuple["Assertion | None", list[SyntaxProblem]]


# --- the base class --------------------------------------------------------------------------------


class Assertion(BaseModel):
    """One assertion kind: its names, parse, describe and check together."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    kinds: ClassVar[tuple[str, ...]]  # the names this class is written with in a suite, in the docs' order
    # Checked only on a call that connected (it reads the transcript); others read the state, facts or analysis.
    reads_transcript: ClassVar[bool] = False

    @classmethod
    def parse(cls, kind: str, value: Any) -> Parsed:
        """The assertion `{kind: value}` as written in a suite, or every problem with it."""
        raise NotImplementedError

    def describe(self) -> str:
        """The assertion as a person reads it, e.g. `max_turns: 20`."""
        raise NotImplementedError

    def check(self, ev: CallEvidence) -> AssertionResult:
        """The answer on an ended call (one that connected, when `reads_transcript`)."""
        raise NotImplementedError

    async def check_with_judge(self, ev: CallEvidence, judge: Judge | None) -> AssertionResult:
        """The answer when an LLM judge may be asked; most kinds need none."""
        return evaluate(self, ev)

    def answer(self, status: Status, evidence: str, detail: str = "", turn_index: int | None = None) -> AssertionResult:
        """This assertion's result, with the evidence that decided it."""
        return AssertionResult(
            kind=self.kind,
            expected=self.describe(),
            status=status,
            evidence=evidence,
            detail=detail,
            turn_index=turn_index,
        )

    def not_connected(self, ev: CallEvidence) -> AssertionResult:
        """not_evaluated: the call never connected, so there is no transcript to read."""
        return self.answer("not_evaluated", f"call state = {ev.state.value}", "the call never connected: no transcript")


def evaluate(expectation: Assertion, evidence: CallEvidence) -> AssertionResult:
    """One assertion's answer on a call. `judge` is not_evaluated here: it needs `verdict_for` and a judge."""
    if not evidence.ended:
        return expectation.answer("not_evaluated", f"call state = {evidence.state.value}", "the call has not ended yet")
    if expectation.reads_transcript and not evidence.connected:
        return expectation.not_connected(evidence)
    return expectation.check(evidence)


# --- showing values as the user wrote them ------------------------------------------------------------------


def quoted(text: str) -> str:
    """`"text"` exactly as written: a regex `order number \\d{4}` stays one backslash (repr would double it)."""
    return f'"{text}"'


def shown_value(value: Any) -> str:
    """A value from the suite or the analysis in the suite's own words: `true`, `12`, `"text"`, `missing`.

    Python's repr would say `True`, `None` or `'text'`, which is not how anyone wrote them in YAML or JSON.
    """
    if value is None:
        return "missing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def not_value(value: Any) -> str:
    """`, not true` / `, not the text "yes"` / `, not empty`: what a validation message says it got."""
    if value is None:
        return ", not empty"
    if isinstance(value, bool):
        return f", not {str(value).lower()}"
    if isinstance(value, str):
        return f", not the text {quoted(value)}"
    return f", not {shown_value(value)}"


def num(value: float | None) -> str:
    """A number as a person writes it (`12`, `2.5`), or `none`."""
    if value is None:
        return "none"
    return f"{value:g}"


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str:
    """The text on one line, cut to `limit` characters with an ellipsis."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_turn(index: int, turn: Turn, around: tuple[int, int] | None = None) -> str:
    """`turn 3 (business, 12.4s): "text"`: the turn that decided an assertion, as evidence."""
    text = turn.text or ""
    if around is not None and len(text) > EXCERPT_CHARS:
        # Centre the excerpt on the match so the evidence shows what matched.
        start = max(0, around[0] - EXCERPT_CHARS // 3)
        text = ("…" if start else "") + text[start:]
    return f'turn {index} ({turn.speaker}, {turn.time_in_call_secs:g}s): "{excerpt(text)}"'


# --- parsing helpers -------------------------------------------------------------------------------


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'x'?)` when a choice is close to `word`, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def is_number(value: Any) -> bool:
    """True for an int or float; YAML booleans are ints in Python, and `max_turns: true` is a mistake, not 1."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def choice(value: Any, choices: Sequence[str], what: str, field: str | None = None) -> list[SyntaxProblem]:
    """No problem when `value` is one of `choices`; else the one saying which are allowed."""
    if isinstance(value, str) and value in choices:
        return []
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    shown = ", ".join(choices)
    return [SyntaxProblem(message=f"{what} must be one of {shown}{not_value(value)}{hint}", field=field)]


def mapping_keys(value: dict[str, Any], allowed: Sequence[str], required: Sequence[str]) -> list[SyntaxProblem]:
    """Problems with a mapping's keys: unknown ones (with a did-you-mean) and missing required ones."""
    problems = [
        SyntaxProblem(message=f"unknown key '{key}'{did_you_mean(str(key), allowed)}", field=str(key))
        for key in value
        if key not in allowed
    ]
    problems += [SyntaxProblem(message=f"'{key}' is required") for key in required if key not in value]
    return problems


def text_problems(value: Any, field: str | None = None) -> list[SyntaxProblem]:
    """No problem for a non-empty text; else the one saying what was given instead."""
    if isinstance(value, str) and value.strip():
        return []
    return [SyntaxProblem(message=f"must be a non-empty text{not_value(value)}", field=field)]


def analysis_missing(exp: Assertion) -> AssertionResult:
    """not_evaluated: the platform has not analysed the call (yet)."""
    return exp.answer("not_evaluated", "analysis = none", "ElevenLabs has not analysed the call")
