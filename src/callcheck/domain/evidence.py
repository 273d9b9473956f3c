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

# What a tool the caller used did, in callcheck's words (the provider maps its own tool names onto these).
ToolKind = Literal["keypad", "hang_up", "voicemail", "transfer", "other"]
# Whether the tool's result said it worked; "unknown" when no result was reported (never counted as done).
ToolStatus = Literal["succeeded", "failed", "unknown"]
# How a call that connected to nothing ended (callcheck's own words for the line's answer).
CallResult = Literal["answered", "voicemail", "busy", "no_answer", "failed"]
NOT_CONNECTED = frozenset({"busy", "no_answer", "failed"})
# Keypad characters that are pauses, not keys (0.5 s and 1 s): shown in evidence, never matched as digits.
KEYPAD_PAUSES = "wW"


def keys_of(tones: str) -> str:
    """The keys of a keypad sequence, its pauses left out: `1w2` -> `12`."""
    return "".join(c for c in tones if c not in KEYPAD_PAUSES)


class ToolCall(BaseModel):
    """A tool the caller used in a turn (a keypad press, hanging up...) and what came of it.

    The call and its result may arrive in different transcript items; the provider joins them (by request id)
    before they reach here, so `status` is the whole story: a call whose result never came is "unknown".
    """

    name: str
    kind: ToolKind = "other"
    params: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    is_error: bool | None = None
    status: ToolStatus = "unknown"
    keys: str | None = None  # a keypad press: what was sent, pauses included (e.g. "1w2")
    request_id: str | None = None


class Turn(BaseModel):
    """One turn of the conversation. `caller` is our AI caller; `business` is the line under test."""

    speaker: Speaker
    text: str | None = None
    time_in_call_secs: float = 0
    tool_calls: list[ToolCall] = Field(default_factory=list)
    # Nothing was recognised (the provider's placeholder for silence): not speech, not a turn of the conversation.
    silence: bool = False

    @property
    def spoken(self) -> bool:
        """True when something was said in this turn (not silence, not only a tool call)."""
        return bool(self.text and self.text.strip()) and not self.silence


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
    """Metadata of the call from the provider (ElevenLabs), in callcheck's words."""

    status: str | None = None  # the provider's own conversation status, as it said it
    start_time_unix_secs: int | None = None
    accepted_time_unix_secs: int | None = None  # when the line picked up (the end of ringing)
    duration_secs: float | None = None
    cost: float | None = None  # credits
    cost_usd: float | None = None  # money, when the provider says it
    charges: dict[str, float] = Field(default_factory=dict)  # the provider's breakdown (LLM price, call charge...)
    termination_reason: str | None = None
    call_result: str | None = None  # answered | voicemail | busy | no_answer | failed (CallResult)
    call_sid: str | None = None
    user_id: str | None = None
    has_audio: bool = False
    error_code: int | None = None  # what the provider reported as the call's error
    error_reason: str | None = None
    warnings: list[str] = Field(default_factory=list)
    # Read by the provider from its termination reason: who hung up, and whether a voicemail tool ended the call.
    ended_by: Literal["caller", "business", "unknown"] = "unknown"
    voicemail_ended: bool = False
    # The provider refused a per-call override (at dial time, or by ending the conversation at its start).
    override_refused: bool = False

    @property
    def time_to_answer_s(self) -> float | None:
        """Seconds of ringing before the line picked up, when known."""
        if self.accepted_time_unix_secs is None or self.start_time_unix_secs is None:
            return None
        return float(max(0, self.accepted_time_unix_secs - self.start_time_unix_secs))


class KeypadPress(BaseModel):
    """What the caller sent on the keypad (pauses `w`/`W` included) and whether the tool reported success (None:
    no result was reported, so whether it reached the line is unknown)."""

    digits: str
    time_in_call_secs: float
    ok: bool | None = None

    @property
    def keys(self) -> str:
        """The keys of this press, without its pauses."""
        return keys_of(self.digits)


class Journey(BaseModel):
    """The customer's view of the line, computed from the transcript, analysis and metadata."""

    first_response_s: float | None = None  # time until the business first spoke (silence is not speaking)
    time_to_answer_s: float | None = None  # ringing time until the line picked up
    turns: int = 0  # turns with something said, both sides (silences not counted)
    silences: int = 0  # business turns where nothing was recognised
    business_turns: int = 0
    caller_turns: int = 0
    keypad: list[KeypadPress] = Field(default_factory=list)
    reached_human: bool | None = None  # None: nothing said so either way
    transferred: bool | None = None
    voicemail: bool = False
    ended_by: Literal["caller", "business", "unknown"] = "unknown"
    duration_secs: float | None = None
    cost: float | None = None  # credits
    cost_usd: float | None = None

    @property
    def keypad_digits(self) -> str:
        """Every key that was sent and reported as sent, in order (pauses and unconfirmed presses left out)."""
        return "".join(press.keys for press in self.keypad if press.ok is True)


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "0"}:
        return False
    return None


class _ToolsSeen(BaseModel):
    """What the caller's tools did during a call, from their results."""

    keypad: list[KeypadPress] = Field(default_factory=list)
    voicemail: bool = False  # the voicemail tool ran
    transferred: bool = False  # a transfer ran
    caller_ended: bool = False  # the caller hung up (or left a voicemail and hung up)


def _tools_seen(turns: list[Turn]) -> _ToolsSeen:
    seen = _ToolsSeen()
    for turn in turns:
        for call in turn.tool_calls:
            if call.kind == "keypad":
                ok = None if call.status == "unknown" else call.status == "succeeded"
                seen.keypad.append(KeypadPress(digits=call.keys or "", time_in_call_secs=turn.time_in_call_secs, ok=ok))
                continue
            if call.status != "succeeded":
                continue
            seen.voicemail = seen.voicemail or call.kind == "voicemail"
            seen.transferred = seen.transferred or call.kind == "transfer"
            seen.caller_ended = seen.caller_ended or (
                call.kind in ("hang_up", "voicemail") and turn.speaker == "caller"
            )
    return seen


def _data_bool(analysis: Analysis | None, key: str) -> bool | None:
    data = analysis.data if analysis else {}
    return _as_bool(data[key].value) if key in data else None


def journey_for(turns: list[Turn], analysis: Analysis | None, facts: CallFacts) -> Journey:
    """The journey figures of a call from its evidence.

    A tool counts only when its result said it worked: a keypad press, a transfer or a hang-up with no result is
    not evidence that it happened (the press is listed, its `ok` None).
    """
    spoken = [t for t in turns if t.spoken]
    business = [t for t in spoken if t.speaker == "business"]
    seen = _tools_seen(turns)
    voicemail = facts.call_result == "voicemail" or facts.voicemail_ended or seen.voicemail
    ended_by: Literal["caller", "business", "unknown"] = "caller" if seen.caller_ended else facts.ended_by
    # ElevenLabs' analysis is one source; where it says nothing, what the tools did and the metadata say decide.
    # Nobody picked up, or a voicemail did: no human was reached and nothing was transferred. Nothing short of
    # the analysis says whoever answered a connected call was a person.
    no_one = facts.call_result in NOT_CONNECTED or voicemail
    reached = _data_bool(analysis, DATA_REACHED_HUMAN)
    if reached is None and no_one:
        reached = False
    transferred = _data_bool(analysis, DATA_TRANSFERRED)
    if transferred is None:
        transferred = True if seen.transferred else (False if no_one else None)
    keypad = seen.keypad
    return Journey(
        first_response_s=business[0].time_in_call_secs if business else None,
        time_to_answer_s=facts.time_to_answer_s,
        turns=len(spoken),
        silences=sum(1 for t in turns if t.silence and t.speaker == "business"),
        business_turns=len(business),
        caller_turns=len(spoken) - len(business),
        keypad=keypad,
        reached_human=reached,
        transferred=transferred,
        voicemail=voicemail,
        ended_by=ended_by,
        duration_secs=facts.duration_secs,
        cost=facts.cost,
        cost_usd=facts.cost_usd,
    )
