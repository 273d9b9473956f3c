"""`callcheck agent setup`: the pure plan on literal agents, then against the sandbox over real HTTP and via the CLI."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from callcheck.cli import app as cli_app
from callcheck.domain.evidence import (
    CRITERION_GOAL_ACHIEVED,
    DATA_CONFIRMATION_NUMBER,
    DATA_REACHED_HUMAN,
    DATA_TRANSFERRED,
)
from callcheck.errors import NotFound, UpstreamHTTPError
from callcheck.providers import caller_from_settings
from callcheck.providers.base import AgentSetupOptions
from callcheck.providers.elevenlabs.agent_profile import (
    SETUP_TOOLS,
    WebhookPlan,
    explain_refused_override,
    missing_criteria,
    missing_data_items,
    missing_overrides,
    missing_tools,
    new_agent_body,
    plan_agent_setup,
)
from callcheck.providers.elevenlabs.client import ElevenLabsClient
from callcheck.providers.elevenlabs.sandbox import NUMBER_COMPLETED, SandboxConfig, SandboxServer
from callcheck.providers.elevenlabs.setup import find_workspace_webhook, setup_agent, webhook_url_for
from tests.conftest import settings_for

PIZZA = "We are Pizza Palace, a pizza restaurant that takes orders and handles delivery inquiries."

BARE_AGENT: dict[str, Any] = {
    "agent_id": "agent_1",
    "name": "Bare",
    "conversation_config": {"agent": {"prompt": {"prompt": "Be nice.", "built_in_tools": {"end_call": None}}}},
    "platform_settings": {
        "overrides": {"conversation_config_override": {"agent": {"first_message": False}}},
        "evaluation": {"criteria": []},
        "data_collection": {},
    },
}


def is_ready(agent: dict[str, Any]) -> bool:
    """Everything setup installs is present."""
    return not (
        missing_overrides(agent) or missing_tools(agent) or missing_criteria(agent) or missing_data_items(agent)
    )


def requests_to(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """Every /v1 request the sandbox received, oldest first."""
    requests: list[dict[str, Any]] = httpx.get(f"{sandbox.url}/_sandbox/requests").json()
    return requests


def clear_requests(sandbox: SandboxServer) -> None:
    """Forget the sandbox's request log."""
    httpx.delete(f"{sandbox.url}/_sandbox/requests")


def writes(sandbox: SandboxServer) -> list[dict[str, Any]]:
    """Requests that could change something upstream."""
    return [r for r in requests_to(sandbox) if r["method"] != "GET"]


def sandbox_agent(sandbox: SandboxServer, agent_id: str | None = None) -> dict[str, Any]:
    """The agent as the sandbox stores it."""
    response = httpx.get(
        f"{sandbox.url}/v1/convai/agents/{agent_id or sandbox.config.agent_id}",
        headers={"xi-api-key": sandbox.config.api_key},
    )
    response.raise_for_status()
    agent: dict[str, Any] = response.json()
    return agent


@pytest.fixture
def bare_sandbox() -> Iterator[SandboxServer]:
    """A sandbox whose default agent has no overrides, tools, criteria or data items."""
    with SandboxServer(SandboxConfig(time_scale=0.02, agent_ready=False)) as server:
        yield server


async def setup_on(sandbox: SandboxServer, **kwargs: Any) -> Any:
    """Run setup_agent against the sandbox's default agent (unless agent_id is given)."""
    kwargs.setdefault("agent_id", sandbox.config.agent_id)
    async with httpx.AsyncClient() as http:
        client = ElevenLabsClient(http, sandbox.config.api_key, sandbox.url)
        return await setup_agent(client, **kwargs)


# ---------------------------------------------------------------- the pure plan


def test_plan_for_a_bare_agent_adds_everything_and_only_that() -> None:
    plan = plan_agent_setup(BARE_AGENT)
    flags = plan.patch["platform_settings"]["overrides"]["conversation_config_override"]
    assert flags == {
        "agent": {"prompt": {"prompt": True}, "first_message": True, "language": True},
        "tts": {"voice_id": True, "speed": True},
        "conversation": {"max_duration_seconds": True},  # callcheck caps every call with it
    }
    assert "allow the per-call override of conversation.max_duration_seconds" in plan.changes
    tools = plan.patch["conversation_config"]["agent"]["prompt"]["built_in_tools"]
    assert set(tools) == set(SETUP_TOOLS)
    assert tools["play_keypad_touch_tone"]["params"] == {"system_tool_type": "play_keypad_touch_tone"}
    assert "prompt" not in plan.patch["conversation_config"]["agent"]["prompt"]  # the user's prompt is not sent
    assert [c["id"] for c in plan.patch["platform_settings"]["evaluation"]["criteria"]] == [CRITERION_GOAL_ACHIEVED]
    assert set(plan.patch["platform_settings"]["data_collection"]) == {
        DATA_REACHED_HUMAN,
        DATA_TRANSFERRED,
        DATA_CONFIRMATION_NUMBER,
    }
    assert "allow the per-call override of agent.prompt.prompt" in plan.changes
    assert "add the built-in tool play_keypad_touch_tone (press keys in IVR menus, DTMF)" in plan.changes
    assert len(plan.changes) == 6 + 4 + 1 + 3


def test_plan_applied_leaves_nothing_to_do() -> None:
    from callcheck.providers.elevenlabs.sandbox.state import deep_merge

    ready = deep_merge(BARE_AGENT, plan_agent_setup(BARE_AGENT).patch)
    assert is_ready(ready)
    assert plan_agent_setup(ready).empty
    assert plan_agent_setup(ready).changes == []


def test_plan_keeps_the_users_criteria_and_filled_tool_slots() -> None:
    agent = copy.deepcopy(BARE_AGENT)
    agent["platform_settings"]["evaluation"]["criteria"] = [
        {"id": "polite", "name": "Polite", "conversation_goal_prompt": "Was the business polite?"}
    ]
    voicemail = {"name": "voicemail_detection", "params": {"system_tool_type": "voicemail_detection", "x": 1}}
    agent["conversation_config"]["agent"]["prompt"]["built_in_tools"]["voicemail_detection"] = voicemail
    plan = plan_agent_setup(agent)
    criteria = plan.patch["platform_settings"]["evaluation"]["criteria"]
    assert [c["id"] for c in criteria] == ["polite", CRITERION_GOAL_ACHIEVED]
    assert criteria[0] == agent["platform_settings"]["evaluation"]["criteria"][0]
    assert "voicemail_detection" not in plan.patch["conversation_config"]["agent"]["prompt"]["built_in_tools"]


def test_legacy_system_tools_list_counts_as_present() -> None:
    agent = copy.deepcopy(BARE_AGENT)
    agent["conversation_config"]["agent"]["prompt"]["tools"] = [
        {"type": "system", "name": "end_call", "description": "", "params": {"system_tool_type": "end_call"}}
    ]
    assert "end_call" not in missing_tools(agent)


def test_webhook_plan_merges_events_and_sets_the_id() -> None:
    agent = copy.deepcopy(BARE_AGENT)
    agent["platform_settings"]["workspace_overrides"] = {"webhooks": {"events": ["answering_machine_detection"]}}
    plan = plan_agent_setup(agent, WebhookPlan(url="https://x.example/api/webhooks/elevenlabs", webhook_id="wh_1"))
    hooks = plan.patch["platform_settings"]["workspace_overrides"]["webhooks"]
    assert hooks == {
        "events": ["answering_machine_detection", "transcript", "audio", "call_initiation_failure"],
        "post_call_webhook_id": "wh_1",
    }
    without_id = plan_agent_setup(BARE_AGENT, WebhookPlan(url="https://x.example/api/webhooks/elevenlabs"))
    assert "post_call_webhook_id" not in without_id.patch["platform_settings"]["workspace_overrides"]["webhooks"]
    assert any("Settings > Webhooks" in note for note in without_id.notes)


def test_webhook_url_for_public_url() -> None:
    assert webhook_url_for("https://cc.example.com/") == "https://cc.example.com/api/webhooks/elevenlabs"
    assert webhook_url_for(None) is None
    assert webhook_url_for("  ") is None


def test_new_agent_body_is_ready() -> None:
    body = new_agent_body("My caller")
    assert body["name"] == "My caller"
    assert body["conversation_config"]["agent"]["prompt"]["prompt"]
    assert is_ready(body)


def test_refused_override_is_explained() -> None:
    error = UpstreamHTTPError(
        400, "Override for field 'agent.prompt.prompt' is not allowed by the agent's configuration."
    )
    explained = explain_refused_override(error)
    assert explained.message.startswith("ElevenLabs API error (400): Override for field 'agent.prompt.prompt'")
    assert "The agent does not allow per-call overrides; run `callcheck agent setup`" in explained.message
    assert "(callcheck sends agent.prompt.prompt)" in explained.message
    assert "`callcheck agent setup`" in explained.message
    assert explained.status == 400
    other = UpstreamHTTPError(400, "to_number must be a phone number in E.164 format.")
    assert explain_refused_override(other) is other
    assert explain_refused_override(UpstreamHTTPError(401, "Override not allowed")).status == 401


# ---------------------------------------------------------------- against the sandbox


async def test_bare_agent_becomes_ready_and_a_refused_call_then_succeeds(
    client_for: Any, bare_sandbox: SandboxServer, tmp_path: Path
) -> None:
    api = await client_for(settings_for(bare_sandbox, tmp_path, workers=False))
    call = {"to_number": NUMBER_COMPLETED, "business_description": PIZZA}
    refused = await api.post("/api/call", json=call)
    assert refused.status_code == 502
    error = refused.json()["error"]
    assert error.startswith("ElevenLabs API error (400): ")
    assert "does not allow" in error and "`callcheck agent setup`" in error

    result = await setup_on(bare_sandbox)
    assert result.changed and not result.created
    assert is_ready(sandbox_agent(bare_sandbox))

    placed = await api.post("/api/call", json=call)
    assert placed.status_code == 200, placed.text
    assert placed.json()["ok"] is True


async def test_second_run_changes_nothing_and_sends_no_patch(bare_sandbox: SandboxServer) -> None:
    await setup_on(bare_sandbox)
    before = sandbox_agent(bare_sandbox)
    clear_requests(bare_sandbox)
    again = await setup_on(bare_sandbox)
    assert not again.changed
    assert again.request == {}
    assert writes(bare_sandbox) == []
    assert sandbox_agent(bare_sandbox)["platform_settings"] == before["platform_settings"]


async def test_unrelated_user_settings_survive(bare_sandbox: SandboxServer) -> None:
    user = {
        "conversation_config": {
            "agent": {
                "first_message": "Hello from me",
                "prompt": {
                    "prompt": "My own careful prompt.",
                    "tool_ids": ["tool_mine"],
                    "built_in_tools": {
                        "voicemail_detection": {
                            "type": "system",
                            "name": "voicemail_detection",
                            "description": "",
                            "params": {"system_tool_type": "voicemail_detection", "voicemail_message": "Call back"},
                        }
                    },
                },
            },
            "tts": {"voice_id": "voice_mine", "stability": 0.7},
        },
        "platform_settings": {
            "evaluation": {
                "criteria": [{"id": "polite", "name": "Polite", "conversation_goal_prompt": "Was it polite?"}]
            },
            "data_collection": {"order_total": {"type": "number", "description": "The order's total."}},
            "overrides": {"conversation_config_override": {"asr": {"keywords": True}}},
            "call_limits": {"daily_limit": 7},
        },
    }
    response = httpx.patch(
        f"{bare_sandbox.url}/v1/convai/agents/{bare_sandbox.config.agent_id}",
        json=user,
        headers={"xi-api-key": bare_sandbox.config.api_key},
    )
    response.raise_for_status()

    result = await setup_on(bare_sandbox)
    assert result.changed
    assert not any("voicemail_detection" in change for change in result.changes)
    agent = sandbox_agent(bare_sandbox)
    assert is_ready(agent)
    prompt = agent["conversation_config"]["agent"]["prompt"]
    assert prompt["prompt"] == "My own careful prompt."
    assert prompt["tool_ids"] == ["tool_mine"]
    assert prompt["built_in_tools"]["voicemail_detection"]["params"]["voicemail_message"] == "Call back"
    assert agent["conversation_config"]["agent"]["first_message"] == "Hello from me"
    assert agent["conversation_config"]["tts"]["voice_id"] == "voice_mine"
    assert agent["conversation_config"]["tts"]["stability"] == 0.7
    platform = agent["platform_settings"]
    assert [c["id"] for c in platform["evaluation"]["criteria"]] == ["polite", CRITERION_GOAL_ACHIEVED]
    assert platform["evaluation"]["criteria"][0]["conversation_goal_prompt"] == "Was it polite?"
    assert platform["data_collection"]["order_total"] == {"type": "number", "description": "The order's total."}
    assert platform["overrides"]["conversation_config_override"]["asr"] == {"keywords": True}
    assert platform["call_limits"]["daily_limit"] == 7


async def test_dry_run_sends_nothing(bare_sandbox: SandboxServer) -> None:
    before = sandbox_agent(bare_sandbox)
    clear_requests(bare_sandbox)
    result = await setup_on(bare_sandbox, dry_run=True)
    assert result.dry_run and result.changed
    assert result.request  # the PATCH it would send
    assert writes(bare_sandbox) == []
    assert sandbox_agent(bare_sandbox)["platform_settings"] == before["platform_settings"]


async def test_creates_a_ready_agent_with_its_name(bare_sandbox: SandboxServer) -> None:
    clear_requests(bare_sandbox)
    dry = await setup_on(bare_sandbox, agent_id=None, name="Line tester", dry_run=True)
    assert dry.created and dry.agent_id is None and dry.changes[0] == "create the agent 'Line tester'"
    assert requests_to(bare_sandbox) == []

    result = await setup_on(bare_sandbox, agent_id=None, name="Line tester")
    assert result.agent_id
    agent = sandbox_agent(bare_sandbox, result.agent_id)
    assert agent["name"] == "Line tester"
    assert is_ready(agent)
    again = await setup_on(bare_sandbox, agent_id=result.agent_id)
    assert not again.changed


async def test_unknown_agent_is_not_found(bare_sandbox: SandboxServer) -> None:
    with pytest.raises(NotFound, match="agent_nope"):
        await setup_on(bare_sandbox, agent_id="agent_nope")


async def test_webhook_url_sets_events_and_explains_the_manual_step(bare_sandbox: SandboxServer) -> None:
    url = "https://cc.example.com/api/webhooks/elevenlabs"
    result = await setup_on(bare_sandbox, webhook_url=url)
    hooks = sandbox_agent(bare_sandbox)["platform_settings"]["workspace_overrides"]["webhooks"]
    assert hooks["events"] == ["transcript", "audio", "call_initiation_failure"]
    # No workspace webhook points at the URL yet, and none was to be created: setup says what to do by hand.
    assert any(url in note and "ELEVENLABS_WEBHOOK_SECRET" in note for note in result.notes)
    assert "post_call_webhook_id" not in hooks

    given = await setup_on(bare_sandbox, webhook_url=url, webhook_id="wh_given")
    assert given.changes == [f"send post-call webhooks to workspace webhook wh_given ({url})"]
    hooks = sandbox_agent(bare_sandbox)["platform_settings"]["workspace_overrides"]["webhooks"]
    assert hooks["post_call_webhook_id"] == "wh_given"
    assert not (await setup_on(bare_sandbox, webhook_url=url, webhook_id="wh_given")).changed


async def test_workspace_webhook_is_found_by_url() -> None:
    # A literal listing: the sandbox cannot produce disabled webhooks, and the filter must skip them.
    listing = {
        "webhooks": [
            {
                "webhook_id": "wh_off",
                "webhook_url": "https://cc.example.com/api/webhooks/elevenlabs",
                "is_disabled": True,
            },
            {"webhook_id": "wh_other", "webhook_url": "https://other.example.com/hook", "is_disabled": False},
            {
                "webhook_id": "wh_ok",
                "webhook_url": "https://cc.example.com/api/webhooks/elevenlabs/",
                "is_disabled": False,
            },
        ]
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/workspace/webhooks"
        return httpx.Response(200, json=listing)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        client = ElevenLabsClient(http, "key", "https://api.example")
        found = await find_workspace_webhook(client, "https://cc.example.com/api/webhooks/elevenlabs")
    assert found == ("wh_ok", None)


async def test_run_setup_uses_the_settings(bare_sandbox: SandboxServer, tmp_path: Path) -> None:
    settings = settings_for(bare_sandbox, tmp_path, public_url="https://cc.example.com")
    async with httpx.AsyncClient() as http:
        result = await caller_from_settings(settings, http).setup_agent(AgentSetupOptions())
    assert any("https://cc.example.com/api/webhooks/elevenlabs" in note for note in result.notes)
    assert is_ready(sandbox_agent(bare_sandbox))


# ---------------------------------------------------------------- the CLI


def sandbox_env(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> None:
    """Point a CLI run at the sandbox through the environment, as a user would."""
    monkeypatch.setenv("ELEVENLABS_API_BASE", sandbox.url)
    monkeypatch.setenv("ELEVENLABS_API_KEY", sandbox.config.api_key)
    monkeypatch.setenv("ELEVENLABS_AGENT_ID", sandbox.config.agent_id)
    monkeypatch.setenv("ELEVENLABS_AGENT_PHONE_NUMBER_ID", sandbox.config.phone_number_id)


def test_cli_setup_dry_run_then_real_then_nothing(monkeypatch: pytest.MonkeyPatch, bare_sandbox: SandboxServer) -> None:
    sandbox_env(monkeypatch, bare_sandbox)
    runner = CliRunner()
    clear_requests(bare_sandbox)
    dry = runner.invoke(cli_app, ["agent", "setup", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would change agent agent_sandbox" in dry.output
    assert "allow the per-call override of tts.speed" in dry.output
    assert "Dry run: nothing was sent" in dry.output
    assert writes(bare_sandbox) == []

    real = runner.invoke(cli_app, ["agent", "setup"])
    assert real.exit_code == 0, real.output
    assert "Changed agent agent_sandbox" in real.output
    assert "add the built-in tool end_call" in real.output

    again = runner.invoke(cli_app, ["agent", "setup"])
    assert again.exit_code == 0
    assert "nothing to change" in again.output


def test_cli_setup_creates_an_agent(monkeypatch: pytest.MonkeyPatch, bare_sandbox: SandboxServer) -> None:
    sandbox_env(monkeypatch, bare_sandbox)
    monkeypatch.delenv("ELEVENLABS_AGENT_ID")
    result = CliRunner().invoke(cli_app, ["agent", "setup", "--name", "CLI caller"])
    assert result.exit_code == 0, result.output
    assert "Created agent" in result.output and "'CLI caller'" in result.output
    assert "Use it: set ELEVENLABS_AGENT_ID=agent_" in result.output


def test_cli_setup_errors(monkeypatch: pytest.MonkeyPatch, bare_sandbox: SandboxServer) -> None:
    no_key = CliRunner().invoke(cli_app, ["agent", "setup"])
    assert no_key.exit_code == 2
    assert "ELEVENLABS_API_KEY" in no_key.output
    sandbox_env(monkeypatch, bare_sandbox)
    unknown = CliRunner().invoke(cli_app, ["agent", "setup", "--agent-id", "agent_nope"])
    assert unknown.exit_code == 1
    assert "no agent 'agent_nope'" in unknown.output


def test_allowed_overrides_lists_every_enabled_leaf() -> None:
    from callcheck.providers.elevenlabs.agent_profile import allowed_overrides

    agent = {
        "platform_settings": {
            "overrides": {
                "conversation_config_override": {
                    "agent": {"prompt": {"prompt": True, "llm": False}, "first_message": True, "language": None},
                    "tts": {"voice_id": True},
                }
            }
        }
    }
    assert allowed_overrides(agent) == {"agent.prompt.prompt", "agent.first_message", "tts.voice_id"}
    assert allowed_overrides({}) == set()


async def test_create_webhook_makes_calls_report_through_it(bare_sandbox: SandboxServer, tmp_path: Path) -> None:
    """--create-webhook: the workspace webhook is created, the agent points at it, and its secret verifies."""
    from callcheck.cli.agent import format_setup
    from tests.conftest import settings_for
    from tests.servers import HTTP_TIMEOUT_S, AppServer, free_port
    from tests.waiting import wait_for_call

    port = free_port()
    url = f"http://127.0.0.1:{port}/api/webhooks/elevenlabs"
    dry = await setup_on(bare_sandbox, webhook_url=url, create_webhook=True, dry_run=True)
    assert any("Would create a workspace webhook" in note for note in dry.notes) and dry.webhook_secret is None
    assert [r for r in writes(bare_sandbox)] == []
    result = await setup_on(bare_sandbox, webhook_url=url, create_webhook=True)
    assert result.webhook_secret
    assert f"ELEVENLABS_WEBHOOK_SECRET={result.webhook_secret}" in format_setup(result)
    hooks = sandbox_agent(bare_sandbox)["platform_settings"]["workspace_overrides"]["webhooks"]
    listed = httpx.get(f"{bare_sandbox.url}/v1/workspace/webhooks", headers={"xi-api-key": bare_sandbox.config.api_key})
    assert [(h["webhook_id"], h["webhook_url"]) for h in listed.json()["webhooks"]] == [
        (hooks["post_call_webhook_id"], url)
    ]
    assert "secret" not in str(listed.json())
    # A second run finds the webhook by URL and creates nothing.
    again = await setup_on(bare_sandbox, webhook_url=url, create_webhook=True)
    assert not again.changed and again.webhook_secret is None
    assert (
        len(
            httpx.get(
                f"{bare_sandbox.url}/v1/workspace/webhooks", headers={"xi-api-key": bare_sandbox.config.api_key}
            ).json()["webhooks"]
        )
        == 1
    )

    # Asked for another URL, setup keeps the agent's webhook and says where that one points (it listed them).
    elsewhere = await setup_on(bare_sandbox, webhook_url="https://other.example/hook", dry_run=True)
    assert any(
        f"workspace webhook {hooks['post_call_webhook_id']}, which points at {url}, not https://other.example/hook"
        in note
        for note in elsewhere.notes
    ), elsewhere.notes

    # With the printed secret configured, the call's webhooks arrive through the workspace webhook (polls are a
    # minute apart here, so only a webhook can end the call in time).
    settings = settings_for(
        bare_sandbox, tmp_path, elevenlabs_webhook_secret=result.webhook_secret, poll_initial_s=60, poll_max_s=60
    )
    with AppServer(settings, port=port) as server:
        # httpx's own 5 s read timeout was overrun by this request on a loaded machine (a server in a thread, a
        # database under load): the request's deadline is the one for servers under test.
        async with httpx.AsyncClient(base_url=server.url, timeout=HTTP_TIMEOUT_S) as api:
            placed = await api.post("/api/call", json={"to_number": "+15550100001", "business_description": "A shop."})
            assert placed.status_code == 200, placed.text
            call = await wait_for_call(api, placed.json()["id"], {"completed"}, recording=True, timeout=20)
    assert call["state"] == "completed" and call["recording_url"]
    deliveries = httpx.get(f"{bare_sandbox.url}/_sandbox/webhooks").json()
    assert {d["url"] for d in deliveries} == {url} and all(d["delivered"] for d in deliveries)
