"""Placing a simulated call: the checks outbound-call makes, the conversation it records, the webhooks it schedules."""

from __future__ import annotations

import base64
import copy
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from callcheck.providers.elevenlabs.sandbox.audio import silent_mp3
from callcheck.providers.elevenlabs.sandbox.config import Outcome
from callcheck.providers.elevenlabs.sandbox.errors import SandboxAPIError, not_found
from callcheck.providers.elevenlabs.sandbox.scripts import Caller, CallScript, cap_duration, script_for
from callcheck.providers.elevenlabs.sandbox.state import (
    DEFAULT_RINGING_TIMEOUT_SECS,
    Agent,
    Conversation,
    SandboxState,
    new_id,
    refused_overrides,
)
from callcheck.providers.elevenlabs.sandbox.webhooks import WebhookDispatcher

_E164 = re.compile(r"^\+[1-9]\d{7,14}$", re.ASCII)


@dataclass(frozen=True)
class Dial:
    """An outbound-call request that passed every check: what placing its conversation needs."""

    agent: Agent
    number: dict[str, Any]  # the phone-number list item dialled from
    phone_number_id: str
    to_number: str
    client_data: dict[str, Any]  # conversation_initiation_client_data as sent ({} when absent)
    telephony: dict[str, Any]  # telephony_call_config as sent ({} when absent)
    outcome: Outcome
    ring_secs: float

    @property
    def override(self) -> dict[str, Any]:
        """conversation_config_override ({} when absent)."""
        return self.client_data.get("conversation_config_override") or {}


# ------------------------------------------------------------------------------------------ checks (§2.1, §2.2)


def outbound_number(state: SandboxState, phone_number_id: str) -> dict[str, Any]:
    """The Twilio number a call may be placed from, or the error outbound-call answers."""
    number = state.phone_number(phone_number_id)
    if number is None:
        raise not_found("phone_number_not_found", "Phone number", phone_number_id)
    # UNCONFIRMED (§2.2): the live status/body for a non-Twilio or inbound-only number.
    if number.get("provider") != "twilio":
        raise SandboxAPIError(
            400,
            "invalid_request",
            "invalid_provider_config",
            f"Phone number {phone_number_id} is a {number.get('provider')} number; "
            "use the matching outbound-call endpoint.",
        )
    if number.get("supports_outbound") is False:
        raise SandboxAPIError(
            400,
            "invalid_request",
            "invalid_provider_config",
            f"Phone number {phone_number_id} does not support outbound calls.",
        )
    return number


def check_to_number(to_number: str) -> None:
    """400 unless the destination is in E.164 format."""
    if not _E164.fullmatch(to_number):  # UNCONFIRMED (§2.1): server-side format check
        raise SandboxAPIError(
            400,
            "validation_error",
            "invalid_parameters",
            "to_number must be a phone number in E.164 format.",
            param="to_number",
        )


def check_overrides(agent: Agent, client_data: dict[str, Any]) -> None:
    """400 when the call overrides a field the agent's override flags do not enable."""
    flags = ((agent.body.get("platform_settings") or {}).get("overrides") or {}).get("conversation_config_override")
    refused = refused_overrides(client_data.get("conversation_config_override"), flags)
    if not refused:
        return
    # UNCONFIRMED (§6.5, §12.2): docs say "an error will be thrown"; whether the live API answers
    # 400 at request time (as here) or fails the conversation later is not known.
    names = ", ".join(f"'{r}'" for r in refused)
    message = (
        f"Override for field {names} is not allowed by the agent's configuration."
        if len(refused) == 1
        else f"Overrides for fields {names} are not allowed by the agent's configuration."
    )
    raise SandboxAPIError(
        400,
        "validation_error",
        "invalid_parameters",
        message,
        param="conversation_initiation_client_data.conversation_config_override",
    )


def check_simulated_failure(outcome: Outcome) -> None:
    """The 500 and 429 the magic numbers ask for."""
    if outcome is Outcome.HTTP_500:
        raise SandboxAPIError(
            500,
            "internal_error",
            "internal_error",
            "An internal error occurred while placing the call (simulated).",
        )
    if outcome is Outcome.HTTP_429:
        raise SandboxAPIError(
            429,
            "rate_limit_error",
            "concurrent_limit_exceeded",
            "Too many concurrent calls for this workspace (simulated).",
            headers={"Retry-After": "1"},
        )


# ------------------------------------------------------------------------------------------ the conversation


def place_call(state: SandboxState, dispatcher: WebhookDispatcher, dial: Dial) -> Conversation:
    """Record a new conversation and schedule its webhooks."""
    conversation_id = new_id("conv_")
    call_sid = "CA" + secrets.token_hex(16)
    agent = dial.agent
    agent_number = str(dial.number.get("phone_number", ""))
    echo = _echoed_client_data(dial, agent_number, conversation_id, call_sid)
    override_agent = dial.override.get("agent") or {}
    agent_language = ((agent.body.get("conversation_config") or {}).get("agent") or {}).get("language")
    main_language = str(override_agent.get("language") or agent_language or "en")
    script = _script(state, dial, conversation_id, echo, main_language)
    user_id = dial.client_data.get("user_id")
    conv = Conversation(
        conversation_id=conversation_id,
        call_sid=call_sid,
        stream_sid="MZ" + secrets.token_hex(16),
        agent_id=agent.agent_id,
        agent_name=str(agent.body.get("name") or ""),
        agent_snapshot=copy.deepcopy(agent.body),
        phone_number_id=dial.phone_number_id,
        agent_number=agent_number,
        to_number=dial.to_number,
        user_id=user_id if isinstance(user_id, str) else None,
        client_data=echo,
        main_language=main_language,
        script=script,
        started_mono=state.config.clock(),
        started_unix=int(time.time()),
        seq=state.next_seq(),
    )
    state.conversations[conversation_id] = conv  # in placing order: the list reads it newest first
    if dial.outcome is Outcome.VANISHES:
        # Accepted, but its conversation is never found: 404 on every read, not in the list, no webhooks.
        conv.deleted = True
        return conv
    _schedule_webhooks(state, dispatcher, agent, conv)
    return conv


def _echoed_client_data(dial: Dial, agent_number: str, conversation_id: str, call_sid: str) -> dict[str, Any]:
    """conversation_initiation_client_data as the conversation echoes it, with the system__ variables added."""
    system_variables = {
        # Echoing system__ variables is UNCONFIRMED (§2.3, §12.4) but likely: Appendix J shows one.
        "system__agent_id": dial.agent.agent_id,
        "system__current_agent_id": dial.agent.agent_id,
        "system__caller_id": agent_number,
        "system__called_number": dial.to_number,
        "system__conversation_id": conversation_id,
        "system__call_sid": call_sid,
    }
    echo: dict[str, Any] = {"conversation_config_override": None, "custom_llm_extra_body": {}}
    echo.update(copy.deepcopy(dial.client_data))
    echo["dynamic_variables"] = {**(dial.client_data.get("dynamic_variables") or {}), **system_variables}
    return echo


def _script(
    state: SandboxState, dial: Dial, conversation_id: str, echo: dict[str, Any], main_language: str
) -> CallScript:
    """The whole simulated call, cut at the call's max_duration_seconds override."""
    agent = dial.agent
    timeout = dial.telephony.get("ringing_timeout_secs")
    script = script_for(
        dial.outcome,
        dial.ring_secs,
        conversation_id=conversation_id,
        agent={**agent.body, "agent_id": agent.agent_id},
        first_message=state.first_message_for(agent.body, echo),
        ringing_timeout_secs=float(timeout) if isinstance(timeout, int | float) else DEFAULT_RINGING_TIMEOUT_SECS,
        caller=caller_of(dial.override.get("agent") or {}, main_language),
    )
    conversation_override = dial.override.get("conversation") or {}
    return cap_duration(script, conversation_override.get("max_duration_seconds"))


@dataclass(frozen=True)
class _Hooks:
    """Where a conversation's webhooks go and which of them are sent."""

    setting: dict[str, Any]  # the ConvAiWebhooks setting in force ({} when none)
    target: tuple[str, str] | None  # (url, secret) of a workspace webhook; None: the sandbox's configured webhook
    events: set[str]


def _hooks_for(state: SandboxState, agent: Agent) -> _Hooks:
    """An agent pointed at a workspace webhook (platform_settings.workspace_overrides.webhooks, §5.5) gets the events
    it lists there, signed with that webhook's secret; otherwise the sandbox's own configured webhook is used."""
    hooks = ((agent.body.get("platform_settings") or {}).get("workspace_overrides") or {}).get("webhooks") or {}
    if not hooks.get("post_call_webhook_id"):
        hooks = state.convai_webhooks  # no override on the agent: the workspace's setting applies
    workspace_hook = state.workspace_webhooks.get(str(hooks.get("post_call_webhook_id")))
    if workspace_hook is None:
        events = {"transcript", "call_initiation_failure"} | ({"audio"} if state.config.send_audio_webhook else set())
        return _Hooks(hooks, None, events)
    events = {e for e in hooks.get("events") or ["transcript"] if isinstance(e, str)}
    return _Hooks(hooks, (workspace_hook["webhook_url"], workspace_hook["secret"]), events)


def _schedule_webhooks(state: SandboxState, dispatcher: WebhookDispatcher, agent: Agent, conv: Conversation) -> None:
    hooks = _hooks_for(state, agent)
    script = conv.script
    # Webhooks are due on the real clock (the dispatcher's), whichever clock ages the call.
    final_mono = time.monotonic() + conv.final_at * state.config.time_scale

    def schedule(event_type: str, due: float, build: Callable[[], dict[str, Any]]) -> None:
        dispatcher.schedule(event_type, conv.conversation_id, due, build, hooks.target)

    def transcription() -> dict[str, Any]:
        # Evaluate at the final moment at least, so timer jitter can never send a not-yet-done conversation.
        data = conv.render(max(state.sim_now(conv), conv.final_at))
        if not script.transcript_in_webhook or hooks.setting.get("exclude_transcript") is True:
            del data["transcript"]  # exclude_transcript (ConvAiWebhooks): the turn-by-turn transcript is left out
        return data

    if not script.answered:
        if "call_initiation_failure" in hooks.events:
            schedule("call_initiation_failure", final_mono, lambda: initiation_failure(conv))
        return
    if "transcript" in hooks.events:
        schedule("post_call_transcription", final_mono, transcription)
    if "audio" in hooks.events:
        schedule(
            "post_call_audio",
            final_mono + 0.05,  # after the transcription, as ElevenLabs sends them
            lambda: {
                "agent_id": conv.agent_id,
                "conversation_id": conv.conversation_id,
                "full_audio": base64.b64encode(silent_mp3(script.duration_secs)).decode("ascii"),
            },
        )


_GOAL = re.compile(r"^Caller goal: (.+)$", re.MULTILINE)
_NAME = re.compile(r"Your name is ([^;\n]+);")


def caller_of(override_agent: dict[str, Any], language: str) -> Caller:
    """Who calls, as far as the simulated business can tell: the goal and persona name written in callcheck's own
    prompt (the seed's "Caller goal:" line; a suite persona's "Your name is ...;"), and the conversation's
    language. The sandbox's invention, so that its replies follow the scenario and the persona."""
    prompt = (override_agent.get("prompt") or {}).get("prompt")
    text = prompt if isinstance(prompt, str) else ""
    goal = _GOAL.search(text)
    name = _NAME.search(text)
    return Caller(
        goal=goal.group(1).strip().rstrip(".") if goal else None,
        name=name.group(1).strip() if name else Caller.name,
        language=language,
    )


def initiation_failure(conv: Conversation) -> dict[str, Any]:
    """`data` of a call_initiation_failure webhook for a Twilio call (§5.4)."""
    busy = conv.script.failure_reason == "busy"
    return {
        "agent_id": conv.agent_id,
        "conversation_id": conv.conversation_id,
        "failure_reason": conv.script.failure_reason,
        "metadata": {
            "type": "twilio",
            "body": {
                # Twilio StatusCallback form fields; every value is a string, as Twilio posts them.
                "AccountSid": "AC" + "0" * 32,
                "ApiVersion": "2010-04-01",
                "CallSid": conv.call_sid,
                "CallStatus": "busy" if busy else "no-answer",
                "SipResponseCode": "486" if busy else "487",
                "Direction": "outbound-api",
                "From": conv.agent_number,
                "To": conv.to_number,
                "Called": conv.to_number,
                "Caller": conv.agent_number,
                "Duration": "0",
                "CallDuration": "0",
                "CallbackSource": "call-progress-events",
                "SequenceNumber": "2",
                "Timestamp": formatdate(usegmt=False).replace("-0000", "+0000"),
            },
        },
    }
