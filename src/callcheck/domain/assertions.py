"""Assertions of a suite scenario and the verdict they give on one call's evidence.

Each assertion answers pass, fail or not_evaluated, and names the evidence that decided it: the transcript
turn (index, speaker, time, excerpt) or the field. Something that could not be checked is
`not_evaluated`, and a verdict is passed only when every assertion passed: not evaluated never counts
as passed.

The syntax of each assertion (a one-key mapping in the suite file) is parsed here too, so the suite loader and
the evaluator cannot disagree on what an assertion means. See docs/suites.md.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from callcheck.domain.evidence import Analysis, CallFacts, Journey, Speaker, Turn, journey_for, keys_of
from callcheck.domain.lifecycle import TERMINAL_STATES, CallState
from callcheck.text import counted

Status = Literal["pass", "fail", "not_evaluated"]
AnalysisResult = Literal["success", "failure", "unknown"]

ANALYSIS_RESULTS: tuple[str, ...] = ("success", "failure", "unknown")
SPEAKERS: tuple[str, ...] = ("caller", "business")
FINAL_STATES: tuple[str, ...] = tuple(state.value for state in CallState if state in TERMINAL_STATES)
KEYPAD_PATTERN = re.compile(r"^[wW]*[0-9*#][0-9*#wW]*$")  # at least one key; w and W are pauses
EXCERPT_CHARS = 120


# --- the assertions -------------------------------------------------------------------------------


class _Assertion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def describe(self) -> str:
        """The assertion as a person reads it, e.g. `max_turns: 20`."""
        raise NotImplementedError


class OutcomeExpectation(_Assertion):
    """ElevenLabs' analysis `call_successful` equals `result`."""

    kind: Literal["outcome"] = "outcome"
    result: AnalysisResult

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"outcome: {self.result}"


class FinalStateExpectation(_Assertion):
    """The call ended in `state` (completed, busy, no_answer...)."""

    kind: Literal["final_state"] = "final_state"
    state: CallState

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"final_state: {self.state.value}"


class ReachedHumanExpectation(_Assertion):
    """Whether the caller reached a human, per the `reached_human` data-collection item."""

    kind: Literal["reached_human"] = "reached_human"
    value: bool

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"reached_human: {str(self.value).lower()}"


TranscriptKind = Literal["transcript_contains", "transcript_not_contains", "transcript_matches"]


class TranscriptExpectation(_Assertion):
    """Some turn (not_contains: no turn) has `text` (matches: the regex `text`); optionally of one speaker."""

    kind: TranscriptKind
    text: str
    speaker: Speaker | None = None

    def describe(self) -> str:
        """The assertion as a person reads it."""
        who = f"{self.speaker} " if self.speaker else ""
        return f"{self.kind}: {who}{quoted(self.text)}"


class MaxDurationExpectation(_Assertion):
    """The call lasted at most `seconds`."""

    kind: Literal["max_duration_s"] = "max_duration_s"
    seconds: float

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"max_duration_s: {_num(self.seconds)}"


class MaxTurnsExpectation(_Assertion):
    """At most `turns` spoken turns, both sides counted."""

    kind: Literal["max_turns"] = "max_turns"
    turns: int

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"max_turns: {self.turns}"


class MaxFirstResponseExpectation(_Assertion):
    """The business first spoke at most `seconds` into the call."""

    kind: Literal["max_first_response_s"] = "max_first_response_s"
    seconds: float

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"max_first_response_s: {_num(self.seconds)}"


class KeypadSentExpectation(_Assertion):
    """The caller sent `digits` on the keypad (as a run within everything it sent, in order)."""

    kind: Literal["keypad_sent"] = "keypad_sent"
    digits: str

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"keypad_sent: {quoted(self.digits)}"


class DataCollectedExpectation(_Assertion):
    """The data-collection item `key` was collected (and equals `value` when one is given)."""

    kind: Literal["data_collected"] = "data_collected"
    key: str
    value: str | int | float | bool | None = None

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"data_collected: {self.key}" + ("" if self.value is None else f" = {shown_value(self.value)}")


class CriterionExpectation(_Assertion):
    """The evaluation criterion `id` has the result `result`."""

    kind: Literal["criterion"] = "criterion"
    id: str
    result: AnalysisResult = "success"

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"criterion: {self.id} = {self.result}"


class JudgeExpectation(_Assertion):
    """A plain-language criterion checked by an LLM over the transcript."""

    kind: Literal["judge"] = "judge"
    criterion: str

    def describe(self) -> str:
        """The assertion as a person reads it."""
        return f"judge: {quoted(self.criterion)}"


Expectation = Annotated[
    OutcomeExpectation
    | FinalStateExpectation
    | ReachedHumanExpectation
    | TranscriptExpectation
    | MaxDurationExpectation
    | MaxTurnsExpectation
    | MaxFirstResponseExpectation
    | KeypadSentExpectation
    | DataCollectedExpectation
    | CriterionExpectation
    | JudgeExpectation,
    Field(discriminator="kind"),
]

ASSERTION_KINDS: tuple[str, ...] = (
    "outcome",
    "final_state",
    "reached_human",
    "transcript_contains",
    "transcript_not_contains",
    "transcript_matches",
    "max_duration_s",
    "max_turns",
    "max_first_response_s",
    "keypad_sent",
    "data_collected",
    "criterion",
    "judge",
)


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


# --- parsing the suite syntax ----------------------------------------------------------------------------


class SyntaxProblem(BaseModel):
    """One thing wrong with an assertion as written; `field` names the sub-key it is about, if any."""

    message: str
    field: str | None = None


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'x'?)` when a choice is close to `word`, else an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_kind_message(kind: str) -> str:
    """The message for an assertion name that does not exist."""
    return f"unknown assertion '{kind}'{did_you_mean(kind, ASSERTION_KINDS)}"


def _is_number(value: Any) -> bool:
    # YAML booleans are ints in Python; `max_turns: true` is a mistake, not 1.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _choice(value: Any, choices: Sequence[str], what: str, field: str | None = None) -> list[SyntaxProblem]:
    if isinstance(value, str) and value in choices:
        return []
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    shown = ", ".join(choices)
    return [SyntaxProblem(message=f"{what} must be one of {shown}{not_value(value)}{hint}", field=field)]


def _mapping_keys(value: dict[str, Any], allowed: Sequence[str], required: Sequence[str]) -> list[SyntaxProblem]:
    problems = [
        SyntaxProblem(message=f"unknown key '{key}'{did_you_mean(str(key), allowed)}", field=str(key))
        for key in value
        if key not in allowed
    ]
    problems += [SyntaxProblem(message=f"'{key}' is required") for key in required if key not in value]
    return problems


def _text(value: Any, field: str | None = None) -> list[SyntaxProblem]:
    if isinstance(value, str) and value.strip():
        return []
    return [SyntaxProblem(message=f"must be a non-empty text{not_value(value)}", field=field)]


def parse_assertion(kind: str, value: Any) -> tuple[Expectation | None, list[SyntaxProblem]]:
    """The assertion `{kind: value}` as written in a suite, or every problem with it."""
    if kind not in ASSERTION_KINDS:
        return None, [SyntaxProblem(message=unknown_kind_message(kind))]
    problems: list[SyntaxProblem] = []
    built: Expectation | None = None
    if kind == "outcome":
        problems = _choice(value, ANALYSIS_RESULTS, "outcome")
        if not problems:
            built = OutcomeExpectation(result=value)
    elif kind == "final_state":
        problems = _choice(value, FINAL_STATES, "final_state")
        if not problems:
            built = FinalStateExpectation(state=CallState(value))
    elif kind == "reached_human":
        if isinstance(value, bool):
            built = ReachedHumanExpectation(value=value)
        else:
            hint = " (unquoted)" if isinstance(value, str) and value.strip().lower() in ("true", "false") else ""
            problems = [SyntaxProblem(message=f"must be true or false{hint}{not_value(value)}")]
    elif kind in ("transcript_contains", "transcript_not_contains", "transcript_matches"):
        built, problems = _parse_transcript(kind, value)
    elif kind in ("max_duration_s", "max_first_response_s"):
        if _is_number(value) and value > 0:
            built = (MaxDurationExpectation if kind == "max_duration_s" else MaxFirstResponseExpectation)(
                seconds=float(value)
            )
        else:
            problems = [SyntaxProblem(message=f"must be a number of seconds above 0{not_value(value)}")]
    elif kind == "max_turns":
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            built = MaxTurnsExpectation(turns=value)
        else:
            problems = [SyntaxProblem(message=f"must be a whole number of turns of at least 1{not_value(value)}")]
    elif kind == "keypad_sent":
        # A string only: YAML reads `012` as the number 12 and would silently lose the leading zero.
        if isinstance(value, str) and KEYPAD_PATTERN.fullmatch(value):
            built = KeypadSentExpectation(digits=value)
        else:
            problems = [
                SyntaxProblem(
                    message=f'must be quoted keypad digits (0-9, *, #; w and W are pauses), e.g. "2"{not_value(value)}'
                )
            ]
    elif kind == "data_collected":
        built, problems = _parse_data_collected(value)
    elif kind == "criterion":
        built, problems = _parse_criterion(value)
    elif kind == "judge":
        problems = _text(value)
        if not problems:
            built = JudgeExpectation(criterion=value.strip())
    return (None if problems else built), problems


def _parse_transcript(kind: str, value: Any) -> tuple[Expectation | None, list[SyntaxProblem]]:
    speaker = None
    if isinstance(value, str):
        text: Any = value
        problems = _text(value)
    elif isinstance(value, dict):
        problems = _mapping_keys(value, ("text", "speaker"), ("text",))
        text = value.get("text")
        if "text" in value:
            problems += _text(text, "text")
        speaker = value.get("speaker")
        if speaker is not None:
            problems += _choice(speaker, SPEAKERS, "speaker", "speaker")
    else:
        return None, [SyntaxProblem(message=f"must be a text or {{speaker, text}}{not_value(value)}")]
    if not problems and kind == "transcript_matches":
        try:
            re.compile(text)
        except re.error as exc:
            field = "text" if isinstance(value, dict) else None
            problems.append(SyntaxProblem(message=f"invalid regular expression: {exc}", field=field))
    if problems:
        return None, problems
    return TranscriptExpectation(kind=kind, text=text, speaker=speaker), []  # type: ignore[arg-type]


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _parse_data_collected(value: Any) -> tuple[Expectation | None, list[SyntaxProblem]]:
    if isinstance(value, str):
        problems = _text(value)
        return (None, problems) if problems else (DataCollectedExpectation(key=value.strip()), [])
    if not isinstance(value, dict):
        return None, [SyntaxProblem(message=f"must be a key or {{key, value}}{not_value(value)}")]
    problems = _mapping_keys(value, ("key", "value"), ("key",))
    if "key" in value:
        problems += _text(value["key"], "key")
    expected = value.get("value")
    if expected is not None and not _scalar(expected):
        problems.append(
            SyntaxProblem(message=f"must be a text, number or true/false{not_value(expected)}", field="value")
        )
    if problems:
        return None, problems
    return DataCollectedExpectation(key=value["key"].strip(), value=expected), []


def _parse_criterion(value: Any) -> tuple[Expectation | None, list[SyntaxProblem]]:
    if isinstance(value, str):
        problems = _text(value)
        return (None, problems) if problems else (CriterionExpectation(id=value.strip()), [])
    if not isinstance(value, dict):
        return None, [SyntaxProblem(message=f"must be a criterion id or {{id, result}}{not_value(value)}")]
    problems = _mapping_keys(value, ("id", "result"), ("id",))
    if "id" in value:
        problems += _text(value["id"], "id")
    if "result" in value:
        problems += _choice(value["result"], ANALYSIS_RESULTS, "result", "result")
    if problems:
        return None, problems
    return CriterionExpectation(id=value["id"].strip(), result=value.get("result", "success")), []


def merge_expectations(defaults: Sequence[Expectation], own: Sequence[Expectation]) -> list[Expectation]:
    """The scenario's own assertions, plus each default whose kind the scenario does not state itself."""
    stated = {expectation.kind for expectation in own}
    return [d for d in defaults if d.kind not in stated] + list(own)


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


# --- evaluation -----------------------------------------------------------------------------------


def _num(value: float | None) -> str:
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


def _result(
    exp: _Assertion, status: Status, evidence: str, detail: str = "", turn_index: int | None = None
) -> AssertionResult:
    return AssertionResult(
        kind=exp.kind,  # type: ignore[attr-defined]
        expected=exp.describe(),
        status=status,
        evidence=evidence,
        detail=detail,
        turn_index=turn_index,
    )


def _not_connected(exp: _Assertion, ev: CallEvidence) -> AssertionResult:
    return _result(exp, "not_evaluated", f"call state = {ev.state.value}", "the call never connected: no transcript")


def evaluate(expectation: Expectation, evidence: CallEvidence) -> AssertionResult:
    """One assertion's answer on a call. `judge` is not_evaluated here: it needs `verdict_for` and a judge."""
    exp, ev = expectation, evidence
    if not ev.ended:
        return _result(exp, "not_evaluated", f"call state = {ev.state.value}", "the call has not ended yet")
    if isinstance(exp, FinalStateExpectation):
        status: Status = "pass" if ev.state == exp.state else "fail"
        return _result(exp, status, f"call state = {ev.state.value}")
    if isinstance(exp, OutcomeExpectation):
        return _analysis_value(exp, ev, exp.result)
    if isinstance(exp, CriterionExpectation):
        return _criterion(exp, ev)
    if isinstance(exp, ReachedHumanExpectation):
        return _reached_human(exp, ev)
    if isinstance(exp, DataCollectedExpectation):
        return _data_collected(exp, ev)
    if isinstance(exp, MaxDurationExpectation):
        duration = ev.facts.duration_secs if ev.facts.duration_secs is not None else ev.figures.duration_secs
        if ev.state == CallState.TIMED_OUT:
            # callcheck stopped following the call; whatever duration was last read says nothing of its length.
            return _result(exp, "not_evaluated", "call state = timed_out", "the call was not followed to its end")
        if duration is None:
            return _result(exp, "not_evaluated", "facts.duration_secs = none", "the call's duration is not known")
        status = "pass" if duration <= exp.seconds else "fail"
        return _result(exp, status, f"facts.duration_secs = {_num(duration)}")
    if isinstance(exp, JudgeExpectation):
        return _result(exp, "not_evaluated", "no judge", "the judge runs only through verdict_for with a judge")
    # Everything below reads the transcript, which exists only if the call connected.
    if not ev.connected:
        return _not_connected(exp, ev)
    if isinstance(exp, TranscriptExpectation):
        return _transcript(exp, ev)
    if isinstance(exp, MaxTurnsExpectation):
        return _max_turns(exp, ev)
    if isinstance(exp, MaxFirstResponseExpectation):
        return _first_response(exp, ev)
    if isinstance(exp, KeypadSentExpectation):
        return _keypad(exp, ev)
    raise AssertionError(f"unhandled assertion {exp!r}")  # pragma: no cover - the union is exhaustive


def _analysis_value(exp: OutcomeExpectation, ev: CallEvidence, expected: str) -> AssertionResult:
    if ev.analysis is None:
        return _result(exp, "not_evaluated", "analysis = none", "ElevenLabs has not analysed the call")
    actual = ev.analysis.call_successful
    evidence = f"analysis.call_successful = {actual or 'none'}"
    if actual is None:
        return _result(exp, "not_evaluated", evidence, "the analysis has no call_successful")
    if actual == "unknown" and expected != "unknown":
        # The platform could not tell; that is not evidence either way.
        return _result(exp, "not_evaluated", evidence, "ElevenLabs could not tell whether the call succeeded")
    return _result(exp, "pass" if actual == expected else "fail", evidence, ev.analysis.summary or "")


def _criterion(exp: CriterionExpectation, ev: CallEvidence) -> AssertionResult:
    if ev.analysis is None:
        return _result(exp, "not_evaluated", "analysis = none", "ElevenLabs has not analysed the call")
    found = ev.analysis.criteria.get(exp.id)
    if found is None:
        known = ", ".join(sorted(ev.analysis.criteria)) or "none"
        return _result(
            exp,
            "not_evaluated",
            f"analysis.criteria.{exp.id} = missing",
            f"criteria in the analysis: {known}",
        )
    evidence = f"analysis.criteria.{exp.id} = {found.result}"
    if found.result == "unknown" and exp.result != "unknown":
        return _result(exp, "not_evaluated", evidence, found.rationale or "the criterion could not be judged")
    return _result(exp, "pass" if found.result == exp.result else "fail", evidence, found.rationale or "")


def _reached_human(exp: ReachedHumanExpectation, ev: CallEvidence) -> AssertionResult:
    actual = ev.figures.reached_human
    data = ev.analysis.data if ev.analysis else {}
    rationale = (data["reached_human"].rationale or "") if "reached_human" in data else ""
    if actual is None:
        # Not collected (the key is absent or its value null) reads "missing" whichever way it reached us; a value
        # that is there but not yes/no is shown as it is.
        raw = shown_value(data["reached_human"].value) if "reached_human" in data else "missing"
        return _result(exp, "not_evaluated", f"analysis.data.reached_human = {raw}", "not collected by the analysis")
    status: Status = "pass" if actual == exp.value else "fail"
    from_analysis = "reached_human" in data and data["reached_human"].value is not None
    if not from_analysis:
        # The analysis said nothing: the journey decided from the call itself (nobody answered, or a voicemail).
        why = "a voicemail answered" if ev.figures.voicemail else f"the call was not answered ({ev.facts.call_result})"
        return _result(exp, status, f"journey.reached_human = {str(actual).lower()}", why)
    return _result(exp, status, f"analysis.data.reached_human = {str(actual).lower()}", rationale)


def _normal(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        # 4821.0 from a number-typed data item still equals "4821".
        return str(int(value))
    return " ".join(str(value).split()).casefold()


def _data_collected(exp: DataCollectedExpectation, ev: CallEvidence) -> AssertionResult:
    if ev.analysis is None:
        return _result(exp, "not_evaluated", "analysis = none", "ElevenLabs has not analysed the call")
    item = ev.analysis.data.get(exp.key)
    if item is None:
        known = ", ".join(sorted(ev.analysis.data)) or "none"
        return _result(
            exp, "not_evaluated", f"analysis.data.{exp.key} = missing", f"data items in the analysis: {known}"
        )
    evidence = f"analysis.data.{exp.key} = {shown_value(item.value)}"
    if item.value is None or (isinstance(item.value, str) and not item.value.strip()):
        # The item exists on the agent but nothing was extracted: the caller did not collect it.
        return _result(exp, "fail", evidence, item.rationale or "nothing was collected")
    if exp.value is None:
        return _result(exp, "pass", evidence, item.rationale or "")
    status: Status = "pass" if _normal(item.value) == _normal(exp.value) else "fail"
    return _result(exp, status, evidence, item.rationale or "")


def _transcript(exp: TranscriptExpectation, ev: CallEvidence) -> AssertionResult:
    pattern = (
        re.compile(exp.text)
        if exp.kind == "transcript_matches"
        else re.compile(re.escape(" ".join(exp.text.split())).replace(r"\ ", r"\s+"), re.IGNORECASE)
    )
    # Silence ("nothing recognised") is not something said: it never matches, nor counts as a turn searched.
    candidates = [
        (i, t) for i, t in enumerate(ev.turns) if t.spoken and (exp.speaker is None or t.speaker == exp.speaker)
    ]
    for index, turn in candidates:
        match = pattern.search(turn.text or "")
        if match:
            status: Status = "fail" if exp.kind == "transcript_not_contains" else "pass"
            return _result(exp, status, describe_turn(index, turn, match.span()), turn_index=index)
    who = f"{exp.speaker} " if exp.speaker else ""
    verb = "matches" if exp.kind == "transcript_matches" else "contains"
    evidence = f"no {who}turn (of {len(candidates)}) {verb} {quoted(exp.text)}"
    return _result(exp, "pass" if exp.kind == "transcript_not_contains" else "fail", evidence)


def _max_turns(exp: MaxTurnsExpectation, ev: CallEvidence) -> AssertionResult:
    figures = ev.figures
    counts = f"{figures.turns} turns (caller {figures.caller_turns}, business {figures.business_turns})"
    if figures.turns <= exp.turns:
        return _result(exp, "pass", counts)
    spoken = [(i, t) for i, t in enumerate(ev.turns) if t.spoken]
    index, turn = spoken[exp.turns]
    return _result(exp, "fail", f"{counts}; first over the limit: {describe_turn(index, turn)}", turn_index=index)


def _first_response(exp: MaxFirstResponseExpectation, ev: CallEvidence) -> AssertionResult:
    if not ev.turns:
        return _result(exp, "not_evaluated", "transcript = empty", "the call has no transcript")
    for index, turn in enumerate(ev.turns):
        if turn.speaker == "business" and turn.spoken:
            status: Status = "pass" if turn.time_in_call_secs <= exp.seconds else "fail"
            return _result(exp, status, describe_turn(index, turn), turn_index=index)
    return _result(exp, "fail", f"the business never spoke in {counted(len(ev.turns), 'turn')}")


def _keypad(exp: KeypadSentExpectation, ev: CallEvidence) -> AssertionResult:
    # Only a press whose result said it was sent counts: a failed one did not reach the line, and one with no result
    # is unknown, never taken as sent. Pauses (w, W) are not keys: "1w2" sent "12", and the evidence shows "1w2".
    presses = [p for p in ev.figures.keypad if p.ok is True]
    wanted = keys_of(exp.digits)
    sent = "".join(p.keys for p in presses)
    shown = " ".join(p.digits for p in presses)
    if wanted and wanted in sent:
        start = sent.index(wanted)
        offset = 0
        for press in presses:
            if offset + len(press.keys) > start:
                return _result(exp, "pass", f"keypad '{shown}'; '{press.digits}' sent at {press.time_in_call_secs:g}s")
            offset += len(press.keys)
    failed = [p.digits for p in ev.figures.keypad if p.ok is False]
    unknown = [p.digits for p in ev.figures.keypad if p.ok is None]
    details = []
    if failed:
        details.append(f"presses that failed: {', '.join(failed)}")
    if unknown:
        details.append(f"presses with no result (unknown whether sent): {', '.join(unknown)}")
    return _result(exp, "fail", f"keypad sent '{shown}'" if sent else "no keypad digits sent", "; ".join(details))


async def _judge(exp: JudgeExpectation, ev: CallEvidence, judge: Judge | None) -> AssertionResult:
    if judge is None:
        return _result(
            exp,
            "not_evaluated",
            "judge = not configured",
            "set CALLCHECK_JUDGE_BASE_URL and CALLCHECK_JUDGE_MODEL to evaluate judge assertions",
        )
    if not ev.ended:
        return _result(exp, "not_evaluated", f"call state = {ev.state.value}", "the call has not ended yet")
    if not ev.connected or not any(t.spoken for t in ev.turns):
        return _not_connected(exp, ev)
    answer = await judge.judge(exp.criterion, ev)
    return _result(exp, answer.status, f"judge: {answer.status}", answer.reason)


async def verdict_for(
    evidence: CallEvidence, expectations: Sequence[Expectation], judge: Judge | None = None
) -> Verdict:
    """The verdict on a call: each assertion evaluated (judge ones through `judge`, when given)."""
    results = []
    for expectation in expectations:
        if isinstance(expectation, JudgeExpectation):
            results.append(await _judge(expectation, evidence, judge))
        else:
            results.append(evaluate(expectation, evidence))
    return verdict_from(results)


def offline_verdict(evidence: CallEvidence, expectations: Sequence[Expectation]) -> Verdict:
    """The verdict without an LLM judge (judge assertions are not_evaluated), for sync callers."""
    return verdict_from([evaluate(e, evidence) for e in expectations])
