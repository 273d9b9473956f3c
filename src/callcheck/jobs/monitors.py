"""Monitors: suites run on a schedule by a server's durable workers, alerting when their state changes.

    scheduler tick (every CALLCHECK_MONITOR_TICK_S, in each server)
        └─ a slot is due ─► workflow `monitor-<id>-<slot>@<version>` (DBOS: one per slot, whichever process starts it)
              claim: previous run still running? ─► slot skipped, nothing queued
                     else store the run (unique per monitor and slot) ─► run_suite (an ordinary suite run)
              ─► apply the result to the monitor (passing / failing) ─► alerts on a change only
                     └─ workflow `alert-<id>@<version>` per channel: tried with backoff, each attempt recorded

Everything the scheduler needs is in the database (monitors.last_slot, run_requested_at): the CLI writes monitors
there, a running server picks them up on its next tick, and a restarted one carries on where it stopped. A slot
missed while no server ran is not made up for (an `every` schedule runs its current slot once; a cron slot found
late is skipped), so a schedule never piles up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS, SetWorkflowID
from sqlalchemy.exc import IntegrityError

from callcheck.config import Settings
from callcheck.domain.alerts import alert_message
from callcheck.domain.lifecycle import RunState
from callcheck.domain.monitoring import (
    AlertKind,
    MonitorStatus,
    Outcome,
    Schedule,
    calls_per_day,
    channels_from,
    check_name,
    name_from,
    schedule_from,
    shown_target,
)
from callcheck.errors import CallcheckError, Conflict, InvalidInput, NotFound
from callcheck.jobs.alerts import AlertNotSent, send_alert
from callcheck.jobs.runs import plan, prepare_run, run_suite
from callcheck.jobs.workflows import on_app_loop, run_workflow_id, versioned
from callcheck.services import Services
from callcheck.store.monitors import ACTIVE_RUN_STATES, DeliveryRow, MonitorRow, MonitorStore
from callcheck.store.repo import RunRow, utcnow

log = logging.getLogger("callcheck.monitors")

MAX_CONCURRENCY = 50
FINISH_WAIT_S = 2.0  # between two looks at a run that its workflow left unfinished


def slot_workflow_id(monitor_id: str, slot: int, manual: bool) -> str:
    """The DBOS workflow id of a monitor's slot: the same in every process, so a slot runs once."""
    return versioned(f"monitor-{monitor_id}-{'now-' if manual else ''}{slot}")


def delivery_workflow_id(delivery_id: int) -> str:
    """The DBOS workflow id of one alert delivery."""
    return versioned(f"alert-{delivery_id}")


# -- monitors as people change them (API, CLI, page) -------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _unix_iso(value: int | None) -> str | None:
    return datetime.fromtimestamp(value, UTC).isoformat() if value is not None else None


def monitor_view(monitor: MonitorRow, now: float | None = None) -> dict[str, Any]:
    """A monitor as the API, the CLI and the pages show it (alert URLs cut to their host: they may hold secrets)."""
    now = time.time() if now is None else now
    schedule = monitor.schedule
    return {
        "name": monitor.name,
        "suite": monitor.suite_name,
        "schedule": schedule.describe(),
        "every_s": monitor.every_s,
        "cron": monitor.cron,
        "timezone": monitor.timezone,
        "status": monitor.status,
        "paused": monitor.paused,
        "badge": "paused" if monitor.paused else monitor.status,
        "consecutive_failures": monitor.consecutive_failures,
        "alert_after": monitor.alert_after,
        "alerts": [{"kind": c["kind"], "target": shown_target(c)} for c in monitor.channels],
        "calls_per_run": monitor.calls_per_run,
        "calls_per_day": round(calls_per_day(schedule, monitor.calls_per_run, now), 1),
        "concurrency": monitor.concurrency,
        "next_run_at": None if monitor.paused else _unix_iso(schedule.next_slot(now)),
        "run_requested": monitor.run_requested_at is not None,
        "last_run_id": monitor.last_run_id,
        "skipped_slots": monitor.skipped_slots,
        "status_changed_at": _iso(monitor.status_changed_at),
        "created_at": _iso(monitor.created_at),
    }


def _checked_after(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise InvalidInput("after must be a whole number of failing runs from 1 to 100.")
    return value


def _checked_concurrency(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidInput(f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}.")
    return value


def _suite_fields(suite_text: str, source_name: str, settings: Settings | None) -> dict[str, Any]:
    """The stored fields of a suite (raises SuiteError with every problem; with `settings`, also when it is over the
    run size limits, which each of its runs would be)."""
    suite, planned = plan(suite_text, source_name, None, settings=settings)
    return {
        "suite_text": suite_text,
        "source_name": source_name,
        "suite_name": suite.name,
        "calls_per_run": len(planned),
    }


def _schedule_fields(schedule: Schedule, now: float) -> dict[str, Any]:
    # A new `every` schedule runs its current slot at once; a cron one waits for its next match (it may keep to
    # business hours, and the slot just passed could be hours ago).
    return {
        "every_s": schedule.every_s,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "last_slot": schedule.latest_slot(now) if schedule.cron else None,
    }


async def create_monitor(
    store: MonitorStore,
    suite_text: str,
    source_name: str,
    *,
    name: str | None = None,
    every: str | int | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    alerts: list[dict[str, str]] | None = None,
    after: int = 1,
    concurrency: int = 1,
    paused: bool = False,
    settings: Settings | None = None,
) -> MonitorRow:
    """Check and store a monitor; a running server starts its schedule on its next tick."""
    schedule = schedule_from(every, cron, timezone)
    fields = _suite_fields(suite_text, source_name, settings)
    return await store.create(
        name=check_name(name if name is not None else name_from(fields["suite_name"])),
        **fields,
        **_schedule_fields(schedule, time.time()),
        channels=channels_from(alerts or []),
        alert_after=_checked_after(after),
        concurrency=_checked_concurrency(concurrency),
        paused=paused,
    )


async def get_monitor(store: MonitorStore, name: str) -> MonitorRow:
    """The monitor of this name; NotFound otherwise."""
    monitor = await store.get(name)
    if monitor is None:
        raise NotFound(f"No monitor named {name!r}.")
    return monitor


async def change_monitor(
    store: MonitorStore, name: str, changes: dict[str, Any], settings: Settings | None = None
) -> MonitorRow:
    """Apply a PATCH: suite (text), every / cron / timezone, alerts, after, concurrency, paused, name."""
    monitor = await get_monitor(store, name)
    known = {"suite", "every", "cron", "timezone", "alerts", "after", "concurrency", "paused", "name"}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    now = time.time()
    values: dict[str, Any] = {}
    # Checked in this order, so a PATCH with several bad fields is told of the same one first every time.
    if "suite" in changes:
        values.update(_suite_change(changes["suite"], settings))
    if {"every", "cron", "timezone"} & set(changes):
        values.update(_schedule_change(monitor, changes, now))
    if "alerts" in changes:
        values["channels"] = channels_from(changes["alerts"])
    if "after" in changes:
        values["alert_after"] = _checked_after(changes["after"])
    if "concurrency" in changes:
        values["concurrency"] = _checked_concurrency(changes["concurrency"])
    if "name" in changes:
        if not isinstance(changes["name"], str):
            raise InvalidInput("name must be a string.")
        values["name"] = check_name(changes["name"])
    if "paused" in changes:
        values.update(_paused_change(monitor, changes["paused"], "last_slot" in values, now))
    if values:
        await store.update(name, **values)
    return await get_monitor(store, values.get("name", name))


def _suite_change(text: Any, settings: Settings | None) -> dict[str, Any]:
    """The fields of a PATCH's new suite, given as YAML or JSON text or as a JSON object."""
    if isinstance(text, dict):
        import json

        text = json.dumps(text, ensure_ascii=False)
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("suite must be the suite as YAML or JSON text, or as a JSON object.")
    return _suite_fields(text, "request body", settings)


def _schedule_change(monitor: MonitorRow, changes: dict[str, Any], now: float) -> dict[str, Any]:
    """The schedule fields of a PATCH changing every, cron or timezone (the others kept as they are)."""
    replaced = "every" in changes or "cron" in changes
    every = changes.get("every") if replaced else monitor.every_s
    cron = changes.get("cron") if replaced else monitor.cron
    schedule = schedule_from(every, cron, changes.get("timezone", monitor.timezone))
    return _schedule_fields(schedule, now)


def _paused_change(monitor: MonitorRow, paused: Any, slot_set: bool, now: float) -> dict[str, Any]:
    """The fields of pausing or resuming; a resumed cron monitor waits for its next match, not a late one."""
    if not isinstance(paused, bool):
        raise InvalidInput("paused must be true or false.")
    values: dict[str, Any] = {"paused": paused}
    if not paused and monitor.paused and monitor.cron and not slot_set:
        values["last_slot"] = monitor.schedule.latest_slot(now)
    return values


async def set_paused(store: MonitorStore, name: str, paused: bool) -> MonitorRow:
    """Pause or resume a monitor."""
    return await change_monitor(store, name, {"paused": paused})


async def request_run(store: MonitorStore, name: str) -> MonitorRow:
    """Ask for a run now (a running server starts it on its next tick); Conflict while one still runs."""
    monitor = await get_monitor(store, name)
    active = await store.active_run(monitor.id)
    if active is not None:
        raise Conflict(f"A run of {name} is still running ({active.id}); try again when it has finished.")
    await store.update(name, run_requested_at=int(time.time()))
    return await get_monitor(store, name)


async def test_alert(services: Services, name: str) -> list[dict[str, Any]]:
    """Send a test message on each of the monitor's channels now (one attempt each, recorded); how each went."""
    store = services.store.monitors
    monitor = await get_monitor(store, name)
    if not monitor.channels:
        raise InvalidInput(f"The monitor {name} has no alert channel to test.")
    last = await services.store.runs.get_run(monitor.last_run_id) if monitor.last_run_id else None
    message = alert_message(
        kind=AlertKind.TEST,
        monitor={
            "name": monitor.name,
            "status": monitor.status,
            "previous_status": None,
            "consecutive_failures": monitor.consecutive_failures,
            "schedule": monitor.schedule.describe(),
        },
        run=run_facts(last) if last else None,
        base_url=services.settings.public_url or "",
        sent_at=utcnow(),
    )
    results = []
    for channel in monitor.channels:
        delivery_id = await store.add_delivery(
            monitor.id,
            None,
            kind=AlertKind.TEST.value,
            status=monitor.status,
            channel=channel["kind"],
            target=channel["target"],
            payload=message,
        )
        delivery = await store.delivery(delivery_id)
        assert delivery is not None
        outcome = await attempt_delivery(services, delivery, final=True)
        fresh = await store.delivery(delivery_id)
        results.append(
            {
                "kind": channel["kind"],
                "target": shown_target(channel),
                "outcome": outcome,
                "error": fresh.last_error if fresh else None,
            }
        )
    return results


# -- the durable part -----------------------------------------------------------------------------------------


def run_facts(run: RunRow) -> dict[str, Any]:
    """What an alert says about a run."""
    return {
        "id": run.id,
        "state": run.state,
        "exit_code": run.exit_code,
        "error": run.error,
        "report": run.report,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "simulated": run.simulated,
    }


async def claim(services: Services, monitor_id: str, slot: int, manual: bool) -> dict[str, Any]:
    """Take care of a due slot: skip it when the monitor's previous run still runs, else store its run.

    Decided from the database alone, so a re-run of this step (after a crash) finds the run it stored before.
    """
    monitors = services.store.monitors
    monitor = await monitors.get_by_id(monitor_id)
    if monitor is None:
        return {"outcome": "removed"}
    existing = await monitors.run_for_slot(monitor_id, slot)
    if existing is not None:
        return {"outcome": "ran", "run_id": existing.id, "start": existing.state in ACTIVE_RUN_STATES}
    if monitor.paused and not manual:
        return {"outcome": "paused"}
    active = await monitors.active_run(monitor_id)
    if active is not None:
        # Another process may have stored this very slot's run between the two reads above: found, not skipped.
        stored = await monitors.run_for_slot(monitor_id, slot)
        if stored is not None:
            return {"outcome": "ran", "run_id": stored.id, "start": stored.state in ACTIVE_RUN_STATES}
        log.info("monitor %s: slot %s skipped, run %s still running", monitor.name, slot, active.id)
        await _done_with(monitors, monitor_id, slot, manual, skipped=True)
        return {"outcome": "skipped"}
    start = True
    try:
        run = await prepare_run(
            services,
            monitor.suite_text,
            monitor.source_name,
            concurrency=monitor.concurrency,
            monitor_id=monitor_id,
            monitor_slot=slot,
        )
    except IntegrityError:  # another process stored this slot's run a moment ago
        found = await monitors.run_for_slot(monitor_id, slot)
        if found is None:
            raise
        return {"outcome": "ran", "run_id": found.id, "start": found.state in ACTIVE_RUN_STATES}
    except CallcheckError as exc:
        # Nothing was dialed (the suite, the settings or the agent stopped it): the run is kept, failed, so the
        # history shows it and the monitor's state counts it. A line that cannot be checked is not passing.
        run = await services.store.runs.create_run(
            [],
            name=monitor.suite_name,
            source_name=monitor.source_name,
            suite_text=monitor.suite_text,
            only=None,
            concurrency=monitor.concurrency,
            rate_per_min=None,
            simulated=services.simulated,
            monitor_id=monitor_id,
            monitor_slot=slot,
        )
        await services.store.runs.update_run(
            run.id,
            state=RunState.FAILED,
            exit_code=2,
            finished_at=utcnow(),
            error=f"The run could not start: {exc.message}",
        )
        start = False
    await _done_with(monitors, monitor_id, slot, manual)
    return {"outcome": "ran", "run_id": run.id, "start": start}


async def _done_with(
    monitors: MonitorStore, monitor_id: str, slot: int, manual: bool, *, skipped: bool = False
) -> None:
    if manual:
        await monitors.clear_request(monitor_id, slot)
    else:
        await monitors.claim_slot(monitor_id, slot, skipped=skipped)


async def evaluate(services: Services, monitor_id: str, run_id: str) -> dict[str, Any]:
    """Apply a finished run to its monitor and store the alerts the change calls for; `done` False while the run
    is not finished."""
    run = await services.store.runs.get_run(run_id)
    if run is None:
        return {"done": True, "deliveries": []}
    if run.state in ACTIVE_RUN_STATES:
        return {"done": False, "deliveries": []}
    if run.state == "cancelled" and run.error is None:
        return {"done": True, "deliveries": []}  # cancelled by a person: it says nothing about the line
    passed = run.state == "completed" and run.exit_code == 0
    base_url = services.settings.public_url or ""

    def deliveries(monitor: MonitorRow, outcome: Outcome) -> list[dict[str, Any]]:
        assert outcome.alert is not None
        message = alert_message(
            kind=outcome.alert,
            monitor={
                "name": monitor.name,
                "status": outcome.status.value,
                "previous_status": monitor.status,
                "consecutive_failures": outcome.consecutive_failures,
                "schedule": monitor.schedule.describe(),
            },
            run=run_facts(run),
            base_url=base_url,
            sent_at=utcnow(),
        )
        return [
            {
                "kind": outcome.alert.value,
                "status": outcome.status.value,
                "channel": c["kind"],
                "target": c["target"],
                "payload": message,
            }
            for c in monitor.channels
        ]

    ids = await services.store.monitors.apply_outcome(monitor_id, run_id, passed, deliveries)
    monitor = await services.store.monitors.get_by_id(monitor_id)
    if monitor is not None:
        log.info(
            "monitor %s: run %s %s; now %s", monitor.name, run_id, "passed" if passed else "failed", monitor.status
        )
    return {"done": True, "deliveries": ids}


async def attempt_delivery(services: Services, delivery: DeliveryRow, *, final: bool) -> str:
    """Try one delivery once and record the attempt; its outcome (delivered, pending, failed)."""
    if delivery.outcome != "pending":
        return delivery.outcome
    try:
        await send_alert(services.settings, services.http, delivery.channel, delivery.target, delivery.payload)
    except AlertNotSent as exc:
        log.warning("alert %s (%s) not sent: %s", delivery.id, delivery.channel, exc.reason)
        return await services.store.monitors.record_attempt(delivery.id, exc.reason, final=final)
    return await services.store.monitors.record_attempt(delivery.id, None, final=final)


@DBOS.step(name="callcheck.monitor_claim")
async def _claim_step(monitor_id: str, slot: int, manual: bool) -> dict[str, Any]:
    return await on_app_loop(lambda s: claim(s, monitor_id, slot, manual))


@DBOS.step(name="callcheck.monitor_evaluate")
async def _evaluate_step(monitor_id: str, run_id: str) -> dict[str, Any]:
    return await on_app_loop(lambda s: evaluate(s, monitor_id, run_id))


@DBOS.step(name="callcheck.alert_limits")
async def _alert_limits_step() -> tuple[int, float]:
    # Checkpointed: a resumed delivery keeps the limits it started with.
    async def read(services: Services) -> tuple[int, float]:
        return services.settings.alert_attempts, services.settings.alert_backoff_s

    return await on_app_loop(read)


@DBOS.step(name="callcheck.alert_attempt")
async def _attempt_step(delivery_id: int, final: bool) -> str:
    async def work(services: Services) -> str:
        delivery = await services.store.monitors.delivery(delivery_id)
        if delivery is None:
            return "failed"
        return await attempt_delivery(services, delivery, final=final)

    return await on_app_loop(work)


@DBOS.workflow(name="callcheck.deliver_alert")
async def deliver_alert(delivery_id: int) -> str:
    """Send one alert to one channel, retrying with a doubling wait; every attempt is recorded."""
    attempts, backoff = await _alert_limits_step()
    for attempt in range(1, attempts + 1):
        outcome = await _attempt_step(delivery_id, attempt >= attempts)
        if outcome != "pending":
            return outcome
        await DBOS.sleep_async(backoff * 2 ** (attempt - 1))
    return "failed"


@DBOS.workflow(name="callcheck.monitor_slot")
async def monitor_slot(monitor_id: str, slot: int, manual: bool) -> str:
    """Run one slot of a monitor's schedule: its suite run, then the state change and its alerts."""
    claimed = await _claim_step(monitor_id, slot, manual)
    run_id = claimed.get("run_id")
    if not run_id:
        return str(claimed["outcome"])
    if claimed["start"]:
        with SetWorkflowID(run_workflow_id(run_id)):
            handle = await DBOS.start_workflow_async(run_suite, run_id)
        try:
            await handle.get_result()
        except Exception as exc:  # the run's own record says what happened; the monitor judges from it
            log.warning("monitor run %s ended with an error: %s", run_id, exc)
    while True:
        evaluated = await _evaluate_step(monitor_id, run_id)
        if evaluated["done"]:
            break
        await DBOS.sleep_async(FINISH_WAIT_S)
    for delivery_id in evaluated["deliveries"]:
        with SetWorkflowID(delivery_workflow_id(delivery_id)):
            await DBOS.start_workflow_async(deliver_alert, delivery_id)
    return str(claimed["outcome"])


class MonitorScheduler:
    """A server's scheduler: each tick, starts the workflow of every monitor slot that is due (ids derived from
    monitor and slot, so servers sharing a database start each slot once between them)."""

    def __init__(self, services: Services) -> None:
        self.services = services
        # Per cron monitor: (what the next slot was computed from, that next slot). A cron match costs about a
        # millisecond to compute; a tick looks at every monitor every second, and nearly always finds nothing due.
        self._next_cron: dict[str, tuple[tuple[Any, ...], int]] = {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[MonitorScheduler]:
        """Tick in the background until the block ends."""
        task = asyncio.create_task(self._loop(), name="callcheck-monitor-scheduler")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick(time.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not stop the schedules for good: the next tick tries again.
                log.exception("monitor scheduler tick failed")
            await asyncio.sleep(self.services.settings.monitor_tick_s)

    async def tick(self, now: float) -> list[str]:
        """Start what is due now; the workflow ids started (or found started)."""
        started = []
        monitors = self.services.store.monitors
        for monitor in await monitors.schedulable():
            if monitor.run_requested_at is not None:
                started.append(await self._fire(monitor, monitor.run_requested_at, manual=True))
            if monitor.paused:
                continue
            if monitor.cron is not None and monitor.last_slot is not None:
                key = (monitor.cron, monitor.timezone, monitor.last_slot)
                cached = self._next_cron.get(monitor.id)
                if cached is None or cached[0] != key:
                    cached = (key, monitor.schedule.next_slot(monitor.last_slot))
                    self._next_cron[monitor.id] = cached
                if now < cached[1]:
                    continue
            slot, late = monitor.schedule.due(monitor.last_slot, now)
            if slot is None:
                continue
            if late:
                log.warning(
                    "monitor %s: slot %s missed (no server was running); waiting for the next", monitor.name, slot
                )
                await monitors.claim_slot(monitor.id, slot, skipped=True)
                continue
            started.append(await self._fire(monitor, slot, manual=False))
        return started

    async def _fire(self, monitor: MonitorRow, slot: int, *, manual: bool) -> str:
        workflow = slot_workflow_id(monitor.id, slot, manual)
        with SetWorkflowID(workflow):
            await DBOS.start_workflow_async(monitor_slot, monitor.id, slot, manual)
        return workflow


__all__ = [
    "MonitorScheduler",
    "MonitorStatus",
    "change_monitor",
    "create_monitor",
    "get_monitor",
    "monitor_view",
    "request_run",
    "set_paused",
    "test_alert",
]
