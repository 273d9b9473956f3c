"""Pure parsing of ElevenLabs JSON (shared/contracts/elevenlabs.md). No I/O; unknown fields are ignored.

ElevenLabs' response models accept missing and extra fields (contract §0), so every reader here tolerates absent
keys, nulls and values of an unexpected type instead of failing on them.
"""

from __future__ import annotations

import json
from typing import Any

from callcheck.domain.evidence import (
    Analysis,
    CallFacts,
    CriterionResult,
    DataResult,
    ToolCall,
    Turn,
)
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
    if isinstance(detail, str) and detail.strip():
        return detail.strip()
    if isinstance(detail, dict):
        for key in ("message", "msg", "status", "code"):
            text = _str(detail.get(key))
            if text and text.strip():
                return text.strip()
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in _list(item.get("loc")) if p != "body")
                msg = _str(item.get("msg")) or "invalid"
                parts.append(f"{loc}: {msg}" if loc else msg)
            elif isinstance(item, str):
                parts.append(item)
        if parts:
            return "; ".join(parts)
    message = _str(_dict(body).get("message"))
    return message.strip() if message and message.strip() else fallback


def call_sid_of(response: dict[str, Any]) -> str | None:
    """The Twilio call SID of an outbound-call answer: `callSid` on the wire (contract §2.2), `call_sid` tolerated."""
    return _str(response.get("callSid")) or _str(response.get("call_sid"))


def phone_number_of(numbers: list[dict[str, Any]], phone_number_id: str) -> str | None:
    """The E.164 number of the phone number with this id in GET /v1/convai/phone-numbers' list (contract §8)."""
    for item in numbers:
        if item.get("phone_number_id") == phone_number_id:
            return _str(item.get("phone_number"))
    return None


def tool_calls_of(item: dict[str, Any]) -> list[ToolCall]:
    """The tool calls of one transcript item, each joined to its result by request_id."""
    results = {_str(r.get("request_id")): r for r in _list(item.get("tool_results")) if isinstance(r, dict)}
    calls: list[ToolCall] = []
    for raw in _list(item.get("tool_calls")):
        if not isinstance(raw, dict):
            continue
        params_raw = raw.get("params_as_json")
        params: dict[str, Any] = {}
        if isinstance(params_raw, str):
            try:
                parsed = json.loads(params_raw)
            except ValueError:
                parsed = {}
            params = parsed if isinstance(parsed, dict) else {}
        elif isinstance(params_raw, dict):
            params = params_raw
        result = results.pop(_str(raw.get("request_id")), None)
        calls.append(
            ToolCall(
                name=_str(raw.get("tool_name")) or "unknown",
                params=params,
                result=_dict(result.get("result")) or _result_value(result) if result else None,
                is_error=result.get("is_error") if result and isinstance(result.get("is_error"), bool) else None,
            )
        )
    # Results whose call sits in an earlier turn still tell us something: keep them as calls of their own.
    for result in results.values():
        calls.append(
            ToolCall(
                name=_str(result.get("tool_name")) or "unknown",
                result=_dict(result.get("result")) or _result_value(result),
                is_error=result.get("is_error") if isinstance(result.get("is_error"), bool) else None,
            )
        )
    return calls


def _result_value(result: dict[str, Any]) -> dict[str, Any]:
    raw = result.get("result_value")
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {"value": raw}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {}


def transcript_of(conversation: dict[str, Any]) -> list[Turn]:
    """The transcript in callcheck's words: ElevenLabs' `agent` is our caller, its `user` the business."""
    turns: list[Turn] = []
    for item in _list(conversation.get("transcript")):
        if not isinstance(item, dict):
            continue
        role = item.get("role")
        turns.append(
            Turn(
                speaker="caller" if role == "agent" else "business",
                text=_str(item.get("message")),
                time_in_call_secs=_num(item.get("time_in_call_secs")) or 0,
                tool_calls=tool_calls_of(item),
            )
        )
    return turns


def analysis_of(conversation: dict[str, Any]) -> Analysis | None:
    """ElevenLabs' analysis, or None when it has none yet."""
    raw = conversation.get("analysis")
    if not isinstance(raw, dict):
        return None
    criteria = {
        str(key): CriterionResult(result=_str(value.get("result")) or "unknown", rationale=_str(value.get("rationale")))
        for key, value in _dict(raw.get("evaluation_criteria_results")).items()
        if isinstance(value, dict)
    }
    data = {
        str(key): DataResult(value=value.get("value"), rationale=_str(value.get("rationale")))
        for key, value in _dict(raw.get("data_collection_results")).items()
        if isinstance(value, dict)
    }
    return Analysis(
        call_successful=_str(raw.get("call_successful")),
        summary=_str(raw.get("transcript_summary")),
        title=_str(raw.get("call_summary_title")),
        criteria=criteria,
        data=data,
    )


def facts_of(conversation: dict[str, Any]) -> CallFacts:
    """The metadata of a conversation that callcheck keeps."""
    metadata = _dict(conversation.get("metadata"))
    phone = _dict(metadata.get("phone_call"))
    start = metadata.get("start_time_unix_secs")
    return CallFacts(
        status=_str(conversation.get("status")),
        start_time_unix_secs=start if isinstance(start, int) and not isinstance(start, bool) else None,
        duration_secs=_num(metadata.get("call_duration_secs")),
        cost=_num(metadata.get("cost")),
        termination_reason=_str(metadata.get("termination_reason")),
        call_result=_str(phone.get("call_result")),
        call_sid=_str(phone.get("call_sid")),
        user_id=_str(conversation.get("user_id")),
        has_audio=conversation.get("has_audio") is True,
    )
