"""Sending one alert message to one channel: a generic webhook, a Slack incoming webhook, or email over SMTP.

A sender raises AlertNotSent with a one-line reason (never a secret: no URL path, no password); retrying with
backoff, and recording each attempt, is the delivery workflow's job (jobs/monitors.py).
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

import httpx

from callcheck import __version__
from callcheck.config import Settings
from callcheck.domain.alerts import SIGNATURE_HEADER, email_message, signature, slack_message
from callcheck.domain.monitoring import ChannelKind

REASON_CHARS = 300


class AlertNotSent(Exception):
    """A channel did not take the message; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:REASON_CHARS]


async def send_alert(
    settings: Settings, http: httpx.AsyncClient, channel: str, target: str, message: dict[str, Any]
) -> None:
    """Send `message` (domain.alerts.alert_message) on one channel; AlertNotSent when it did not go through."""
    kind = ChannelKind(channel)
    if kind is ChannelKind.EMAIL:
        subject, text = email_message(message)
        await asyncio.to_thread(_send_email, settings, target, subject, text)
        return
    body = message if kind is ChannelKind.WEBHOOK else slack_message(message)
    raw = json.dumps(body, ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": f"callcheck/{__version__}"}
    if kind is ChannelKind.WEBHOOK:
        headers["X-Callcheck-Event"] = str(message.get("event", ""))
        if settings.alert_webhook_secret and settings.alert_webhook_secret.get_secret_value():
            headers[SIGNATURE_HEADER] = signature(
                settings.alert_webhook_secret.get_secret_value(), int(time.time()), raw
            )
    try:
        answer = await http.post(target, content=raw, headers=headers, timeout=settings.http_timeout_s)
    except httpx.HTTPError as exc:
        # The exception's text may quote the URL, whose path can be a Slack webhook's secret: name its kind only.
        raise AlertNotSent(f"could not reach the {kind.value} receiver ({type(exc).__name__})") from None
    if not 200 <= answer.status_code < 300:
        raise AlertNotSent(f"the {kind.value} receiver answered HTTP {answer.status_code}")


def _send_email(settings: Settings, to: str, subject: str, body: str) -> None:
    """Blocking: one email through the configured SMTP server."""
    if not settings.smtp_host or not settings.smtp_from:
        raise AlertNotSent("email alerts need CALLCHECK_SMTP_HOST and CALLCHECK_SMTP_FROM")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    try:
        smtp: smtplib.SMTP
        if settings.smtp_ssl:
            smtp = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=settings.http_timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.http_timeout_s)
        with smtp:
            if settings.smtp_starttls and not settings.smtp_ssl:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_username, password)
            smtp.send_message(message)
    except smtplib.SMTPException as exc:
        raise AlertNotSent(f"the SMTP server refused the email: {exc}") from None
    except OSError as exc:
        raise AlertNotSent(
            f"could not reach the SMTP server {settings.smtp_host}:{settings.smtp_port}: {exc}"
        ) from None
