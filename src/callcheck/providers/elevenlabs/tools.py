"""ElevenLabs' built-in system tools (contract §6.3) and what each one means for callcheck's evidence."""

from __future__ import annotations

from callcheck.domain.evidence import ToolKind

KEYPAD_TOOL = "play_keypad_touch_tone"
END_CALL_TOOL = "end_call"
VOICEMAIL_TOOL = "voicemail_detection"  # hangs up, after leaving the agent's voicemail_message if it has one
SKIP_TURN_TOOL = "skip_turn"
TRANSFER_TO_NUMBER_TOOL = "transfer_to_number"
TRANSFER_TO_AGENT_TOOL = "transfer_to_agent"

# The tools whose calls say something about the journey, as callcheck's kinds; any other tool is "other".
TOOL_KINDS: dict[str, ToolKind] = {
    KEYPAD_TOOL: "keypad",
    END_CALL_TOOL: "hang_up",
    VOICEMAIL_TOOL: "voicemail",
    TRANSFER_TO_NUMBER_TOOL: "transfer",
    TRANSFER_TO_AGENT_TOOL: "transfer",
}
# Tools with which the caller ends the call when they succeed; ElevenLabs then gives the termination_reason
# "<tool> tool was called." (seen for end_call in a real record; the other wordings are UNCONFIRMED).
ENDING_TOOLS = frozenset({END_CALL_TOOL, VOICEMAIL_TOOL})


def kind_of(tool_name: str) -> ToolKind:
    """callcheck's kind of an ElevenLabs tool."""
    return TOOL_KINDS.get(tool_name, "other")
