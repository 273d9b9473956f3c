"""What happens on a simulated call: the transcript, the outcome and the analysis, as pure functions.

Transcript items use ElevenLabs' shape (contract §4.1, Appendix J): `agent` is our AI caller, `user` the
business.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from callcheck.domain.evidence import (
    CRITERION_GOAL_ACHIEVED,
    DATA_CONFIRMATION_NUMBER,
    DATA_REACHED_HUMAN,
    DATA_TRANSFERRED,
)
from callcheck.providers.elevenlabs.sandbox.config import Outcome
from callcheck.providers.elevenlabs.tools import END_CALL_TOOL, KEYPAD_TOOL, VOICEMAIL_TOOL

DEFAULT_FIRST_MESSAGE = "Hi, I'm calling because I'd like some help with a booking."
PROCESSING_SECS = 3.0  # simulated seconds between the hang-up and the analysis being ready


@dataclass
class CallScript:
    """A whole simulated call, decided when it is placed."""

    outcome: Outcome
    ring_secs: float
    turns: list[dict[str, Any]] = field(default_factory=list)
    duration_secs: int = 0  # seconds in call, 0 when never answered
    call_result: str = "answered"  # answered | voicemail | busy | no_answer | failed
    termination_reason: str = ""
    failure_reason: str | None = None  # busy | no-answer, for call_initiation_failure
    call_successful: str = "unknown"
    goal: str = "unknown"
    goal_rationale: str = ""
    summary: str = ""
    title: str = ""
    data: dict[str, tuple[Any, str]] = field(default_factory=dict)  # data collection id -> (value, rationale)
    analysis_as_lists: bool = False  # results in the `*_list` fields, the dicts left null (both forms exist upstream)
    transcript_in_webhook: bool = True  # False: post_call_transcription leaves the transcript out
    error: dict[str, Any] | None = None  # metadata.error {code, reason}
    warnings: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        """Whether anyone (or any machine) picked up."""
        return self.failure_reason is None


@dataclass
class Caller:
    """What the sandbox's simulated business hears of the caller: its goal, name and language.

    Read from callcheck's own prompt text (the seed's "Caller goal:" line, a persona's "Your name is ...") and the
    language override: an invention of the sandbox, so that replies follow the scenario and the persona. A real
    business hears a voice, not a prompt.
    """

    goal: str | None = None
    name: str = "Sam Taylor"
    language: str = "en"

    @property
    def spanish(self) -> bool:
        """Whether the business answers in Spanish (its canned phrases only)."""
        return self.language.split("-")[0].lower() == "es"


def say(caller: Caller, english: str, spanish: str) -> str:
    """A canned phrase in the caller's language (English, or Spanish for a Spanish persona)."""
    return spanish if caller.spanish else english


def enabled_tools(agent: dict[str, Any]) -> set[str]:
    """Names of the built-in system tools the agent has switched on (a null or absent slot is off, §6.3)."""
    prompt = _dict(_dict(_dict(agent.get("conversation_config")).get("agent")).get("prompt"))
    tools = {name for name, value in _dict(prompt.get("built_in_tools")).items() if isinstance(value, dict)}
    # The deprecated `prompt.tools` list (§6.3) can also carry system tools.
    for tool in prompt.get("tools") or []:
        if isinstance(tool, dict) and tool.get("type") == "system" and isinstance(tool.get("name"), str):
            tools.add(tool["name"])
    return tools


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def confirmation_for(conversation_id: str) -> str:
    """A stable, fake confirmation number for a conversation."""
    digest = int(hashlib.sha256(conversation_id.encode()).hexdigest()[:8], 16)
    return f"SB-{digest % 10000:04d}"


class _Builder:
    """Appends transcript items with running `time_in_call_secs`."""

    def __init__(self, agent_id: str, conversation_id: str) -> None:
        self.agent_id = agent_id
        self.conversation_id = conversation_id
        self.items: list[dict[str, Any]] = []
        self.now = 0
        self._tool_count = 0

    def say(self, role: str, message: str | None, after: int = 0, **extra: Any) -> dict[str, Any]:
        self.now += after
        item: dict[str, Any] = {
            "role": role,
            "agent_metadata": (
                {"agent_id": self.agent_id, "branch_id": None, "workflow_node_id": None} if role == "agent" else None
            ),
            "message": message,
            "multivoice_message": None,
            "tool_calls": [],
            "tool_results": [],
            "feedback": None,
            "llm_override": None,
            "time_in_call_secs": self.now,
            "conversation_turn_metrics": None,
            "rag_retrieval_info": None,
            "llm_usage": None,
            "interrupted": False,
            "original_message": None,
            "source_medium": "audio",
        }
        item.update(extra)
        self.items.append(item)
        return item

    def tool(
        self,
        name: str,
        params: dict[str, Any],
        result: dict[str, Any],
        after: int,
        message: str | None = None,
        *,
        is_error: bool = False,
    ) -> None:
        """An agent turn that calls a system tool, then a separate item with its result, matched by request_id (as
        in a real record: the result is not in the calling item)."""
        self._tool_count += 1
        request_id = f"{name}_{self.conversation_id[-6:]}_{self._tool_count}"
        item = self.say("agent", message, after)
        item["tool_calls"] = [
            {
                "type": "system",
                "request_id": request_id,
                "tool_name": name,
                "params_as_json": json.dumps(params),
                "tool_has_been_called": True,
                "tool_details": None,
            }
        ]
        results = self.say("agent", None, 0)
        results["tool_results"] = [
            {
                "type": "system",
                "request_id": request_id,
                "tool_name": name,
                "result_value": json.dumps(result),
                "is_error": is_error,
                "tool_has_been_called": True,
                "tool_latency_secs": 0.05,
                "dynamic_variable_updates": [],
                "result": result,
            }
        ]

    def hang_up(self, tools: set[str], reason: str, after: int = 2) -> str:
        """The caller ends the call with end_call when it has the tool; otherwise the business hangs up."""
        if END_CALL_TOOL in tools:
            self.tool(
                END_CALL_TOOL,
                {"reason": reason},
                {"result_type": "end_call_success", "status": "success", "reason": reason, "message": None},
                after,
            )
            return "end_call tool was called."
        self.say("user", "Okay, bye now.", after)
        self.now += 1
        return "Call ended by remote party"

    def press(self, tools: set[str], digits: str, reason: str, after: int, *, fails: bool = False) -> bool:
        """The caller presses keys with play_keypad_touch_tone; without the tool it can only say them. A press that
        `fails` gets an error result (the tones never reached the line)."""
        if KEYPAD_TOOL in tools and fails:
            self.tool(
                KEYPAD_TOOL,
                {"dtmf_tones": digits, "reason": reason},
                {"result_type": "play_dtmf_error", "status": "error", "error": "Failed to send DTMF tones."},
                after,
                is_error=True,
            )
            return False
        if KEYPAD_TOOL in tools:
            self.tool(
                KEYPAD_TOOL,
                {"dtmf_tones": digits, "reason": reason},
                {
                    "result_type": "play_dtmf_success",
                    "status": "success",
                    "dtmf_tones": digits,
                    "reason": reason,
                },
                after,
            )
            return True
        self.say("agent", f"{' '.join(digits)}.", after)
        return False


MENU = "Thank you for calling. Press 1 for opening hours, press 2 for orders, or press 3 for anything else."
LOOPING_MENU = "Press 1 for opening hours, press 2 for orders, or press 9 to hear this menu again."
MENU_ES = "Gracias por llamar. Pulse 1 para el horario, pulse 2 para pedidos o pulse 3 para cualquier otra cosa."
LOOPING_MENU_ES = "Pulse 1 para el horario, pulse 2 para pedidos o pulse 9 para volver a escuchar este menú."
SILENCE = "..."  # what a real record says for a user turn where nothing was recognised


def script_for(
    outcome: Outcome,
    ring_secs: float,
    *,
    conversation_id: str,
    agent: dict[str, Any],
    first_message: str,
    ringing_timeout_secs: float,
    caller: Caller | None = None,
) -> CallScript:
    """The complete call for an outcome, given the agent's tools and the caller's first message."""
    caller = caller or Caller()
    if outcome in (Outcome.BUSY, Outcome.NO_ANSWER) or ring_secs >= ringing_timeout_secs:
        busy = outcome is Outcome.BUSY
        return _unanswered(busy, ring_secs if busy else ringing_timeout_secs)
    if outcome is Outcome.REFUSES_OVERRIDES:
        return _refused_at_start(ring_secs)
    tools = enabled_tools(agent)
    b = _Builder(str(agent.get("agent_id", "")), conversation_id)
    b.say("agent", first_message or None, 0)
    script = CallScript(outcome=outcome, ring_secs=ring_secs)
    confirmation = confirmation_for(conversation_id)
    if outcome is Outcome.NOT_UNDERSTOOD:
        _not_understood(b, tools, script, caller)
    elif outcome is Outcome.TRANSFERRED:
        _transferred(b, tools, script)
        script.analysis_as_lists = True
    elif outcome is Outcome.VOICEMAIL:
        _voicemail(b, tools, script, agent)
    elif outcome in (Outcome.IVR, Outcome.KEYPAD_FAILS):
        b.say("user", say(caller, MENU, MENU_ES), 3)
        fails = outcome is Outcome.KEYPAD_FAILS
        if b.press(tools, "2", "The menu says to press 2 for orders.", 6, fails=fails):
            _ivr_answered(b, tools, script, confirmation)
            script.analysis_as_lists = True
        else:
            _ivr_dead_end(b, tools, script, pressed=False, caller=caller)
    elif outcome is Outcome.IVR_DEAD_END:
        b.say("user", say(caller, LOOPING_MENU, LOOPING_MENU_ES), 3)
        pressed = b.press(tools, "2", "The menu says to press 2 for orders.", 5)
        _ivr_dead_end(b, tools, script, pressed=pressed, caller=caller)
    else:  # completed, and the completed calls whose records come in other layouts
        _completed(b, tools, script, confirmation, caller)
        script.transcript_in_webhook = outcome is not Outcome.NO_TRANSCRIPT_WEBHOOK
    script.turns = b.items
    script.duration_secs = b.now + 1
    return script


def _refused_at_start(ring_secs: float) -> CallScript:
    """The call is accepted, then the conversation ends at its start because a per-call override is refused.

    UNCONFIRMED (contract README): whether the live API refuses with an HTTP 400 at dial time or like this; the
    error code (1008, the websocket close code for a policy violation) and wording are the sandbox's invention.
    """
    reason = "Override for field 'conversation.max_duration_seconds' is not allowed by config."
    return CallScript(
        outcome=Outcome.REFUSES_OVERRIDES,
        ring_secs=ring_secs,
        duration_secs=1,
        call_result="failed",
        termination_reason=reason,
        call_successful="failure",
        goal="failure",
        goal_rationale="The conversation ended at its start.",
        summary="The conversation was refused at its start.",
        title="Refused at start",
        error={"code": 1008, "reason": reason},
        warnings=["The conversation ended before the agent spoke."],
    )


def _unanswered(busy: bool, ring_secs: float) -> CallScript:
    return CallScript(
        outcome=Outcome.BUSY if busy else Outcome.NO_ANSWER,
        ring_secs=ring_secs,
        call_result="busy" if busy else "no_answer",
        # UNCONFIRMED wording (contract §12.6): termination_reason is free text upstream.
        termination_reason="Call initiation failed: busy" if busy else "Call initiation failed: no-answer",
        failure_reason="busy" if busy else "no-answer",
        call_successful="failure",
        goal="failure",
        goal_rationale="The call was never answered.",
        summary="The line was busy." if busy else "Nobody answered the call.",
        title="Line busy" if busy else "No answer",
    )


def _completed(b: _Builder, tools: set[str], s: CallScript, confirmation: str, caller: Caller) -> None:
    help_with = f"Sure, I can help you {caller.goal}." if caller.goal else "Sure, I can help you with that."
    b.say(
        "user",
        say(
            caller,
            f"Good afternoon, thanks for calling! {help_with} What name is it under?",
            "¡Buenas tardes, gracias por llamar! Claro, le ayudo con eso. ¿A nombre de quién?",
        ),
        4,
    )
    b.say("agent", say(caller, f"It's under the name {caller.name}.", f"A nombre de {caller.name}."), 5)
    first_name = caller.name.split()[0]
    b.say(
        "user",
        say(
            caller,
            f"Thanks, {first_name}. You're all set. Your confirmation number is {confirmation}.",
            f"Gracias, {first_name}. Ya está. Su número de confirmación es {confirmation}.",
        ),
        5,
    )
    b.say(
        "agent",
        say(
            caller,
            f"Perfect, {confirmation}. Thank you so much for your help. Goodbye!",
            f"Perfecto, {confirmation}. Muchas gracias por su ayuda. ¡Adiós!",
        ),
        5,
    )
    s.termination_reason = b.hang_up(tools, "The business confirmed the request; the task is complete.")
    s.call_successful, s.goal = "success", "success"
    s.goal_rationale = f"The business completed the request and gave confirmation number {confirmation}."
    s.summary = (
        "The caller explained what they needed. The business handled the request straight away and gave "
        f"confirmation number {confirmation}. The caller thanked them and ended the call."
    )
    s.title = "Request completed"
    s.data = {
        DATA_REACHED_HUMAN: (False, "An automated assistant handled the whole call; no person was involved."),
        DATA_TRANSFERRED: (False, "The call was not transferred."),
        DATA_CONFIRMATION_NUMBER: (
            confirmation,
            f"The business said: your confirmation number is {confirmation}.",
        ),
    }


def _not_understood(b: _Builder, tools: set[str], s: CallScript, caller: Caller) -> None:
    sorry = say(
        caller,
        "Sorry, I didn't get that. You can say things like 'opening hours' or 'my order'.",
        "Perdone, no le he entendido. Puede decir cosas como 'horario' o 'mi pedido'.",
    )
    # Nothing recognised at first (a real record's "..."), then a voice bot that never understands.
    b.say("user", SILENCE, 3)
    b.say("agent", "Hello? Can you hear me?", 2)
    b.say("user", sorry, 3)
    b.say("agent", f"I'd like to {caller.goal}, please." if caller.goal else "I'd like some help, please.", 4)
    b.say("user", sorry, 4)
    b.say("agent", "Could you help me with that, please?", 4)
    b.say(
        "user",
        say(
            caller,
            "Sorry, I still didn't get that. Please call again later. Goodbye.",
            "Perdone, sigo sin entenderle. Llame más tarde, por favor. Adiós.",
        ),
        4,
    )
    s.termination_reason = b.hang_up(tools, "The business could not understand the request.", 3)
    s.call_successful, s.goal = "failure", "failure"
    s.goal_rationale = "The business's assistant never understood the request."
    s.summary = "The caller asked for help several times, but the business's voice assistant never understood."
    s.title = "Not understood"
    s.data = {
        DATA_REACHED_HUMAN: (False, "Only an automated assistant answered."),
        DATA_TRANSFERRED: (False, "The call was not transferred."),
        DATA_CONFIRMATION_NUMBER: (None, "No confirmation number was given."),
    }


def _transferred(b: _Builder, tools: set[str], s: CallScript) -> None:
    b.say(
        "user",
        "Thanks for calling. Let me transfer you to a member of our team who can help. Please hold.",
        4,
    )
    b.say("user", SILENCE, 5)  # on hold: nothing recognised
    b.say("user", "Hi, this is Jordan at the front desk. How can I help you today?", 4)
    b.say("agent", "Hi Jordan. I'd like some help with a booking, please.", 4)
    b.say("user", "Of course. I've made a note of it and someone will call you back today to finish it.", 6)
    b.say("agent", "Great, thank you for your help. Goodbye!", 4)
    s.termination_reason = b.hang_up(tools, "A person at the business took the request.")
    s.call_successful, s.goal = "success", "success"
    s.goal_rationale = "A person at the business took the request after a transfer."
    s.summary = "The business's assistant transferred the caller to Jordan at the front desk, who took the request."
    s.title = "Transferred to a person"
    s.data = {
        DATA_REACHED_HUMAN: (True, "Jordan, a person at the front desk, spoke with the caller."),
        DATA_TRANSFERRED: (True, "The business said: let me transfer you to a member of our team."),
        DATA_CONFIRMATION_NUMBER: (None, "No confirmation number was given."),
    }


def _voicemail(b: _Builder, tools: set[str], s: CallScript, agent: dict[str, Any]) -> None:
    b.say(
        "user",
        "Hi, you've reached us. We can't take your call right now. Please leave a message after the tone.",
        2,
    )
    reason = "A voicemail greeting answered the call."
    if VOICEMAIL_TOOL in tools:
        prompt = _dict(_dict(_dict(agent.get("conversation_config")).get("agent")).get("prompt"))
        params = _dict(_dict(_dict(prompt.get("built_in_tools")).get(VOICEMAIL_TOOL)).get("params"))
        message = params.get("voicemail_message") if isinstance(params.get("voicemail_message"), str) else None
        b.tool(
            VOICEMAIL_TOOL,
            {"reason": reason},
            {
                "result_type": "voicemail_detection_success",
                "status": "success",
                "voicemail_message": message,
                "reason": reason,
            },
            7,
            message=message or None,
        )
        s.termination_reason = "voicemail_detection tool was called."
    else:
        b.say("agent", "Hello? Is anyone there?", 7)
        s.termination_reason = b.hang_up(tools, reason, 4)
    s.call_result = "voicemail"
    s.call_successful, s.goal = "failure", "failure"
    s.goal_rationale = "The call reached voicemail, not the business."
    s.summary = "The call went to voicemail; nobody from the business spoke with the caller."
    s.title = "Voicemail"
    s.data = {
        DATA_REACHED_HUMAN: (False, "Only a voicemail greeting answered."),
        DATA_TRANSFERRED: (False, "The call was not transferred."),
        DATA_CONFIRMATION_NUMBER: (None, "No confirmation number was given."),
    }


def _ivr_answered(b: _Builder, tools: set[str], s: CallScript, confirmation: str) -> None:
    b.say("user", "Orders desk, this is Priya. How can I help?", 4, source_medium="audio")
    b.say("agent", "Hi Priya. I'd like some help with a booking, please.", 4)
    b.say("user", f"Sure, that's done for you. Your confirmation number is {confirmation}.", 6)
    b.say("agent", f"Thank you, {confirmation}. Goodbye!", 5)
    s.termination_reason = b.hang_up(tools, "The business confirmed the request; the task is complete.")
    s.call_successful, s.goal = "success", "success"
    s.goal_rationale = f"After pressing 2 the caller reached the orders desk and got confirmation {confirmation}."
    s.summary = (
        "An IVR menu answered. The caller pressed 2 for orders, reached Priya at the orders desk and got "
        f"confirmation number {confirmation}."
    )
    s.title = "IVR, then request completed"
    s.data = {
        DATA_REACHED_HUMAN: (True, "Priya at the orders desk spoke with the caller."),
        DATA_TRANSFERRED: (False, "The caller was routed by the menu, not transferred."),
        DATA_CONFIRMATION_NUMBER: (confirmation, f"Priya said: your confirmation number is {confirmation}."),
    }


def _ivr_dead_end(b: _Builder, tools: set[str], s: CallScript, *, pressed: bool, caller: Caller) -> None:
    menu = say(caller, LOOPING_MENU, LOOPING_MENU_ES)
    use_keypad = say(caller, "Sorry, please use your keypad.", "Perdone, use el teclado.")
    if pressed:
        busy = say(
            caller,
            "All our agents are busy. Returning to the main menu.",
            "Todos nuestros agentes están ocupados. Volvemos al menú principal.",
        )
        b.say("user", f"{busy} {menu}", 4)
        b.press(tools, "0", "Trying to reach an operator.", 5)
        b.say("user", say(caller, "That is not a valid option.", "Esa opción no es válida.") + f" {menu}", 3)
    else:
        b.say("user", f"{use_keypad} {menu}", 4)
        b.say("agent", "Orders, please.", 5)
        b.say("user", f"{use_keypad} {menu}", 3)
    b.say("agent", "I can't get through this menu. I'll try again later. Goodbye.", 5)
    s.termination_reason = b.hang_up(tools, "The phone menu kept repeating.")
    s.call_successful, s.goal = "failure", "failure"
    s.goal_rationale = "The phone menu kept repeating and never reached anyone who could help."
    s.summary = "An IVR menu answered and kept repeating; the caller never reached anyone and gave up."
    s.title = "IVR dead end"
    s.data = {
        DATA_REACHED_HUMAN: (False, "Only the phone menu answered."),
        DATA_TRANSFERRED: (False, "The call was not transferred."),
        DATA_CONFIRMATION_NUMBER: (None, "No confirmation number was given."),
    }


def analysis_for(script: CallScript, agent: dict[str, Any]) -> dict[str, Any]:
    """`analysis` of a finished call: results only for criteria and data items the agent configures (§6.4)."""
    platform = _dict(agent.get("platform_settings"))
    criteria_results: dict[str, Any] = {}
    for criterion in _dict(platform.get("evaluation")).get("criteria") or []:
        if not isinstance(criterion, dict) or not isinstance(criterion.get("id"), str):
            continue
        cid = criterion["id"]
        known = cid == CRITERION_GOAL_ACHIEVED
        criteria_results[cid] = {
            "criteria_id": cid,
            "result": script.goal if known else "unknown",
            "rationale": script.goal_rationale if known else "The sandbox does not evaluate this criterion.",
        }
    data_results: dict[str, Any] = {}
    for did, prop in _dict(platform.get("data_collection")).items():
        value, rationale = script.data.get(did, (None, "The sandbox does not extract this item."))
        prop = _dict(prop)
        data_results[did] = {
            "data_collection_id": did,
            "value": value,
            "json_schema": {"type": prop.get("type", "string"), "description": prop.get("description", "")},
            "rationale": rationale,
        }
    if script.analysis_as_lists:
        # The other layout upstream allows (contract README): the lists filled, the dicts left null.
        return {
            "evaluation_criteria_results": None,
            "data_collection_results": None,
            "evaluation_criteria_results_list": list(criteria_results.values()),
            "data_collection_results_list": list(data_results.values()),
            "call_successful": script.call_successful,
            "transcript_summary": script.summary,
            "call_summary_title": script.title,
        }
    return {
        "evaluation_criteria_results": criteria_results,
        "data_collection_results": data_results,
        "call_successful": script.call_successful,
        "transcript_summary": script.summary,
        "call_summary_title": script.title,
    }


# The termination_reason of a call cut at its maximum duration: the sandbox's wording, UNCONFIRMED upstream.
MAX_DURATION_REASON = "Maximum call duration reached."


def cap_duration(script: CallScript, max_duration_secs: Any) -> CallScript:
    """The call cut at the per-call `conversation.max_duration_seconds` override, when it would run longer."""
    if not isinstance(max_duration_secs, int) or isinstance(max_duration_secs, bool) or max_duration_secs <= 0:
        return script
    if not script.answered or script.duration_secs <= max_duration_secs:
        return script
    script.turns = [t for t in script.turns if t["time_in_call_secs"] < max_duration_secs]
    script.duration_secs = max_duration_secs
    script.termination_reason = MAX_DURATION_REASON
    return script
