"""The sandbox's HTTP surface: the ElevenLabs endpoints callcheck uses, plus `/_sandbox/*` for inspection."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcheck.providers.elevenlabs.client import SANDBOX_HEADER
from callcheck.providers.elevenlabs.sandbox.audio import silent_mp3
from callcheck.providers.elevenlabs.sandbox.config import MAGIC_NUMBERS, Outcome, SandboxConfig, outcome_for
from callcheck.providers.elevenlabs.sandbox.scripts import Caller, cap_duration, script_for
from callcheck.providers.elevenlabs.sandbox.state import (
    DEFAULT_RINGING_TIMEOUT_SECS,
    Agent,
    Conversation,
    SandboxState,
    deep_merge,
    new_id,
    refused_overrides,
)
from callcheck.providers.elevenlabs.sandbox.webhooks import WebhookDispatcher

REDACTED = "<redacted>"
_E164 = re.compile(r"^\+[1-9]\d{7,14}$", re.ASCII)


class SandboxAPIError(Exception):
    """An ElevenLabs-style error: `{"detail": {type, code, status, message, request_id, param?}}` (§9.2)."""

    def __init__(
        self,
        status_code: int,
        type_: str,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail: dict[str, Any] = {
            "type": type_,
            "code": code,
            "status": code,  # the legacy duplicate of `code` that older clients read
            "message": message,
            "request_id": secrets.token_hex(16),
        }
        if param is not None:
            self.detail["param"] = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        """The error as an HTTP response."""
        return JSONResponse({"detail": self.detail}, status_code=self.status_code, headers=self.headers)


def _not_found(code: str, what: str, ident: str) -> SandboxAPIError:
    return SandboxAPIError(404, "not_found", code, f"{what} with id '{ident}' was not found.")


class _RecordAndAuthenticate:
    """Outermost layer: logs each request and its body, checks `xi-api-key` on /v1/*, marks answers."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Read the whole body up front so it can be logged even when the route never reads it (e.g. a 401).
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry: dict[str, Any] | None = None
        if not path.startswith("/_sandbox"):
            entry = self._log(scope, headers, body)

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (SANDBOX_HEADER.encode(), b"1")]
                if entry is not None:
                    entry["status_code"] = message["status"]
            await send(message)

        if path.startswith("/v1/") and headers.get("xi-api-key") != self.state.config.api_key:
            # Live behaviour for a *missing* key is UNCONFIRMED (§1.2, §12.10); we answer as for a wrong one.
            error = SandboxAPIError(401, "authentication_error", "invalid_api_key", "Invalid API key")
            await error.response()(scope, replay, send_marked)
            return
        await self.app(scope, replay, send_marked)

    def _log(self, scope: Scope, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        parsed: Any = None
        text: str | None = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                text = body.decode("utf-8", errors="replace")
        shown = dict(headers)
        if "xi-api-key" in shown:
            shown["xi-api-key"] = REDACTED
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": shown,
            "api_key_valid": headers.get("xi-api-key") == self.state.config.api_key,
            "json": parsed,
            "body": text,
            "status_code": None,
            "received_at": time.time(),
        }
        self.state.requests.append(entry)
        return entry


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


def create_sandbox_app(config: SandboxConfig | None = None) -> FastAPI:
    """A new sandbox app with its own in-memory state (build as many as you like)."""
    config = config or SandboxConfig()
    state = SandboxState(config)
    dispatcher = WebhookDispatcher(
        config.webhook_url,
        config.webhook_secret,
        retries=config.webhook_retries,
        retry_delay_secs=config.webhook_retry_delay_secs,
        timeout_secs=config.webhook_timeout_secs,
        record=state.deliveries.append,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.stop()

    app = FastAPI(
        title="callcheck sandbox (simulated ElevenLabs API)", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.sandbox = state
    app.add_middleware(_RecordAndAuthenticate, state=state)

    @app.exception_handler(SandboxAPIError)
    async def _api_error(_: Request, exc: SandboxAPIError) -> JSONResponse:
        return exc.response()

    def agent_or_404(agent_id: str) -> Agent:
        agent = state.agents.get(agent_id)
        if agent is None:
            raise _not_found("agent_not_found", "Agent", agent_id)
        return agent

    def conversation_or_404(conversation_id: str) -> Conversation:
        conversation = state.conversations.get(conversation_id)
        if conversation is None or conversation.deleted:
            raise _not_found("conversation_not_found", "Conversation", conversation_id)
        return conversation

    # ---------------------------------------------------------------- outbound call (§2)

    @app.post("/v1/convai/twilio/outbound-call")
    async def outbound_call(call: _OutboundCall, request: Request) -> JSONResponse:
        raw: dict[str, Any] = await request.json()
        agent = agent_or_404(call.agent_id)
        number = state.phone_number(call.agent_phone_number_id)
        if number is None:
            raise _not_found("phone_number_not_found", "Phone number", call.agent_phone_number_id)
        # UNCONFIRMED (§2.2): the live status/body for a non-Twilio or inbound-only number.
        if number.get("provider") != "twilio":
            raise SandboxAPIError(
                400,
                "invalid_request",
                "invalid_provider_config",
                f"Phone number {call.agent_phone_number_id} is a {number.get('provider')} number; "
                "use the matching outbound-call endpoint.",
            )
        if number.get("supports_outbound") is False:
            raise SandboxAPIError(
                400,
                "invalid_request",
                "invalid_provider_config",
                f"Phone number {call.agent_phone_number_id} does not support outbound calls.",
            )
        if not _E164.fullmatch(call.to_number):  # UNCONFIRMED (§2.1): server-side format check
            raise SandboxAPIError(
                400,
                "validation_error",
                "invalid_parameters",
                "to_number must be a phone number in E.164 format.",
                param="to_number",
            )
        client_data = raw.get("conversation_initiation_client_data")
        client_data = client_data if isinstance(client_data, dict) else {}
        flags = ((agent.body.get("platform_settings") or {}).get("overrides") or {}).get("conversation_config_override")
        refused = refused_overrides(client_data.get("conversation_config_override"), flags)
        if refused:
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
        outcome, ring_secs = outcome_for(call.to_number)
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
        if outcome is Outcome.NOT_SUCCESS:
            return JSONResponse(
                {
                    "success": False,
                    "message": "Failed to initiate call (simulated).",
                    "conversation_id": None,
                    "callSid": None,
                }
            )
        conversation = _place(state, dispatcher, agent, number, call, client_data, outcome, ring_secs)
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

    @app.get("/v1/convai/conversations")
    async def list_conversations(
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
        after_seq = _decode_cursor(cursor) if cursor else None
        rows = []
        for conv in sorted(state.conversations.values(), key=lambda c: c.seq, reverse=True):  # newest first
            if conv.deleted or (after_seq is not None and conv.seq >= after_seq):
                continue
            if agent_id is not None and conv.agent_id != agent_id:
                continue
            if user_id is not None and conv.user_id != user_id:
                continue
            if call_start_before_unix is not None and conv.started_unix >= call_start_before_unix:
                continue
            if call_start_after_unix is not None and conv.started_unix <= call_start_after_unix:
                continue
            summary = conv.summary(state.sim_now(conv), include_summary=summary_mode == "include")
            if exclude_statuses and summary["status"] in exclude_statuses:
                continue
            if call_successful is not None and summary["call_successful"] != call_successful:
                continue
            rows.append((conv.seq, summary))
            if len(rows) > page_size:
                break
        page, has_more = rows[:page_size], len(rows) > page_size
        return {
            "conversations": [summary for _, summary in page],
            "next_cursor": _encode_cursor(page[-1][0]) if has_more else None,
            "has_more": has_more,
        }

    @app.get("/v1/convai/conversations/{conversation_id}")
    async def get_conversation(conversation_id: str) -> dict[str, Any]:
        conv = conversation_or_404(conversation_id)
        return conv.render(state.sim_now(conv))

    @app.delete("/v1/convai/conversations/{conversation_id}")
    async def delete_conversation(conversation_id: str) -> dict[str, Any]:
        conversation_or_404(conversation_id).deleted = True
        return {}  # live body UNCONFIRMED (§4.4)

    @app.get("/v1/convai/conversations/{conversation_id}/audio")
    async def get_audio(conversation_id: str) -> Response:
        conv = conversation_or_404(conversation_id)
        if not conv.has_audio_at(state.sim_now(conv)):
            # UNCONFIRMED (§4.3, §12.7): the live answer while in progress or without audio.
            raise SandboxAPIError(
                404, "not_found", "audio_not_found", f"Conversation '{conversation_id}' has no audio."
            )
        return Response(silent_mp3(conv.script.duration_secs), media_type="audio/mpeg")

    # ---------------------------------------------------------------- agents (§6)

    @app.post("/v1/convai/agents/create")
    async def create_agent(_: _AgentCreate, request: Request) -> dict[str, Any]:
        now = int(time.time())
        agent = Agent(new_id("agent_"), await request.json(), now, now)
        state.agents[agent.agent_id] = agent
        return {"agent_id": agent.agent_id}

    @app.get("/v1/convai/agents")
    async def list_agents(page_size: Annotated[int, Query(ge=1, le=100)] = 30) -> dict[str, Any]:
        agents = sorted(state.agents.values(), key=lambda a: a.created_at, reverse=True)
        return {
            "agents": [a.summary() for a in agents[:page_size]],
            "next_cursor": None,  # the sandbox never holds enough agents to page
            "has_more": len(agents) > page_size,
        }

    @app.get("/v1/convai/agents/{agent_id}")
    async def get_agent(agent_id: str) -> dict[str, Any]:
        return agent_or_404(agent_id).public(state.phone_numbers)

    @app.patch("/v1/convai/agents/{agent_id}")
    async def patch_agent(agent_id: str, patch: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        agent = agent_or_404(agent_id)
        agent.body = deep_merge(agent.body, patch)
        agent.updated_at = int(time.time())
        return agent.public(state.phone_numbers)

    @app.delete("/v1/convai/agents/{agent_id}")
    async def delete_agent(agent_id: str) -> dict[str, Any]:
        agent_or_404(agent_id)
        del state.agents[agent_id]
        return {}

    # ---------------------------------------------------------------- workspace webhooks (§5.2, §5.5)

    @app.post("/v1/workspace/webhooks")
    async def create_workspace_webhook(body: _WorkspaceWebhookCreate) -> dict[str, Any]:
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

    @app.get("/v1/workspace/webhooks")
    async def list_workspace_webhooks() -> dict[str, Any]:
        return {
            "webhooks": [{k: v for k, v in hook.items() if k != "secret"} for hook in state.workspace_webhooks.values()]
        }

    # ---------------------------------------------------------------- workspace ConvAI settings

    @app.get("/v1/convai/settings")
    async def get_convai_settings() -> dict[str, Any]:
        # GetConvAiSettingsResponseModel: `webhooks` is the workspace's post-call webhook setting, which an
        # agent's platform_settings.workspace_overrides.webhooks overrides.
        return {
            "conversation_initiation_client_data_webhook": None,
            "webhooks": copy.deepcopy(state.convai_webhooks),
            "can_use_mcp_servers": False,
            "rag_retention_period_days": 10,
        }

    @app.patch("/v1/convai/settings")
    async def patch_convai_settings(patch: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        hooks = patch.get("webhooks")
        if isinstance(hooks, dict):
            state.convai_webhooks = deep_merge(state.convai_webhooks, hooks)
        return await get_convai_settings()

    # ---------------------------------------------------------------- phone numbers (§8)

    @app.get("/v1/convai/phone-numbers")
    async def list_phone_numbers(provider: str | None = None, agent_id: str | None = None) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(n)
            for n in state.phone_numbers
            if (provider is None or n.get("provider") == provider)
            and (agent_id is None or (n.get("assigned_agent") or {}).get("agent_id") == agent_id)
        ]

    @app.get("/v1/convai/phone-numbers/{phone_number_id}")
    async def get_phone_number(phone_number_id: str) -> dict[str, Any]:
        number = state.phone_number(phone_number_id)
        if number is None:
            raise _not_found("phone_number_not_found", "Phone number", phone_number_id)
        return copy.deepcopy(number)

    # ---------------------------------------------------------------- inspection (no api key)

    @app.get("/_sandbox")
    async def sandbox_info() -> dict[str, Any]:
        return {
            "simulated": True,
            "agent_id": config.agent_id,
            "phone_number_id": config.phone_number_id,
            "time_scale": config.time_scale,
            "webhook_url": config.webhook_url,
            "agent_ready": config.agent_ready,
            "magic_numbers": {number: outcome.value for number, outcome in MAGIC_NUMBERS.items()},
        }

    @app.get("/_sandbox/requests")
    async def sandbox_requests(path: str | None = None) -> list[dict[str, Any]]:
        return [r for r in state.requests if path is None or r["path"] == path]

    @app.delete("/_sandbox/requests")
    async def clear_sandbox_requests() -> dict[str, int]:
        cleared = len(state.requests)
        state.requests.clear()
        return {"cleared": cleared}

    @app.get("/_sandbox/webhooks")
    async def sandbox_webhooks() -> list[dict[str, Any]]:
        return list(state.deliveries)

    return app


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


def _place(
    state: SandboxState,
    dispatcher: WebhookDispatcher,
    agent: Agent,
    number: dict[str, Any],
    call: _OutboundCall,
    client_data: dict[str, Any],
    outcome: Outcome,
    ring_secs: float,
) -> Conversation:
    """Record a new conversation and schedule its webhooks."""
    conversation_id = new_id("conv_")
    call_sid = "CA" + secrets.token_hex(16)
    agent_number = str(number.get("phone_number", ""))
    system_variables = {
        # Echoing system__ variables is UNCONFIRMED (§2.3, §12.4) but likely: Appendix J shows one.
        "system__agent_id": agent.agent_id,
        "system__current_agent_id": agent.agent_id,
        "system__caller_id": agent_number,
        "system__called_number": call.to_number,
        "system__conversation_id": conversation_id,
        "system__call_sid": call_sid,
    }
    echo: dict[str, Any] = {"conversation_config_override": None, "custom_llm_extra_body": {}}
    echo.update(copy.deepcopy(client_data))
    echo["dynamic_variables"] = {**(client_data.get("dynamic_variables") or {}), **system_variables}
    override_agent = (client_data.get("conversation_config_override") or {}).get("agent") or {}
    agent_language = ((agent.body.get("conversation_config") or {}).get("agent") or {}).get("language")
    telephony = call.telephony_call_config or {}
    timeout = telephony.get("ringing_timeout_secs")
    main_language = str(override_agent.get("language") or agent_language or "en")
    script = script_for(
        outcome,
        ring_secs,
        conversation_id=conversation_id,
        agent={**agent.body, "agent_id": agent.agent_id},
        first_message=state.first_message_for(agent.body, echo),
        ringing_timeout_secs=float(timeout) if isinstance(timeout, int | float) else DEFAULT_RINGING_TIMEOUT_SECS,
        caller=caller_of(override_agent, main_language),
    )
    conversation_override = (client_data.get("conversation_config_override") or {}).get("conversation") or {}
    script = cap_duration(script, conversation_override.get("max_duration_seconds"))
    now_mono = state.config.clock()
    conv = Conversation(
        conversation_id=conversation_id,
        call_sid=call_sid,
        stream_sid="MZ" + secrets.token_hex(16),
        agent_id=agent.agent_id,
        agent_name=str(agent.body.get("name") or ""),
        agent_snapshot=copy.deepcopy(agent.body),
        phone_number_id=call.agent_phone_number_id,
        agent_number=agent_number,
        to_number=call.to_number,
        user_id=client_data.get("user_id") if isinstance(client_data.get("user_id"), str) else None,
        client_data=echo,
        main_language=main_language,
        script=script,
        started_mono=now_mono,
        started_unix=int(time.time()),
        seq=state.next_seq(),
    )
    state.conversations[conversation_id] = conv
    # Webhooks are due on the real clock (the dispatcher's), whichever clock ages the call.
    final_mono = time.monotonic() + conv.final_at * state.config.time_scale

    def final_view() -> dict[str, Any]:
        # Evaluate at the final moment at least, so timer jitter can never send a not-yet-done conversation.
        return conv.render(max(state.sim_now(conv), conv.final_at))

    # An agent pointed at a workspace webhook (platform_settings.workspace_overrides.webhooks, §5.5) gets the events
    # it lists there, signed with that webhook's secret; otherwise the sandbox's own configured webhook is used.
    hooks = ((agent.body.get("platform_settings") or {}).get("workspace_overrides") or {}).get("webhooks") or {}
    if not hooks.get("post_call_webhook_id"):
        hooks = state.convai_webhooks  # no override on the agent: the workspace's setting applies
    workspace_hook = state.workspace_webhooks.get(str(hooks.get("post_call_webhook_id")))
    target: tuple[str, str] | None = None
    events = {"transcript", "call_initiation_failure"} | ({"audio"} if state.config.send_audio_webhook else set())
    if workspace_hook is not None:
        target = (workspace_hook["webhook_url"], workspace_hook["secret"])
        events = {e for e in hooks.get("events") or ["transcript"] if isinstance(e, str)}

    def schedule(event_type: str, due: float, build: Any) -> None:
        dispatcher.schedule(event_type, conversation_id, due, build, target)

    if outcome is Outcome.VANISHES:
        # Accepted, but its conversation is never found: 404 on every read, not in the list, no webhooks.
        conv.deleted = True
        return conv

    def transcription() -> dict[str, Any]:
        data = final_view()
        if not script.transcript_in_webhook or hooks.get("exclude_transcript") is True:
            del data["transcript"]  # exclude_transcript (ConvAiWebhooks): the turn-by-turn transcript is left out
        return data

    if script.answered:
        if "transcript" in events:
            schedule("post_call_transcription", final_mono, transcription)
        if "audio" in events:
            schedule(
                "post_call_audio",
                final_mono + 0.05,  # after the transcription, as ElevenLabs sends them
                lambda: {
                    "agent_id": conv.agent_id,
                    "conversation_id": conversation_id,
                    "full_audio": base64.b64encode(silent_mp3(script.duration_secs)).decode("ascii"),
                },
            )
    elif "call_initiation_failure" in events:
        schedule("call_initiation_failure", final_mono, lambda: _initiation_failure(conv))
    return conv


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


def _initiation_failure(conv: Conversation) -> dict[str, Any]:
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
