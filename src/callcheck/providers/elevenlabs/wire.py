"""Pure parsing of ElevenLabs JSON (shared/contracts/elevenlabs.md). No I/O; unknown fields are ignored.

ElevenLabs' response models accept missing and extra fields (contract §0), so every reader here tolerates absent
keys, nulls and values of an unexpected type instead of failing on them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from callcheck.domain.evidence import (
    Analysis,
    CallFacts,
    CriterionResult,
    DataResult,
    ToolCall,
    ToolStatus,
    Turn,
)
from callcheck.providers.elevenlabs.tools import ENDING_TOOLS, VOICEMAIL_TOOL, kind_of
from callcheck.text import one_line


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    return float(value) if isinstance(value, int | float) else None


def error_message(body: Any, fallback: str) -> str:
    """One readable line from an ElevenLabs error body, whatever its shape (contract §9).

    `detail` may be an object with `message` (current and legacy formats), a plain string, or — for 422 — a list of
    pydantic validation items `{loc, msg, type}`. A body that is not JSON arrives here as text; an HTML page (a proxy's
    error page, say) says nothing readable, so the fallback (the reason phrase) stands for it.
    """
    return one_line(_error_text(body, fallback))


def _error_text(body: Any, fallback: str) -> str:
    if isinstance(body, str):
        looks_like_html = body.lstrip()[:1] == "<"
        return body if body.strip() and not looks_like_html else fallback
    detail = _dict(body).get("detail", body if isinstance(body, list) else None)
    text = _detail_text(detail)
    if text is not None:
        return text
    message = _str(_dict(body).get("message"))
    return message.strip() if message and message.strip() else fallback


def _detail_text(detail: Any) -> str | None:
    """What an error's `detail` says (a string, an object with a message, or 422's validation items), if anything."""
    if isinstance(detail, str):
        return detail.strip() or None
    if isinstance(detail, dict):
        for key in ("message", "msg", "status", "code"):
            text = _str(detail.get(key))
            if text and text.strip():
                return text.strip()
        return None
    if isinstance(detail, list):
        parts = [_validation_item(item) for item in detail if isinstance(item, dict | str)]
        return "; ".join(parts) if parts else None
    return None


def _validation_item(item: dict[str, Any] | str) -> str:
    """One pydantic validation item `{loc, msg, type}` as `field.path: message`."""
    if isinstance(item, str):
        return item
    loc = ".".join(str(p) for p in _list(item.get("loc")) if p != "body")
    msg = _str(item.get("msg")) or "invalid"
    return f"{loc}: {msg}" if loc else msg


def conversation_ids_of(page: dict[str, Any]) -> list[str]:
    """The conversation ids of a conversations-list page (contract §4.2), newest first as listed."""
    return [
        str(item["conversation_id"])
        for item in _list(page.get("conversations"))
        if isinstance(item, dict) and isinstance(item.get("conversation_id"), str) and item["conversation_id"]
    ]


def call_sid_of(response: dict[str, Any]) -> str | None:
    """The Twilio call SID of an outbound-call answer: `callSid` on the wire (contract §2.2), `call_sid` tolerated."""
    return _str(response.get("callSid")) or _str(response.get("call_sid"))


def phone_number_of(numbers: list[dict[str, Any]], phone_number_id: str) -> str | None:
    """The E.164 number of the phone number with this id in GET /v1/convai/phone-numbers' list (contract §8)."""
    for item in numbers:
        if item.get("phone_number_id") == phone_number_id:
            return _str(item.get("phone_number"))
    return None


# A `user` item whose message is this is nothing recognised (silence), as in the real record (contract README).
SILENCE = "..."


def _params(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _result_value(result: dict[str, Any]) -> dict[str, Any]:
    raw = result.get("result_value")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"value": raw}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}


def _status(result: dict[str, Any] | None) -> ToolStatus:
    """Whether a tool result says the tool worked: `is_error` first, then the typed result's own status."""
    if result is None:
        return "unknown"
    body = _dict(result.get("result")) or _result_value(result)
    if result.get("is_error") is True or body.get("status") == "error":
        return "failed"
    if str(body.get("result_type", "")).endswith("_error"):
        return "failed"
    # `is_error` is a required boolean on every result model of the SDK; a result without it says nothing.
    return "succeeded" if result.get("is_error") is False else "unknown"


def tool_results_of(items: list[Any]) -> dict[str, dict[str, Any]]:
    """Every tool result of a transcript by request_id, whichever item carries it (real records put a call's
    result in a later item than the call)."""
    results: dict[str, dict[str, Any]] = {}
    for item in items:
        for raw in _list(_dict(item).get("tool_results")):
            request_id = _str(_dict(raw).get("request_id"))
            if request_id and request_id not in results:
                results[request_id] = raw
    return results


def tool_calls_of(item: dict[str, Any], results: dict[str, dict[str, Any]] | None = None) -> list[ToolCall]:
    """The tool calls of one transcript item, each joined to its result by request_id.

    `results` are the whole transcript's (tool_results_of); without them only the item's own results are looked
    at. A result alone (its call in another item) is not a call of this item: it is counted once, with its call.
    """
    own = results if results is not None else tool_results_of([item])
    calls: list[ToolCall] = []
    for raw in _list(item.get("tool_calls")):
        if not isinstance(raw, dict):
            continue
        name = _str(raw.get("tool_name")) or "unknown"
        request_id = _str(raw.get("request_id"))
        params = _params(raw.get("params_as_json"))
        result = own.get(request_id) if request_id else None
        kind = kind_of(name)
        tones = params.get("dtmf_tones")
        calls.append(
            ToolCall(
                name=name,
                kind=kind,
                params=params,
                result=(_dict(result.get("result")) or _result_value(result)) if result else None,
                is_error=result.get("is_error") if result and isinstance(result.get("is_error"), bool) else None,
                status=_status(result),
                keys=str(tones) if kind == "keypad" and isinstance(tones, str | int) else None,
                request_id=request_id,
            )
        )
    return calls


def has_transcript(conversation: dict[str, Any]) -> bool:
    """Whether a conversation record carries a usable transcript.

    A post-call webhook can leave it out (`exclude_transcript`) or send it in another format (`transcript_format`,
    contract README): then there is no list, or an empty one while the record counts messages.
    """
    items = conversation.get("transcript")
    if not isinstance(items, list):
        return False
    if items:
        return True
    counts = [conversation.get("user_message_count"), conversation.get("agent_message_count")]
    return not any(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts)


def transcript_of(conversation: dict[str, Any]) -> list[Turn]:
    """The transcript in callcheck's words: ElevenLabs' `agent` is our caller, its `user` the business.

    Items that only carry tool results (their calls sit in an earlier item) are not turns: their results are
    joined to their calls. A `user` item saying "..." is silence.
    """
    items = [item for item in _list(conversation.get("transcript")) if isinstance(item, dict)]
    results = tool_results_of(items)
    turns: list[Turn] = []
    for item in items:
        text = _str(item.get("message"))
        calls = tool_calls_of(item, results)
        if not calls and not (text and text.strip()) and _list(item.get("tool_results")):
            continue  # a results-only item
        role = item.get("role")
        turns.append(
            Turn(
                speaker="caller" if role == "agent" else "business",
                text=text,
                time_in_call_secs=_num(item.get("time_in_call_secs")) or 0,
                tool_calls=calls,
                silence=role == "user" and (text or "").strip() == SILENCE,
            )
        )
    return turns


def _criterion(value: Any) -> CriterionResult:
    return CriterionResult(result=_str(value.get("result")) or "unknown", rationale=_str(value.get("rationale")))


def _data(value: Any) -> DataResult:
    return DataResult(value=value.get("value"), rationale=_str(value.get("rationale")))


def analysis_of(conversation: dict[str, Any]) -> Analysis | None:
    """ElevenLabs' analysis, or None when it has none yet.

    Criteria and data items come as dicts keyed by id or as lists (`*_list`, each item naming its id); either
    may be the one filled, so both are read, the dict winning for an id in both.
    """
    raw = conversation.get("analysis")
    if not isinstance(raw, dict):
        return None
    criteria: dict[str, CriterionResult] = {}
    for value in _list(raw.get("evaluation_criteria_results_list")):
        if isinstance(value, dict) and _str(value.get("criteria_id")):
            criteria[str(value["criteria_id"])] = _criterion(value)
    for key, value in _dict(raw.get("evaluation_criteria_results")).items():
        if isinstance(value, dict):
            criteria[str(key)] = _criterion(value)
    data: dict[str, DataResult] = {}
    for value in _list(raw.get("data_collection_results_list")):
        if isinstance(value, dict) and _str(value.get("data_collection_id")):
            data[str(value["data_collection_id"])] = _data(value)
    for key, value in _dict(raw.get("data_collection_results")).items():
        if isinstance(value, dict):
            data[str(key)] = _data(value)
    return Analysis(
        call_successful=_str(raw.get("call_successful")),
        summary=_str(raw.get("transcript_summary")),
        title=_str(raw.get("call_summary_title")),
        criteria=criteria,
        data=data,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# Twilio's call results (contract §4.1 phone_call.call_result) in callcheck's words.
_CALL_RESULTS = {"no-answer": "no_answer"}

# The live error text of a refused per-call override is UNCONFIRMED (contract README): the sandbox's wording and
# the docs' "override ... not enabled/allowed" (§6.5). Matched loosely: an override being refused.
REFUSED_OVERRIDE = re.compile(
    r"override.*\b(not allowed|not enabled|disabled|not permitted)\b", re.IGNORECASE | re.DOTALL
)


def ended_by_reason(reason: str) -> Literal["caller", "business", "unknown"]:
    """Who hung up, per a termination_reason; "unknown" for anything not recognised."""
    # Free text (the SDK types it as str): "end_call tool was called." is seen in a real record; the others are
    # phrases from ElevenLabs' docs and the sandbox. Anything else stays "unknown" rather than guessed.
    lowered = reason.lower()
    if "remote party" in lowered or "user ended" in lowered or "client disconnected" in lowered:
        return "business"
    if any(tool in lowered for tool in ENDING_TOOLS):
        return "caller"
    return "unknown"


def facts_of(conversation: dict[str, Any]) -> CallFacts:
    """The metadata of a conversation that callcheck keeps."""
    metadata = _dict(conversation.get("metadata"))
    phone = _dict(metadata.get("phone_call"))
    charging = _dict(metadata.get("charging"))
    error = _dict(metadata.get("error"))
    reason = _str(metadata.get("termination_reason"))
    call_result = _str(phone.get("call_result"))
    charges = {
        key: float(value)
        for key in ("llm_price", "platform_price", "llm_charge", "call_charge", "platform_charge")
        if (value := _num(charging.get(key))) is not None
    }
    cost_usd = _num(metadata.get("cost_fiat"))
    if cost_usd is None and ("llm_price" in charges or "platform_price" in charges):
        cost_usd = charges.get("llm_price", 0.0) + charges.get("platform_price", 0.0)
    error_reason = _str(error.get("reason"))
    refused = any(REFUSED_OVERRIDE.search(text or "") for text in (error_reason, reason))
    return CallFacts(
        status=_str(conversation.get("status")),
        start_time_unix_secs=_int(metadata.get("start_time_unix_secs")),
        accepted_time_unix_secs=_int(metadata.get("accepted_time_unix_secs")),
        duration_secs=_num(metadata.get("call_duration_secs")),
        cost=_num(metadata.get("cost")),
        cost_usd=cost_usd,
        charges=charges,
        termination_reason=reason,
        call_result=_CALL_RESULTS.get(call_result or "", call_result),
        call_sid=_str(phone.get("call_sid")),
        user_id=_str(conversation.get("user_id")),
        has_audio=conversation.get("has_audio") is True,
        error_code=_int(error.get("code")),
        error_reason=error_reason,
        warnings=[w for w in _list(metadata.get("warnings")) if isinstance(w, str)],
        ended_by=ended_by_reason(reason or ""),
        voicemail_ended=VOICEMAIL_TOOL in (reason or "").lower(),
        override_refused=refused,
    )
