"""Monitors, the pure part: schedules and their slots, the passing/failing state and when it alerts, channels.

A schedule is cut into *slots*: the instants it fires at (unix seconds). `every` slots sit on multiples of the
period since the epoch (every 15m fires at :00, :15, :30, :45), `cron` slots where the expression matches, in the
monitor's time zone. A slot runs at most once, whoever fires it; a slot that comes while the previous run still runs
is skipped, never queued.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from callcheck.errors import InvalidInput

MIN_EVERY_S = 10  # shorter is for nobody: a run places at least one call
MAX_EVERY_S = 7 * 86_400
# A cron slot found more than this late (the server was down at the time) is skipped, not run late: a cron schedule
# often keeps to business hours, and a run hours later could call a closed line at night.
CRON_GRACE_S = 120
MAX_ALERT_AFTER = 100
MAX_NAME_CHARS = 100
MAX_CHANNELS = 20
MAX_ZONE_CHARS = 64
MATCH_CHECK_FROM = 1_767_225_600  # 2026-01-01: a year to find a cron expression's matches in
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
EMAIL_PATTERN = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")
_EVERY = re.compile(r"^\s*(\d+)\s*(s|sec|secs|m|min|mins|h|hr|hrs)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600, "hrs": 3600}


class MonitorStatus(StrEnum):
    """Where a monitor stands (pausing is a separate switch: a paused monitor keeps its last status)."""

    PENDING = "pending"  # no run has finished yet
    PASSING = "passing"  # the last run passed (or it failed fewer times in a row than the alert threshold)
    FAILING = "failing"  # it failed `alert_after` runs in a row; stays failing until a run passes


class AlertKind(StrEnum):
    """Why a message goes out."""

    ALERT = "alert"  # the monitor started failing
    RECOVERY = "recovery"  # a failing monitor passed again
    TEST = "test"  # `monitor test-alert`: checks the channels, changes nothing


class ChannelKind(StrEnum):
    """Where alerts go."""

    WEBHOOK = "webhook"  # a JSON POST, signed when CALLCHECK_ALERT_WEBHOOK_SECRET is set
    SLACK = "slack"  # a Slack incoming webhook (Block Kit message)
    EMAIL = "email"  # an email over SMTP (CALLCHECK_SMTP_*)


@dataclass(frozen=True)
class Schedule:
    """A fixed period or a cron expression (in a time zone)."""

    every_s: int | None = None
    cron: str | None = None
    timezone: str = "UTC"

    def describe(self) -> str:
        """`every 15m` or `cron "*/30 8-20 * * 1-5" (Europe/Paris)`."""
        if self.every_s is not None:
            return f"every {format_every(self.every_s)}"
        zone = "" if self.timezone == "UTC" else f" ({self.timezone})"
        return f'cron "{self.cron}"{zone}'

    def latest_slot(self, now: float) -> int:
        """The newest slot at or before `now`."""
        if self.every_s is not None:
            return int(now // self.every_s) * self.every_s
        start = datetime.fromtimestamp(now, ZoneInfo(self.timezone))
        it = croniter(self.cron, start)
        if it.match(self.cron, start) and start.second == 0 and start.microsecond == 0:
            return int(now)
        return int(it.get_prev(float))

    def next_slot(self, now: float) -> int:
        """The first slot after `now`."""
        if self.every_s is not None:
            return (int(now // self.every_s) + 1) * self.every_s
        return int(croniter(self.cron, datetime.fromtimestamp(now, ZoneInfo(self.timezone))).get_next(float))

    def runs_per_day(self, now: float) -> float:
        """How many runs a day the schedule starts (a cron schedule's average over a year: minutes x hours x the
        share of days it runs on), read from the expression's fields rather than by walking through every match."""
        if self.every_s is not None:
            return 86_400 / self.every_s
        minutes, hours, days, months, weekdays = croniter(self.cron).expanded[:5]

        def count(values: list[Any], size: int) -> float:
            return float(size) if values == ["*"] else float(len(values))

        per_day = count(minutes, 60) * count(hours, 24)
        month_share = count(months, 12) / 12
        day_share = 1.0 if days == ["*"] else len(days) / 30.44
        weekday_share = 1.0 if weekdays == ["*"] else len({int(d) % 7 for d in weekdays if str(d).isdigit()}) / 7
        if days != ["*"] and weekdays != ["*"]:  # cron runs on a day matching either field
            share = min(1.0, day_share + weekday_share - day_share * weekday_share)
        else:
            share = day_share if days != ["*"] else weekday_share
        return per_day * min(1.0, share) * month_share

    def due(self, last_slot: int | None, now: float) -> tuple[int | None, bool]:
        """(the slot to fire now, or None; and whether it is too late to run and is only to be marked missed)."""
        slot = self.latest_slot(now)
        if last_slot is not None and slot <= last_slot:
            return None, False
        late = self.cron is not None and now - slot > CRON_GRACE_S
        return slot, late


def parse_every(text: str) -> int:
    """`15m`, `90s`, `2h`, `600` (seconds) -> seconds; InvalidInput below 10 s or for anything else."""
    match = _EVERY.match(text or "")
    if not match:
        raise InvalidInput(f"Cannot read the period {text!r}: use a number with s, m or h, e.g. 15m.")
    seconds = int(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    if seconds < MIN_EVERY_S:
        raise InvalidInput(f"The period must be at least {MIN_EVERY_S} s.")
    if seconds > MAX_EVERY_S:
        raise InvalidInput("The period must be at most 7 days (use --cron for rarer runs).")
    return seconds


def format_every(seconds: int) -> str:
    """600 -> `10m`, 5400 -> `90m`, 7200 -> `2h`, 45 -> `45s`."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def schedule_from(every: str | int | None, cron: str | None, timezone: str | None) -> Schedule:
    """A checked schedule from what a person gave (exactly one of every and cron)."""
    if (every is None or every == "") == (cron is None or cron == ""):
        raise InvalidInput("Give a schedule: either every (e.g. 15m) or cron (e.g. */30 8-20 * * 1-5), not both.")
    zone = (timezone or "UTC").strip() or "UTC"
    try:
        if len(zone) > MAX_ZONE_CHARS:
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(
            f"Unknown time zone {zone[:MAX_ZONE_CHARS]!r}: use an IANA name such as Europe/Paris."
        ) from None
    if every is not None and every != "":
        if isinstance(every, bool):
            raise InvalidInput("The period must be a duration such as 15m.")
        if isinstance(every, int):
            every = str(every)
        return Schedule(every_s=parse_every(str(every)), timezone=zone)
    expression = " ".join(str(cron).split())
    if len(expression.split(" ")) != 5 or not croniter.is_valid(expression):
        raise InvalidInput(
            f"Cannot read the cron expression {cron!r}: use five fields (minute hour day month weekday), "
            'e.g. "*/30 8-20 * * 1-5".'
        )
    schedule = Schedule(cron=expression, timezone=zone)
    try:
        # A valid expression can still never match (`0 9 31 2 *`): croniter gives up looking, and so do we.
        schedule.next_slot(MATCH_CHECK_FROM)
        schedule.latest_slot(MATCH_CHECK_FROM)
    except CroniterBadDateError:
        raise InvalidInput(f"The cron expression {cron!r} never matches a date.") from None
    return schedule


def check_name(name: str) -> str:
    """A monitor's name: letters, digits, dot, dash, underscore (it appears in URLs and badges)."""
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_CHARS or not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"A monitor name is 1 to {MAX_NAME_CHARS} letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit."
        )
    return name


def name_from(suite_name: str) -> str:
    """A default monitor name from a suite's name (`Pizza line!` -> `Pizza-line`)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", suite_name).strip("-._")[:MAX_NAME_CHARS]
    return cleaned or "monitor"


def check_channel(kind: str, target: str) -> dict[str, str]:
    """A checked alert channel `{"kind", "target"}`."""
    try:
        channel = ChannelKind(kind)
    except ValueError:
        raise InvalidInput(f"Unknown alert channel {kind!r}: use webhook, slack or email.") from None
    target = (target or "").strip()
    if channel is ChannelKind.EMAIL:
        if not EMAIL_PATTERN.match(target) or len(target) > 320:
            raise InvalidInput(f"{target!r} is not an email address.")
    else:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(target) > 2000:
            raise InvalidInput(f"The {channel.value} alert target must be an http:// or https:// URL.")
    return {"kind": channel.value, "target": target}


def channels_from(value: Any) -> list[dict[str, str]]:
    """Checked channels from a list of `{"kind", "target"}` objects (an API body)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_CHANNELS:
        raise InvalidInput(f"alerts must be a list of at most {MAX_CHANNELS} {{kind, target}} objects.")
    channels = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("kind"), str)
            or not isinstance(item.get("target"), str)
        ):
            raise InvalidInput('Each alert is an object such as {"kind": "webhook", "target": "https://..."}.')
        channels.append(check_channel(item["kind"], item["target"]))
    return channels


def shown_target(channel: dict[str, str]) -> str:
    """A channel's target as shown to people: a URL keeps only its scheme and host (its path or query may hold the
    secret of a Slack or other webhook); an email address is shown whole."""
    if channel["kind"] == ChannelKind.EMAIL:
        return channel["target"]
    parts = urlsplit(channel["target"])
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


@dataclass(frozen=True)
class Outcome:
    """A monitor's state after a run, and the message the change calls for (None: nothing changed)."""

    status: MonitorStatus
    consecutive_failures: int
    alert: AlertKind | None


def after_run(status: MonitorStatus, consecutive_failures: int, passed: bool, alert_after: int) -> Outcome:
    """Apply one run's result. A monitor alerts once when it turns failing (after `alert_after` failing runs in a row)
    and once when it passes again; never while its state stays the same."""
    if passed:
        alert = AlertKind.RECOVERY if status is MonitorStatus.FAILING else None
        return Outcome(MonitorStatus.PASSING, 0, alert)
    failures = consecutive_failures + 1
    if status is not MonitorStatus.FAILING and failures >= max(1, alert_after):
        return Outcome(MonitorStatus.FAILING, failures, AlertKind.ALERT)
    return Outcome(status, failures, None)


def calls_per_day(schedule: Schedule, calls_per_run: int, now: float) -> float:
    """How many calls a day a monitor's schedule places at most."""
    return schedule.runs_per_day(now) * calls_per_run


def calls_per_day_sentence(schedule: Schedule, calls_per_run: int, now: float) -> str:
    """`This schedule places up to 96 calls a day (96 runs of 1 call).`"""
    runs = schedule.runs_per_day(now)
    total = runs * calls_per_run
    shown_runs = f"{int(runs):,}" if runs == int(runs) else f"about {runs:.1f}"
    shown_total = f"{math.ceil(total):,}" if total != int(total) else f"{int(total):,}"
    call_word = "call" if calls_per_run == 1 else "calls"
    total_word = "call" if shown_total == "1" else "calls"
    run_word = "run" if shown_runs == "1" else "runs"
    return (
        f"This schedule places up to {shown_total} {total_word} a day "
        f"({shown_runs} {run_word} of {calls_per_run} {call_word})."
    )
