"""Journey figures from literal ElevenLabs conversations (contract §4.1, Appendix J): who ended the call, whether a
human was reached, a transfer happened or a voicemail answered — from tools, metadata and analysis."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callcheck.domain.evidence import Journey, journey_for
from callcheck.providers.elevenlabs import wire


def tool_turn(
    name: str, params: dict[str, Any], result: dict[str, Any], *, at: int, is_error: bool = False
) -> dict[str, Any]:
    """An agent (our caller) turn calling a system tool, with its result in the same item, as in Appendix J."""
    return {
        "role": "agent",
        "message": None,
        "time_in_call_secs": at,
        "tool_calls": [
            {
                "type": "system",
                "request_id": f"{name}_1",
                "tool_name": name,
                "params_as_json": json.dumps(params),
                "tool_has_been_called": True,
            }
        ],
        "tool_results": [
            {
                "type": "system",
                "request_id": f"{name}_1",
                "tool_name": name,
                "result_value": json.dumps(result),
                "is_error": is_error,
                "tool_has_been_called": True,
                "result": result,
            }
        ],
    }


GREETING = {"role": "agent", "message": "Hi, I'd like to book a table.", "time_in_call_secs": 0}
VOICEMAIL_GREETING = {
    "role": "user",
    "message": "Hi, you've reached us. Please leave a message after the tone.",
    "time_in_call_secs": 2,
}
VOICEMAIL_TOOL_TURN = tool_turn(
    "voicemail_detection",
    {"reason": "A voicemail greeting answered."},
    {"result_type": "voicemail_detection_success", "status": "success", "voicemail_message": None},
    at=9,
)
TRANSFER_TOOL_TURN = tool_turn(
    "transfer_to_number",
    {"transfer_number": "+15550001111", "client_message": "Transferring you.", "agent_message": "A caller."},
    {
        "result_type": "transfer_to_number_twilio_success",
        "status": "success",
        "transfer_number": "+15550001111",
        "agent_message": "A caller.",
        "conference_name": "conf_1",
    },
    at=6,
)


def conversation(
    transcript: list[dict[str, Any]],
    *,
    call_result: str | None = "answered",
    termination_reason: str = "",
    status: str = "done",
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A GET conversation answer; `data` is the analysis' data_collection_results values (None: no analysis)."""
    return {
        "agent_id": "agent_1",
        "conversation_id": "conv_1",
        "status": status,
        "transcript": transcript,
        "metadata": {
            "start_time_unix_secs": 1700000000,
            "call_duration_secs": 10,
            "termination_reason": termination_reason,
            "phone_call": {"type": "twilio", "call_sid": "CA1", "call_result": call_result},
        },
        "analysis": None
        if data is None
        else {
            "call_successful": "failure",
            "transcript_summary": "…",
            "data_collection_results": {
                key: {"data_collection_id": key, "value": value, "rationale": "r"} for key, value in data.items()
            },
        },
        "has_audio": False,
    }


def journey_of(raw: dict[str, Any]) -> Journey:
    return journey_for(wire.transcript_of(raw), wire.analysis_of(raw), wire.facts_of(raw))


def test_the_voicemail_tool_is_the_caller_ending_the_call() -> None:
    raw = conversation(
        [GREETING, VOICEMAIL_GREETING, VOICEMAIL_TOOL_TURN],
        call_result="voicemail",
        termination_reason="voicemail_detection tool was called.",
    )
    journey = journey_of(raw)
    assert (journey.ended_by, journey.voicemail) == ("caller", True)
    # No analysis at all: a voicemail answered, so nobody was reached and nothing was transferred.
    assert (journey.reached_human, journey.transferred) == (False, False)


@pytest.mark.parametrize(
    ("reason", "ended_by"),
    [
        ("voicemail_detection tool was called.", "caller"),
        ("end_call tool was called.", "caller"),
        ("Call ended by remote party", "business"),
        ("Call initiation failed: busy", "unknown"),
        ("", "unknown"),
    ],
)
def test_who_ended_the_call_from_the_termination_reason_alone(reason: str, ended_by: str) -> None:
    # Transcript without tool calls (say exclude_transcript was on): the metadata still tells.
    assert journey_of(conversation([GREETING], termination_reason=reason)).ended_by == ended_by


def test_a_voicemail_tool_that_failed_neither_ends_the_call_nor_finds_a_voicemail() -> None:
    failed = tool_turn("voicemail_detection", {"reason": "r"}, {"status": "error"}, at=9, is_error=True)
    journey = journey_of(conversation([GREETING, failed], termination_reason="Call ended by remote party"))
    assert (journey.ended_by, journey.voicemail) == ("business", False)
    assert (journey.reached_human, journey.transferred) == (None, None)


def test_a_voicemail_said_only_by_the_termination_reason_counts() -> None:
    journey = journey_of(
        conversation([GREETING], call_result=None, termination_reason="voicemail_detection tool was called.")
    )
    assert (journey.voicemail, journey.ended_by, journey.reached_human) == (True, "caller", False)


@pytest.mark.parametrize("name", ["transfer_to_number", "transfer_to_agent"])
def test_a_successful_transfer_tool_means_transferred(name: str) -> None:
    turn = {**TRANSFER_TOOL_TURN}
    turn["tool_calls"] = [{**TRANSFER_TOOL_TURN["tool_calls"][0], "tool_name": name}]
    turn["tool_results"] = [{**TRANSFER_TOOL_TURN["tool_results"][0], "tool_name": name}]
    journey = journey_of(conversation([GREETING, turn]))
    assert journey.transferred is True
    # Where a transfer leads (a person, an agent, a queue) is not known from the tool: the analysis would say.
    assert journey.reached_human is None


def test_a_failed_transfer_is_not_a_transfer() -> None:
    failed = tool_turn(
        "transfer_to_number",
        {"transfer_number": "+15550001111"},
        {"result_type": "transfer_to_number_error", "status": "error", "error": "busy"},
        at=6,
        is_error=True,
    )
    assert journey_of(conversation([GREETING, failed])).transferred is None


@pytest.mark.parametrize("call_result", ["busy", "no_answer", "failed"])
def test_an_unanswered_call_reached_nobody(call_result: str) -> None:
    raw = conversation([], call_result=call_result, status="failed", termination_reason="Call initiation failed")
    # The analysis of an unanswered call collects nothing (values null): the metadata decides.
    raw_with_nulls = conversation(
        [], call_result=call_result, status="failed", data={"reached_human": None, "transferred": None}
    )
    for journey in (journey_of(raw), journey_of(raw_with_nulls)):
        assert (journey.reached_human, journey.transferred, journey.ended_by) == (False, False, "unknown")


def test_the_analysis_stays_a_source() -> None:
    # Analysis says so: kept, even where tools and metadata say nothing (an answered call with no tools).
    said = journey_of(conversation([GREETING], data={"reached_human": True, "transferred": "true"}))
    assert (said.reached_human, said.transferred) == (True, True)
    # Neither analysis nor tools nor metadata say: unknown, not guessed.
    silent = journey_of(conversation([GREETING]))
    assert (silent.reached_human, silent.transferred) == (None, None)
    # The analysis answers first; tools fill only what it leaves open.
    mixed = journey_of(conversation([GREETING, TRANSFER_TOOL_TURN], data={"transferred": False}))
    assert mixed.transferred is False


def test_end_call_by_the_caller_still_counts() -> None:
    end_call = tool_turn("end_call", {"reason": "done"}, {"result_type": "end_call_success", "status": "success"}, at=6)
    journey = journey_of(conversation([GREETING, end_call], termination_reason="Call ended by remote party"))
    # The tool result is firmer evidence than free-text metadata.
    assert journey.ended_by == "caller"
