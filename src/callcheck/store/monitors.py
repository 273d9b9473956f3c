"""Queries of monitors, their alert deliveries, and the figures `/metrics` exposes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Unpack

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from callcheck.domain.lifecycle import RunState
from callcheck.domain.monitoring import MonitorStatus, Outcome, Schedule, after_run
from callcheck.errors import Conflict
from callcheck.store.fields import MonitorChanges, NewDelivery, NewMonitor
from callcheck.store.rows import RunRow, _aware, _run, new_id, storable_key, utcnow
from callcheck.store.sqlite import long_read
from callcheck.store.tables import alert_deliveries, calls, monitors, run_items, runs, webhook_events

ACTIVE_RUN_STATES = tuple(state.value for state in RunState if not state.terminal)  # running, cancelling


@dataclass
class MonitorRow:
    """A stored monitor."""

    id: str
    name: str
    created_at: datetime
    updated_at: datetime
    suite_text: str
    source_name: str
    suite_name: str
    calls_per_run: int
    every_s: int | None
    cron: str | None
    timezone: str
    concurrency: int
    alert_after: int
    channels: list[dict[str, str]]
    paused: bool
    status: str
    consecutive_failures: int
    status_changed_at: datetime | None
    last_slot: int | None
    run_requested_at: int | None
    last_run_id: str | None
    skipped_slots: int

    @property
    def schedule(self) -> Schedule:
        """The monitor's schedule."""
        return Schedule(every_s=self.every_s, cron=self.cron, timezone=self.timezone)


def _monitor(row: sa.Row[Any]) -> MonitorRow:
    data = dict(row._mapping)
    for key in ("created_at", "updated_at", "status_changed_at"):
        data[key] = _aware(data[key])
    return MonitorRow(**data)


@dataclass
class DeliveryRow:
    """One alert message to one channel, and how sending it went."""

    id: int
    monitor_id: str
    run_id: str | None
    created_at: datetime
    updated_at: datetime
    kind: str
    status: str
    channel: str
    target: str
    payload: dict[str, Any]
    attempts: int
    outcome: str  # pending | delivered | failed
    last_error: str | None
    delivered_at: datetime | None


def _delivery(row: sa.Row[Any]) -> DeliveryRow:
    data = dict(row._mapping)
    for key in ("created_at", "updated_at", "delivered_at"):
        data[key] = _aware(data[key])
    return DeliveryRow(**data)


# Builds the deliveries (channel, target, kind, status, payload) of an outcome, given the monitor before it.
DeliveriesFor = Callable[[MonitorRow, Outcome], list[dict[str, Any]]]


class MonitorStore:
    """Monitors and their alert deliveries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    # -- monitors ---------------------------------------------------------------------------------------------

    async def create(self, **fields: Unpack[NewMonitor]) -> MonitorRow:
        """Store a new monitor; Conflict when the name is taken."""
        now = utcnow()
        values: dict[str, Any] = dict(fields)
        values.setdefault("id", new_id())
        values.update(
            created_at=now,
            updated_at=now,
            status=MonitorStatus.PENDING.value,
            consecutive_failures=0,
            skipped_slots=0,
        )
        values.setdefault("paused", False)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(monitors).values(**values))
        except IntegrityError as exc:
            raise Conflict(f"A monitor named {values['name']!r} exists already.") from exc
        monitor = await self.get(values["name"])
        assert monitor is not None
        return monitor

    async def get(self, name: str) -> MonitorRow | None:
        """The monitor with this name."""
        if not storable_key(name):
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(monitors).where(monitors.c.name == name))).first()
        return _monitor(row) if row else None

    async def get_by_id(self, monitor_id: str) -> MonitorRow | None:
        """The monitor with this id."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(monitors).where(monitors.c.id == monitor_id))).first()
        return _monitor(row) if row else None

    async def all(self) -> list[MonitorRow]:
        """Every monitor, by name."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(monitors).order_by(monitors.c.name))
            return [_monitor(r) for r in rows.all()]

    async def schedulable(self) -> list[MonitorRow]:
        """Monitors the scheduler looks at: every unpaused one, and paused ones asked to run now."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(monitors).where(monitors.c.paused.is_(False) | monitors.c.run_requested_at.is_not(None))
            )
            return [_monitor(r) for r in rows.all()]

    async def update(self, name: str, /, **fields: Unpack[MonitorChanges]) -> bool:
        """Set fields of a monitor; False when there is none of this name."""
        if not storable_key(name):
            return False
        values: dict[str, Any] = dict(fields, updated_at=utcnow())
        try:
            async with self.engine.begin() as conn:
                result = await conn.execute(sa.update(monitors).where(monitors.c.name == name).values(**values))
        except IntegrityError as exc:
            raise Conflict(f"A monitor named {values.get('name')!r} exists already.") from exc
        return result.rowcount == 1

    async def delete(self, name: str) -> bool:
        """Remove a monitor (its runs stay in the history); False when there is none of this name."""
        if not storable_key(name):
            return False
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.delete(monitors).where(monitors.c.name == name))
        return result.rowcount == 1

    async def claim_slot(self, monitor_id: str, slot: int, *, skipped: bool = False) -> bool:
        """Record that `slot` was taken care of (ran, or was skipped); False when a newer slot was already."""
        values: dict[str, Any] = {"last_slot": slot, "updated_at": utcnow()}
        if skipped:
            values["skipped_slots"] = monitors.c.skipped_slots + 1
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(monitors)
                .where(monitors.c.id == monitor_id, monitors.c.last_slot.is_(None) | (monitors.c.last_slot < slot))
                .values(**values)
            )
        return result.rowcount == 1

    async def clear_request(self, monitor_id: str, requested_at: int) -> None:
        """Forget a run-now request once its run is taken care of (a newer request stays)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(monitors)
                .where(monitors.c.id == monitor_id, monitors.c.run_requested_at == requested_at)
                .values(run_requested_at=None, updated_at=utcnow())
            )

    async def run_for_slot(self, monitor_id: str, slot: int) -> RunRow | None:
        """The run a monitor started for this slot, if any."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(runs).where(runs.c.monitor_id == monitor_id, runs.c.monitor_slot == slot))
            ).first()
        return _run(row) if row else None

    async def active_run(self, monitor_id: str) -> RunRow | None:
        """The monitor's run still running, if any."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(runs).where(runs.c.monitor_id == monitor_id, runs.c.state.in_(ACTIVE_RUN_STATES)).limit(1)
                )
            ).first()
        return _run(row) if row else None

    async def runs_of(self, monitor_id: str, limit: int = 100) -> list[RunRow]:
        """The monitor's newest runs, oldest first (for trends)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(runs)
                .where(runs.c.monitor_id == monitor_id)
                .order_by(runs.c.created_at.desc(), runs.c.id.desc())
                .limit(limit)
            )
            return list(reversed([_run(r) for r in rows.all()]))

    async def apply_outcome(self, monitor_id: str, run_id: str, passed: bool, deliveries: DeliveriesFor) -> list[int]:
        """Apply a finished run to its monitor's state and store the alerts the change calls for, in one transaction;
        the new deliveries' ids. A run applied already (a step re-run after a crash) changes nothing."""
        now = utcnow()
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(monitors).where(monitors.c.id == monitor_id).with_for_update())).first()
            if row is None or row.last_run_id == run_id:
                return []
            monitor = _monitor(row)
            outcome = after_run(
                MonitorStatus(monitor.status), monitor.consecutive_failures, passed, monitor.alert_after
            )
            values: dict[str, Any] = {
                "status": outcome.status.value,
                "consecutive_failures": outcome.consecutive_failures,
                "last_run_id": run_id,
                "updated_at": now,
            }
            if outcome.status.value != monitor.status:
                values["status_changed_at"] = now
            await conn.execute(sa.update(monitors).where(monitors.c.id == monitor_id).values(**values))
            ids: list[int] = []
            if outcome.alert is not None:
                for delivery in deliveries(monitor, outcome):
                    ids.append(await _insert_pending_delivery(conn, monitor_id, run_id, now, delivery))
            return ids

    # -- deliveries -------------------------------------------------------------------------------------------

    async def add_delivery(self, monitor_id: str, run_id: str | None, **fields: Unpack[NewDelivery]) -> int:
        """Store a delivery to make (a test alert's); its id."""
        async with self.engine.begin() as conn:
            return await _insert_pending_delivery(conn, monitor_id, run_id, utcnow(), dict(fields))

    async def delivery(self, delivery_id: int) -> DeliveryRow | None:
        """The delivery with this id."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(alert_deliveries).where(alert_deliveries.c.id == delivery_id))).first()
        return _delivery(row) if row else None

    async def record_attempt(self, delivery_id: int, error: str | None, *, final: bool) -> str:
        """Count one sending attempt: delivered (no error), failed (an error on the last attempt) or still pending."""
        now = utcnow()
        outcome = "delivered" if error is None else ("failed" if final else "pending")
        values: dict[str, Any] = {
            "attempts": alert_deliveries.c.attempts + 1,
            "outcome": outcome,
            "last_error": error,
            "updated_at": now,
        }
        if error is None:
            values["delivered_at"] = now
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(alert_deliveries).where(alert_deliveries.c.id == delivery_id).values(**values))
        return outcome

    async def deliveries_of(self, monitor_id: str, limit: int = 50) -> list[DeliveryRow]:
        """A monitor's newest deliveries, newest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(alert_deliveries)
                .where(alert_deliveries.c.monitor_id == monitor_id)
                .order_by(alert_deliveries.c.id.desc())
                .limit(limit)
            )
            return [_delivery(r) for r in rows.all()]

    # -- figures for /metrics ---------------------------------------------------------------------------------

    async def finished_run_ids(self) -> list[str]:
        """Ids of runs that have their report."""
        async with long_read(self.engine) as conn:
            return list((await conn.execute(sa.select(runs.c.id).where(runs.c.report.is_not(None)))).scalars())

    async def metric_counts(self) -> dict[str, Any]:
        """Counts the metrics endpoint exposes, each read with one grouped query."""

        async def grouped(conn: Any, *columns: Any) -> list[tuple[Any, ...]]:
            query = sa.select(*columns, sa.func.count()).group_by(*columns)
            return [tuple(r) for r in (await conn.execute(query)).all()]

        async with long_read(self.engine) as conn:
            return {
                "calls": await grouped(conn, calls.c.state),
                "calls_with_error": (
                    await conn.execute(sa.select(sa.func.count()).where(calls.c.error.is_not(None)))
                ).scalar_one(),
                "runs": await grouped(conn, runs.c.state, runs.c.exit_code),
                "webhooks": await grouped(conn, webhook_events.c.event_type),
                "deliveries": await grouped(conn, alert_deliveries.c.channel, alert_deliveries.c.outcome),
                "pending_items": (
                    await conn.execute(sa.select(sa.func.count()).where(run_items.c.status == "pending"))
                ).scalar_one(),
                "monitors": [
                    (r.name, r.status, r.paused, r.consecutive_failures)
                    for r in (
                        await conn.execute(
                            sa.select(
                                monitors.c.name, monitors.c.status, monitors.c.paused, monitors.c.consecutive_failures
                            )
                        )
                    ).all()
                ],
            }


async def _insert_pending_delivery(
    conn: AsyncConnection, monitor_id: str, run_id: str | None, now: datetime, values: dict[str, Any]
) -> int:
    """Store one delivery still to make (no attempt yet); its id."""
    result = await conn.execute(
        sa.insert(alert_deliveries)
        .values(
            monitor_id=monitor_id,
            run_id=run_id,
            created_at=now,
            updated_at=now,
            attempts=0,
            outcome="pending",
            **values,
        )
        .returning(alert_deliveries.c.id)
    )
    return int(result.scalar_one())
