"""Agent setup on ElevenLabs (`callcheck agent setup`, through `ElevenLabsCaller.setup_agent`): create or update
the caller agent so it is ready for callcheck, and say what changed.

The decisions are pure (`agent_profile`); this module only reads the agent, sends the one PATCH (or create) it
needs, and reports. A second run reads an agent that needs nothing and sends nothing.
"""

from __future__ import annotations

from callcheck.config import env_name
from callcheck.domain.access import ELEVENLABS_WEBHOOK_PATH
from callcheck.errors import NotFound, UpstreamHTTPError
from callcheck.providers.base import SetupResult
from callcheck.providers.elevenlabs.agent_profile import (
    DEFAULT_AGENT_NAME,
    SetupPlan,
    WebhookPlan,
    creation_changes,
    new_agent_body,
    plan_agent_setup,
)
from callcheck.providers.elevenlabs.client import ElevenLabsClient

PROVIDER = "ElevenLabs"
WORKSPACE_WEBHOOK_NAME = "callcheck"
# Where a created agent's id and a created webhook's secret go: the result names them for the person.
AGENT_SETTING = env_name("elevenlabs_agent_id")
SECRET_SETTING = env_name("elevenlabs_webhook_secret")


def webhook_url_for(public_url: str | None) -> str | None:
    """callcheck's webhook URL under a public base URL (CALLCHECK_PUBLIC_URL), or None."""
    if not public_url or not public_url.strip():
        return None
    return public_url.strip().rstrip("/") + ELEVENLABS_WEBHOOK_PATH


def _result(agent_id: str | None, agent_name: str | None, *, created: bool, dry_run: bool) -> SetupResult:
    return SetupResult(
        provider=PROVIDER,
        agent_setting=AGENT_SETTING,
        secret_setting=SECRET_SETTING,
        agent_id=agent_id,
        agent_name=agent_name,
        created=created,
        dry_run=dry_run,
    )


def _same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


async def find_workspace_webhook(
    client: ElevenLabsClient, url: str, urls: dict[str, str] | None = None
) -> tuple[str | None, str | None]:
    """(id of an enabled workspace webhook pointing at `url`, or None; a note when the lookup was not possible).

    `urls`, when given, is filled with every listed webhook's id -> URL (to say where the agent's current one points).
    """
    try:
        hooks = await client.list_workspace_webhooks()
    except UpstreamHTTPError as exc:
        # Not in the contract's reference (only the 2025-08 schema), and admin-only parts may be refused: degrade.
        return None, f"Could not list the workspace's webhooks ({exc.message}); the webhook id was not set."
    if urls is not None:
        urls.update(
            {
                h["webhook_id"]: h["webhook_url"]
                for h in hooks
                if isinstance(h.get("webhook_id"), str) and isinstance(h.get("webhook_url"), str)
            }
        )
    for hook in hooks:
        if (
            isinstance(hook.get("webhook_url"), str)
            and _same_url(hook["webhook_url"], url)
            and isinstance(hook.get("webhook_id"), str)
            and not hook.get("is_disabled")
            and not hook.get("is_auto_disabled")
        ):
            return hook["webhook_id"], None
    return None, None


async def setup_agent(
    client: ElevenLabsClient,
    *,
    agent_id: str | None,
    name: str | None = None,
    webhook_url: str | None = None,
    webhook_id: str | None = None,
    create_webhook: bool = False,
    dry_run: bool = False,
) -> SetupResult:
    """Ready the agent `agent_id` (or create one when None) for callcheck; the result lists every change."""
    notes: list[str] = []
    webhook: WebhookPlan | None = None
    created_webhook: tuple[str, str | None] | None = None
    known_urls: dict[str, str] = {}
    if webhook_url:
        if not webhook_id:
            webhook_id, note = await find_workspace_webhook(client, webhook_url, known_urls)
            if note:
                notes.append(note)
        if not webhook_id and create_webhook:
            if dry_run:
                notes.append(f"Would create a workspace webhook for {webhook_url} and point the agent at it.")
            else:
                created_webhook = await client.create_workspace_webhook(WORKSPACE_WEBHOOK_NAME, webhook_url)
                webhook_id = created_webhook[0]
                notes.append(f"Created workspace webhook {webhook_id} for {webhook_url}.")
        webhook = WebhookPlan(url=webhook_url, webhook_id=webhook_id, known_urls=known_urls)

    if not agent_id:
        body = new_agent_body(name or DEFAULT_AGENT_NAME, webhook)
        result = _result(None, body["name"], created=True, dry_run=dry_run)
        result.request = body
        result.changes = creation_changes(body, webhook)
        result.notes = notes + plan_agent_setup({}, webhook).notes
        result.webhook_secret = created_webhook[1] if created_webhook else None
        if not dry_run:
            result.agent_id = await client.create_agent(body)
        return result

    try:
        agent = await client.get_agent(agent_id)
    except UpstreamHTTPError as exc:
        if exc.status == 404:
            raise NotFound(
                f"ElevenLabs has no agent {agent_id!r}. Check ELEVENLABS_AGENT_ID (or --agent-id), or run "
                "`callcheck agent setup` without an agent id to create one."
            ) from exc
        raise
    if name:
        notes.append("--name is only used when creating an agent; the existing agent keeps its name.")
    plan = plan_agent_setup(agent, webhook)
    result = _result(
        agent_id, agent.get("name") if isinstance(agent.get("name"), str) else None, created=False, dry_run=dry_run
    )
    result.changes, result.notes, result.request = plan.changes, notes + plan.notes, plan.patch
    result.webhook_secret = created_webhook[1] if created_webhook else None
    if plan.empty or dry_run:
        return result
    updated = await client.update_agent(agent_id, plan.patch)
    result.notes.extend(_not_kept(plan, plan_agent_setup(updated, webhook)))
    return result


def _not_kept(sent: SetupPlan, after: SetupPlan) -> list[str]:
    # PATCH merge semantics are UNCONFIRMED upstream (§12.8): re-plan on the returned agent to catch a server
    # that dropped part of the change, rather than report success that did not happen.
    lost = [change for change in after.changes if change in sent.changes]
    return [f"ElevenLabs did not keep this change: {change}" for change in lost]
