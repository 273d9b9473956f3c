"""What the caller agent needs for callcheck, and the smallest change that gets an agent there. Pure: no I/O.

callcheck reads an ElevenLabs agent (contract §6) and asks four things of it:

- per-call overrides enabled for every field `outbound.outbound_payload` may send (§6.5), or ElevenLabs
  refuses the call;
- the built-in system tools (§6.3): `end_call` and `play_keypad_touch_tone` are required (hang up, get through an
  IVR menu); `voicemail_detection` and `skip_turn` are recommended;
- the evaluation criterion and data-collection items that journey figures and verdicts read (§6.4,
  `domain.evidence`);
- optionally, the agent-level post-call webhook settings (§5.5).

`plan_agent_setup(agent)` turns the agent's JSON into a minimal PATCH body plus one line per change, keeping
everything else the user configured. It relies on PATCH deep-merging objects (UNCONFIRMED upstream, §6.1/§12.8,
and what the sandbox does): objects are sent with only the keys we add, while arrays (`evaluation.criteria`,
webhook `events`) are sent whole, the user's entries first, because a PATCH replaces an array.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from callcheck.domain.evidence import (
    CRITERION_GOAL_ACHIEVED,
    DATA_CONFIRMATION_NUMBER,
    DATA_REACHED_HUMAN,
    DATA_TRANSFERRED,
)
from callcheck.errors import UpstreamHTTPError
from callcheck.providers.elevenlabs.tools import END_CALL_TOOL, KEYPAD_TOOL, SKIP_TURN_TOOL, VOICEMAIL_TOOL
from callcheck.providers.elevenlabs.wire import REFUSED_OVERRIDE

# Every `conversation_config_override` field callcheck may send per call (outbound.outbound_payload): the prompt,
# first message and maximum duration always, language and voice (id, speed) when a suite's persona asks for them.
REQUIRED_OVERRIDES: tuple[tuple[str, ...], ...] = (
    ("agent", "prompt", "prompt"),
    ("agent", "first_message"),
    ("agent", "language"),
    ("tts", "voice_id"),
    ("tts", "speed"),
    # Sent with every call: the call's timeout, so no call runs past callcheck's limit (no hang-up endpoint exists).
    ("conversation", "max_duration_seconds"),
)

# Without these a call silently goes wrong: the caller cannot press "2" in a menu, or cannot hang up.
REQUIRED_TOOLS: tuple[str, ...] = (END_CALL_TOOL, KEYPAD_TOOL)
# Useful but not fatal: without them voicemail is talked at and hold music gets answered.
RECOMMENDED_TOOLS: tuple[str, ...] = (VOICEMAIL_TOOL, SKIP_TURN_TOOL)
SETUP_TOOLS: tuple[str, ...] = REQUIRED_TOOLS + RECOMMENDED_TOOLS

TOOL_PURPOSE = {
    END_CALL_TOOL: "hang up when done",
    KEYPAD_TOOL: "press keys in IVR menus, DTMF",
    VOICEMAIL_TOOL: "notice voicemail and hang up",
    SKIP_TURN_TOOL: "stay silent while on hold",
}

CRITERIA: tuple[dict[str, Any], ...] = (
    {
        "id": CRITERION_GOAL_ACHIEVED,
        "name": "Caller's goal achieved",
        "type": "prompt",
        "conversation_goal_prompt": (
            "The caller (the agent) phoned a business to complete a task described in its instructions. "
            "Success if the business completed or clearly confirmed that task during the call; failure if it did "
            "not (refused, could not understand, the call was cut off, or the caller gave up); unknown if the "
            "transcript does not say."
        ),
        "use_knowledge_base": False,
    },
)

DATA_ITEMS: dict[str, dict[str, Any]] = {
    DATA_REACHED_HUMAN: {
        "type": "boolean",
        "description": "True if the caller spoke with a live person at the business at any point (not only a "
        "recording, IVR menu, voicemail or voice bot); false otherwise.",
    },
    DATA_TRANSFERRED: {
        "type": "boolean",
        "description": "True if the business transferred or forwarded the call to another person, department "
        "or line during the call; false otherwise.",
    },
    DATA_CONFIRMATION_NUMBER: {
        "type": "string",
        "description": "The confirmation, order, booking, ticket or reference number the business gave the "
        "caller, exactly as said; empty if none was given.",
    },
}

# The post-call events callcheck's webhook endpoint handles (contract §5.4, §5.5 `ConvAiWebhooks.events`).
WEBHOOK_EVENTS: tuple[str, ...] = ("transcript", "audio", "call_initiation_failure")

DEFAULT_AGENT_NAME = "callcheck caller"
# Placeholders only: callcheck sends the real prompt and first message with every call (per-call overrides).
DEFAULT_PROMPT = (
    "You are a customer phoning a business. Stay in character as the caller, try to complete your task, "
    "use the keypad tool to answer phone menus, and keep each reply short."
)
DEFAULT_FIRST_MESSAGE = "Hi, I'm calling with a quick question."


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _at(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = _dict(tree).get(key)
    return tree


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def system_tool(name: str) -> dict[str, Any]:
    """A built-in system tool slot as the SDK sends it (contract §6.3); empty description = ElevenLabs' default."""
    return {"type": "system", "name": name, "description": "", "params": {"system_tool_type": name}}


def _override_flags(agent: dict[str, Any]) -> dict[str, Any]:
    return _dict(_at(agent, ("platform_settings", "overrides", "conversation_config_override")))


def allowed_overrides(agent: dict[str, Any]) -> set[str]:
    """Dotted names (e.g. "agent.prompt.prompt") of every per-call override the agent allows (contract §6.5)."""
    allowed: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        for key, value in _dict(node).items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if value is True:
                allowed.add(name)
            else:
                walk(value, name)

    walk(_override_flags(agent), "")
    return allowed


def missing_overrides(agent: dict[str, Any]) -> list[str]:
    """Dotted names of the per-call overrides callcheck sends that the agent does not allow."""
    flags = _override_flags(agent)
    return [".".join(path) for path in REQUIRED_OVERRIDES if _at(flags, path) is not True]


def _prompt(agent: dict[str, Any]) -> dict[str, Any]:
    return _dict(_at(agent, ("conversation_config", "agent", "prompt")))


def has_tool(agent: dict[str, Any], name: str) -> bool:
    """True when the agent has the built-in system tool, in `built_in_tools` or the legacy `tools` list."""
    prompt = _prompt(agent)
    if isinstance(_dict(prompt.get("built_in_tools")).get(name), dict):
        return True
    # Legacy shape still modelled by the SDK (§6.3): `prompt.tools: [{"type": "system", "name": ...}]`.
    for tool in _list(prompt.get("tools")):
        tool = _dict(tool)
        params = _dict(tool.get("params"))
        if tool.get("type") == "system" and name in (tool.get("name"), params.get("system_tool_type")):
            return True
    return False


def missing_tools(agent: dict[str, Any], names: tuple[str, ...] = SETUP_TOOLS) -> list[str]:
    """Which of `names` the agent lacks."""
    return [name for name in names if not has_tool(agent, name)]


def _criteria(agent: dict[str, Any]) -> list[Any]:
    return _list(_at(agent, ("platform_settings", "evaluation", "criteria")))


def missing_criteria(agent: dict[str, Any]) -> list[str]:
    """Ids of callcheck's evaluation criteria the agent lacks."""
    present = {_dict(c).get("id") for c in _criteria(agent)}
    return [c["id"] for c in CRITERIA if c["id"] not in present]


def missing_data_items(agent: dict[str, Any]) -> list[str]:
    """Ids of callcheck's data-collection items the agent lacks."""
    present = _dict(_at(agent, ("platform_settings", "data_collection")))
    return [key for key in DATA_ITEMS if not isinstance(present.get(key), dict)]


def agent_webhooks(agent: dict[str, Any]) -> dict[str, Any]:
    """The agent's `platform_settings.workspace_overrides.webhooks` (§5.5), or {}."""
    return _dict(_at(agent, ("platform_settings", "workspace_overrides", "webhooks")))


def effective_webhooks(agent: dict[str, Any], workspace: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The post-call webhook settings that apply to the agent's calls, and where they are set ("agent" or
    "workspace"): the agent's override when it names a webhook, else the workspace's (GET /v1/convai/settings ->
    `webhooks`, which is where most workspaces set them; confirmed by the docs and the SDK's models)."""
    own = agent_webhooks(agent)
    if own.get("post_call_webhook_id") or workspace is None:
        return own, "agent"
    shared = _dict(workspace.get("webhooks"))
    return (shared, "workspace") if shared.get("post_call_webhook_id") else (own, "agent")


def max_duration_allowed(agent: dict[str, Any]) -> bool:
    """Whether the agent lets callcheck cap each call with the per-call `conversation.max_duration_seconds`."""
    return _at(_override_flags(agent), ("conversation", "max_duration_seconds")) is True


@dataclass
class WebhookPlan:
    """What setup should do about post-call webhooks: the URL they should reach and, if known, the workspace
    webhook's id that points there."""

    url: str
    webhook_id: str | None = None
    known_urls: dict[str, str] = field(default_factory=dict)  # workspace webhook id -> URL, when they were listed


@dataclass
class SetupPlan:
    """A minimal PATCH body (empty: nothing to change) and one line per change, for a person."""

    patch: dict[str, Any] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when the agent is already as callcheck needs it."""
        return not self.patch


def plan_agent_setup(agent: dict[str, Any], webhook: WebhookPlan | None = None) -> SetupPlan:
    """The smallest PATCH that readies `agent` for callcheck, keeping everything else the user configured."""
    plan = SetupPlan()
    patch = plan.patch

    flags = _override_flags(agent)
    for path in REQUIRED_OVERRIDES:
        if _at(flags, path) is not True:
            _put(patch, ("platform_settings", "overrides", "conversation_config_override", *path), True)
            plan.changes.append(f"allow the per-call override of {'.'.join(path)}")

    for name in missing_tools(agent):
        # A slot the user filled (e.g. voicemail_detection with their own message) is kept: only empty ones are set.
        _put(patch, ("conversation_config", "agent", "prompt", "built_in_tools", name), system_tool(name))
        plan.changes.append(f"add the built-in tool {name} ({TOOL_PURPOSE[name]})")

    lacking = missing_criteria(agent)
    if lacking:
        # PATCH replaces arrays: send the user's criteria first, unchanged, then ours.
        criteria = [copy.deepcopy(c) for c in _criteria(agent)]
        criteria += [copy.deepcopy(c) for c in CRITERIA if c["id"] in lacking]
        _put(patch, ("platform_settings", "evaluation", "criteria"), criteria)
        plan.changes.extend(f"add the evaluation criterion {cid}" for cid in lacking)

    for key in missing_data_items(agent):
        _put(patch, ("platform_settings", "data_collection", key), copy.deepcopy(DATA_ITEMS[key]))
        plan.changes.append(f"add the data-collection item {key} ({DATA_ITEMS[key]['type']})")

    if webhook is not None:
        _plan_webhook(agent, webhook, plan)
    return plan


def _plan_webhook(agent: dict[str, Any], webhook: WebhookPlan, plan: SetupPlan) -> None:
    current = agent_webhooks(agent)
    base = ("platform_settings", "workspace_overrides", "webhooks")
    events = [e for e in _list(current.get("events")) if isinstance(e, str)]
    added = [e for e in WEBHOOK_EVENTS if e not in events]
    if added:
        _put(plan.patch, (*base, "events"), events + added)
        plan.changes.append("send post-call webhook events " + ", ".join(added))
    current_id = current.get("post_call_webhook_id")
    if webhook.webhook_id and current_id != webhook.webhook_id:
        _put(plan.patch, (*base, "post_call_webhook_id"), webhook.webhook_id)
        plan.changes.append(f"send post-call webhooks to workspace webhook {webhook.webhook_id} ({webhook.url})")
    elif not webhook.webhook_id and not current_id:
        plan.notes.append(webhook_manual_step(webhook.url))
    elif not webhook.webhook_id and str(current_id) in webhook.known_urls:
        plan.notes.append(
            f"The agent sends post-call webhooks to workspace webhook {current_id}, which points at "
            f"{webhook.known_urls[str(current_id)]}, not {webhook.url}; it was kept. To send them to {webhook.url}, "
            "run `callcheck agent setup --create-webhook` (or pass --webhook-id of a webhook with that URL)."
        )
    elif not webhook.webhook_id:
        plan.notes.append(
            f"The agent already sends post-call webhooks to workspace webhook {current_id}; the workspace's webhooks "
            f"could not be listed to tell its URL, so it was kept. Make sure it points at {webhook.url}."
        )


def webhook_manual_step(url: str) -> str:
    """The one step setup cannot do for the user: create the workspace webhook (it holds the URL and secret)."""
    return (
        "ElevenLabs sends post-call webhooks through a workspace webhook, which holds the URL and the HMAC secret; "
        "the agent only refers to it by id. Create one in ElevenLabs (Settings > Webhooks, HMAC authentication) "
        f"with the URL {url}, put its secret in ELEVENLABS_WEBHOOK_SECRET, then run `callcheck agent setup` again "
        "(it finds the webhook by URL) or pass --webhook-id. Or let setup create it: `callcheck agent setup "
        "--create-webhook` (it prints the secret once)."
    )


def new_agent_body(name: str, webhook: WebhookPlan | None = None) -> dict[str, Any]:
    """The create body of a caller agent that is ready for callcheck from the start (contract §6.1, §6.3)."""
    empty: dict[str, Any] = {
        "name": name,
        "tags": ["callcheck"],
        "conversation_config": {
            "agent": {"first_message": DEFAULT_FIRST_MESSAGE, "language": "en", "prompt": {"prompt": DEFAULT_PROMPT}}
        },
        "platform_settings": {},
    }
    plan = plan_agent_setup(empty, webhook)
    return _deep_merge(empty, plan.patch)


def creation_changes(body: dict[str, Any], webhook: WebhookPlan | None = None) -> list[str]:
    """One line per thing a newly created agent gets, for the setup report."""
    empty: dict[str, Any] = {"conversation_config": {}, "platform_settings": {}}
    return [f"create the agent {body.get('name')!r}", *plan_agent_setup(empty, webhook).changes]


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_QUOTED = re.compile(r"'([A-Za-z0-9_.]+)'")

# What a call refused for a per-call override says, whether ElevenLabs refused it at dial time (HTTP 400) or ended
# the conversation at its start (which of the two the live API does is UNCONFIRMED: detect both).
OVERRIDES_REFUSED = "the agent does not allow per-call overrides; run `callcheck agent setup`"


def explain_refused_override(error: UpstreamHTTPError) -> UpstreamHTTPError:
    """The same error, reworded when ElevenLabs refused a per-call override the agent does not allow.

    The seed's shape is kept (`ElevenLabs API error (400): ...`, a 502 for the API); the detail gains what is
    wrong and the command that fixes it. Any other error is returned unchanged.
    """
    if error.status != 400 or not REFUSED_OVERRIDE.search(error.detail):
        return error
    fields = _QUOTED.findall(error.detail)
    what = f" (callcheck sends {', '.join(fields)})" if fields else ""
    detail = f"{error.detail.rstrip()} {OVERRIDES_REFUSED[0].upper()}{OVERRIDES_REFUSED[1:]}{what}."
    return UpstreamHTTPError(error.status, detail, error.body)
