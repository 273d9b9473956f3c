"""The DBOS plumbing shared by the workflows of jobs/ (a call's, a run's, a monitor's): workflow ids, the run's
wake-up topic, the queue a run's calls are placed from, and the bridge that runs each step's work on the app's event
loop.

Why the bridge: DBOS runs workflows it *recovers* on its own background event loop, while our database engine and
HTTP client belong to the app's loop. Every step therefore hands its work to the app's loop (`on_app_loop`), so the
same objects serve fresh and recovered workflows alike. The Tracker (jobs/tracking.py) opens the bridge when it
launches DBOS and closes it at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dbos import DBOS, Queue

from callcheck.errors import CallcheckError
from callcheck.services import Services

log = logging.getLogger("callcheck.runs")

T = TypeVar("T")

RUN_TOPIC = "run"  # the topic a run's workflow waits on for wake-ups

# Bump when the sequence of steps of any workflow changes: DBOS only resumes workflows of its own version.
WORKFLOW_VERSION = "callcheck-follow-4"


def versioned(base: str) -> str:
    """A workflow id of this version of the workflows: `base` (a call's, a run's...) with the version appended.

    Why: DBOS resumes (at launch, or when taking over a dead process's work) only the workflows of its own
    application version, and a start under an id that exists already returns the existing workflow without running
    it. With bare ids, a call or run in flight when callcheck was upgraded kept its old version's workflow, which
    the new version neither resumes nor replaces: it was never followed again. With the version in the id, the
    launch's "start a workflow for every unfinished call and run" starts this version's workflow beside the stale
    one (which nothing runs), and it takes over from the database's state, as after any crash.
    """
    return f"{base}@{WORKFLOW_VERSION}"


# The DBOS queue a server's suite run puts its slots on (jobs/runs.py: each slot places and follows the run's calls one
# after the other): every process with workers dequeues from it, so a run's calls are placed by whichever process has
# room. Its only limit is a process's own (`CALLCHECK_RUN_CALLS_PER_PROCESS`): the run's cap and rate, and the
# account-wide cap, are held by the database when each call is recorded (Store.create_call's admission).
CALLS_QUEUE = "callcheck-run-calls"
# How often each process looks for slots to run: a run's slots start within about this of the run (once per slot and
# run, not per call). Each look is a few queries DBOS builds afresh, about 30 ms of CPU a second at 0.2 s, whatever
# the load: the same for every process, with or without runs.
QUEUE_POLL_S = 0.5
_calls_queue: Queue | None = None


def run_workflow_id(run_id: str) -> str:
    """The DBOS workflow id of a run."""
    return versioned(f"run-{run_id}")


async def wake_run(run_id: str) -> None:
    """Tell a run's workflow to tick now."""
    try:
        await DBOS.send_async(run_workflow_id(run_id), "tick", topic=RUN_TOPIC)
    except Exception as exc:  # a finished run cannot be woken; nothing is lost
        log.debug("could not wake run %s: %s", run_id, exc)


@dataclass
class Runtime:
    """The bridge while a Tracker runs: the app's services and loop, and the work running on that loop."""

    services: Services
    loop: asyncio.AbstractEventLoop
    # Step work running on the app's loop: finished (or cancelled) before the database engine is disposed, so no
    # connection is abandoned mid-query at shutdown.
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    # Workflows running on the app's loop (those started here; DBOS runs the ones it recovers on a loop of its own),
    # cancelled at shutdown before DBOS is destroyed: see Tracker.running.
    workflows: set[asyncio.Task[Any]] = field(default_factory=set)
    # Set when shutdown begins: no new step work starts (on_app_loop).
    closing: bool = False


_runtime: Runtime | None = None


def slot_workflow_id(run_id: str, slot: int) -> str:
    """The DBOS workflow id of one of a run's slots."""
    return versioned(f"run-{run_id}-slot-{slot}")


async def register_calls_queue(per_process: int) -> None:
    """Declare the runs' calls queue (kept by DBOS in its tables, read by every process's queue threads); each process
    writes its own per-process limit, so the setting should be the same everywhere."""
    global _calls_queue
    _calls_queue = await DBOS.register_queue_async(
        CALLS_QUEUE,
        worker_concurrency=per_process or None,
        polling_interval_sec=QUEUE_POLL_S,
        on_conflict="always_update",
    )


async def calls_queue() -> Queue:
    """The runs' calls queue. Registered when the tracker launched DBOS; a run's workflow that DBOS resumed at launch
    may get here first, and then finds the queue as the database has it (declared with no limit if it never was)."""
    global _calls_queue
    if _calls_queue is None:
        _calls_queue = await DBOS.register_queue_async(
            CALLS_QUEUE, polling_interval_sec=QUEUE_POLL_S, on_conflict="never_update"
        )
    return _calls_queue


def one_line(exc: Exception) -> str:
    """What an exception that ends a workflow's call or run says, on one line of at most 300 characters: our own
    errors by their message, others by their type and text (the error a person reads on the call or the run)."""
    reason = exc.message if isinstance(exc, CallcheckError) else f"{type(exc).__name__}: {exc}"
    return " ".join(reason.split())[:300] or type(exc).__name__


def workflow_id(call_id: str) -> str:
    """The DBOS workflow id of a call."""
    return versioned(f"call-{call_id}")


async def on_app_loop(work: Callable[[Services], Awaitable[T]]) -> T:
    """Run `work(services)` on the app's event loop, from whichever loop DBOS runs the workflow on."""
    runtime = _runtime
    if runtime is None:
        raise RuntimeError("the call tracker is not running")
    if runtime.closing:
        # Shutting down: the step is cancelled before it starts (DBOS records nothing for a cancelled step, so the
        # workflow resumes here at the next launch) rather than started against a DBOS about to be destroyed.
        raise asyncio.CancelledError("callcheck is shutting down")

    async def run() -> T:
        task = asyncio.current_task()
        if task is not None:
            runtime.tasks.add(task)
        try:
            return await work(runtime.services)
        finally:
            if task is not None:
                runtime.tasks.discard(task)

    if asyncio.get_running_loop() is runtime.loop:
        return await asyncio.ensure_future(run())
    future = asyncio.run_coroutine_threadsafe(run(), runtime.loop)
    return await asyncio.wrap_future(future)


def track_workflow_task() -> None:
    """Called first thing in every workflow: one running on the app's loop is cancelled at shutdown, before DBOS is
    destroyed (Tracker.running). Without it, such a workflow ran on into the destroyed DBOS at its next step or wait
    and failed with a traceback ("cannot schedule new futures after shutdown", "System database accessed before DBOS
    was launched") for every call in flight."""
    runtime = _runtime
    task = asyncio.current_task()
    if runtime is None or task is None or asyncio.get_running_loop() is not runtime.loop:
        return
    runtime.workflows.add(task)
    task.add_done_callback(runtime.workflows.discard)


def open_runtime(services: Services) -> Runtime:
    """Open the bridge to this (the app's) event loop; one at a time per process."""
    global _runtime
    if _runtime is not None:
        raise RuntimeError("a call tracker is already running in this process")
    _runtime = Runtime(services, asyncio.get_running_loop())
    return _runtime


def close_runtime() -> None:
    """Close the bridge (after the workflows on the app's loop were stopped)."""
    global _runtime, _calls_queue
    _runtime = None
    _calls_queue = None
