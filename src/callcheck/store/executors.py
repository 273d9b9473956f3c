"""The executors table: which processes run durable work on this database, their leases, and claiming a dead one's.

Times are unix seconds by the database's clock on PostgreSQL, so processes on machines whose clocks disagree still
agree on whose lease ran out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from callcheck.store.repo import utcnow
from callcheck.store.tables import executors

ALIVE, RELEASED, ADOPTING, ADOPTED = "alive", "released", "adopting", "adopted"


@dataclass
class ExecutorRow:
    """One process's liveness record."""

    id: str
    role: str
    host: str
    pid: int
    heartbeat_at: float
    lease_until: float
    state: str
    adopted_by: str | None


class ExecutorStore:
    """Leases of the processes sharing this database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def _now(self) -> Any:
        """The database's time in unix seconds (this machine's on SQLite, where every process shares one)."""
        if self.engine.dialect.name == "postgresql":
            return sa.func.extract("epoch", sa.func.clock_timestamp())
        return sa.literal(time.time(), sa.Float)

    async def register(self, executor_id: str, role: str, host: str, pid: int, lease_s: float) -> None:
        """Record a process starting, its lease running `lease_s` from now."""
        now = self._now()
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.insert(executors).values(
                    id=executor_id,
                    role=role,
                    host=host,
                    pid=pid,
                    started_at=utcnow(),
                    heartbeat_at=now,
                    lease_until=now + lease_s,
                    state=ALIVE,
                )
            )

    async def heartbeat(self, executor_id: str, lease_s: float) -> bool:
        """Extend a live process's lease; False when it was declared dead meanwhile (and its work taken over)."""
        now = self._now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                sa.update(executors)
                .where(executors.c.id == executor_id, executors.c.state == ALIVE)
                .values(heartbeat_at=now, lease_until=now + lease_s)
            )
        return result.rowcount == 1

    async def release(self, executor_id: str) -> None:
        """A process stopping cleanly: its lease ends now, so a live process takes its unfinished work at once."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(executors)
                .where(executors.c.id == executor_id, executors.c.state == ALIVE)
                .values(state=RELEASED, lease_until=self._now())
            )

    async def get(self, executor_id: str) -> ExecutorRow | None:
        """The record of one process."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(executors).where(executors.c.id == executor_id))).first()
        return _row(row) if row else None

    async def unclaimed(self, other_than: str) -> list[tuple[ExecutorRow, bool]]:
        """Every other process not yet taken over, each with whether its lease ran out (by the database's clock)."""
        expired = (executors.c.lease_until < self._now()).label("expired")
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(executors, expired).where(
                    executors.c.id != other_than, executors.c.state.in_([ALIVE, RELEASED])
                )
            )
            return [(_row(r), bool(r.expired)) for r in rows.all()]

    async def claim(self, dead: str, me: str, *, lease_checked: bool) -> list[str]:
        """Take a dead process over, atomically: the executor ids whose workflows are now ours to recover (`dead`,
        and any process `dead` itself had claimed but not finished recovering), or [] when another process (or its
        own heartbeat) won. With `lease_checked`, only a process whose lease ran out can be claimed; without, the
        caller knows the process is gone (its pid, on this host)."""
        condition = [executors.c.id == dead, executors.c.state.in_([ALIVE, RELEASED])]
        if lease_checked:
            condition.append(executors.c.lease_until < self._now())
        async with self.engine.begin() as conn:
            won = await conn.execute(
                sa.update(executors).where(*condition).values(state=ADOPTING, adopted_by=me, adopted_at=utcnow())
            )
            if won.rowcount != 1:
                return []
            unfinished = (
                await conn.execute(
                    sa.update(executors)
                    .where(executors.c.state == ADOPTING, executors.c.adopted_by == dead)
                    .values(adopted_by=me, adopted_at=utcnow())
                    .returning(executors.c.id)
                )
            ).scalars()
            return [dead, *unfinished]

    async def adopted(self, executor_ids: list[str], me: str) -> None:
        """The workflows of these claimed processes are recovered: their takeover is over."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(executors)
                .where(executors.c.id.in_(executor_ids), executors.c.adopted_by == me)
                .values(state=ADOPTED)
            )

    async def adopting_by(self, me: str) -> list[str]:
        """Processes this one claimed but did not finish taking over (its takeover failed midway): to try again."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(executors.c.id).where(executors.c.state == ADOPTING, executors.c.adopted_by == me)
            )
            return list(rows.scalars())

    async def prune(self, older_than_s: float) -> int:
        """Forget processes taken over more than `older_than_s` ago (their work is another's now); how many."""
        async with self.engine.begin() as conn:
            gone = await conn.execute(
                sa.delete(executors).where(
                    executors.c.state == ADOPTED, executors.c.heartbeat_at < self._now() - older_than_s
                )
            )
        return int(gone.rowcount or 0)

    async def live(self) -> list[ExecutorRow]:
        """Processes whose lease still runs."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(executors).where(executors.c.state == ALIVE, executors.c.lease_until >= self._now())
            )
            return [_row(r) for r in rows.all()]


def _row(row: sa.Row[Any]) -> ExecutorRow:
    return ExecutorRow(
        id=row.id,
        role=row.role,
        host=row.host,
        pid=row.pid,
        heartbeat_at=row.heartbeat_at,
        lease_until=row.lease_until,
        state=row.state,
        adopted_by=row.adopted_by,
    )
