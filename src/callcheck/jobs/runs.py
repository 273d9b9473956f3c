"""Suite runs: many planned calls under a concurrency cap and a rate limit, judged and reported at the end.

A run is one DBOS workflow, which starts `concurrency` slot workflows and then looks after the run (a cancel, its
end). Each slot places the run's next planned call (a step: the database admits it under the run's cap and rate and
the account-wide cap, across every process), follows it to its end (the call's own workflow), and places the next,
until nothing is pending. A server's run puts its slots on a DBOS queue that every process with workers dequeues from:
the run's calls are placed by whichever processes have room. When nothing is pending or under way, every call is
judged and the report is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict
from typing import Any

import anyio
from dbos import DBOS, SetWorkflowID

from callcheck.config import Settings
from callcheck.domain.assertions import CallEvidence, verdict_for
from callcheck.domain.evidence import Analysis, CallFacts, Turn
from callcheck.domain.lifecycle import CallState, RunState
from callcheck.domain.suite import OVERRIDE_PROMPT, PlannedCall, Suite, load_suite, overrides_for
from callcheck.errors import (
    ConfigurationError,
    DestinationRefused,
    InvalidInput,
    LimitReached,
    UpstreamError,
    UpstreamHTTPError,
    UpstreamUnreachable,
)
from callcheck.jobs.destinations import check_destination
from callcheck.jobs.placing import CallRequest, dial, record_call
from callcheck.jobs.tracking import follow_call
from callcheck.jobs.workflows import (
    RUN_TOPIC,
    calls_queue,
    on_app_loop,
    one_line,
    run_workflow_id,
    slot_workflow_id,
    track_workflow_task,
    wake_run,
    workflow_id,
)
from callcheck.providers import caller_for
from callcheck.providers.llm import judge_from_settings
from callcheck.reports import build_report, run_result
from callcheck.services import Services
from callcheck.store import db
from callcheck.store.repo import SERVER_OWNER, Admission, CallRow, ItemAlreadyPlaced, RunBusy, RunRow, utcnow

log = logging.getLogger("callcheck.runs")

EXIT_COULD_NOT_RUN = 2
RETRY_S = 5.0  # wait before trying again when ElevenLabs could not be read
TICK_S = 1.0  # longest wait between two ticks when nothing wakes the run
TERMINAL_RUN_STATES = {"completed", "cancelled", "failed"}
MINUTE_LIMIT = "CALLCHECK_MAX_CALLS_PER_MINUTE"  # the one budget a run waits out rather than stops at


def plan(
    suite_text: str, source_name: str, only: list[str] | None, settings: Settings | None = None
) -> tuple[Suite, list[PlannedCall]]:
    """The suite and the calls a run of it places (raises SuiteError / InvalidInput).

    With `settings`, a new run's size limits apply too (CALLCHECK_MAX_SUITE_BYTES, _MAX_SUITE_SCENARIOS, and
    _MAX_CALLS_PER_RUN), the bytes before anything is parsed. A stored run is planned again without them: limits
    lowered since it started do not break it half-way.
    """
    if settings is not None and settings.max_suite_bytes:
        size = len(suite_text.encode("utf-8", "surrogatepass"))
        if size > settings.max_suite_bytes:
            raise InvalidInput(
                f"The suite is too large: {size} bytes, over CALLCHECK_MAX_SUITE_BYTES ({settings.max_suite_bytes})."
            )
    suite = load_suite(suite_text, source_name)
    planned = suite.planned_calls(only)
    if settings is not None:
        if settings.max_suite_scenarios and len(suite.scenarios) > settings.max_suite_scenarios:
            raise InvalidInput(
                f"The suite has too many scenarios: {len(suite.scenarios)}, over CALLCHECK_MAX_SUITE_SCENARIOS "
                f"({settings.max_suite_scenarios})."
            )
        if settings.max_calls_per_run and len(planned) > settings.max_calls_per_run:
            raise InvalidInput(
                f"The run is too large: it would place {len(planned)} calls (scenarios times their repeats), over "
                f"CALLCHECK_MAX_CALLS_PER_RUN ({settings.max_calls_per_run})."
            )
    return suite, planned


async def start_run(
    services: Services,
    suite_text: str,
    source_name: str,
    *,
    concurrency: int = 1,
    rate_per_min: float | None = None,
    only: list[str] | None = None,
    token_name: str | None = None,
) -> RunRow:
    """Validate a suite, its numbers and the agent, store the run and start its workflow."""
    run = await prepare_run(
        services,
        suite_text,
        source_name,
        concurrency=concurrency,
        rate_per_min=rate_per_min,
        only=only,
        token_name=token_name,
    )
    if services.tracker is not None:  # else (a server without workers) a worker starts it (Tracker.start_orphans)
        with SetWorkflowID(run_workflow_id(run.id)):
            await DBOS.start_workflow_async(run_suite, run.id)
    return run


async def prepare_run(
    services: Services,
    suite_text: str,
    source_name: str,
    *,
    concurrency: int = 1,
    rate_per_min: float | None = None,
    only: list[str] | None = None,
    token_name: str | None = None,
    **links: Any,
) -> RunRow:
    """Validate a suite, its numbers and the agent and store the run, not started yet (a monitor starts it as its
    own child workflow; `links` are its monitor_id and monitor_slot)."""
    # Parsed in a worker thread: a large suite takes seconds of pure-Python YAML parsing, never the event loop's.
    suite, planned = await anyio.to_thread.run_sync(
        functools.partial(plan, suite_text, source_name, only, settings=services.settings)
    )
    services.require_call_settings()  # raises MissingSettings (names only) before the numbers are checked
    for number in sorted({p.number for p in planned}):
        await check_destination(services, number)  # a refused number: the run does not start (403, exit 2)
    allowed = await caller_for(services).allowed_overrides()
    if OVERRIDE_PROMPT not in allowed:
        raise ConfigurationError(
            "The caller agent does not allow per-call prompt overrides, so no scenario's goal can reach the caller. "
            "Run `callcheck agent setup` to enable them."
        )
    run = await services.store.runs.create_run(
        [(p.display_name, p.scenario, p.repeat) for p in planned],
        name=suite.name,
        source_name=source_name,
        suite_text=suite_text,
        only=only or None,
        concurrency=max(1, concurrency),
        rate_per_min=rate_per_min,
        simulated=services.simulated,
        owner=services.tracker.run_owner if services.tracker else None,
        token_name=token_name,
        **links,
    )
    return run


async def cancel_run(services: Services, run_id: str) -> bool:
    """Stop placing new calls for a run; calls in flight are followed to their end. False if not running."""
    cancelled = await services.store.runs.request_cancel(run_id)
    if cancelled:
        await wake_run(run_id)
    return cancelled


# A run's planned calls, parsed once per run in this process (a run's suite never changes): a tick then costs two
# small queries whatever the suite's size. Bounded: the oldest runs' plans are dropped first.
_PLANS: OrderedDict[str, list[PlannedCall]] = OrderedDict()
PLANS_KEPT = 64


def planned_calls(run: RunRow) -> list[PlannedCall]:
    """The planned calls of a stored run, parsed once per run and process."""
    planned = _PLANS.get(run.id)
    if planned is None:
        planned = plan(run.suite_text, run.source_name, run.only)[1]
        _PLANS[run.id] = planned
        while len(_PLANS) > PLANS_KEPT:
            _PLANS.popitem(last=False)
    return planned


async def tick(services: Services, run_id: str) -> dict[str, Any]:
    """Look after a run from what the database says: a cancel skips the planned calls not placed yet; the run is over
    when nothing is pending or under way. `slots`: how many slots the run needs (read from its first tick); `local`:
    whether they run in this process (a `callcheck run` process's own run) rather than on the calls queue."""
    runs = services.store.runs
    run = await runs.get_run(run_id)
    if run is None or run.state in TERMINAL_RUN_STATES:
        return {"slots": 0, "finished": True, "local": True, "wait": 0.0}
    pending, active = await runs.progress(run_id)
    if run.state == "cancelling" and pending:
        await runs.skip_pending(run_id)
        pending = 0
    local = run.owner is not None and run.owner != SERVER_OWNER
    finished = not pending and not active
    return {"slots": min(run.concurrency, pending), "finished": finished, "local": local, "wait": TICK_S}


async def place_next(services: Services, run_id: str, slot: int = 0) -> dict[str, Any]:
    """Place the run's next planned call if the run may place one now.

    `{"call": id, "placed": ...}` once one is placed (`placed`: its deadline, run and state for its workflow, None
    when it was left DIALING to be reconciled); `{"wait": s}` to try again in s seconds (the run's cap or rate, the
    account-wide cap, the minute's budget, ElevenLabs not readable); `{}` when nothing is left to place (all placed,
    cancelled, or the run gave up). The caps are held by the database (Store.create_call's admission), across every
    process; two slots picking the same planned call place it once (the loser takes the next one).

    Slot k tries the k-th next pending call first: slots freed at once (calls started together end together) then
    each place a different one, rather than all trying the same first one in turn, a transaction each under the lock.
    """
    runs = services.store.runs
    run = await runs.get_run(run_id)
    if run is None or run.state in TERMINAL_RUN_STATES:
        return {}
    if run.state == "cancelling":
        await runs.skip_pending(run_id)
        return {}
    allowed = await _allowed_overrides(services, run_id)
    if isinstance(allowed, float):
        return {"wait": allowed}
    if allowed is None:
        return {}
    planned = planned_calls(run)
    interval = 60.0 / run.rate_per_min if run.rate_per_min else 0.0
    admission = Admission(run.id, run.concurrency, interval)
    while items := await runs.next_pending(run_id, run.concurrency):
        first = slot % len(items)
        for item in items[first:] + items[:first]:
            try:
                call = await _place(services, run, item.id, planned[item.position], allowed, admission)
            except ItemAlreadyPlaced:  # another slot placed this one meanwhile (nothing was stored or dialed here)
                continue
            except RunBusy as exc:  # the cap (another process placed one) or the rate: wait for a place
                return {"wait": min(exc.wait_s, 60.0) if exc.wait_s is not None else TICK_S}
            except LimitReached as exc:
                # The minute's budget: the run waits until it frees up. A day's budget: the rest is not placed.
                if exc.limit == MINUTE_LIMIT:
                    log.info("run %s waits for the call budget: %s", run.id, exc.message)
                    return {"wait": min(max(exc.resets_at.timestamp() - time.time(), 0.0) + 0.05, 60.0)}
                await _give_up(services, run.id, f"No more calls were placed: {exc.message}")
                return {}
            except DestinationRefused as exc:  # the dialing rules changed since the run started
                await _give_up(services, run.id, f"No more calls were placed: {exc.message}")
                return {}
            return {"call": call.id, "placed": _placed(services, call)}
    return {}


ENDED_READ_S = 2.0  # how often a slot reads its call's state when no change of it was heard of
ENDED_GRACE_S = 120.0  # past its deadline, a call's workflow has surely ended it (timed_out) or died


async def ended(services: Services, call_id: str) -> str:
    """Wait until a call is final (its state is written by whichever process follows it; every write of it wakes the
    wait, across processes on PostgreSQL); the state. Past the call's deadline and a grace, whatever the state: the
    run's caps are held by the database, so a slot going on early never places one call too many."""
    give_up_at: float | None = None
    with services.notifier.subscribed(call_id) as changed:
        while True:
            changed.clear()
            call = await services.store.get_call(call_id)
            if call is None or call.state.terminal:
                return call.state.value if call is not None else CallState.FAILED.value
            if give_up_at is None:
                cap = call.timeout_s or services.settings.call_timeout_s
                give_up_at = call.created_at.timestamp() + cap + ENDED_GRACE_S
            if time.time() > give_up_at:
                return call.state.value
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ENDED_READ_S):
                    await changed.wait()


def _placed(services: Services, call: CallRow) -> tuple[float, str | None, str] | None:
    """What the call's workflow needs not look up again (see tracking.follow_call): None for a call left DIALING
    (its answer was lost: the workflow reconciles it)."""
    if call.state == CallState.DIALING:
        return None
    cap = call.timeout_s or services.settings.call_timeout_s
    return time.time() + cap, call.run_id, call.state.value


async def _allowed_overrides(services: Services, run_id: str) -> set[str] | float | None:
    """The overrides the caller agent allows; a wait in seconds when it could not be read for now; None when the
    run gave up (the agent is gone, settings are missing): nothing more is placed."""
    try:
        return await caller_for(services).allowed_overrides()
    except (UpstreamUnreachable, UpstreamHTTPError) as exc:
        if isinstance(exc, UpstreamUnreachable) or exc.status == 429 or exc.status >= 500:
            # Passing trouble upstream: try again on a later tick; nothing was dialed.
            log.warning("run %s: agent not readable yet: %s", run_id, exc.message)
            return RETRY_S
        await _give_up(services, run_id, f"No more calls were placed: {exc.message}")
        return None
    except ConfigurationError as exc:
        await _give_up(services, run_id, f"No more calls were placed: {exc.message}")
        return None


async def _give_up(services: Services, run_id: str, reason: str) -> None:
    """Stop a run from placing calls for good (its agent is gone, settings missing): the rest is skipped."""
    await services.store.runs.skip_pending(run_id)
    await services.store.runs.update_run(run_id, error=reason)
    log.warning("run %s: %s", run_id, reason)


# A run whose placing or judging meets an unexpected error (a bug, a database that blinked) still ends.
UNEXPECTED_RUN = "callcheck could not go on with this run"
SLOT_ATTEMPTS = 5  # a slot's placing step failing this many times in a row gives the run up
SLOT_RETRY_S = 2.0  # the first wait after a failed placing step; doubled after each failure (60 s at most)


async def fail_run(services: Services, run_id: str, reason: str) -> int:
    """A run whose workflow met an unexpected error ends failed (exit code 2, no report: it could not be judged),
    its error saying why; the planned calls not placed are skipped. A run already over is left as it is."""
    runs = services.store.runs
    await runs.skip_pending(run_id)
    error = f"{UNEXPECTED_RUN}: {reason}"
    if await runs.update_run(
        run_id, state=RunState.FAILED, error=error, finished_at=utcnow(), exit_code=EXIT_COULD_NOT_RUN
    ):
        log.error("run %s: %s", run_id, error)
    services.notifier.publish(f"run-{run_id}")
    run = await runs.get_run(run_id)
    return run.exit_code if run is not None and run.exit_code is not None else EXIT_COULD_NOT_RUN


async def _place(
    services: Services, run: RunRow, item_id: int, planned: PlannedCall, allowed: set[str], admission: Admission
) -> CallRow:
    """Record (marking the planned call placed at once) and dial one call of a run; the rate limit applies now.

    A crash after the record and before the answer leaves the call DIALING: its follow workflow looks it up
    upstream by our id and dials only if ElevenLabs never received it.
    """
    caller = planned.caller()
    override, dropped = overrides_for(planned, allowed)
    request = CallRequest(
        to_number=planned.number,
        description=planned.business,
        scenario=planned.goal,
        origin="suite",
        run_id=run.id,
        prompt=caller.prompt,
        first_message=caller.first_message,
        override=override,
        timeout_s=planned.timeout_s,
        run_item_id=item_id,
        token_name=run.token_name,
    )
    call = await record_call(services, request, CallState.DIALING, admission=admission)
    if dropped:
        await services.store.add_event(
            call.id, "note", "not sent (the agent does not allow overriding them): " + ", ".join(dropped)
        )
    try:
        await dial(services, call)
    except UpstreamError:
        pass  # recorded on the call by dial(); the verdict will say the call failed
    fresh = await services.store.get_call(call.id)
    assert fresh is not None
    return fresh


def overrides_not_sent(planned: PlannedCall, sent: dict[str, Any]) -> list[str]:
    """The persona override fields of `planned` that its call was placed without (the agent did not allow them).

    `sent` is read from the request the call was placed with (the provider's `sent_overrides`), so the report says
    what really went out, whatever the agent allows by the time the run is judged.
    """
    missing = []
    for path in planned.caller().override_fields():
        node: Any = sent
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            missing.append(path)
    return missing


def evidence_of(call: CallRow) -> CallEvidence:
    """What a stored call offers to the assertions."""
    return CallEvidence(
        state=call.state,
        turns=[Turn.model_validate(t) for t in call.transcript or []],
        analysis=Analysis.model_validate(call.analysis) if call.analysis else None,
        facts=CallFacts.model_validate(call.facts) if call.facts else CallFacts(),
        call_id=call.id,
    )


async def finish(services: Services, run_id: str) -> int:
    """Judge every call of a run, store its report; the run's exit code (0 all passed, 1 otherwise)."""
    runs = services.store.runs
    run = await runs.get_run(run_id)
    assert run is not None
    if run.state in TERMINAL_RUN_STATES and run.exit_code is not None:
        return run.exit_code
    suite, planned = plan(run.suite_text, run.source_name, run.only)
    _PLANS.pop(run_id, None)
    judge = judge_from_settings(services.settings, services.http)
    results = []
    caller = caller_for(services)
    for item, call in await services.store.run_calls(run_id):
        if item.status != "placed" or call is None:
            continue
        evidence = evidence_of(call)
        this = planned[item.position]
        verdict = await verdict_for(evidence, this.expectations, judge)
        dropped = overrides_not_sent(this, caller.sent_overrides(call.request_payload or {}))
        results.append(
            run_result(this, evidence, verdict, simulated=call.simulated, note=call.error, overrides_not_sent=dropped)
        )
    cancelled = run.state == "cancelling"
    # A run that had to stop placing calls is reported like a cancelled one (never passed), and exits 2: the
    # suite could not run to the end, which says nothing about the line itself. A cancelled run with an error (one
    # adopted after its `callcheck run` process was killed) stays cancelled; the error says why.
    failed = run.error is not None and not cancelled
    report = build_report(
        suite,
        results,
        started_at=run.created_at,
        finished_at=utcnow(),
        cancelled=cancelled or failed,
        only=run.only,
        stopped=run.error,  # planned calls without a result are reported as not run, for this reason
        run_id=run.id,
        concurrency=run.concurrency,
        rate_per_min=run.rate_per_min,
        token_name=run.token_name,
    )
    exit_code = EXIT_COULD_NOT_RUN if failed else report.exit_code
    await runs.update_run(
        run_id,
        state=RunState.FAILED if failed else (RunState.CANCELLED if cancelled else RunState.COMPLETED),
        finished_at=utcnow(),
        report=report.model_dump(mode="json"),
        exit_code=exit_code,
    )
    services.notifier.publish(f"run-{run_id}")
    return exit_code


@DBOS.step(name="callcheck.run_tick")
async def _tick_step(run_id: str) -> dict[str, Any]:
    return await on_app_loop(lambda s: tick(s, run_id))


@DBOS.step(name="callcheck.run_place_next", retries_allowed=False)
async def _place_next_step(run_id: str, slot: int) -> dict[str, Any]:
    # Not retried: a step interrupted after its call was recorded is not re-run blindly; run again (a crash), it
    # places the next planned call, and the call recorded is followed by the workflow started for it (start_orphans).
    return await on_app_loop(lambda s: place_next(s, run_id, slot))


@DBOS.step(name="callcheck.run_call_ended")
async def _ended_step(call_id: str) -> str:
    return await on_app_loop(lambda s: ended(s, call_id))


@DBOS.step(name="callcheck.run_finish")
async def _finish_step(run_id: str) -> int:
    return await on_app_loop(lambda s: finish(s, run_id))


@DBOS.step(name="callcheck.run_give_up", retries_allowed=True, max_attempts=5, interval_seconds=1.0)
async def _give_up_step(run_id: str, reason: str) -> None:
    await on_app_loop(lambda s: _give_up(s, run_id, reason))


# Retried: it is how a run ends when nothing else worked, and it is safe to repeat (the move is conditional).
@DBOS.step(name="callcheck.run_fail", retries_allowed=True, max_attempts=5, interval_seconds=1.0)
async def _fail_run_step(run_id: str, reason: str) -> int:
    return await on_app_loop(lambda s: fail_run(s, run_id, reason))


@DBOS.step(name="callcheck.run_reason")
async def _reason_step(text: str) -> str:
    # Scrubbed in a step: the reason (from the settings) is then recorded, the same on a replay.
    return await on_app_loop(lambda s: _scrubbed(s, text))


async def _scrubbed(services: Services, text: str) -> str:
    return db.scrubbed(text, services.settings.resolved_database_url())


@DBOS.workflow(name="callcheck.run_slot")
async def run_slot(run_id: str, slot: int) -> int:
    """One of a run's `concurrency` slots: place the run's next call, start its workflow (a child, running here), wait
    for the call's end, and so on until nothing is left to place; how many calls this slot placed.

    A server's run puts its slots on the calls queue (jobs/workflows.py), so they run in whichever processes have
    room; a slot whose process dies is resumed by the process that takes it over. A finished call's place is filled
    by the same slot at once, without waiting for the run's workflow.
    """
    track_workflow_task()
    placed = 0
    failures = 0
    while True:
        try:
            step = await _place_next_step(run_id, slot)
        except Exception as exc:
            # Not a refusal (those are answers): a bug or a database that blinked. Tried again a few times, with
            # growing waits; then the run is given up (the rest skipped, the error said), so it still ends.
            failures += 1
            reason = await _reason_step(one_line(exc))
            log.warning("run %s slot %d: placing failed (%d of %d): %s", run_id, slot, failures, SLOT_ATTEMPTS, reason)
            if failures >= SLOT_ATTEMPTS:
                await _give_up_step(run_id, f"No more calls were placed: {UNEXPECTED_RUN}: {reason}")
                break
            await DBOS.sleep_async(min(SLOT_RETRY_S * 2 ** (failures - 1), 60.0))
            continue
        failures = 0
        call_id = step.get("call")
        if call_id is not None:
            placed += 1
            with SetWorkflowID(workflow_id(call_id)):
                await DBOS.start_workflow_async(follow_call, call_id, step.get("placed"))
            # Its place is free once it is final: the next call goes out while its workflow fetches the recording.
            await _ended_step(call_id)
            continue
        if "wait" not in step:
            break
        await DBOS.sleep_async(step["wait"])
    await wake_run(run_id)  # nothing left for this slot: the run may be over
    return placed


@DBOS.workflow(name="callcheck.run_suite")
async def run_suite(run_id: str) -> int:
    """Start a run's slots (which place and follow its calls), look after the run until it is over, judge it.

    Every run ends: an exception escaping a step (a suite that no longer parses, a bug) ends the run failed with the
    error, in a step of its own. Shutdown's cancellation and DBOS's own stops are BaseExceptions, left to DBOS.
    """
    track_workflow_task()
    try:
        return await _run_suite(run_id)
    except Exception as exc:
        log.exception("run %s: its workflow failed; the run ends failed", run_id)
        return await _fail_run_step(run_id, await _reason_step(one_line(exc)))


async def _run_suite(run_id: str) -> int:
    """run_suite's steps."""
    first = True
    while True:
        step = await _tick_step(run_id)
        if first:
            first = False
            for slot in range(step["slots"]):
                with SetWorkflowID(slot_workflow_id(run_id, slot)):
                    if step["local"]:
                        await DBOS.start_workflow_async(run_slot, run_id, slot)
                    else:
                        await (await calls_queue()).enqueue_async(run_slot, run_id, slot)
        if step["finished"]:
            break
        # Woken when a call of the run ends, a slot is done, or the run is cancelled.
        await DBOS.recv_async(topic=RUN_TOPIC, timeout_seconds=step["wait"])
    return await _finish_step(run_id)
