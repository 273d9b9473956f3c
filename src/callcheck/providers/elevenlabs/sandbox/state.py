"""The sandbox's in-memory world: agents, phone numbers, conversations, and how a conversation looks.

A conversation's status is derived from the time elapsed since it was placed, so nothing needs to tick it
along: initiated (ringing) → in-progress (turns appear at their time_in_call_secs) → processing → done, or
failed when nobody answered. Times are simulated seconds; `time_scale` real seconds pass per simulated second.
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from callcheck.domain.evidence import (
    CRITERION_GOAL_ACHIEVED,
    DATA_CONFIRMATION_NUMBER,
    DATA_REACHED_HUMAN,
    DATA_TRANSFERRED,
)
from callcheck.providers.elevenlabs.sandbox.config import SandboxConfig
from callcheck.providers.elevenlabs.sandbox.scripts import (
    DEFAULT_FIRST_MESSAGE,
    PROCESSING_SECS,
    CallScript,
    analysis_for,
)

SANDBOX_AGENT_NAME = "callcheck sandbox caller"
SANDBOX_TAG = "callcheck-sandbox"
DEFAULT_RINGING_TIMEOUT_SECS = 60.0  # per ElevenLabs' skills doc (contract §2.4); the live default is UNCONFIRMED


def new_id(prefix: str, nbytes: int = 12) -> str:
    """A random id in ElevenLabs' style, e.g. conv_1a2b…"""
    return f"{prefix}{secrets.token_hex(nbytes)}"


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`patch` merged into a copy of `base`: objects merge key by key; arrays, scalars and null replace.

    UNCONFIRMED (contract §6.1, §12.8): our guess at how PATCH /v1/convai/agents/{id} treats nested fields.
    """
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _tool(name: str, **params: Any) -> dict[str, Any]:
    return {
        "type": "system",
        "name": name,
        "description": "",
        "response_timeout_secs": 20,
        "params": {"system_tool_type": name, **params},
    }


def default_agent_body(config: SandboxConfig) -> dict[str, Any]:
    """The stored form of the sandbox's default agent: ready for callcheck, or bare (`agent_ready=False`)."""
    prompt: dict[str, Any] = {
        "prompt": "You are a customer calling a business. Stay in character and keep each reply short.",
        "llm": "gemini-2.0-flash",
        "temperature": 0,
        "max_tokens": -1,
        "tool_ids": [],
        "knowledge_base": [],
        "built_in_tools": {
            "end_call": None,
            "play_keypad_touch_tone": None,
            "voicemail_detection": None,
            "skip_turn": None,
            "transfer_to_number": None,
            "transfer_to_agent": None,
            "language_detection": None,
        },
    }
    flags: dict[str, Any] = {
        "agent": {"first_message": False, "language": False, "prompt": {"prompt": False}},
        "tts": {"voice_id": False},
    }
    platform: dict[str, Any] = {
        "evaluation": {"criteria": []},
        "data_collection": {},
        "overrides": {"conversation_config_override": flags},
        "call_limits": {"agent_concurrency_limit": -1, "daily_limit": 100000, "bursting_enabled": True},
    }
    if config.agent_ready:
        prompt["built_in_tools"].update(
            end_call=_tool("end_call"),
            play_keypad_touch_tone=_tool("play_keypad_touch_tone"),
            voicemail_detection=_tool("voicemail_detection"),
            skip_turn=_tool("skip_turn"),
        )
        flags["agent"] = {"first_message": True, "language": True, "prompt": {"prompt": True}}
        flags["tts"] = {"voice_id": True, "speed": True}  # suites may send a voice speed
        flags["conversation"] = {"max_duration_seconds": True}  # callcheck caps every call with it
        platform["evaluation"]["criteria"] = [
            {
                "id": CRITERION_GOAL_ACHIEVED,
                "name": "Goal achieved",
                "type": "prompt",
                "conversation_goal_prompt": "Did the caller achieve the goal it called for?",
                "use_knowledge_base": False,
            }
        ]
        platform["data_collection"] = {
            DATA_REACHED_HUMAN: {"type": "boolean", "description": "Did the caller speak with a person?"},
            DATA_TRANSFERRED: {"type": "boolean", "description": "Was the caller transferred?"},
            DATA_CONFIRMATION_NUMBER: {"type": "string", "description": "Any confirmation number given."},
        }
    return {
        "name": SANDBOX_AGENT_NAME,
        "tags": [SANDBOX_TAG],
        "conversation_config": {
            "agent": {"first_message": "", "language": "en", "prompt": prompt},
            "tts": {
                "voice_id": "sandbox_voice",
                "model_id": "eleven_flash_v2",
                "agent_output_audio_format": "ulaw_8000",
            },
            "asr": {"keywords": [], "user_input_audio_format": "ulaw_8000"},
            "turn": {"turn_timeout": 7},
            "conversation": {"text_only": False, "max_duration_seconds": 600},
        },
        "platform_settings": platform,
    }


def refused_overrides(override: Any, flags: Any, path: str = "") -> list[str]:
    """Dotted paths of overridden fields whose flag is not true in
    `platform_settings.overrides.conversation_config_override`.

    Null values count as "not overridden": ElevenLabs itself echoes unset overrides as null.
    """
    if not isinstance(override, dict):
        return []
    refused: list[str] = []
    for key, value in override.items():
        where = f"{path}.{key}" if path else str(key)
        flag = flags.get(key) if isinstance(flags, dict) else None
        if value is None or flag is True:
            continue
        if isinstance(value, dict) and isinstance(flag, dict):
            refused.extend(refused_overrides(value, flag, where))
        elif isinstance(value, dict) and not value:
            continue
        elif isinstance(value, dict):
            refused.extend(refused_overrides(value, {}, where))
        else:
            refused.append(where)
    return refused


def fill_variables(text: str, variables: dict[str, Any]) -> str:
    """`{{name}}` placeholders filled from dynamic variables; unknown ones are left as written."""

    def one(match: re.Match[str]) -> str:
        value = variables.get(match.group(1))
        return match.group(0) if value is None else str(value)

    return re.sub(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}", one, text)


@dataclass
class Agent:
    """An agent as the client stored it (unknown fields kept) plus timestamps."""

    agent_id: str
    body: dict[str, Any]
    created_at: int
    updated_at: int

    def public(self, phone_numbers: list[dict[str, Any]]) -> dict[str, Any]:
        """GetAgentResponseModel (§6.1)."""
        body = copy.deepcopy(self.body)
        return {
            **body,
            "agent_id": self.agent_id,
            "name": body.get("name") or "",
            "conversation_config": body.get("conversation_config") or {},
            "metadata": {"created_at_unix_secs": self.created_at, "updated_at_unix_secs": self.updated_at},
            "platform_settings": body.get("platform_settings") or {},
            "phone_numbers": [
                n for n in phone_numbers if (n.get("assigned_agent") or {}).get("agent_id") == self.agent_id
            ],
            "tags": body.get("tags") or [],
            "access_info": ACCESS_INFO,
        }

    def summary(self) -> dict[str, Any]:
        """AgentSummaryResponseModel (§6.1)."""
        tts = (self.body.get("conversation_config") or {}).get("tts") or {}
        return {
            "agent_id": self.agent_id,
            "name": self.body.get("name") or "",
            "voice_id": tts.get("voice_id"),
            "tags": self.body.get("tags") or [],
            "created_at_unix_secs": self.created_at,
            "updated_at_unix_secs": self.updated_at,
            "access_info": ACCESS_INFO,
            "last_call_time_unix_secs": None,
            "archived": False,
        }


ACCESS_INFO = {
    "is_creator": True,
    "creator_name": "callcheck sandbox",
    "creator_email": "sandbox@callcheck.invalid",
    "role": "admin",
}


@dataclass
class Conversation:
    """A placed call: what was asked for, the script it follows, and when it started."""

    conversation_id: str
    call_sid: str
    stream_sid: str
    agent_id: str
    agent_name: str
    agent_snapshot: dict[str, Any]  # the agent as it was when the call was placed: analysis follows it
    phone_number_id: str
    agent_number: str
    to_number: str
    user_id: str | None
    client_data: dict[str, Any] | None
    main_language: str
    script: CallScript
    started_mono: float
    started_unix: int
    seq: int
    deleted: bool = field(default=False)

    # Simulated seconds from placing the call to each transition.
    @property
    def answer_at(self) -> float:
        """When the call is answered (or fails, when nobody answers)."""
        return self.script.ring_secs

    @property
    def hangup_at(self) -> float:
        """When the call ends."""
        return self.script.ring_secs + self.script.duration_secs

    @property
    def final_at(self) -> float:
        """When the conversation reaches done or failed."""
        return self.hangup_at + PROCESSING_SECS if self.script.answered else self.script.ring_secs

    def status_at(self, sim: float) -> str:
        """The status `sim` simulated seconds after placing the call."""
        if not self.script.answered:
            return "initiated" if sim < self.final_at else "failed"
        if sim < self.answer_at:
            return "initiated"
        if sim < self.hangup_at:
            return "in-progress"
        if self.script.error is not None:
            return "failed"  # ended by an error (a refused override): failed, with metadata.error
        return "processing" if sim < self.final_at else "done"

    def has_audio_at(self, sim: float) -> bool:
        """Whether the recording can be downloaded yet (only once done, and only for answered calls)."""
        return self.script.answered and self.status_at(sim) == "done"

    def _progress(self, sim: float) -> tuple[str, list[dict[str, Any]], int]:
        """The status, the transcript so far (not copied) and the seconds in call, at `sim`."""
        status = self.status_at(sim)
        script = self.script
        if status == "in-progress":
            in_call = max(0.0, sim - self.answer_at)
            return status, [t for t in script.turns if t["time_in_call_secs"] <= in_call], int(in_call)
        if status in ("processing", "done"):
            return status, script.turns, script.duration_secs
        return status, [], 0

    def call_successful_at(self, sim: float) -> str:
        """analysis.call_successful at `sim` ("unknown" until the analysis is there)."""
        return self.script.call_successful if self.status_at(sim) in _FINISHED else "unknown"

    def render(self, sim: float) -> dict[str, Any]:
        """GetConversationResponseModel (§4.1, Appendix J) `sim` simulated seconds after placing the call."""
        status, transcript, duration = self._progress(sim)
        finished = status in _FINISHED
        users, agents = _message_counts(transcript)
        has_audio = self.has_audio_at(sim)
        return {
            "agent_id": self.agent_id,
            "agent_name": self.agent_name,
            "conversation_id": self.conversation_id,
            "status": status,
            "user_id": self.user_id,
            "branch_id": None,
            "version_id": None,
            "environment": None,
            "transcript": copy.deepcopy(transcript),
            "metadata": self._metadata(status, duration),
            "analysis": analysis_for(self.script, self.agent_snapshot) if finished else None,
            "conversation_initiation_client_data": copy.deepcopy(self.client_data),
            "has_audio": has_audio,
            "has_user_audio": has_audio,
            "has_response_audio": has_audio,
            "has_auxiliary_audio": False,
            "user_message_count": users,
            "agent_message_count": agents,
            "visited_agents": (
                [{"agent_id": self.agent_id, "branch_id": None}] if any(t.get("message") for t in transcript) else []
            ),
            "tag_ids": [],
        }

    def _metadata(self, status: str, duration: int) -> dict[str, Any]:
        """`metadata` of the conversation in `status`, `duration` seconds in call."""
        script = self.script
        finished = status in _FINISHED
        return {
            "start_time_unix_secs": self.started_unix,
            "accepted_time_unix_secs": (
                self.started_unix + int(self.answer_at) if script.answered and status != "initiated" else None
            ),
            "call_duration_secs": duration,
            **_charges(duration, billed=finished and script.answered),
            "termination_reason": self._termination_reason(status),
            "error": copy.deepcopy(script.error) if finished else None,
            "warnings": list(script.warnings) if finished else [],
            "main_language": self.main_language,
            "authorization_method": "authorization_header",
            "conversation_initiation_source": "twilio",
            "text_only": False,
            "phone_call": {
                "type": "twilio",
                "direction": "outbound",
                "phone_number_id": self.phone_number_id,
                "agent_number": self.agent_number,
                "external_number": self.to_number,
                "stream_sid": self.stream_sid,
                "call_sid": self.call_sid,
                # known once answered or failed
                "call_result": None if status == "initiated" else script.call_result,
            },
            "batch_call": None,
            "feedback": {"overall_score": None, "likes": 0, "dislikes": 0},
        }

    def _termination_reason(self, status: str) -> str:
        return self.script.termination_reason if status in ("processing", "done", "failed") else ""

    def summary(self, sim: float, include_summary: bool) -> dict[str, Any]:
        """ConversationSummaryResponseModel (Appendix C): what `render` would say, without rendering it all."""
        status, transcript, duration = self._progress(sim)
        script = self.script
        finished = status in _FINISHED
        users, agents = _message_counts(transcript)
        names = sorted({c["tool_name"] for t in transcript for c in t.get("tool_calls") or []})
        return {
            "agent_id": self.agent_id,
            "branch_id": None,
            "version_id": None,
            "agent_name": self.agent_name,
            "conversation_id": self.conversation_id,
            "start_time_unix_secs": self.started_unix,
            "call_duration_secs": duration,
            "cost": _charges(duration, billed=finished and script.answered)["cost"],
            "message_count": users + agents,
            "user_message_count": users,
            "agent_message_count": agents,
            "status": status,
            "termination_reason": self._termination_reason(status),
            # analysis (analysis_for) carries the script's figures once finished
            "call_successful": script.call_successful if finished else "unknown",
            "transcript_summary": script.summary if finished and include_summary else None,
            "call_summary_title": script.title if finished else None,
            "main_language": self.main_language,
            "conversation_initiation_source": "twilio",
            "tool_names": names,
            "direction": "outbound",
            "rating": None,
            "tag_ids": [],
        }


_FINISHED = ("done", "failed")


def _message_counts(transcript: list[dict[str, Any]]) -> tuple[int, int]:
    """How many spoken (non-empty) messages the business (`user`) and our caller (`agent`) said."""
    spoken = [t for t in transcript if t.get("message")]
    return sum(1 for t in spoken if t["role"] == "user"), sum(1 for t in spoken if t["role"] == "agent")


def _charges(duration: int, *, billed: bool) -> dict[str, Any]:
    """metadata's cost fields: set once an answered call has finished, null before."""
    if not billed:
        return {"cost": None, "cost_fiat": None, "charging": None}
    return {
        "cost": duration * 10,
        # The money figures are the sandbox's invention (rates no source confirms); their fields are real.
        "cost_fiat": round(duration * 0.0015, 6),
        "charging": {
            "llm_price": round(duration * 0.0005, 6),
            "platform_price": round(duration * 0.001, 6),
            "llm_charge": duration * 2,
            "call_charge": duration * 8,
        },
    }


class SandboxState:
    """Everything one sandbox remembers. One instance per app; nothing is shared between sandboxes."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        now = int(time.time())
        self.agents: dict[str, Agent] = {config.agent_id: Agent(config.agent_id, default_agent_body(config), now, now)}
        self.phone_numbers: list[dict[str, Any]] = [
            {
                "provider": "twilio",
                "phone_number": config.phone_number,
                "label": "callcheck sandbox line",
                "phone_number_id": config.phone_number_id,
                "supports_inbound": True,
                "supports_outbound": True,
                "assigned_agent": {
                    "agent_id": config.agent_id,
                    "agent_name": SANDBOX_AGENT_NAME,
                    "environment": None,
                    "branch_id": None,
                },
            }
        ]
        for extra in config.extra_phone_numbers:
            item = {
                "provider": "twilio",
                "phone_number": "+15550009998",
                "label": "callcheck sandbox extra line",
                "phone_number_id": new_id("phnum_", 8),
                "supports_inbound": True,
                "supports_outbound": True,
                "assigned_agent": None,
            }
            item.update(copy.deepcopy(extra))
            if item["provider"] == "sip_trunk":
                item.setdefault("livekit_stack", "standard")
                item.setdefault("outbound_trunk", {"address": "sip.sandbox.invalid", "transport": "auto"})
            self.phone_numbers.append(item)
        self.conversations: dict[str, Conversation] = {}
        # Workspace webhooks (POST /v1/workspace/webhooks): id -> {webhook_id, name, webhook_url, secret, ...}.
        self.workspace_webhooks: dict[str, dict[str, Any]] = {}
        # The workspace's ConvAI webhook setting (GET /v1/convai/settings -> webhooks).
        self.convai_webhooks: dict[str, Any] = {}
        if config.workspace_webhook and config.webhook_url:
            self._seed_workspace_webhook(config.webhook_url, config.webhook_secret, now)
        self.requests: list[dict[str, Any]] = []
        self.deliveries: list[dict[str, Any]] = []
        self._seq = 0

    def _seed_workspace_webhook(self, url: str, secret: str, now: int) -> None:
        webhook_id = "wh_sandbox"
        self.workspace_webhooks[webhook_id] = {
            "name": "callcheck sandbox webhook",
            "webhook_id": webhook_id,
            "webhook_url": url,
            "is_disabled": False,
            "is_auto_disabled": False,
            "created_at_unix": now,
            "auth_type": "hmac",
            "secret": secret,
        }
        setting = {"post_call_webhook_id": webhook_id, "events": ["transcript", "audio", "call_initiation_failure"]}
        if self.config.webhook_level == "workspace":
            self.convai_webhooks = setting
            return
        platform = self.agents[self.config.agent_id].body["platform_settings"]
        platform.setdefault("workspace_overrides", {})["webhooks"] = setting

    def next_seq(self) -> int:
        """A counter that orders conversations placed within the same second."""
        self._seq += 1
        return self._seq

    def sim_now(self, conversation: Conversation, at_mono: float | None = None) -> float:
        """Simulated seconds since `conversation` was placed."""
        now = self.config.clock() if at_mono is None else at_mono
        return (now - conversation.started_mono) / self.config.time_scale

    def phone_number(self, phone_number_id: str) -> dict[str, Any] | None:
        """The phone-number list item with this id, if any."""
        return next((n for n in self.phone_numbers if n.get("phone_number_id") == phone_number_id), None)

    def first_message_for(self, agent: dict[str, Any], client_data: dict[str, Any] | None) -> str:
        """The caller's opening line: the call's override, else the agent's, else a default."""
        data = client_data or {}
        override = ((data.get("conversation_config_override") or {}).get("agent") or {}).get("first_message")
        agent_cfg = (agent.get("conversation_config") or {}).get("agent") or {}
        text = override if isinstance(override, str) and override else agent_cfg.get("first_message")
        if not isinstance(text, str) or not text:
            text = DEFAULT_FIRST_MESSAGE
        placeholders = (agent_cfg.get("dynamic_variables") or {}).get("dynamic_variable_placeholders") or {}
        variables = {**placeholders, **(data.get("dynamic_variables") or {})}
        return fill_variables(text, variables)
