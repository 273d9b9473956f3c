"""Real-shaped ElevenLabs conversation records, built from the official SDK's models (never copied from anywhere).

They have the layouts real records have and callcheck's first sandbox did not (shared/contracts/README.md): a tool
call and its result in separate transcript items matched by request_id, `"..."` user items (nothing recognised),
keypad tones with pauses, analysis in list form, and metadata with money cost, charging, ring time, error and
warnings. Each builder returns the JSON ElevenLabs would send (`model_dump(mode="json", by_alias=True)`).
"""

from __future__ import annotations

import json
from typing import Any

from elevenlabs.types import (
    ConversationChargingCommonModel,
    ConversationHistoryAnalysisCommonModel,
    ConversationHistoryErrorCommonModel,
    ConversationHistoryEvaluationCriteriaResultCommonModel,
    ConversationHistoryMetadataCommonModel,
    ConversationHistoryTranscriptResponseModel,
    ConversationHistoryTranscriptSystemToolResultCommonModelOutput,
    ConversationHistoryTranscriptToolCallCommonModelOutput,
    DataCollectionResultCommonModel,
    GetConversationResponseModel,
)
from elevenlabs.types.conversation_history_metadata_common_model_phone_call import (
    ConversationHistoryMetadataCommonModelPhoneCall_Twilio,
)
from elevenlabs.types.conversation_history_transcript_system_tool_result_common_model_output_result import (
    ConversationHistoryTranscriptSystemToolResultCommonModelOutputResult_EndCallSuccess as EndCallSuccess,
)
from elevenlabs.types.conversation_history_transcript_system_tool_result_common_model_output_result import (
    ConversationHistoryTranscriptSystemToolResultCommonModelOutputResult_PlayDtmfError as PlayDtmfError,
)
from elevenlabs.types.conversation_history_transcript_system_tool_result_common_model_output_result import (
    ConversationHistoryTranscriptSystemToolResultCommonModelOutputResult_PlayDtmfSuccess as PlayDtmfSuccess,
)
from elevenlabs.types.conversation_history_transcript_system_tool_result_common_model_output_result import (
    ConversationHistoryTranscriptSystemToolResultCommonModelOutputResult_TransferToNumberError as TransferError,
)

Item = ConversationHistoryTranscriptResponseModel
START = 1_757_000_000


def say(role: str, message: str, at: int) -> Item:
    """A spoken item (`agent` is our caller, `user` the business)."""
    return Item(role=role, message=message, time_in_call_secs=at, tool_calls=[], tool_results=[])


def tool_call(name: str, params: dict[str, Any], request_id: str, at: int) -> Item:
    """An agent item calling a system tool, with no result in it (the result comes in a later item)."""
    call = ConversationHistoryTranscriptToolCallCommonModelOutput(
        type="system",
        request_id=request_id,
        tool_name=name,
        params_as_json=json.dumps(params),
        tool_has_been_called=True,
    )
    return Item(role="agent", message=None, time_in_call_secs=at, tool_calls=[call], tool_results=[])


def tool_result(name: str, request_id: str, result: Any, at: int, *, is_error: bool = False) -> Item:
    """The later item that carries a tool call's result."""
    body = ConversationHistoryTranscriptSystemToolResultCommonModelOutput(
        request_id=request_id,
        tool_name=name,
        result_value=result.model_dump_json(),
        is_error=is_error,
        tool_has_been_called=True,
        result=result,
    )
    return Item(role="agent", message=None, time_in_call_secs=at, tool_calls=[], tool_results=[body])


def press(tones: str, request_id: str, at: int, *, fails: bool = False, answered: bool = True) -> list[Item]:
    """A keypad press and (unless `answered` is False) its result in the next item."""
    items = [tool_call("play_keypad_touch_tone", {"dtmf_tones": tones, "reason": "menu"}, request_id, at)]
    if not answered:
        return items
    if fails:
        result: Any = PlayDtmfError(status="error", error="Failed to send DTMF tones.")
    else:
        result = PlayDtmfSuccess(status="success", dtmf_tones=tones, reason="menu")
    items.append(tool_result("play_keypad_touch_tone", request_id, result, at, is_error=fails))
    return items


def hang_up(request_id: str, at: int) -> list[Item]:
    """end_call, then its result in the next item."""
    return [
        tool_call("end_call", {"reason": "done"}, request_id, at),
        tool_result("end_call", request_id, EndCallSuccess(status="success", reason="done"), at),
    ]


def failed_transfer(request_id: str, at: int) -> list[Item]:
    """transfer_to_number whose result is an error: no transfer happened."""
    return [
        tool_call("transfer_to_number", {"transfer_number": "+15550001111"}, request_id, at),
        tool_result(
            "transfer_to_number",
            request_id,
            TransferError(status="error", error="The transfer failed."),
            at,
            is_error=True,
        ),
    ]


def analysis(*, lists: bool, reached_human: bool | None = True) -> ConversationHistoryAnalysisCommonModel:
    """The analysis with callcheck's criterion and data items, in dict or list form."""
    criterion = ConversationHistoryEvaluationCriteriaResultCommonModel(
        criteria_id="goal_achieved", result="success", rationale="Done."
    )
    data = [
        DataCollectionResultCommonModel(data_collection_id="reached_human", value=reached_human, rationale="A person."),
        DataCollectionResultCommonModel(data_collection_id="confirmation_number", value="AB12", rationale="Said."),
    ]
    if lists:
        return ConversationHistoryAnalysisCommonModel(
            evaluation_criteria_results_list=[criterion],
            data_collection_results_list=data,
            call_successful="success",
            transcript_summary="The caller got what it called for.",
        )
    return ConversationHistoryAnalysisCommonModel(
        evaluation_criteria_results={"goal_achieved": criterion},
        data_collection_results={d.data_collection_id: d for d in data},
        call_successful="success",
        transcript_summary="The caller got what it called for.",
    )


def conversation(
    items: list[Item],
    *,
    status: str = "done",
    call_result: str = "answered",
    lists: bool = False,
    termination_reason: str = "end_call tool was called.",
    error: ConversationHistoryErrorCommonModel | None = None,
    warnings: list[str] | None = None,
    has_audio: bool = True,
    user_id: str | None = "call-1",
) -> dict[str, Any]:
    """A GET conversation answer, as ElevenLabs' JSON."""
    record = GetConversationResponseModel(
        agent_id="agent_1",
        conversation_id="conv_1",
        status=status,
        user_id=user_id,
        metadata=ConversationHistoryMetadataCommonModel(
            start_time_unix_secs=START,
            accepted_time_unix_secs=START + 7,
            call_duration_secs=42,
            cost=420,
            cost_fiat=0.0612,
            charging=ConversationChargingCommonModel(llm_price=0.0112, platform_price=0.05, call_charge=400),
            termination_reason=termination_reason,
            error=error,
            warnings=warnings or [],
            phone_call=ConversationHistoryMetadataCommonModelPhoneCall_Twilio(
                direction="outbound",
                phone_number_id="phnum_1",
                agent_number="+15550009999",
                external_number="+15551234567",
                call_result=call_result,
                stream_sid="MZ1",
                call_sid="CA1",
            ),
        ),
        analysis=analysis(lists=lists),
        has_audio=has_audio,
        has_user_audio=has_audio,
        has_response_audio=has_audio,
        has_auxiliary_audio=False,
        transcript=items,
    )
    body: dict[str, Any] = record.model_dump(mode="json", by_alias=True)
    return body


def ivr_call(*, fails: bool = False, answered: bool = True, tones: str = "2") -> dict[str, Any]:
    """An IVR: the menu, a silence, the caller's press (result in the next item), a person, the hang-up."""
    return conversation(
        [
            say("agent", "Hi, I'd like to order a pizza.", 0),
            say("user", "...", 2),
            say("user", "Press 1 for hours, 2 for orders.", 5),
            *press(tones, "dtmf_1", 8, fails=fails, answered=answered),
            say("user", "Orders, this is Priya.", 12),
            say("agent", "Hi Priya, a large pepperoni please.", 14),
            *hang_up("end_1", 20),
        ]
    )
