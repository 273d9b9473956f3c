"""Suite runs: many planned calls under a concurrency cap and a rate limit, judged and reported at the end.

A run is one DBOS workflow. Each tick (a step, re-runnable because it decides from the database alone) marks
finished calls, honours a cancel request, and dials as many pending calls as the cap and the rate allow; the
workflow then starts a follow workflow per new call and waits for a wake-up (a call of the run ended, or a cancel)
or the next tick. When nothing is pending or active, every call is judged and the report is stored.
"""

from __future__ import annotations

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
from callcheck.jobs.workflows import RUN_TOPIC, on_app_loop, run_workflow_id, track_workflow_task, wake_run, workflow_id
from callcheck.providers import caller_for
from callcheck.providers.llm import judge_from_settings
from callcheck.reports import build_report, run_result
from callcheck.services import Services
from callcheck.store.repo import Admission, CallRow, ItemAlreadyPlaced, RunBusy, RunItem, RunRow, utcnow

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
    services.client()  # raises MissingSettings (names only) before the numbers are checked
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


def _outcome(started: list[str], finished: bool, wait: float = TICK_S) -> dict[str, Any]:
    return {"started": started, "finished": finished, "wait": wait}


async def tick(services: Services, run_id: str) -> dict[str, Any]:
    """Advance a run from what the database says; which calls were dialed, and whether the run is over.

    Only counts are read (planned calls pending, calls under way), then as many pending calls as there is room for.
    The caps themselves are held by the database (Store.create_call's admission), across every process.
    """
    runs = services.store.runs
    run = await runs.get_run(run_id)
    if run is None or run.state in TERMINAL_RUN_STATES:
        return _outcome([], True, 0.0)
    pending, active = await runs.progress(run_id)
    if run.state == "cancelling" and pending:
        await runs.skip_pending(run_id)
        pending = 0
    if not pending or active >= run.concurrency:
        return _outcome([], not pending and not active)
    allowed = await _allowed_overrides(services, run_id)
    if isinstance(allowed, float):
        return _outcome([], False, allowed)
    if allowed is None:
        return _outcome([], not active)
    items = await runs.next_pending(run_id, run.concurrency - active)
    started, wait = await _place_some(services, run, items, allowed)
    return _outcome(started, False, wait) if wait is not None else _outcome(started, not active and not started)


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


async def _place_some(
    services: Services, run: RunRow, items: list[RunItem], allowed: set[str]
) -> tuple[list[str], float | None]:
    """Place these planned calls in order while the run may; (the calls dialed, how long to wait before the next
    tick, or None when the run gave up placing the rest)."""
    planned = planned_calls(run)
    interval = 60.0 / run.rate_per_min if run.rate_per_min else 0.0
    admission = Admission(run.id, run.concurrency, interval)
    started: list[str] = []
    for item in items:
        try:
            call = await _place(services, run, item.id, planned[item.position], allowed, admission)
        except ItemAlreadyPlaced:  # another process placed this one meanwhile (nothing was stored or dialed here)
            continue
        except RunBusy as exc:  # the cap (some other process placed one) or the rate: wait for a place
            return started, min(exc.wait_s, 60.0) if exc.wait_s is not None else TICK_S
        except LimitReached as exc:
            # The minute's budget: the run waits until it frees up. A day's budget: the rest is not placed.
            if exc.limit == MINUTE_LIMIT:
                log.info("run %s waits for the call budget: %s", run.id, exc.message)
                return started, min(max(exc.resets_at.timestamp() - time.time(), 0.0) + 0.05, 60.0)
            await _give_up(services, run.id, f"No more calls were placed: {exc.message}")
            return started, None
        except DestinationRefused as exc:  # the dialing rules changed since the run started
            await _give_up(services, run.id, f"No more calls were placed: {exc.message}")
            return started, None
        started.append(call.id)
    return started, TICK_S


async def _give_up(services: Services, run_id: str, reason: str) -> None:
    """Stop a run from placing calls for good (its agent is gone, settings missing): the rest is skipped."""
    await services.store.runs.skip_pending(run_id)
    await services.store.runs.update_run(run_id, error=reason)
    log.warning("run %s: %s", run_id, reason)


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


@DBOS.step(name="callcheck.run_finish")
async def _finish_step(run_id: str) -> int:
    return await on_app_loop(lambda s: finish(s, run_id))


@DBOS.workflow(name="callcheck.run_suite")
async def run_suite(run_id: str) -> int:
    """Place, follow and judge every call of a suite run."""
    track_workflow_task()  # cancelled at shutdown before DBOS is destroyed (jobs/tracking.py)
    while True:
        step = await _tick_step(run_id)
        for call_id in step["started"]:
            with SetWorkflowID(workflow_id(call_id)):
                await DBOS.start_workflow_async(follow_call, call_id)
        if step["finished"]:
            break
        if not step["started"]:
            await DBOS.recv_async(topic=RUN_TOPIC, timeout_seconds=step["wait"])
    return await _finish_step(run_id)
