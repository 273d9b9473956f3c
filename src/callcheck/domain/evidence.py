"""What a finished call left behind, in callcheck's words: transcript turns, analysis, journey figures.

Vendor JSON is turned into these models by `callcheck.providers.elevenlabs.wire`; everything downstream
(API, page, assertions, reports) reads only these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Speaker = Literal["caller", "business"]

# Evaluation criteria and data-collection keys that `callcheck agent setup` installs on the caller agent and that
# journey figures and verdicts read. One place, so setup and judging cannot disagree on a name.
CRITERION_GOAL_ACHIEVED = "goal_achieved"
DATA_REACHED_HUMAN = "reached_human"
DATA_TRANSFERRED = "transferred"
DATA_CONFIRMATION_NUMBER = "confirmation_number"

# Built-in system tools (contract §6.3) whose calls and results say something about the journey.
KEYPAD_TOOL = "play_keypad_touch_tone"
END_CALL_TOOL = "end_call"
VOICEMAIL_TOOL = "voicemail_detection"  # hangs up, after leaving the agent's voicemail_message if it has one
TRANSFER_TO_NUMBER_TOOL = "transfer_to_number"
TRANSFER_TO_AGENT_TOOL = "transfer_to_agent"
# Tools with which the caller ends the call when they succeed; ElevenLabs then gives the termination_reason
# "<tool> tool was called." (UNCONFIRMED wording, contract §12.6; the sandbox's too).
ENDING_TOOLS = frozenset({END_CALL_TOOL, VOICEMAIL_TOOL})
TRANSFER_TOOLS = frozenset({TRANSFER_TO_NUMBER_TOOL, TRANSFER_TO_AGENT_TOOL})
# Twilio call results of a call nobody (and no machine) picked up (contract §4.1 phone_call.call_result).
NOT_CONNECTED = frozenset({"busy", "no_answer", "no-answer", "failed"})


class ToolCall(BaseModel):
    """A tool the caller used in a turn (a keypad press, hanging up...) and what came of it."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    is_error: bool | None = None


class Turn(BaseModel):
    """One turn of the conversation. `caller` is our AI caller; `business` is the line under test."""

    speaker: Speaker
    text: str | None = None
    time_in_call_secs: float = 0
    tool_calls: list[ToolCall] = Field(default_factory=list)


class CriterionResult(BaseModel):
    """One evaluation criterion as ElevenLabs judged it."""

    result: str  # success | failure | unknown
    rationale: str | None = None


class DataResult(BaseModel):
    """One data-collection item as ElevenLabs extracted it."""

    value: Any = None
    rationale: str | None = None


class Analysis(BaseModel):
    """ElevenLabs' post-call analysis."""

    call_successful: str | None = None  # success | failure | unknown
    summary: str | None = None
    title: str | None = None
    criteria: dict[str, CriterionResult] = Field(default_factory=dict)
    data: dict[str, DataResult] = Field(default_factory=dict)


class CallFacts(BaseModel):
    """Metadata of the call from ElevenLabs."""

    status: str | None = None  # ElevenLabs' own conversation status
    start_time_unix_secs: int | None = None
    duration_secs: float | None = None
    cost: float | None = None
    termination_reason: str | None = None
    call_result: str | None = None  # answered | voicemail | busy | no_answer | failed
    call_sid: str | None = None
    user_id: str | None = None
    has_audio: bool = False


class KeypadPress(BaseModel):
    """Digits the caller sent on the keypad and whether the tool reported success (None when not reported)."""

    digits: str
    time_in_call_secs: float
    ok: bool | None = None


class Journey(BaseModel):
    """The customer's view of the line, computed from the transcript, analysis and metadata."""

    first_response_s: float | None = None  # time until the business first spoke
    turns: int = 0  # turns with something said, both sides
    business_turns: int = 0
    caller_turns: int = 0
    keypad: list[KeypadPress] = Field(default_factory=list)
    reached_human: bool | None = None  # None: nothing said so either way
    transferred: bool | None = None
    voicemail: bool = False
    ended_by: Literal["caller", "business", "unknown"] = "unknown"
    duration_secs: float | None = None
    cost: float | None = None

    @property
    def keypad_digits(self) -> str:
        """Every digit sent, in order."""
        return "".join(press.digits for press in self.keypad)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "0"}:
        return False
    return None


def journey_for(turns: list[Turn], analysis: Analysis | None, facts: CallFacts) -> Journey:
    """The journey figures of a call from its evidence."""
    spoken = [t for t in turns if t.text and t.text.strip()]
    business = [t for t in spoken if t.speaker == "business"]
    keypad: list[KeypadPress] = []
    ended_by: Literal["caller", "business", "unknown"] = "unknown"
    voicemail = facts.call_result == "voicemail"
    transfer_seen = False
    for turn in turns:
        for call in turn.tool_calls:
            if call.name == KEYPAD_TOOL:
                ok = None if call.result is None and call.is_error is None else not _tool_failed(call)
                keypad.append(
                    KeypadPress(
                        digits=str(call.params.get("dtmf_tones", "")),
                        time_in_call_secs=turn.time_in_call_secs,
                        ok=ok,
                    )
                )
                continue
            if _tool_failed(call):
                continue
            if call.name == VOICEMAIL_TOOL:
                voicemail = True
            elif call.name in TRANSFER_TOOLS:
                transfer_seen = True
            if call.name in ENDING_TOOLS and turn.speaker == "caller":
                ended_by = "caller"
    reason = (facts.termination_reason or "").lower()
    if VOICEMAIL_TOOL in reason:
        voicemail = True
    if ended_by == "unknown":
        ended_by = _ended_by_reason(reason)
    # ElevenLabs' analysis is one source; where it says nothing, what the tools did and the metadata say decide.
    # Nobody picked up, or a voicemail did: no human was reached and nothing was transferred. Nothing short of
    # the analysis says whoever answered a connected call was a person.
    no_one = facts.call_result in NOT_CONNECTED or voicemail
    data = analysis.data if analysis else {}
    reached = _as_bool(data[DATA_REACHED_HUMAN].value) if DATA_REACHED_HUMAN in data else None
    if reached is None and no_one:
        reached = False
    transferred = _as_bool(data[DATA_TRANSFERRED].value) if DATA_TRANSFERRED in data else None
    if transferred is None:
        transferred = True if transfer_seen else (False if no_one else None)
    return Journey(
        first_response_s=business[0].time_in_call_secs if business else None,
        turns=len(spoken),
        business_turns=len(business),
        caller_turns=len(spoken) - len(business),
        keypad=keypad,
        reached_human=reached,
        transferred=transferred,
        voicemail=voicemail,
        ended_by=ended_by,
        duration_secs=facts.duration_secs,
        cost=facts.cost,
    )


def _ended_by_reason(reason: str) -> Literal["caller", "business", "unknown"]:
    """Who hung up, per a (lower-cased) termination_reason; "unknown" for anything not recognised."""
    # UNCONFIRMED wording (contract §12.6): ElevenLabs' termination_reason is free text; these phrases are the ones
    # seen in its docs and the sandbox. Anything else stays "unknown" rather than guessed.
    if "remote party" in reason or "user ended" in reason or "client disconnected" in reason:
        return "business"
    if any(tool in reason for tool in ENDING_TOOLS):
        return "caller"
    return "unknown"


def _tool_failed(call: ToolCall) -> bool:
    if call.is_error:
        return True
    result = call.result or {}
    return result.get("status") == "error" or str(result.get("result_type", "")).endswith("_error")
