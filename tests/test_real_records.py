"""Real-shaped records (tests/real_records.py, built from the SDK's models) read right: the verdicts and figures
hold on the layouts ElevenLabs really sends (issue: real ElevenLabs records, points 1-4, 10-12)."""

from __future__ import annotations

from typing import Any

from elevenlabs.types import ConversationHistoryErrorCommonModel

from callcheck.domain.assertions import (
    CallEvidence,
    DataCollectedExpectation,
    KeypadSentExpectation,
    MaxFirstResponseExpectation,
    MaxTurnsExpectation,
    ReachedHumanExpectation,
    TranscriptExpectation,
    evaluate,
)
from callcheck.domain.lifecycle import CallState
from callcheck.errors import UpstreamHTTPError
from callcheck.providers.elevenlabs.agent_profile import OVERRIDES_REFUSED, explain_refused_override
from callcheck.providers.elevenlabs.outbound import CALL_ID_VARIABLE, outbound_payload, seed_override
from callcheck.providers.elevenlabs.snapshot import decode_webhook, snapshot_of
from tests.real_records import conversation, failed_transfer, hang_up, ivr_call, say, tool_call


def evidence(record: dict[str, Any], state: CallState = CallState.COMPLETED) -> CallEvidence:
    snapshot = snapshot_of(record)
    return CallEvidence(state=state, turns=snapshot.turns, analysis=snapshot.analysis, facts=snapshot.facts)


# 1. A tool's result arrives in a later item, matched by request_id.


def test_a_press_and_its_later_result_are_one_sent_press() -> None:
    ev = evidence(ivr_call())
    assert [(p.digits, p.ok) for p in ev.figures.keypad] == [("2", True)]  # one press, not two
    assert evaluate(KeypadSentExpectation(digits="2"), ev).status == "pass"
    assert not any(t.text is None and not t.tool_calls for t in ev.turns)  # the results-only item is no turn


def test_a_press_whose_result_failed_is_not_sent() -> None:
    ev = evidence(ivr_call(fails=True))
    assert [(p.digits, p.ok) for p in ev.figures.keypad] == [("2", False)]
    result = evaluate(KeypadSentExpectation(digits="2"), ev)
    assert result.status == "fail"
    assert "presses that failed: 2" in result.detail


def test_a_press_with_no_result_is_unknown_never_sent() -> None:
    ev = evidence(ivr_call(answered=False))
    assert [(p.digits, p.ok) for p in ev.figures.keypad] == [("2", None)]
    result = evaluate(KeypadSentExpectation(digits="2"), ev)
    assert result.status == "fail"
    assert "no result (unknown whether sent): 2" in result.detail


def test_a_failed_transfer_is_not_a_transfer() -> None:
    record = conversation([say("agent", "Hi.", 0), *failed_transfer("tr_1", 3), *hang_up("end_1", 6)])
    record["analysis"]["data_collection_results"].pop("reached_human")
    ev = evidence(record)
    assert ev.figures.transferred is None  # nothing says a transfer happened
    transfer = next(c for t in ev.turns for c in t.tool_calls if c.kind == "transfer")
    assert transfer.status == "failed"


def test_a_tool_call_with_no_result_anywhere_is_unknown() -> None:
    record = conversation([say("agent", "Hi.", 0), tool_call("end_call", {}, "end_9", 4)], termination_reason="")
    ev = evidence(record)
    (call,) = [c for t in ev.turns for c in t.tool_calls]
    assert call.status == "unknown"
    assert ev.figures.ended_by == "unknown"  # a hang-up nobody confirmed is not evidence of who hung up


# 2. Pauses are not keys.


def test_pauses_are_not_keys_but_evidence_shows_them() -> None:
    ev = evidence(ivr_call(tones="1w2W3"))
    assert ev.figures.keypad_digits == "123"
    result = evaluate(KeypadSentExpectation(digits="12"), ev)
    assert result.status == "pass"
    assert "1w2W3" in result.evidence
    assert evaluate(KeypadSentExpectation(digits="1w2"), ev).status == "pass"  # pauses in the suite are ignored too
    assert evaluate(KeypadSentExpectation(digits="13"), ev).status == "fail"


# 3. "..." is silence.


def test_silence_is_not_a_business_turn() -> None:
    ev = evidence(ivr_call())
    silence = ev.turns[1]
    assert silence.silence and silence.text == "..."
    # The business first spoke at 5 s (the menu), not at 2 s (nothing recognised).
    assert ev.figures.first_response_s == 5
    assert ev.figures.silences == 1
    assert ev.figures.business_turns == 2 and ev.figures.turns == 4
    assert evaluate(MaxFirstResponseExpectation(seconds=3), ev).status == "fail"
    assert evaluate(MaxTurnsExpectation(turns=4), ev).status == "pass"
    assert evaluate(TranscriptExpectation(kind="transcript_contains", text="..."), ev).status == "fail"


# 4. Analysis in list form.


def test_list_form_analysis_is_read() -> None:
    ev = evidence(conversation([say("agent", "Hi.", 0), say("user", "Hello.", 2)], lists=True))
    assert ev.analysis is not None
    assert ev.analysis.criteria["goal_achieved"].result == "success"
    assert evaluate(DataCollectedExpectation(key="confirmation_number", value="AB12"), ev).status == "pass"
    assert evaluate(ReachedHumanExpectation(value=True), ev).status == "pass"


# 10. What real records carry that users want.


def test_money_cost_ring_time_error_and_warnings_are_read() -> None:
    record = conversation(
        [say("agent", "Hi.", 0)],
        status="failed",
        call_result="failed",
        error=ConversationHistoryErrorCommonModel(code=1011, reason="Internal error"),
        warnings=["The LLM was slow."],
        has_audio=False,
    )
    snapshot = snapshot_of(record)
    facts = snapshot.facts
    assert (facts.cost, facts.cost_usd) == (420, 0.0612)
    assert facts.charges == {"llm_price": 0.0112, "platform_price": 0.05, "call_charge": 400}
    assert facts.time_to_answer_s == 7
    assert (facts.error_code, facts.error_reason, facts.warnings) == (1011, "Internal error", ["The LLM was slow."])
    assert snapshot.has_audio is False and snapshot.state == CallState.FAILED
    assert evidence(record, CallState.FAILED).figures.time_to_answer_s == 7


# 5. A webhook without a usable transcript says so (tracking then reads the conversation instead).


def test_a_webhook_without_its_transcript_is_not_an_empty_conversation() -> None:
    data = ivr_call()
    del data["transcript"]  # exclude_transcript
    event = decode_webhook({"type": "post_call_transcription", "event_timestamp": 1, "data": data})
    assert event.kind == "transcript" and event.snapshot is not None
    assert event.snapshot.has_transcript is False
    assert event.user_id == "call-1"
    full = decode_webhook({"type": "post_call_transcription", "event_timestamp": 1, "data": ivr_call()})
    assert full.snapshot is not None and full.snapshot.has_transcript is True


# 11. Override refusals, at dial time or at the conversation's start.


def test_an_override_refused_at_the_start_is_recognised() -> None:
    reason = "Override for field 'conversation.max_duration_seconds' is not allowed by config."
    record = conversation(
        [],
        status="failed",
        call_result="failed",
        termination_reason=reason,
        error=ConversationHistoryErrorCommonModel(code=1008, reason=reason),
        has_audio=False,
    )
    assert snapshot_of(record).facts.override_refused is True
    assert snapshot_of(ivr_call()).facts.override_refused is False


def test_an_override_refused_at_dial_time_names_the_fix() -> None:
    error = UpstreamHTTPError(
        400, "Override for field 'agent.prompt.prompt' is not allowed by the agent's configuration."
    )
    explained = explain_refused_override(error)
    assert OVERRIDES_REFUSED[1:] in explained.detail


# 9 and 12. The outbound body: the call's cap and our call id, both ways.


def test_the_outbound_body_caps_the_call_and_tags_it_twice() -> None:
    payload = outbound_payload("a", "p", "+15551234567", seed_override("P", "F"), "call-7", max_duration_s=299.5)
    data = payload["conversation_initiation_client_data"]
    assert data["user_id"] == "call-7"
    assert data["dynamic_variables"] == {CALL_ID_VARIABLE: "call-7"}
    override = data["conversation_config_override"]
    assert override == {
        "agent": {"prompt": {"prompt": "P"}, "first_message": "F"},
        "conversation": {"max_duration_seconds": 300},
    }
