"""Following every call to its end, durably, on DBOS Transact.

One call = one DBOS workflow whose id is derived from the call id and the workflow version (jobs/workflows.versioned):
starting it twice is harmless, and a workflow interrupted by a crash (even `kill -9`) is resumed by DBOS at the next
launch, its finished steps not re-run.

    ensure placed (and the deadline) ─► wait for the end ─► final? ─► fetch the recording
                                              └──── deadline reached ─► timed_out
    (an exception escaping any step ─► failed, the error saying why: every call ends)

The placing and the recording are recorded steps; the wait (and the time-out at its end) is not: it costs nothing
while it lasts and nothing in DBOS when it ends, and a resumed workflow just waits again (see _wait_for_end). A
call placed by a request (`place_call`) starts at the wait: the request hands its workflow the deadline and the
placed state, so such a call costs DBOS its start, its outcome and, when the call has audio, the recording step.
The wait ends when a webhook or the batched poller (jobs/following.py: one conversations list per sweep for every
call followed, full fetches only for those that changed) sees the call final, or at the deadline.

Every step hands its work to the app's event loop (`on_app_loop`, jobs/workflows.py: DBOS runs the workflows it
recovers on a loop of its own). What a step does to a call is in jobs/placing.py (dial, find upstream) and
jobs/applying.py (a conversation or webhook applied, the recording); the runs' part of recovery (starting a run's
workflow) is handed to the Tracker by jobs/recovery.py, which builds it, so this module never imports jobs/runs.py.

DBOS keeps one instance per process (its design, not ours): a process runs one Tracker at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID, WorkflowHandleAsync
from sqlalchemy.ext.asyncio import AsyncEngine

from callcheck.domain.lifecycle import CallState
from callcheck.errors import UpstreamError, UpstreamHTTPError
from callcheck.jobs.applying import (
    apply_conversation,
    apply_kept_webhooks,
    fetch_recording,
    refresh,
)
from callcheck.jobs.executors import Lease, new_executor_id, recover
from callcheck.jobs.following import Follower, ended_state
from callcheck.jobs.placing import NO_ID_FOUND, dial, find_upstream
from callcheck.jobs.workflows import (
    RUN_TOPIC,
    WORKFLOW_VERSION,
    Runtime,
    close_runtime,
    on_app_loop,
    one_line,
    open_runtime,
    register_calls_queue,
    run_workflow_id,
    track_workflow_task,
    wake_run,
    workflow_id,
)
from callcheck.providers import caller_for
from callcheck.services import Placed, Services
from callcheck.store import db
from callcheck.store.executors import ExecutorStore
from callcheck.store.files import private_sqlite
from callcheck.store.repo import SERVER_OWNER, CallRow
from callcheck.text import counted

log = logging.getLogger("callcheck.tracking")

SHUTDOWN_GRACE_S = 5.0


class _DeliberateCancellations(logging.Filter):
    """Drops DBOS's warning for each workflow and step that shutdown cancels on purpose (they resume at the next
    launch; Tracker.running says so once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Asyncio task cancelled for workflow or step")


# -- what the steps do (plain async functions, testable without DBOS) --------------------------------------------


async def reconcile(services: Services, call: CallRow) -> CallState:
    """A call left DIALING: ask ElevenLabs whether it was placed (by our user_id tag), never dial it again here."""
    if await find_upstream(services, call, "found upstream after an interruption"):
        return CallState.RINGING
    if call.origin == "suite":
        # Nobody saw an answer for this call, and ElevenLabs never got it: placing it now is its first dial.
        await dial(services, call)
        return CallState.RINGING
    # Someone asked for this call interactively and got an error (or lost the server); dialing now, unasked,
    # would surprise them. Record what happened instead.
    await services.store.move_call(
        call.id,
        CallState.FAILED,
        "interrupted before the call was placed",
        error=call.error or "The call was interrupted before it was placed.",
    )
    services.notifier.publish(call.id)
    return CallState.FAILED


async def ensure_placed(services: Services, call_id: str) -> str:
    """Dial a QUEUED call, reconcile a DIALING one; the call's state afterwards."""
    call = await services.store.get_call(call_id)
    if call is None:
        return CallState.FAILED.value
    if call.state == CallState.QUEUED:
        if not await services.store.move_call(call_id, CallState.DIALING, "placing the call"):
            return await ensure_placed(services, call_id)
        services.notifier.publish(call_id)
        call = await services.store.get_call(call_id)
        assert call is not None
        try:
            await dial(services, call)
        except UpstreamError:
            pass  # dial() recorded the failure (or left the call DIALING for reconciliation)
    elif call.state == CallState.DIALING:
        try:
            await reconcile(services, call)
        except UpstreamError as exc:
            log.warning("could not reconcile call %s yet: %s", call_id, exc.message)
    fresh = await services.store.get_call(call_id)
    assert fresh is not None
    return fresh.state.value


async def poll_once(services: Services, call_id: str) -> str:
    """Fetch the conversation once and apply it; the call's state afterwards (errors leave it unchanged)."""
    call = await services.store.get_call(call_id)
    if call is None:
        return CallState.FAILED.value
    if call.state in (CallState.DIALING, CallState.RINGING) and not call.conversation_id:
        # The answer to the dial was lost (a timeout after ElevenLabs got the request), or came without a
        # conversation id: keep looking the call up on every poll until it shows or the cap ends it; never dial
        # again from here.
        try:
            how = "found upstream after its answer was lost" if call.state == CallState.DIALING else NO_ID_FOUND
            if not await find_upstream(services, call, how):
                return call.state.value
        except UpstreamError as exc:
            log.warning("call %s not looked up yet: %s", call_id, exc.message)
            return call.state.value
        call = await services.store.get_call(call_id)
        assert call is not None
    if call.state.terminal or not call.conversation_id:
        return call.state.value
    try:
        snapshot = await caller_for(services).conversation(call.conversation_id)
    except UpstreamHTTPError as exc:
        if exc.status == 404:
            return (await conversation_not_found(services, call)).value
        log.warning("poll of call %s failed: %s", call_id, exc.message)
        return call.state.value
    except UpstreamError as exc:
        # Reads are safe to repeat: the next poll tries again.
        log.warning("poll of call %s failed: %s", call_id, exc.message)
        return call.state.value
    return (await apply_conversation(services, call, snapshot)).value


NOT_FOUND_UPSTREAM = "conversation not found upstream"


async def conversation_not_found(services: Services, call: CallRow) -> CallState:
    """ElevenLabs answered 404 for the call's conversation: once it has never been found for the grace period
    since the call was accepted, the call fails (it would otherwise be polled until the call's timeout).

    A conversation read once before and gone now (deleted) is left to the timeout: what was read is kept.
    """
    if call.facts:
        return call.state
    full = await services.store.get_call(call.id, with_events=True)
    accepted = next((e.at for e in (full.events if full else []) if e.state == CallState.RINGING.value), None)
    since = (accepted or call.created_at).timestamp()
    if time.time() - since < services.settings.conversation_not_found_s:
        return call.state
    grace = services.settings.conversation_not_found_s
    await services.store.move_call(
        call.id,
        CallState.FAILED,
        f"{NOT_FOUND_UPSTREAM} (404 on every read for {grace:g} s after it was accepted)",
        error=f"The {NOT_FOUND_UPSTREAM}: ElevenLabs accepted the call but never had its conversation "
        f"{call.conversation_id}.",
    )
    services.notifier.publish(call.id)
    fresh = await services.store.get_call(call.id)
    return fresh.state if fresh else CallState.FAILED


async def time_out(services: Services, call_id: str) -> str:
    """Stop following a call that outlived the cap."""
    call = await services.store.get_call(call_id)
    cap = call.timeout_s if call is not None and call.timeout_s else services.settings.call_timeout_s
    await services.store.move_call(call_id, CallState.TIMED_OUT, f"not finished after {cap:g} s")
    services.notifier.publish(call_id)
    call = await services.store.get_call(call_id)
    return call.state.value if call else CallState.TIMED_OUT.value


UNEXPECTED = "callcheck could not go on following this call"


async def end_with_error(services: Services, call_id: str, reason: str) -> str:
    """A call whose workflow met an unexpected error ends failed, its error saying why (a call already final is left
    as it is: the move is conditional, so the end is recorded once)."""
    reason = db.scrubbed(reason, services.settings.resolved_database_url())
    if await services.store.move_call(
        call_id, CallState.FAILED, f"{UNEXPECTED}: {reason}", error=f"{UNEXPECTED}: {reason}"
    ):
        services.notifier.publish(call_id)
    call = await services.store.get_call(call_id)
    return call.state.value if call else CallState.FAILED.value


# -- the workflow ------------------------------------------------------------------------------------------------
#
# A durable record is written when the call's state matters to the workflow, not on every poll: the placing (with
# the deadline) and the recording; the end is the call's own row. While the call lasts the workflow waits in a wait
# that costs nothing (jobs/following.py): no recorded polls, no database reads, whatever the call's length.


def _tracker(services: Services) -> Tracker:
    tracker = services.tracker
    if not isinstance(tracker, Tracker):
        raise RuntimeError("the call tracker is not running")
    return tracker


@DBOS.step(name="callcheck.ensure_placed", retries_allowed=False)
async def _ensure_placed_step(call_id: str) -> tuple[float, str | None, str]:
    """(the call's deadline as unix time, its run's id, its state once placed). The deadline is checkpointed with
    the placing, so a resumed workflow keeps the cap it started with, even if the settings changed since."""

    async def place(services: Services) -> tuple[float, str | None, str]:
        state = await ensure_placed(services, call_id)
        call = await services.store.get_call(call_id)
        cap = call.timeout_s if call is not None and call.timeout_s else services.settings.call_timeout_s
        return time.time() + cap, call.run_id if call is not None else None, state

    return await on_app_loop(place)


async def _wait_for_end(call_id: str, deadline: float) -> tuple[CallState, bool]:
    """(the call's final state, whether it may have a recording): its end, or its time-out at `deadline`.

    Not a recorded step, on purpose: a step costs DBOS a read before it runs and a write after, for every call, and
    this one needs neither. Resumed after a crash, the workflow simply waits again: the wait reads the call's state
    first (a call that ended meanwhile returns at once) and the time-out is a conditional move, so repeating either
    changes nothing. What a replay cannot know again (a final record saying "no recording") only costs a look for
    the recording. The steps around it are the same on every replay: the wait is not one of them. (One replay may
    differ: a wait that raised, its error step recorded, the process killed before the workflow's end was; replayed,
    the wait returns and the next step is not the recorded one. DBOS says so with an error, which ends the call with
    an error again: the end is conditional, so nothing changes.)
    """

    async def wait(services: Services) -> tuple[CallState, bool]:
        ended, recording = ended_state(await _tracker(services).follower.wait_for_end(call_id, deadline))
        # time_out leaves a call that ended meanwhile as it is, and says which state it is in.
        return ended or CallState(await time_out(services, call_id)), recording

    return await on_app_loop(wait)


@DBOS.step(name="callcheck.recording")
async def _recording_step(call_id: str) -> bool:
    return await on_app_loop(lambda s: fetch_recording(s, call_id))


# Retried: it is how a call ends when nothing else worked (a database that blinked, say), and it is safe to repeat.
@DBOS.step(name="callcheck.end_with_error", retries_allowed=True, max_attempts=5, interval_seconds=1.0)
async def _end_with_error_step(call_id: str, reason: str) -> str:
    return await on_app_loop(lambda s: end_with_error(s, call_id, reason))


@DBOS.workflow(name="callcheck.follow_call")
async def follow_call(call_id: str, placed_already: Placed | None = None) -> str:
    """Follow one call from placing to its final state and recording.

    `placed_already` is given by the request that just placed the call (place_call): the call needs no placing and
    its deadline is known, so the workflow skips the placing step (a recorded step and three reads less per call).
    It is part of the workflow's recorded input, so a resumed workflow takes the same path.

    Every call ends: an exception escaping a step (a bug, settings gone since the call was queued...) ends the call
    failed with the error, in a step of its own, and the workflow returns. Shutdown's cancellation and DBOS's own
    stops are BaseExceptions, left to DBOS (the workflow resumes at the next launch).
    """
    track_workflow_task()
    try:
        return await _follow(call_id, placed_already)
    except Exception as exc:
        log.exception("call %s: its workflow failed; the call ends failed", call_id)
        return await _end_with_error_step(call_id, one_line(exc))


async def _follow(call_id: str, placed_already: Placed | None) -> str:
    """The call workflow's steps (follow_call)."""
    deadline, run_id, placed = placed_already or await _ensure_placed_step(call_id)
    state = CallState(placed)
    recording = True
    if not state.terminal:
        state, recording = await _wait_for_end(call_id, deadline)
    if run_id is not None:
        # Its run places the next call now rather than at its next tick (a recorded send: once, even when resumed).
        try:
            await DBOS.send_async(run_workflow_id(run_id), "call ended", topic=RUN_TOPIC)
        except Exception as exc:  # a run without a workflow cannot be woken; it ticks on its own anyway
            log.debug("could not wake run %s: %s", run_id, exc)
    if state.may_have_recording and recording:
        await _recording_step(call_id)
    return state.value


# How often a process on PostgreSQL reads the states of the calls it follows (ends written by other processes).
ENDS_READ_S = 1.0
# How long a `callcheck run` waits, after its report, for its calls' workflows to return (the last recording fetch).
SETTLE_S = 15.0


class Tracker:
    """Owns DBOS for a running callcheck: launches it, resumes unfinished calls, starts and wakes workflows."""

    def __init__(
        self,
        services: Services,
        executor_id: str | None = None,
        role: str = "server",
        *,
        start_run: Callable[[str], Awaitable[None]],
    ) -> None:
        self.services = services
        # Starts a run's workflow (a no-op when it exists): jobs/recovery.py hands it in (the run workflow lives in
        # jobs/runs.py, which imports this module).
        self.start_run = start_run
        self.role = "run" if executor_id is not None else role
        # On PostgreSQL, several processes share the database: each is an executor of its own, with a lease
        # (jobs/executors.py). On SQLite (one process at a time) a server is executor "local" (None here) and a
        # `callcheck run` process has its own id (jobs/ownership.py).
        self.shared = not db.is_sqlite(services.settings.resolved_database_url())
        self.executor_id = new_executor_id(self.role) if self.shared else executor_id
        # The owner recorded on the runs this process starts: only a `callcheck run` process owns its run.
        self.run_owner = self.executor_id if self.role == "run" else None
        self.lease: Lease | None = None
        self._lease_engine: AsyncEngine | None = None
        # Runs of dead processes this one took over (a `callcheck run` waits for them before it exits).
        self.adopted_runs: set[str] = set()
        self.follower = Follower(services, refresh=refresh, poll=poll_once, found=apply_kept_webhooks)
        # Calls placed by a request, whose workflows are started after the answer went out (follow_soon).
        self._to_start: asyncio.Queue[tuple[str, Placed | None]] = asyncio.Queue()
        self._background: list[asyncio.Task[None]] = []

    def _dbos_config(self) -> dict[str, Any]:
        url = self.services.settings.resolved_database_url()
        if db.is_sqlite(url):
            # DBOS keeps its own tables; on SQLite a file of its own avoids contending for one writer lock.
            database = Path(db.sync_url(url).removeprefix("sqlite:///"))
            system_file = database.with_name(database.stem + db.DBOS_FILE_SUFFIX)
            system_url = f"sqlite:///{system_file}"
            private_sqlite(system_file)  # 0600 before DBOS creates it
            # DBOS leaves its SQLite file in the default rollback-journal mode: every step it records is then a
            # journal file created, synced and deleted. In WAL mode (kept in the file) a commit is one append.
            db.use_wal(system_file)
            db.sync_dbos_file_like_ours()
            # DBOS pings each pooled connection before every transaction (for servers that drop connections): a
            # file cannot, so on SQLite the ping is one more statement per recorded step for nothing.
            engine_kwargs: dict[str, Any] = {"pool_pre_ping": False}
        else:
            system_url = db.sync_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
            engine_kwargs = {}
        return {
            "name": "callcheck",
            "system_database_url": system_url,
            **({"db_engine_kwargs": engine_kwargs} if engine_kwargs else {}),
            "application_version": WORKFLOW_VERSION,
            "run_admin_server": False,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.1,
            "executor_id": self.executor_id or "local",
        }

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Tracker]:
        """Launch DBOS for this app, resume unfinished calls; destroy DBOS on exit."""
        runtime = open_runtime(self.services)
        # Set before DBOS launches: a workflow resumed at launch (or taken over from a dead process) may reach a step
        # that needs the tracker before this context is entered.
        self.services.tracker = self
        DBOS(config=self._dbos_config())  # type: ignore[arg-type]
        if self.role == "run":
            # A `callcheck run` process runs its own run's slots, never a server's: it exits when its run is over.
            DBOS.listen_queues([])
        try:
            await asyncio.to_thread(DBOS.launch)
            await register_calls_queue(self.services.settings.run_calls_per_process)
            # The two owned background tasks: the batched poller, and the starter of workflows for placed calls.
            self._background = [
                asyncio.create_task(self.follower.run(), name="callcheck-poller"),
                asyncio.create_task(self._start_followed(), name="callcheck-starter"),
            ]
            if self.shared:
                # The lease's own connection: a heartbeat never waits behind a busy pool (taken for dead).
                lease_engine = db.create_engine(self.services.settings.resolved_database_url(), pool_size=1, overflow=0)
                self._lease_engine = lease_engine
                self.lease = Lease(
                    ExecutorStore(lease_engine),
                    self.executor_id or "",
                    self.role,
                    self.services.settings.executor_lease_s,
                    self._take_over,
                    self.start_orphans,
                )
                await self.lease.register()
                self.services.executor_id = self.executor_id
                # A call watched live through another process (one without workers) is polled often here.
                self.services.notifier.on_watched = self.looked_at
                await self.lease.adopt_dead()
                await self.start_orphans()
                self._background.append(asyncio.create_task(self.lease.run(), name="callcheck-lease"))
                self._background.append(asyncio.create_task(self._ends_from_database(), name="callcheck-ends"))
            else:
                await self._adopt_stopped_runs()
            if not self.shared and self.executor_id is None:
                # A server resumes its own work; a `callcheck run` process has only the run it is about to start.
                for call in await self.services.store.unfinished_calls():
                    await self.follow(call.id)
                for run in await self.services.store.runs.unfinished_runs():
                    await self.start_run(run.id)
            yield self
        finally:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            if self.lease is not None:
                # Whatever this process leaves unfinished is taken over by a live one at once.
                await self.lease.release()
            if self._lease_engine is not None:
                await self._lease_engine.dispose()
            # Waiting workflows stop waiting (nothing recorded; DBOS resumes them at the next launch).
            self.follower.close()
            await self._stop_workflows(runtime)
            await asyncio.to_thread(DBOS.destroy, destroy_registry=False)
            # DBOS made its (now shut down) executor this loop's default one; give the loop a working one back so
            # asyncio.to_thread keeps working for whatever shuts down after us.
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(thread_name_prefix="callcheck"))
            close_runtime()

    @staticmethod
    async def _stop_workflows(runtime: Runtime) -> None:
        """Stop every workflow while DBOS still runs, in this order (a race otherwise: workflows on this loop ran on
        into the destroyed DBOS and failed with a traceback, intermittently, whenever calls were in flight):

        1. no new step work starts (`closing`: a step about to start is cancelled instead);
        2. step work already running gets a moment to finish (each is one request and a few writes), so no database
           connection is abandoned mid-query; what remains is cancelled;
        3. the workflows on this loop, now between steps or waiting to poll again, are cancelled.

        Cancelled, a workflow records nothing: DBOS resumes it at the next launch from its last finished step (steps
        are safe to run again). The workflows DBOS recovered run on its own loop, which DBOS.destroy stops; they
        too start no step after step 1.
        """
        runtime.closing = True
        quiet = _DeliberateCancellations()
        logging.getLogger("dbos").addFilter(quiet)
        try:
            if runtime.tasks:
                _, unfinished = await asyncio.wait(list(runtime.tasks), timeout=SHUTDOWN_GRACE_S)
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
            workflows = list(runtime.workflows)
            for task in workflows:
                task.cancel()
            if workflows:
                await asyncio.wait(workflows, timeout=SHUTDOWN_GRACE_S)
                log.info("stopped following %s; they resume at the next start", counted(len(workflows), "workflow"))
        finally:
            logging.getLogger("dbos").removeFilter(quiet)

    async def _adopt_stopped_runs(self) -> None:
        """Stop the runs of `callcheck run` processes of this host that are gone (killed): cancel them at once, so
        nothing dials their remaining calls; a server (long-lived) also takes their workflows over, following the
        calls already dialed to their end and writing the report.

        A `callcheck run` process only cancels: it would take the workflows over only to cut them off again when
        its own run ends (and a chain of such hand-overs can strand a workflow that was re-queued but not yet
        picked up). Nothing but a server reads an old run anyway (`/runs`, `/api/runs`).
        """
        from callcheck.jobs.ownership import is_gone, stopped_note

        runs = self.services.store.runs
        for run in await runs.unfinished_runs(owned=True):
            if run.owner is None or not is_gone(run.owner):
                continue
            if run.state == "running":
                log.warning("run %s: its process is gone; cancelling it", run.id)
                await runs.request_cancel(run.id)
                await runs.update_run(run.id, error=stopped_note(run.owner))
            if self.executor_id is not None:
                continue
            log.warning("run %s: following the calls its stopped process had dialed", run.id)
            # Owned by this server from now on ("local": its DBOS resumes the run after a crash of its own).
            await runs.update_run(run.id, owner=SERVER_OWNER)
            # Its workflows (the run's and its calls') are re-enqueued and resume in this process; a run whose
            # workflow was of another version (callcheck upgraded since) gets one of this version.
            await recover([run.owner], WORKFLOW_VERSION)
            await self.start_run(run.id)
            # A call dialed just before the kill may have no workflow yet (the process died between its dial and
            # the start of its workflow): start one for every unfinished call; an existing one is left as it is.
            for _, call in await self.services.store.run_calls(run.id):
                if call is not None and not call.state.terminal:
                    await self.follow(call.id)
            await wake_run(run.id)

    async def _ends_from_database(self) -> None:
        """Every ENDS_READ_S, read the states of the calls waiting here (PostgreSQL): a call ended by another process
        (a webhook that landed on another server, one without workers) wakes its workflow here within about that,
        whatever the poller's pace."""
        while True:
            await asyncio.sleep(ENDS_READ_S)
            ids = self.follower.waiting_ids()
            if not ids:
                continue
            try:
                for row in await self.services.store.followed_calls(ids):
                    self.follower.ended(row.id, row.state)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not read the states of the calls followed here (the next read tries again)")

    async def _take_over(self, executor_ids: list[str]) -> None:
        """Dead processes' work, claimed by this one (PostgreSQL): the runs a `callcheck run` process started are
        cancelled (no new call is placed; those dialed are followed to their end and the run is reported), every
        pending workflow of theirs resumes, and every unfinished call or run without a workflow (its process died
        between the dial and the workflow's start) gets one."""
        from callcheck.jobs.ownership import stopped_note

        runs = self.services.store.runs
        adopted = [r for r in await runs.unfinished_runs(owned=True) if r.owner in executor_ids]
        for run in adopted:
            if run.state == "running":
                log.warning("run %s: the `callcheck run` process that ran it is gone; cancelling it", run.id)
                await runs.request_cancel(run.id)
                await runs.update_run(run.id, error=stopped_note(run.owner or ""))
            # A server's run from now on: whichever process runs its workflow, nobody cancels it again.
            await runs.update_run(run.id, owner=None)
            self.adopted_runs.add(run.id)
        resumed = await recover(executor_ids, WORKFLOW_VERSION)
        log.warning("executor %s resumes %s of %s", self.executor_id, counted(len(resumed), "workflow"), executor_ids)
        await self.start_orphans(adopted={r.id for r in adopted})
        for run in adopted:
            await wake_run(run.id)

    async def start_orphans(self, adopted: set[str] | None = None) -> None:
        """Start a workflow for every unfinished call or server run that has none (PostgreSQL): its process died
        between recording it and starting its workflow, or a server without workers placed it.

        A call still QUEUED or DIALING that a live process placed may be being dialed right now: it is left alone
        until that dial surely ended (twice the HTTP timeout). One placed by a dead process (or before processes
        were recorded) is taken at once: its workflow looks it up upstream before ever dialing it (reconcile).
        """
        adopted = adopted or set()
        calls = await self.services.store.unfinished_calls()
        runs = await self.services.store.runs.unfinished_runs()
        wanted = [workflow_id(c.id) for c in calls] + [run_workflow_id(r.id) for r in runs]
        if not wanted:
            return
        existing = {
            w.workflow_id
            for w in await DBOS.list_workflows_async(workflow_ids=wanted, load_input=False, load_output=False)
        }
        grace = 2 * self.services.settings.http_timeout_s + 5
        now = time.time()
        live = {r.id for r in await ExecutorStore(self.services.store.engine).live()} | {self.executor_id}
        for call in calls:
            if workflow_id(call.id) in existing:
                continue
            dialing = call.state in (CallState.QUEUED, CallState.DIALING) and call.run_id not in adopted
            if dialing and call.placed_by in live and now - call.updated_at.timestamp() < grace:
                continue
            log.warning("call %s has no workflow following it: starting one", call.id)
            await self.follow(call.id)
        for run in runs:
            if run_workflow_id(run.id) not in existing:
                log.warning("run %s has no workflow: starting one", run.id)
                await self.start_run(run.id)

    async def settle(self, call_ids: list[str], most_s: float = SETTLE_S) -> None:
        """Wait (up to `most_s`) for these calls' workflows to return: a call can be final while its workflow
        still fetches the recording. A `callcheck run` that exits then would cut them off mid-step (DBOS's executor
        is shut down under them, which it reports as errors). One still running at the deadline is cut off as a crash
        would cut it: its call is final and reported; only its recording may be missing."""

        async def one(call_id: str) -> None:
            handle: WorkflowHandleAsync[str] = await DBOS.retrieve_workflow_async(workflow_id(call_id))
            await handle.get_result()

        tasks = [asyncio.ensure_future(one(call_id)) for call_id in call_ids]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=most_s)
        for task in late:
            task.cancel()
        # Errors of the workflows themselves are already recorded on their calls; only their end mattered here.
        await asyncio.gather(*tasks, return_exceptions=True)

    async def follow(self, call_id: str, placed: Placed | None = None) -> None:
        """Start following a call (a no-op when its workflow exists already); `placed` when it was just placed."""
        with SetWorkflowID(workflow_id(call_id)):
            if placed is None:
                await DBOS.start_workflow_async(follow_call, call_id)
            else:
                await DBOS.start_workflow_async(follow_call, call_id, placed)

    def follow_soon(self, call_id: str, placed: Placed | None = None) -> None:
        """Start following a call shortly, off the caller's critical path (a request placing a call answers first).

        Safe across a crash before the start: a server starts a workflow for every unfinished call at launch.
        """
        self._to_start.put_nowait((call_id, placed))

    async def _start_followed(self) -> None:
        while True:
            call_id, placed = await self._to_start.get()
            try:
                await self.follow(call_id, placed)
            except Exception:  # one call's start failing must not stop the others'; the next launch retries it
                log.exception("could not start following call %s", call_id)

    def ended(self, call_id: str, state: CallState, *, recording: bool = True) -> None:
        """A call is in `state` (just written here): its workflow, if it waits in this process, goes on at once when
        the state is final. A workflow elsewhere learns it from its own reads. `recording=False`: the provider's
        final record says the call has no recording; the workflow then looks for none."""
        self.follower.ended(call_id, state, recording=recording)

    def watching(self, call_id: str) -> AbstractContextManager[None]:
        """While inside, the call is polled often (someone watches it live)."""
        return self.follower.watching(call_id)

    def looked_at(self, call_id: str) -> None:
        """Someone read a live call: poll it often for a few seconds."""
        self.follower.looked_at(call_id)
