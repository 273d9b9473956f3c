"""Several processes on one PostgreSQL database: each its own DBOS executor, kept alive by a lease, and taking over
the work of a process that died — exactly once.

Each process (`callcheck serve`, `callcheck worker`, `callcheck run`) is a DBOS executor with an id of its own for
its whole life (`<role>-<host>-<pid>-<random>`), recorded in the `executors` table with a lease it renews every
third of `CALLCHECK_EXECUTOR_LEASE_S`. A process is dead when its lease ran out, when it stopped cleanly (it ends
its lease on the way out), or — known at once — when it was on this host and its pid is gone (`kill -9`).

Taking over a dead process:

1. claim its row in one conditional UPDATE (`alive|released` → `adopting`, by me): of several live processes seeing
   it dead, exactly one wins; a process that itself dies mid-takeover is taken over with what it had claimed;
2. recover its pending workflows through DBOS's public workflow-management API: `DBOS.list_workflows(status=PENDING,
   executor_id=<dead>)`, then `DBOS.resume_workflow` each (on the queue it was on). Resuming re-enqueues the workflow:
   one live process dequeues it (DBOS's atomic ENQUEUED → PENDING hand-off) and runs it on from its last recorded
   step. (DBOS's documented way for a self-hosted fleet is its admin server's workflow-recovery endpoint, which calls
   a private method; the DBOS release we use ships no admin server, so its public resume is the supported path.)
3. mark the row `adopted`, and log the takeover.

The claim is what makes it exactly once: `resume_workflow` on its own would also re-enqueue a workflow a live
process is running.

SQLite stays one process at a time (servers are executor "local", as before): nothing here runs on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from contextlib import suppress

from dbos import DBOS

from callcheck.store.executors import ExecutorRow, ExecutorStore

log = logging.getLogger("callcheck.executors")

# How long the row of a process taken over is kept (for the log's sake: who took whom over) before it is pruned.
KEEP_TAKEN_OVER_S = 24 * 3600.0
ROLES = ("server", "worker", "run", "web")  # web: a server without workers
# A `callcheck run` process's executor id starts so (jobs/ownership.py): its runs are cancelled when it dies.
RUN_PREFIX = "cli-"


def new_executor_id(role: str) -> str:
    """A fresh executor id for this process: unique, and telling which process it is."""
    prefix = RUN_PREFIX.rstrip("-") if role == "run" else role
    return f"{prefix}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def pid_gone(row: ExecutorRow) -> bool:
    """True when `row` is a process of this host that no longer exists."""
    if row.host != socket.gethostname() or row.pid == os.getpid():
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


async def recover(executor_ids: list[str], app_version: str) -> list[str]:
    """Re-enqueue the pending workflows of these (dead, claimed) executors; their ids."""
    pending = await DBOS.list_workflows_async(
        status="PENDING", executor_id=executor_ids, app_version=app_version, load_input=False, load_output=False
    )
    for workflow in pending:
        await DBOS.resume_workflow_async(workflow.workflow_id, queue_name=workflow.queue_name)
    return [w.workflow_id for w in pending]


TakeOver = Callable[[list[str]], Awaitable[None]]


class Lease:
    """This process's row in `executors`: registered at start, renewed, released at a clean stop; and the watch for
    dead processes, whose work `take_over` receives (the claimed executor ids)."""

    def __init__(
        self,
        store: ExecutorStore,
        executor_id: str,
        role: str,
        lease_s: float,
        take_over: TakeOver | None = None,
        sweep: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Without `take_over` (a server without workers, which runs no durable work) the process only keeps its
        lease: the calls it places are known to be its own while it lives."""
        self.store = store
        self._sweep = sweep  # run at every beat: start workflows for work that has none
        self.executor_id = executor_id
        self.role = role
        self.lease_s = lease_s
        self._take_over = take_over
        self._lock = asyncio.Lock()
        self.lost = False  # declared dead by another process while alive (its lease was not renewed in time)

    async def register(self) -> None:
        """Record this process as alive."""
        await self.store.register(self.executor_id, self.role, socket.gethostname(), os.getpid(), self.lease_s)
        log.info("executor %s (%s) started", self.executor_id, self.role)

    async def release(self) -> None:
        """A clean stop: the lease ends now, so a live process takes over whatever this one leaves unfinished."""
        with suppress(Exception):  # the database may be what is going away; the lease then runs out by itself
            await self.store.release(self.executor_id)

    async def run(self) -> None:
        """Renew the lease and look for dead processes every third of the lease, until cancelled."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                if not await self.store.heartbeat(self.executor_id, self.lease_s) and not self.lost:
                    self.lost = True
                    log.error(
                        "executor %s: another process declared this one dead (its lease ran out) and took its work "
                        "over; raise CALLCHECK_EXECUTOR_LEASE_S if this process is often that slow",
                        self.executor_id,
                    )
                await self.adopt_dead()
                await self.store.prune(KEEP_TAKEN_OVER_S)
                if self._sweep is not None:
                    await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("executor %s: heartbeat failed (the next one tries again)", self.executor_id)

    async def adopt_dead(self) -> list[str]:
        """Take over every dead process this one wins the claim of; the executor ids taken over."""
        taken: list[str] = []
        if self._take_over is None:
            return taken
        async with self._lock:
            unfinished = await self.store.adopting_by(self.executor_id)
            if unfinished:
                await self._take_over(unfinished)
                await self.store.adopted(unfinished, self.executor_id)
                taken += unfinished
            for row, expired in await self.store.unclaimed(self.executor_id):
                gone = pid_gone(row)
                if not (expired or gone):
                    continue
                ids = await self.store.claim(row.id, self.executor_id, lease_checked=not gone)
                if not ids:
                    continue  # another process won it, or it renewed its lease just now
                why = (
                    "its process is gone"
                    if gone
                    else ("it stopped" if row.state == "released" else "its lease ran out")
                )
                log.warning("executor %s takes over executor %s (%s): %s", self.executor_id, row.id, row.role, why)
                await self._take_over(ids)
                await self.store.adopted(ids, self.executor_id)
                taken += ids
        return taken
