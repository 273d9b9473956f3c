"""Every assertion kind can pass, fail and be not evaluated, and names the evidence that decided it."""

from __future__ import annotations

from typing import Any

import pytest

from callcheck.domain.assertions import (
    CallEvidence,
    CriterionExpectation,
    DataCollectedExpectation,
    Expectation,
    FinalStateExpectation,
    JudgeAnswer,
    JudgeExpectation,
    KeypadSentExpectation,
    MaxDurationExpectation,
    MaxFirstResponseExpectation,
    MaxTurnsExpectation,
    OutcomeExpectation,
    ReachedHumanExpectation,
    TranscriptExpectation,
    evaluate,
    merge_expectations,
    offline_verdict,
    parse_assertion,
    verdict_for,
)
from callcheck.domain.evidence import (
    Analysis,
    CallFacts,
    CriterionResult,
    DataResult,
    ToolCall,
    Turn,
)
from callcheck.domain.lifecycle import CallState

TURNS = [
    Turn(speaker="business", text="Thank you for calling Pizza Palace. Press 2 for pickup.", time_in_call_secs=1.5),
    Turn(
        speaker="caller",
        text="",
        time_in_call_secs=4.0,
        tool_calls=[ToolCall(name="keypad", kind="keypad", keys="2", status="succeeded")],
    ),
    Turn(speaker="caller", text="Hi, I'd like a pizza for pickup.", time_in_call_secs=6.0),
    Turn(speaker="business", text="Sure. Your order number 4821 is confirmed for 6pm.", time_in_call_secs=20.0),
    Turn(speaker="caller", text="Great, thanks. Please confirm the pickup time.", time_in_call_secs=25.0),
    Turn(speaker="business", text="Pickup at 6pm. Goodbye!", time_in_call_secs=30.0),
]

ANALYSIS = Analysis(
    call_successful="success",
    summary="The caller ordered a pizza.",
    criteria={"goal_achieved": CriterionResult(result="success", rationale="Order confirmed.")},
    data={
        "reached_human": DataResult(value=False, rationale="An automated agent answered."),
        "confirmation_number": DataResult(value="4821"),
        "empty_item": DataResult(value=None),
    },
)


def completed(**changes: Any) -> CallEvidence:
    """A completed call with the transcript and analysis above, changed as asked."""
    values: dict[str, Any] = {
        "state": "completed",
        "turns": TURNS,
        "analysis": ANALYSIS,
        "facts": CallFacts(duration_secs=31.0, call_result="answered"),
        "call_id": "call_1",
    }
    values.update(changes)
    return CallEvidence(**values)


BUSY = CallEvidence(state=CallState.BUSY, facts=CallFacts(call_result="busy"), call_id="call_busy")
RINGING = CallEvidence(state=CallState.RINGING)


def check(expectation: Expectation, evidence: CallEvidence, status: str) -> str:
    result = evaluate(expectation, evidence)
    assert result.status == status, result
    assert result.kind == expectation.kind
    assert result.expected == expectation.describe()
    assert result.evidence
    return result.evidence


def test_outcome() -> None:
    exp = OutcomeExpectation(result="success")
    assert check(exp, completed(), "pass") == "analysis.call_successful = success"
    assert check(exp, completed(analysis=Analysis(call_successful="failure")), "fail") == (
        "analysis.call_successful = failure"
    )
    assert check(exp, completed(analysis=None), "not_evaluated") == "analysis = none"
    check(exp, completed(analysis=Analysis(call_successful="unknown")), "not_evaluated")
    check(exp, completed(analysis=Analysis()), "not_evaluated")
    check(OutcomeExpectation(result="failure"), completed(analysis=Analysis(call_successful="failure")), "pass")


def test_final_state() -> None:
    assert check(FinalStateExpectation(state=CallState.COMPLETED), completed(), "pass") == "call state = completed"
    assert check(FinalStateExpectation(state=CallState.COMPLETED), BUSY, "fail") == "call state = busy"
    check(FinalStateExpectation(state=CallState.BUSY), BUSY, "pass")
    check(FinalStateExpectation(state=CallState.COMPLETED), RINGING, "not_evaluated")


def test_reached_human() -> None:
    assert check(ReachedHumanExpectation(value=False), completed(), "pass") == "analysis.data.reached_human = false"
    check(ReachedHumanExpectation(value=True), completed(), "fail")
    check(ReachedHumanExpectation(value=True), completed(analysis=Analysis()), "not_evaluated")
    check(ReachedHumanExpectation(value=True), completed(analysis=None), "not_evaluated")
    transferred = Analysis(data={"reached_human": DataResult(value="true")})
    check(ReachedHumanExpectation(value=True), completed(analysis=transferred), "pass")


def test_max_duration_of_a_timed_out_call_is_not_evaluated() -> None:
    # Given up while it still rang: the 0 s read then is not the call's length.
    timed_out = CallEvidence(state=CallState.TIMED_OUT, facts=CallFacts(duration_secs=0.0), call_id="call_late")
    assert check(MaxDurationExpectation(seconds=100), timed_out, "not_evaluated") == "call state = timed_out"


def test_reached_human_of_an_unanswered_call_is_decided_by_the_call_itself() -> None:
    # No analysis says so, but nobody picked up: no human was reached, and the evidence says where that came from.
    assert check(ReachedHumanExpectation(value=False), BUSY, "pass") == "journey.reached_human = false"
    assert check(ReachedHumanExpectation(value=True), BUSY, "fail") == "journey.reached_human = false"


def test_reached_human_not_collected_reads_missing_whether_absent_or_null() -> None:
    # The CLI's calls (polled) carry the item with a null value, the server's (webhooks) may lack it: one wording.
    null_item = Analysis(data={"reached_human": DataResult(value=None)})
    absent = Analysis(data={})
    for analysis in (null_item, absent):
        evidence = check(ReachedHumanExpectation(value=False), completed(analysis=analysis), "not_evaluated")
        assert evidence == "analysis.data.reached_human = missing"
    odd = Analysis(data={"reached_human": DataResult(value="maybe")})
    assert check(ReachedHumanExpectation(value=False), completed(analysis=odd), "not_evaluated") == (
        'analysis.data.reached_human = "maybe"'
    )


def test_transcript_contains_names_the_turn() -> None:
    exp = TranscriptExpectation(kind="transcript_contains", speaker="business", text="CONFIRMED")
    evidence = check(exp, completed(), "pass")
    assert evidence == 'turn 3 (business, 20s): "Sure. Your order number 4821 is confirmed for 6pm."'
    assert evaluate(exp, completed()).turn_index == 3
    # "confirm" is said by the caller only in turn 4: restricted to the business, it is not found there.
    caller_only = TranscriptExpectation(kind="transcript_contains", speaker="business", text="please confirm")
    assert check(caller_only, completed(), "fail") == 'no business turn (of 3) contains "please confirm"'
    check(TranscriptExpectation(kind="transcript_contains", text="please   confirm"), completed(), "pass")
    check(exp, BUSY, "not_evaluated")


def test_transcript_not_contains() -> None:
    exp = TranscriptExpectation(kind="transcript_not_contains", speaker="business", text="sold out")
    assert check(exp, completed(), "pass") == 'no business turn (of 3) contains "sold out"'
    bad = TranscriptExpectation(kind="transcript_not_contains", speaker="business", text="goodbye")
    assert check(bad, completed(), "fail").startswith("turn 5 (business, 30s)")
    check(exp, BUSY, "not_evaluated")


def test_transcript_matches() -> None:
    exp = TranscriptExpectation(kind="transcript_matches", speaker="business", text=r"order number \d{4}")
    assert check(exp, completed(), "pass").startswith("turn 3 (business, 20s)")
    caller = TranscriptExpectation(kind="transcript_matches", speaker="caller", text=r"order number \d{4}")
    # The regex as the user wrote it: one backslash, not Python's repr with two.
    assert check(caller, completed(), "fail") == r'no caller turn (of 2) matches "order number \d{4}"'
    assert caller.describe() == r'transcript_matches: caller "order number \d{4}"'
    check(exp, BUSY, "not_evaluated")


def test_long_turn_excerpt_is_centred_on_the_match() -> None:
    long_text = "blah " * 100 + "your code is 7777 " + "blah " * 100
    evidence = completed(turns=[Turn(speaker="business", text=long_text, time_in_call_secs=2)])
    text = check(TranscriptExpectation(kind="transcript_contains", text="code is 7777"), evidence, "pass")
    assert "code is 7777" in text and len(text) < 200


def test_max_duration() -> None:
    assert check(MaxDurationExpectation(seconds=60), completed(), "pass") == "facts.duration_secs = 31"
    check(MaxDurationExpectation(seconds=30), completed(), "fail")
    check(MaxDurationExpectation(seconds=30), completed(facts=CallFacts()), "not_evaluated")


def test_max_turns() -> None:
    assert check(MaxTurnsExpectation(turns=5), completed(), "pass") == "5 turns (caller 2, business 3)"
    evidence = check(MaxTurnsExpectation(turns=3), completed(), "fail")
    assert evidence.endswith(
        'first over the limit: turn 4 (caller, 25s): "Great, thanks. Please confirm the pickup time."'
    )
    check(MaxTurnsExpectation(turns=3), BUSY, "not_evaluated")


def test_max_first_response() -> None:
    assert check(MaxFirstResponseExpectation(seconds=2), completed(), "pass").startswith("turn 0 (business, 1.5s)")
    check(MaxFirstResponseExpectation(seconds=1), completed(), "fail")
    silent = completed(turns=[Turn(speaker="caller", text="Hello? Anyone?", time_in_call_secs=3)])
    assert check(MaxFirstResponseExpectation(seconds=5), silent, "fail") == "the business never spoke in 1 turn"
    check(MaxFirstResponseExpectation(seconds=5), BUSY, "not_evaluated")
    check(MaxFirstResponseExpectation(seconds=5), completed(turns=[]), "not_evaluated")


def test_keypad_sent() -> None:
    assert check(KeypadSentExpectation(digits="2"), completed(), "pass") == "keypad '2'; '2' sent at 4s"
    assert check(KeypadSentExpectation(digits="3"), completed(), "fail") == "keypad sent '2'"
    failed_press = [
        Turn(
            speaker="caller",
            time_in_call_secs=4,
            tool_calls=[ToolCall(name="keypad", kind="keypad", keys="2", status="failed")],
        ),
        Turn(speaker="business", text="Sorry?", time_in_call_secs=5),
    ]
    result = evaluate(KeypadSentExpectation(digits="2"), completed(turns=failed_press))
    assert result.status == "fail" and result.evidence == "no keypad digits sent"
    assert result.detail == "presses that failed: 2"
    check(KeypadSentExpectation(digits="2"), BUSY, "not_evaluated")


def test_data_collected() -> None:
    exp = DataCollectedExpectation(key="confirmation_number", value="4821")
    assert check(exp, completed(), "pass") == 'analysis.data.confirmation_number = "4821"'
    assert exp.describe() == 'data_collected: confirmation_number = "4821"'
    check(DataCollectedExpectation(key="confirmation_number"), completed(), "pass")
    check(DataCollectedExpectation(key="confirmation_number", value=4821), completed(), "pass")
    check(DataCollectedExpectation(key="confirmation_number", value="9999"), completed(), "fail")
    check(DataCollectedExpectation(key="empty_item"), completed(), "fail")
    assert check(DataCollectedExpectation(key="nope"), completed(), "not_evaluated") == "analysis.data.nope = missing"
    check(exp, completed(analysis=None), "not_evaluated")
    number_item = Analysis(data={"confirmation_number": DataResult(value=4821.0)})
    check(exp, completed(analysis=number_item), "pass")


def test_criterion() -> None:
    exp = CriterionExpectation(id="goal_achieved", result="success")
    assert check(exp, completed(), "pass") == "analysis.criteria.goal_achieved = success"
    assert evaluate(exp, completed()).detail == "Order confirmed."
    failed = Analysis(criteria={"goal_achieved": CriterionResult(result="failure", rationale="No order.")})
    check(exp, completed(analysis=failed), "fail")
    unknown = Analysis(criteria={"goal_achieved": CriterionResult(result="unknown")})
    check(exp, completed(analysis=unknown), "not_evaluated")
    check(CriterionExpectation(id="other"), completed(), "not_evaluated")
    check(exp, completed(analysis=None), "not_evaluated")


class FixedJudge:
    """A judge that answers as told and records what it was asked."""

    def __init__(self, answer: JudgeAnswer) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def judge(self, criterion: str, evidence: CallEvidence) -> JudgeAnswer:
        self.asked.append(criterion)
        return self.answer


JUDGE = JudgeExpectation(criterion="The business confirmed the pickup time.")


async def test_judge_pass_fail_and_not_evaluated() -> None:
    passing = FixedJudge(JudgeAnswer(status="pass", reason="Turn 5 says pickup at 6pm."))
    verdict = await verdict_for(completed(), [JUDGE], passing)
    assert verdict.passed and verdict.results[0].detail == "Turn 5 says pickup at 6pm."
    assert passing.asked == [JUDGE.criterion]
    failing = FixedJudge(JudgeAnswer(status="fail", reason="No time given."))
    assert (await verdict_for(completed(), [JUDGE], failing)).results[0].status == "fail"
    broken = FixedJudge(JudgeAnswer(status="not_evaluated", reason="the judge could not be reached"))
    assert (await verdict_for(completed(), [JUDGE], broken)).results[0].status == "not_evaluated"


async def test_judge_without_configuration_is_never_passed() -> None:
    verdict = await verdict_for(completed(), [JUDGE])
    assert not verdict.passed
    assert verdict.results[0].status == "not_evaluated"
    assert "CALLCHECK_JUDGE_BASE_URL" in verdict.results[0].detail
    assert evaluate(JUDGE, completed()).status == "not_evaluated"


async def test_judge_is_not_asked_about_a_call_that_never_connected() -> None:
    judge = FixedJudge(JudgeAnswer(status="pass", reason="?"))
    verdict = await verdict_for(BUSY, [JUDGE], judge)
    assert verdict.results[0].status == "not_evaluated" and judge.asked == []


async def test_verdict_passes_only_when_every_assertion_passed() -> None:
    exps: list[Expectation] = [FinalStateExpectation(state=CallState.COMPLETED), OutcomeExpectation(result="success")]
    assert (await verdict_for(completed(), exps)).passed
    unevaluated = await verdict_for(completed(analysis=None), exps)
    assert not unevaluated.passed and unevaluated.status == "not_evaluated"
    assert [r.status for r in unevaluated.results] == ["pass", "not_evaluated"]
    failed = await verdict_for(BUSY, exps)
    assert not failed.passed and failed.status == "fail" and len(failed.failed) == 1
    assert not offline_verdict(completed(), []).passed  # nothing checked is not a pass


async def test_unfinished_call_is_not_evaluated() -> None:
    verdict = await verdict_for(
        RINGING, [MaxDurationExpectation(seconds=10), JUDGE], FixedJudge(JudgeAnswer(status="pass", reason=""))
    )
    assert [r.status for r in verdict.results] == ["not_evaluated", "not_evaluated"]
    assert verdict.results[0].detail == "the call has not ended yet"


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("outcome", "success", OutcomeExpectation(result="success")),
        ("final_state", "no_answer", FinalStateExpectation(state=CallState.NO_ANSWER)),
        ("reached_human", True, ReachedHumanExpectation(value=True)),
        ("transcript_contains", "hello", TranscriptExpectation(kind="transcript_contains", text="hello")),
        ("max_duration_s", 180, MaxDurationExpectation(seconds=180)),
        ("max_turns", 20, MaxTurnsExpectation(turns=20)),
        ("max_first_response_s", 2.5, MaxFirstResponseExpectation(seconds=2.5)),
        ("keypad_sent", "12#", KeypadSentExpectation(digits="12#")),
        ("data_collected", "confirmation_number", DataCollectedExpectation(key="confirmation_number")),
        ("criterion", "goal_achieved", CriterionExpectation(id="goal_achieved", result="success")),
        ("criterion", {"id": "x", "result": "failure"}, CriterionExpectation(id="x", result="failure")),
        ("judge", "  Polite.  ", JudgeExpectation(criterion="Polite.")),
    ],
)
def test_parse_assertion_short_forms(kind: str, value: Any, expected: Expectation) -> None:
    assert parse_assertion(kind, value) == (expected, [])


def test_parse_assertion_rejects_non_final_states_and_unknown_kinds() -> None:
    built, problems = parse_assertion("final_state", "in_progress")
    assert built is None and "must be one of completed" in problems[0].message
    built, problems = parse_assertion("transcript_contain", "x")
    assert built is None and problems[0].message == (
        "unknown assertion 'transcript_contain' (did you mean 'transcript_contains'?)"
    )


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("reached_human", "true", 'must be true or false (unquoted), not the text "true"'),
        ("reached_human", 1, "must be true or false, not 1"),
        ("max_turns", True, "must be a whole number of turns of at least 1, not true"),
        ("max_duration_s", None, "must be a number of seconds above 0, not empty"),
        ("outcome", False, "outcome must be one of success, failure, unknown, not false"),
        ("keypad_sent", 12, 'must be quoted keypad digits (0-9, *, #; w and W are pauses), e.g. "2", not 12'),
        ("judge", True, "must be a non-empty text, not true"),
        ("transcript_contains", ["a"], "must be a text or {speaker, text}, not a list"),
    ],
)
def test_validation_messages_show_values_as_written_in_yaml(kind: str, value: Any, message: str) -> None:
    built, problems = parse_assertion(kind, value)
    assert built is None and [p.message for p in problems] == [message]


def test_merge_keeps_defaults_of_kinds_the_scenario_does_not_state() -> None:
    defaults: list[Expectation] = [FinalStateExpectation(state=CallState.COMPLETED), MaxTurnsExpectation(turns=30)]
    own: list[Expectation] = [MaxTurnsExpectation(turns=10)]
    assert merge_expectations(defaults, own) == [
        FinalStateExpectation(state=CallState.COMPLETED),
        MaxTurnsExpectation(turns=10),
    ]


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("outcome", "failure"),
        ("final_state", "busy"),
        ("reached_human", False),
        ("transcript_not_contains", {"speaker": "business", "text": "closed"}),
        ("transcript_matches", r"order \d{4}"),
        ("max_duration_s", 90),
        ("max_turns", 3),
        ("max_first_response_s", 1),
        ("keypad_sent", "1w2"),
        ("data_collected", {"key": "party_size", "value": 4}),
        ("criterion", {"id": "x", "result": "unknown"}),
        ("judge", "Polite."),
    ],
)
def test_every_registered_kind_round_trips_through_the_scenario_union(kind: str, value: Any) -> None:
    # The registry builds the pydantic union: a stored scenario's assertion comes back as its own class, equal.
    from pydantic import TypeAdapter

    from callcheck.domain.assertions import REGISTRY

    built, problems = parse_assertion(kind, value)
    assert built is not None and not problems
    assert type(built) is REGISTRY[kind] and built.kind == kind
    adapter: TypeAdapter[Expectation] = TypeAdapter(Expectation)
    assert adapter.validate_python(adapter.dump_python(built, mode="json")) == built
    assert built.describe().startswith(f"{kind}: ")


def test_the_registry_lists_every_kind_once_in_the_documented_order() -> None:
    from callcheck.domain.assertions import ASSERTION_KINDS, KINDS

    assert [name for cls in KINDS for name in cls.kinds] == list(ASSERTION_KINDS)
    assert ASSERTION_KINDS[:4] == ("outcome", "final_state", "reached_human", "transcript_contains")
    assert ASSERTION_KINDS[-1] == "judge" and len(set(ASSERTION_KINDS)) == 13
