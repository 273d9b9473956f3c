"""The sandbox's routes: the ElevenLabs endpoints callcheck uses (`api`), and `/_sandbox/*` for inspection.

Handlers are plain functions; each reads its sandbox's state (and webhook dispatcher) from `app.state` through a
dependency, so one module serves any number of sandboxes.
"""

from __future__ import annotations

import base64
import copy
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr

from callcheck.providers.elevenlabs.sandbox.audio import silent_mp3
from callcheck.providers.elevenlabs.sandbox.config import MAGIC_NUMBERS, Outcome, outcome_for
from callcheck.providers.elevenlabs.sandbox.errors import SandboxAPIError, not_found
from callcheck.providers.elevenlabs.sandbox.placing import (
    Dial,
    check_overrides,
    check_simulated_failure,
    check_to_number,
    outbound_number,
    place_call,
)
from callcheck.providers.elevenlabs.sandbox.state import Agent, Conversation, SandboxState, deep_merge, new_id
from callcheck.providers.elevenlabs.sandbox.webhooks import WebhookDispatcher


def _sandbox_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


def _sandbox_dispatcher(request: Request) -> WebhookDispatcher:
    dispatcher: WebhookDispatcher = request.app.state.dispatcher
    return dispatcher


State = Annotated[SandboxState, Depends(_sandbox_state)]
Dispatcher = Annotated[WebhookDispatcher, Depends(_sandbox_dispatcher)]

api = APIRouter()  # /v1/*: needs the api key (checked by the app's outermost middleware)
inspection = APIRouter()  # /_sandbox/*: no api key


# --- request models: only what ElevenLabs validates with 422; unknown fields pass through (extra="allow") ---

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool | None


class _ClientData(BaseModel):
    model_config = ConfigDict(extra="allow")
    conversation_config_override: dict[str, Any] | None = None
    dynamic_variables: dict[str, Scalar] | None = None  # §2.3: no objects or arrays
    user_id: str | None = None


class _OutboundCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    agent_id: str
    agent_phone_number_id: str
    to_number: str
    conversation_initiation_client_data: _ClientData | None = None
    call_recording_enabled: bool | None = None
    telephony_call_config: dict[str, Any] | None = None


class _WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="allow")
    auth_type: str = "hmac"
    name: str
    webhook_url: str


class _WorkspaceWebhookCreate(BaseModel):
    settings: _WebhookSettings


class _AgentCreate(BaseModel):
    model_config = ConfigDict(extra="allow")
    conversation_config: dict[str, Any]
    platform_settings: dict[str, Any] | None = None
    name: str | None = None
    tags: list[str] | None = None


def _agent_or_404(state: SandboxState, agent_id: str) -> Agent:
    agent = state.agents.get(agent_id)
    if agent is None:
        raise not_found("agent_not_found", "Agent", agent_id)
    return agent


def _conversation_or_404(state: SandboxState, conversation_id: str) -> Conversation:
    conversation = state.conversations.get(conversation_id)
    if conversation is None or conversation.deleted:
        raise not_found("conversation_not_found", "Conversation", conversation_id)
    return conversation


# ---------------------------------------------------------------- outbound call (§2)


@api.post("/v1/convai/twilio/outbound-call")
async def outbound_call(call: _OutboundCall, request: Request, state: State, dispatcher: Dispatcher) -> JSONResponse:
    raw: dict[str, Any] = await request.json()
    agent = _agent_or_404(state, call.agent_id)
    number = outbound_number(state, call.agent_phone_number_id)
    check_to_number(call.to_number)
    client_data = raw.get("conversation_initiation_client_data")
    client_data = client_data if isinstance(client_data, dict) else {}
    check_overrides(agent, client_data)
    outcome, ring_secs = outcome_for(call.to_number)
    check_simulated_failure(outcome)
    if outcome is Outcome.NOT_SUCCESS:
        return JSONResponse(
            {
                "success": False,
                "message": "Failed to initiate call (simulated).",
                "conversation_id": None,
                "callSid": None,
            }
        )
    dial = Dial(
        agent=agent,
        number=number,
        phone_number_id=call.agent_phone_number_id,
        to_number=call.to_number,
        client_data=client_data,
        telephony=call.telephony_call_config or {},
        outcome=outcome,
        ring_secs=ring_secs,
    )
    conversation = place_call(state, dispatcher, dial)
    # NUMBER_NO_CONVERSATION_ID: `success: true` with a null conversation_id, which the SDK's model allows.
    hidden = outcome is Outcome.NO_CONVERSATION_ID
    return JSONResponse(
        {
            "success": True,
            "message": "Call initiated successfully",
            "conversation_id": None if hidden else conversation.conversation_id,
            "callSid": conversation.call_sid,
        }
    )


# ---------------------------------------------------------------- conversations (§4)


@dataclass(frozen=True)
class _ListFilter:
    """GET /v1/convai/conversations' filters (§4.2)."""

    after_seq: int | None
    agent_id: str | None
    user_id: str | None
    call_successful: str | None
    call_start_before_unix: int | None
    call_start_after_unix: int | None
    exclude_statuses: list[str] | None

    def keeps(self, conv: Conversation) -> bool:
        """Whether the filters keep `conv`, judged on what is known when placed (cheap, no clock)."""
        return not (
            conv.deleted
            or (self.after_seq is not None and conv.seq >= self.after_seq)
            or (self.agent_id is not None and conv.agent_id != self.agent_id)
            or (self.user_id is not None and conv.user_id != self.user_id)
            or (self.call_start_before_unix is not None and conv.started_unix >= self.call_start_before_unix)
            or (self.call_start_after_unix is not None and conv.started_unix <= self.call_start_after_unix)
        )

    def keeps_at(self, conv: Conversation, sim: float) -> bool:
        """Whether the filters on its status and success keep `conv` at `sim`."""
        if self.exclude_statuses and conv.status_at(sim) in self.exclude_statuses:
            return False
        return self.call_successful is None or conv.call_successful_at(sim) == self.call_successful


@api.get("/v1/convai/conversations")
async def list_conversations(
    state: State,
    cursor: str | None = None,
    agent_id: str | None = None,
    user_id: str | None = None,
    call_successful: str | None = None,
    call_start_before_unix: int | None = None,
    call_start_after_unix: int | None = None,
    summary_mode: str = "exclude",
    exclude_statuses: Annotated[list[str] | None, Query()] = None,
    page_size: Annotated[int, Query(ge=1, le=100)] = 30,
) -> dict[str, Any]:
    wanted = _ListFilter(
        _decode_cursor(cursor) if cursor else None,
        agent_id,
        user_id,
        call_successful,
        call_start_before_unix,
        call_start_after_unix,
        exclude_statuses,
    )
    rows: list[tuple[Conversation, float]] = []
    # Newest first (conversations are kept in placing order); only the page's rows are rendered.
    for conv in reversed(state.conversations.values()):
        if not wanted.keeps(conv):
            continue
        sim = state.sim_now(conv)
        if not wanted.keeps_at(conv, sim):
            continue
        rows.append((conv, sim))
        if len(rows) > page_size:
            break
    page, has_more = rows[:page_size], len(rows) > page_size
    return {
        "conversations": [conv.summary(sim, include_summary=summary_mode == "include") for conv, sim in page],
        "next_cursor": _encode_cursor(page[-1][0].seq) if has_more else None,
        "has_more": has_more,
    }


@api.get("/v1/convai/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, state: State) -> dict[str, Any]:
    conv = _conversation_or_404(state, conversation_id)
    return conv.render(state.sim_now(conv))


@api.delete("/v1/convai/conversations/{conversation_id}")
async def delete_conversation(conversation_id: str, state: State) -> dict[str, Any]:
    _conversation_or_404(state, conversation_id).deleted = True
    return {}  # live body UNCONFIRMED (§4.4)


@api.get("/v1/convai/conversations/{conversation_id}/audio")
async def get_audio(conversation_id: str, state: State) -> Response:
    conv = _conversation_or_404(state, conversation_id)
    if not conv.has_audio_at(state.sim_now(conv)):
        # UNCONFIRMED (§4.3, §12.7): the live answer while in progress or without audio.
        raise SandboxAPIError(404, "not_found", "audio_not_found", f"Conversation '{conversation_id}' has no audio.")
    return Response(silent_mp3(conv.script.duration_secs), media_type="audio/mpeg")


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if text.startswith("seq:"):
            return int(text[4:])
    except ValueError:
        pass
    raise SandboxAPIError(400, "validation_error", "invalid_cursor", "The cursor is not valid.", param="cursor")


# ---------------------------------------------------------------- agents (§6)


@api.post("/v1/convai/agents/create")
async def create_agent(_: _AgentCreate, request: Request, state: State) -> dict[str, Any]:
    now = int(time.time())
    agent = Agent(new_id("agent_"), await request.json(), now, now)
    state.agents[agent.agent_id] = agent
    return {"agent_id": agent.agent_id}


@api.get("/v1/convai/agents")
async def list_agents(state: State, page_size: Annotated[int, Query(ge=1, le=100)] = 30) -> dict[str, Any]:
    agents = sorted(state.agents.values(), key=lambda a: a.created_at, reverse=True)
    return {
        "agents": [a.summary() for a in agents[:page_size]],
        "next_cursor": None,  # the sandbox never holds enough agents to page
        "has_more": len(agents) > page_size,
    }


@api.get("/v1/convai/agents/{agent_id}")
async def get_agent(agent_id: str, state: State) -> dict[str, Any]:
    return _agent_or_404(state, agent_id).public(state.phone_numbers)


@api.patch("/v1/convai/agents/{agent_id}")
async def patch_agent(agent_id: str, patch: Annotated[dict[str, Any], Body()], state: State) -> dict[str, Any]:
    agent = _agent_or_404(state, agent_id)
    agent.body = deep_merge(agent.body, patch)
    agent.updated_at = int(time.time())
    return agent.public(state.phone_numbers)


@api.delete("/v1/convai/agents/{agent_id}")
async def delete_agent(agent_id: str, state: State) -> dict[str, Any]:
    _agent_or_404(state, agent_id)
    del state.agents[agent_id]
    return {}


# ---------------------------------------------------------------- workspace webhooks (§5.2, §5.5)


@api.post("/v1/workspace/webhooks")
async def create_workspace_webhook(body: _WorkspaceWebhookCreate, state: State) -> dict[str, Any]:
    # The secret is returned once, here, as ElevenLabs does (contract §5.2); the list never shows it.
    webhook_id = new_id("wh_")
    secret = "wsec_" + secrets.token_hex(24)
    state.workspace_webhooks[webhook_id] = {
        "name": body.settings.name,
        "webhook_id": webhook_id,
        "webhook_url": body.settings.webhook_url,
        "is_disabled": False,
        "is_auto_disabled": False,
        "created_at_unix": int(time.time()),
        "auth_type": body.settings.auth_type,
        "secret": secret,
    }
    return {"webhook_id": webhook_id, "webhook_secret": secret}


@api.get("/v1/workspace/webhooks")
async def list_workspace_webhooks(state: State) -> dict[str, Any]:
    return {
        "webhooks": [{k: v for k, v in hook.items() if k != "secret"} for hook in state.workspace_webhooks.values()]
    }


# ---------------------------------------------------------------- workspace ConvAI settings


def _convai_settings(state: SandboxState) -> dict[str, Any]:
    # GetConvAiSettingsResponseModel: `webhooks` is the workspace's post-call webhook setting, which an
    # agent's platform_settings.workspace_overrides.webhooks overrides.
    return {
        "conversation_initiation_client_data_webhook": None,
        "webhooks": copy.deepcopy(state.convai_webhooks),
        "can_use_mcp_servers": False,
        "rag_retention_period_days": 10,
    }


@api.get("/v1/convai/settings")
async def get_convai_settings(state: State) -> dict[str, Any]:
    return _convai_settings(state)


@api.patch("/v1/convai/settings")
async def patch_convai_settings(patch: Annotated[dict[str, Any], Body()], state: State) -> dict[str, Any]:
    hooks = patch.get("webhooks")
    if isinstance(hooks, dict):
        state.convai_webhooks = deep_merge(state.convai_webhooks, hooks)
    return _convai_settings(state)


# ---------------------------------------------------------------- phone numbers (§8)


@api.get("/v1/convai/phone-numbers")
async def list_phone_numbers(
    state: State, provider: str | None = None, agent_id: str | None = None
) -> list[dict[str, Any]]:
    return [
        copy.deepcopy(n)
        for n in state.phone_numbers
        if (provider is None or n.get("provider") == provider)
        and (agent_id is None or (n.get("assigned_agent") or {}).get("agent_id") == agent_id)
    ]


@api.get("/v1/convai/phone-numbers/{phone_number_id}")
async def get_phone_number(phone_number_id: str, state: State) -> dict[str, Any]:
    number = state.phone_number(phone_number_id)
    if number is None:
        raise not_found("phone_number_not_found", "Phone number", phone_number_id)
    return copy.deepcopy(number)


# ---------------------------------------------------------------- inspection (no api key)


@inspection.get("/_sandbox")
async def sandbox_info(state: State) -> dict[str, Any]:
    config = state.config
    return {
        "simulated": True,
        "agent_id": config.agent_id,
        "phone_number_id": config.phone_number_id,
        "time_scale": config.time_scale,
        "webhook_url": config.webhook_url,
        "agent_ready": config.agent_ready,
        "magic_numbers": {number: outcome.value for number, outcome in MAGIC_NUMBERS.items()},
    }


@inspection.get("/_sandbox/requests")
async def sandbox_requests(state: State, path: str | None = None) -> list[dict[str, Any]]:
    return [r for r in state.requests if path is None or r["path"] == path]


@inspection.delete("/_sandbox/requests")
async def clear_sandbox_requests(state: State) -> dict[str, int]:
    cleared = len(state.requests)
    state.requests.clear()
    return {"cleared": cleared}


@inspection.get("/_sandbox/webhooks")
async def sandbox_webhooks(state: State) -> list[dict[str, Any]]:
    return list(state.deliveries)
