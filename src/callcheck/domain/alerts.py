"""What an alert says, on every channel, built from a monitor run's stored report (pure: no I/O).

The generic webhook gets the whole JSON message; Slack gets a Block Kit rendering of it; email a plain-text one.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from callcheck.domain.assertions import excerpt
from callcheck.domain.monitoring import AlertKind

EVIDENCE_CHARS = 300
MAX_SCENARIOS = 20  # a message names at most this many failing scenarios (the run's page has them all)
SIGNATURE_HEADER = "X-Callcheck-Signature"

HEADLINES = {
    AlertKind.ALERT: "is failing",
    AlertKind.RECOVERY: "has recovered",
    AlertKind.TEST: "test alert (nothing changed)",
}


def link(base_url: str, path: str) -> str:
    """An absolute link when the server's public URL is known, else the path alone."""
    return f"{base_url.rstrip('/')}{path}" if base_url else path


def failing_scenarios(report: dict[str, Any] | None, base_url: str) -> list[dict[str, Any]]:
    """The scenarios of a report that did not pass: each with its first failing assertion, its evidence, and links
    to its calls."""
    found: list[dict[str, Any]] = []
    for scenario in (report or {}).get("scenarios", []):
        if scenario.get("status") == "pass":
            continue
        first: dict[str, Any] | None = None
        calls = []
        for run in scenario.get("runs", []):
            call_id = run.get("call_id")
            calls.append(
                {
                    "id": call_id,
                    "url": link(base_url, f"/calls/{call_id}") if call_id else None,
                    "state": run.get("state"),
                    "status": run.get("status"),
                }
            )
            if first is not None:
                continue
            for result in (run.get("verdict") or {}).get("results", []):
                if result.get("status") == "fail":
                    first = {
                        "call_id": call_id,
                        "call_url": link(base_url, f"/calls/{call_id}") if call_id else None,
                        "assertion": result.get("kind"),
                        "expected": result.get("expected"),
                        "evidence": excerpt(str(result.get("evidence") or ""), EVIDENCE_CHARS),
                        "detail": result.get("detail") or "",
                    }
                    break
        stats = scenario.get("stats") or {}
        found.append(
            {
                "name": scenario.get("name"),
                "status": scenario.get("status"),
                "pass_rate": stats.get("rate"),
                "required_pass_rate": stats.get("required"),
                "first_failure": first,
                "calls": calls,
            }
        )
    return found[:MAX_SCENARIOS]


def alert_message(
    *,
    kind: AlertKind,
    monitor: dict[str, Any],
    run: dict[str, Any] | None,
    base_url: str,
    sent_at: datetime,
) -> dict[str, Any]:
    """The JSON message of an alert (the generic webhook's body; the other channels render it).

    `monitor`: name, status, previous_status, consecutive_failures, schedule. `run`: id, state, exit_code, error,
    report, created_at, finished_at, simulated (None for a test alert before any run).
    """
    name = monitor["name"]
    message: dict[str, Any] = {
        "event": f"monitor.{kind.value}",
        "monitor": {
            "name": name,
            "url": link(base_url, f"/monitors/{name}"),
            "schedule": monitor.get("schedule"),
            "consecutive_failures": monitor.get("consecutive_failures", 0),
        },
        "status": monitor["status"],
        "previous_status": monitor.get("previous_status"),
        "text": f"callcheck monitor {name} {HEADLINES[kind]}",
        "run": None,
        "failing_scenarios": [],
        "sent_at": sent_at.isoformat(),
    }
    if run is not None:
        message["run"] = {
            "id": run["id"],
            "url": link(base_url, f"/runs/{run['id']}"),
            "api_url": link(base_url, f"/api/runs/{run['id']}"),
            "state": run.get("state"),
            "exit_code": run.get("exit_code"),
            "error": run.get("error"),
            "started_at": run.get("created_at"),
            "finished_at": run.get("finished_at"),
            "simulated": bool(run.get("simulated")),
        }
        if kind is not AlertKind.RECOVERY:
            message["failing_scenarios"] = failing_scenarios(run.get("report"), base_url)
    return message


def _failure_lines(message: dict[str, Any]) -> list[str]:
    lines = []
    for scenario in message["failing_scenarios"]:
        line = f"• {scenario['name']}: {scenario['status']}"
        first = scenario.get("first_failure")
        if first:
            line += f" — {first['assertion']} expected {first['expected']}; {first['evidence']}"
        lines.append(line)
    return lines


def slack_message(message: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook body (Block Kit, with `text` as the notification's fallback)."""
    icon = {"monitor.alert": ":red_circle:", "monitor.recovery": ":large_green_circle:"}.get(
        message["event"], ":large_blue_circle:"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": excerpt(message["text"], 150)}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{icon} *{_escape(message['monitor']['name'])}* is now *{message['status']}*"
                + (f" (was {message['previous_status']})" if message.get("previous_status") else ""),
            },
        },
    ]
    failures = _failure_lines(message)
    if failures:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": excerpt(_escape("\n".join(failures)), 2900)}}
        )
    links = [f"<{message['monitor']['url']}|monitor>"]
    if message.get("run"):
        links.append(f"<{message['run']['url']}|run {message['run']['id'][:8]}>")
        if message["run"]["simulated"]:
            links.append("SIMULATED (sandbox)")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]})
    return {"text": message["text"], "blocks": blocks}


def _escape(text: str) -> str:
    """Slack's mrkdwn escapes (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(message: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of an alert email."""
    subject = f"[callcheck] {message['monitor']['name']} {HEADLINES[AlertKind(message['event'].split('.', 1)[1])]}"
    lines = [message["text"] + ".", "", f"Status: {message['status']}"]
    if message.get("previous_status"):
        lines.append(f"Previous status: {message['previous_status']}")
    if message.get("run"):
        run = message["run"]
        lines += [f"Run: {run['url']}", f"Run state: {run['state']} (exit code {run['exit_code']})"]
        if run.get("error"):
            lines.append(f"Note: {run['error']}")
        if run["simulated"]:
            lines.append("SIMULATED: this run used callcheck's sandbox, not a real phone line.")
    failures = _failure_lines(message)
    if failures:
        lines += ["", "Failing scenarios:", *failures]
        for scenario in message["failing_scenarios"]:
            first = scenario.get("first_failure")
            if first and first.get("call_url"):
                lines.append(f"  {scenario['name']}: {first['call_url']}")
    lines += ["", f"Monitor: {message['monitor']['url']}"]
    return subject, "\n".join(lines) + "\n"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Callcheck-Signature value: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
