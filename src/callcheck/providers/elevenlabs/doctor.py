"""The doctor's checks of the ElevenLabs set-up (`ElevenLabsCaller.doctor_checks`): settings, API key, agent, phone
number and post-call webhooks, each saying in plain words how to fix a problem.

Each check is a `Check` (providers/base.py): `status` is pass, fail, warn (worth fixing, does not stop calls) or
skip (it depends on an earlier check that failed; `ok` is false so a skip never reads as a pass). Messages name
settings, never their values. Only GET requests: the doctor changes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from callcheck.config import Settings
from callcheck.errors import UpstreamHTTPError, UpstreamUnreachable
from callcheck.providers.base import Check
from callcheck.providers.elevenlabs.agent_profile import (
    RECOMMENDED_TOOLS,
    REQUIRED_TOOLS,
    WEBHOOK_EVENTS,
    effective_webhooks,
    max_duration_allowed,
    missing_criteria,
    missing_data_items,
    missing_overrides,
    missing_tools,
    webhook_manual_step,
)
from callcheck.providers.elevenlabs.client import ElevenLabsClient
from callcheck.providers.elevenlabs.setup import webhook_url_for

SETUP = "Run `callcheck agent setup` (add --dry-run first to see what it would change)."


def _pass(name: str, message: str) -> Check:
    return Check(name=name, ok=True, status="pass", message=message)


def _warn(name: str, message: str, fix: str | None = None) -> Check:
    return Check(name=name, ok=True, status="warn", message=message, fix=fix)


def _fail(name: str, message: str, fix: str | None = None) -> Check:
    return Check(name=name, ok=False, status="fail", message=message, fix=fix)


def _skip(name: str, reason: str) -> Check:
    return Check(name=name, ok=False, status="skip", message=f"Skipped: {reason}")


def _is_elevenlabs(api_base: str) -> bool:
    host = urlsplit(api_base).hostname or ""
    return host == "elevenlabs.io" or host.endswith(".elevenlabs.io")


def _publicly_reachable(url: str) -> str | None:
    """Why ElevenLabs could not deliver to `url`, or None when it looks deliverable."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "it is not an https URL"
    host = parts.hostname or ""
    if host in ("localhost", "") or host.endswith(".local"):
        return f"{host or 'its host'} is not reachable from the internet"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_private or address.is_loopback or address.is_link_local or address.is_unspecified:
        return f"{host} is a private address"
    return None


async def elevenlabs_checks(settings: Settings, http: httpx.AsyncClient, public_url: str | None) -> list[Check]:
    """Every check of the ElevenLabs set-up (read-only requests), in the order they are reported."""
    checks: list[Check] = []
    missing = settings.missing_call_settings()
    if missing:
        checks.append(
            _fail(
                "settings",
                "Missing required settings: " + ", ".join(missing) + ".",
                "Set them in the environment or a .env file (docs/configuration.md). No agent yet? "
                "`callcheck agent setup` creates one and prints its id.",
            )
        )
    else:
        checks.append(_pass("settings", "ELEVENLABS_API_KEY, ELEVENLABS_AGENT_ID and the phone number id are set."))

    key = settings.elevenlabs_api_key.get_secret_value().strip() if settings.elevenlabs_api_key else ""
    client = ElevenLabsClient(http, key, settings.elevenlabs_api_base) if key else None
    numbers: list[dict[str, Any]] | None = None
    if client is None:
        checks.append(_skip("api_key", "ELEVENLABS_API_KEY is not set."))
    else:
        try:
            numbers = await client.list_phone_numbers()
            checks.append(_pass("api_key", "ElevenLabs accepted the API key."))
        except UpstreamHTTPError as exc:
            if exc.status in (401, 403):
                checks.append(
                    _fail(
                        "api_key",
                        f"ElevenLabs refused the API key ({exc.status}: {exc.detail}).",
                        "Create an API key with Conversational AI (Agents) access in ElevenLabs (Developers > "
                        "API keys) and set ELEVENLABS_API_KEY to it.",
                    )
                )
            else:
                checks.append(_fail("api_key", f"ElevenLabs answered with an error: {exc.message}", None))
        except UpstreamUnreachable as exc:
            checks.append(
                _fail(
                    "api_key",
                    f"{exc.message} (ELEVENLABS_API_BASE is {settings.elevenlabs_api_base}).",
                    "Check the network, or ELEVENLABS_API_BASE (unset it for the real ElevenLabs; point it at "
                    "`callcheck sandbox` to try offline).",
                )
            )
    key_ok = numbers is not None

    agent = await _agent_checks(checks, client if key_ok else None, settings, key_ok)
    _phone_checks(checks, numbers, settings)

    url = webhook_url_for(public_url)
    secret = settings.elevenlabs_webhook_secret
    if secret and secret.get_secret_value().strip():
        checks.append(
            _pass("webhook_secret", "ELEVENLABS_WEBHOOK_SECRET is set: signed post-call webhooks are accepted.")
        )
    else:
        # Optional (README, docs/configuration.md): without it calls still work, they are polled.
        checks.append(
            _warn(
                "webhook_secret",
                "ELEVENLABS_WEBHOOK_SECRET is not set (optional): post-call webhooks are refused, so calls are "
                "polled (results arrive a little later).",
                "Create an HMAC workspace webhook in ElevenLabs (Settings > Webhooks) pointing at "
                f"{url or '<CALLCHECK_PUBLIC_URL>/api/webhooks/elevenlabs'} and set ELEVENLABS_WEBHOOK_SECRET "
                "to its secret.",
            )
        )
    if url:
        await _webhook_checks(checks, url, settings, client if key_ok else None, agent)
    else:
        checks.append(
            _warn(
                "public_url",
                "CALLCHECK_PUBLIC_URL is not set (optional): ElevenLabs has no address of this server to send "
                "post-call webhooks to, so calls are polled (results arrive a little later).",
                "To have results as soon as a call ends, expose callcheck through an https tunnel (e.g. cloudflared "
                "or ngrok), set CALLCHECK_PUBLIC_URL to its URL and run `callcheck agent setup`.",
            )
        )
    return checks


async def _agent_checks(
    checks: list[Check], client: ElevenLabsClient | None, settings: Settings, key_ok: bool
) -> dict[str, Any] | None:
    """The `agent` check, then each of AGENT_CHECKS on the agent read (skipped, each, when it could not be)."""
    agent_id = (settings.elevenlabs_agent_id or "").strip()
    reason = None
    if not agent_id:
        reason = "ELEVENLABS_AGENT_ID is not set."
    elif client is None or not key_ok:
        reason = "the API key was not accepted."
    agent: dict[str, Any] | None = None
    if reason is None and client is not None:
        agent, read = await _read_agent(client, agent_id)
        checks.append(read)
    if agent is None:
        names = [name for name, _ in AGENT_CHECKS] if reason is None else ["agent", *(n for n, _ in AGENT_CHECKS)]
        checks.extend(_skip(name, reason or "the agent could not be read.") for name in names)
        return None
    checks.extend(check(agent) for _, check in AGENT_CHECKS)
    return agent


async def _read_agent(client: ElevenLabsClient, agent_id: str) -> tuple[dict[str, Any] | None, Check]:
    """The agent (None when it could not be read) and the `agent` check saying so."""
    try:
        agent = await client.get_agent(agent_id)
    except UpstreamHTTPError as exc:
        if exc.status == 404:
            return None, _fail(
                "agent",
                f"ElevenLabs has no agent {agent_id!r} in this workspace.",
                "Check ELEVENLABS_AGENT_ID, or run `callcheck agent setup` without it to create a caller "
                "agent and set ELEVENLABS_AGENT_ID to the id it prints.",
            )
        return None, _fail("agent", f"Could not read the agent: {exc.message}")
    except UpstreamUnreachable as exc:
        return None, _fail("agent", f"Could not read the agent: {exc.message}")
    return agent, _pass("agent", f"Agent {agent_id} ({agent.get('name') or 'unnamed'}) exists.")


def _agent_overrides(agent: dict[str, Any]) -> Check:
    refused = [name for name in missing_overrides(agent) if name != "conversation.max_duration_seconds"]
    if not refused:
        return _pass("agent_overrides", "The agent allows every per-call override callcheck sends.")
    return _fail(
        "agent_overrides",
        "The agent does not allow per-call overrides of "
        + ", ".join(refused)
        + ", which callcheck sends with calls; ElevenLabs refuses such calls.",
        SETUP,
    )


def _agent_max_duration(agent: dict[str, Any]) -> Check:
    if max_duration_allowed(agent):
        return _pass(
            "agent_max_duration",
            "The agent lets callcheck cap each call's length (conversation.max_duration_seconds).",
        )
    return _fail(
        "agent_max_duration",
        "The agent does not allow the per-call override conversation.max_duration_seconds, which callcheck "
        "sends with every call so that no call runs past its timeout (there is no hang-up endpoint); "
        "ElevenLabs refuses such calls.",
        SETUP,
    )


def _agent_tools(agent: dict[str, Any]) -> Check:
    lacking = missing_tools(agent, REQUIRED_TOOLS)
    if not lacking:
        return _pass("agent_tools", "The agent can press keypad keys and end calls.")
    return _fail(
        "agent_tools",
        f"The agent lacks the built-in {'tool' if len(lacking) == 1 else 'tools'} "
        + ", ".join(lacking)
        + ": without play_keypad_touch_tone the caller cannot press keys in phone menus, without end_call "
        "it cannot hang up.",
        SETUP,
    )


def _agent_optional_tools(agent: dict[str, Any]) -> Check:
    optional = missing_tools(agent, RECOMMENDED_TOOLS)
    if not optional:
        return _pass("agent_optional_tools", "The agent has voicemail detection and skip_turn.")
    return _warn(
        "agent_optional_tools",
        f"The agent lacks the recommended {'tool' if len(optional) == 1 else 'tools'} "
        + ", ".join(optional)
        + " (voicemail detection, staying silent on hold).",
        SETUP,
    )


def _agent_analysis(agent: dict[str, Any]) -> Check:
    analysis = missing_criteria(agent) + missing_data_items(agent)
    if not analysis:
        return _pass("agent_analysis", "The agent's analysis has the criterion and data items callcheck reads.")
    return _fail(
        "agent_analysis",
        "The agent's post-call analysis lacks " + ", ".join(analysis) + ", which callcheck's verdicts read.",
        SETUP,
    )


# The checks of an agent that could be read, in the order they are reported: (name, check). Each is skipped, by
# name, when the agent could not be read.
AGENT_CHECKS: list[tuple[str, Callable[[dict[str, Any]], Check]]] = [
    ("agent_overrides", _agent_overrides),
    ("agent_max_duration", _agent_max_duration),
    ("agent_tools", _agent_tools),
    ("agent_optional_tools", _agent_optional_tools),
    ("agent_analysis", _agent_analysis),
]


def _phone_checks(checks: list[Check], numbers: list[dict[str, Any]] | None, settings: Settings) -> None:
    names = ("phone_number", "phone_number_provider", "phone_number_outbound")
    phone_id = (settings.elevenlabs_agent_phone_number_id or "").strip()
    if not phone_id:
        checks.extend(_skip(name, "ELEVENLABS_AGENT_PHONE_NUMBER_ID is not set.") for name in names)
        return
    if numbers is None:
        checks.extend(_skip(name, "the API key was not accepted.") for name in names)
        return
    found = next((n for n in numbers if n.get("phone_number_id") == phone_id), None)
    if found is None:
        known = ", ".join(f"{n.get('phone_number_id')} ({n.get('phone_number')})" for n in numbers) or "none"
        checks.append(
            _fail(
                "phone_number",
                f"This ElevenLabs workspace has no phone number with id {phone_id!r} (it has: {known}).",
                "Import your Twilio number in ElevenLabs (Agents > Phone Numbers) and set "
                "ELEVENLABS_AGENT_PHONE_NUMBER_ID to its phone_number_id.",
            )
        )
        checks.extend(_skip(name, "the phone number was not found.") for name in names[1:])
        return
    label = f"{phone_id} ({found.get('phone_number')})"
    checks.append(_pass("phone_number", f"Phone number {label} exists."))
    provider = found.get("provider") or "twilio"  # the SDK's default for the tag (contract Appendix H)
    if provider != "twilio":
        checks.append(
            _fail(
                "phone_number_provider",
                f"Phone number {label} is a {provider} number; callcheck dials through ElevenLabs' Twilio "
                "endpoint, which refuses other numbers.",
                "Import a Twilio number in ElevenLabs and set ELEVENLABS_AGENT_PHONE_NUMBER_ID to its id.",
            )
        )
    else:
        checks.append(_pass("phone_number_provider", f"Phone number {label} is a Twilio number."))
    # Absent means true (the spec's default, contract §8); only an explicit false is a problem.
    if found.get("supports_outbound") is False:
        checks.append(
            _fail(
                "phone_number_outbound",
                f"Phone number {label} does not support outbound calls.",
                "Use a number that can place outbound calls (check its Twilio capabilities and its settings in "
                "ElevenLabs), and set ELEVENLABS_AGENT_PHONE_NUMBER_ID to it.",
            )
        )
    else:
        checks.append(_pass("phone_number_outbound", f"Phone number {label} supports outbound calls."))


@dataclass
class WebhookSetting:
    """What the webhook checks read: where ElevenLabs should post, and what the earlier checks found."""

    url: str
    settings: Settings
    client: ElevenLabsClient | None  # None without an accepted API key
    agent: dict[str, Any] | None  # None when the agent could not be read


async def _webhook_checks(
    checks: list[Check],
    url: str,
    settings: Settings,
    client: ElevenLabsClient | None,
    agent: dict[str, Any] | None,
) -> None:
    """Each of WEBHOOK_CHECKS, in order."""
    seen = WebhookSetting(url, settings, client, agent)
    for check in WEBHOOK_CHECKS:
        checks.append(await check(seen))


async def _webhook_url(seen: WebhookSetting) -> Check:
    url, api_base = seen.url, seen.settings.elevenlabs_api_base
    problem = _publicly_reachable(url)
    if problem is None:
        return _pass("webhook_url", f"ElevenLabs can be pointed at {url}.")
    if _is_elevenlabs(api_base):
        return _fail(
            "webhook_url",
            f"ElevenLabs cannot deliver webhooks to {url}: {problem}.",
            "Expose callcheck through an https tunnel (e.g. cloudflared or ngrok) and set CALLCHECK_PUBLIC_URL "
            "to its public https URL.",
        )
    return _pass("webhook_url", f"{url} is fine for the local ElevenLabs at {api_base}.")


async def _agent_webhook(seen: WebhookSetting) -> Check:
    url, client = seen.url, seen.client
    if seen.agent is None:
        return _skip("agent_webhook", "the agent could not be read.")
    try:
        workspace_settings = await client.get_convai_settings() if client is not None else None
    except (UpstreamHTTPError, UpstreamUnreachable):
        workspace_settings = None
    hooks, level = effective_webhooks(seen.agent, workspace_settings)
    where = "The workspace" if level == "workspace" else "The agent"
    raw_events = hooks.get("events")
    events: list[Any] = raw_events if isinstance(raw_events, list) else []
    lacking = [e for e in WEBHOOK_EVENTS if e not in events]
    hook_id = hooks.get("post_call_webhook_id")
    if lacking:
        return _fail("agent_webhook", f"{where} does not send the post-call events " + ", ".join(lacking) + ".", SETUP)
    if not isinstance(hook_id, str) or not hook_id:
        return _fail("agent_webhook", f"{where} has no post-call webhook id.", webhook_manual_step(url))
    try:
        workspace = await client.list_workspace_webhooks() if client is not None else None
    except (UpstreamHTTPError, UpstreamUnreachable):
        workspace = None
    if workspace is None:
        return _warn(
            "agent_webhook",
            f"{where} sends post-call webhooks to workspace webhook {hook_id}; callcheck could not list the "
            f"workspace's webhooks to confirm it points at {url}.",
            f"In ElevenLabs (Settings > Webhooks), check that webhook {hook_id} has the URL {url}.",
        )
    hook = next((h for h in workspace if h.get("webhook_id") == hook_id), None)
    return _workspace_webhook(
        hook, f"{where}'s webhook {hook_id}", url, f"{where} sends post-call webhooks to {url} ({level} setting)."
    )


def _workspace_webhook(hook: dict[str, Any] | None, named: str, url: str, fine: str) -> Check:
    """The workspace webhook the agent's events go to: there, pointing at `url`, and enabled."""
    target = hook.get("webhook_url") if hook else None
    if hook is None:
        return _fail("agent_webhook", f"{named} does not exist.", webhook_manual_step(url))
    if not isinstance(target, str) or target.rstrip("/") != url.rstrip("/"):
        return _fail("agent_webhook", f"{named} points at {target}, not {url}.", webhook_manual_step(url))
    if hook.get("is_disabled") or hook.get("is_auto_disabled"):
        return _fail(
            "agent_webhook",
            f"{named} is disabled in ElevenLabs.",
            "Re-enable it in ElevenLabs (Settings > Webhooks); auto-disabled webhooks had repeated failures.",
        )
    return _pass("agent_webhook", fine)


# The checks of the post-call webhook, in the order they are reported.
WEBHOOK_CHECKS: list[Callable[[WebhookSetting], Awaitable[Check]]] = [_webhook_url, _agent_webhook]
