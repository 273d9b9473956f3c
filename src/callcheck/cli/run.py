"""`callcheck run` and `callcheck suggest`: suites from the command line, with exit codes CI can gate on."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from callcheck.cli.common import (
    EXIT_COULD_NOT_RUN,
    database_error_line,
    database_problem,
    load_settings,
    read_suite_file,
)
from callcheck.domain.pacing import MAX_SANDBOX_TIME_SCALE, rate_problem
from callcheck.errors import CallcheckError
from callcheck.text import counted

# The suite runner (jobs, DBOS, SQLAlchemy, reports) is imported by the functions that run a suite, never at module
# level: `callcheck --help` imports this module (tests/test_cli_startup.py).
if TYPE_CHECKING:
    from callcheck.config import Settings
    from callcheck.domain.assertions import AssertionResult
    from callcheck.domain.suite import PlannedCall
    from callcheck.reports import RunReport
    from callcheck.services import Services

EXIT_PASSED, EXIT_FAILED = 0, 1
SUMMARY_CHARS = 300  # a summary line's evidence and reason, cut to stay one readable line


RATE_UNITS = (("/min", 1.0), ("/m", 1.0), ("/sec", 60.0), ("/s", 60.0), ("/h", 1 / 60))  # -> factor to per minute


def parse_rate(rate: str | None) -> float | None:
    """`10/min`, `10` (per minute) or `0.5/s` -> calls per minute, within domain/pacing.py's bounds."""
    if rate is None:
        return None
    text = rate.strip().lower().replace(" ", "")
    per = 1.0
    for suffix, factor in RATE_UNITS:
        if text.endswith(suffix):
            text, per = text[: -len(suffix)], factor
            break
    try:
        value = float(text) * per
    except ValueError:
        raise typer.BadParameter("use a number of calls per minute, e.g. 10/min") from None
    if value <= 0:
        raise typer.BadParameter("the rate must be positive")
    problem = rate_problem(value)  # nan, inf and 1e12/s too: the bounds `?rate=` has
    if problem:
        raise typer.BadParameter(problem)
    return value


def _describe(call: PlannedCall) -> str:
    persona = f" as {call.persona.name}" if call.persona and call.persona.name else ""
    checks = ", ".join(e.kind for e in call.expectations)
    return f"  {call.display_name}: call {call.number}{persona} to {call.goal!r}; checks {checks}"


class _Progress:
    """One status line per change: calls queued / active / done, passed / failed so far."""

    def __init__(self) -> None:
        self.last = ""

    async def show(self, services: Services, run_id: str, planned: list[PlannedCall]) -> None:
        from callcheck.domain.assertions import offline_verdict
        from callcheck.jobs.runs import evidence_of

        queued = active = done = passed = failed = skipped = 0
        for item, call in await services.store.run_calls(run_id):
            if item.status == "skipped":
                skipped += 1
                continue
            if call is None:
                queued += 1
            elif not call.state.terminal:
                active += 1
            else:
                done += 1
                verdict = offline_verdict(evidence_of(call), planned[item.position].expectations)
                passed += verdict.passed
                failed += not verdict.passed
        line = f"calls: {queued} queued, {active} active, {done} done ({passed} passed, {failed} not passed)"
        if skipped:
            line += f", {skipped} skipped"
        if line != self.last:
            typer.echo(line, err=True)
            self.last = line


async def _run(
    settings: Settings,
    text: str,
    source: str,
    planned: list[PlannedCall],
    concurrency: int,
    rate: float | None,
    only: list[str] | None,
) -> tuple[RunReport, int] | str:
    """Run the suite in this process; the report and exit code, or why it could not run."""
    from callcheck.jobs.ownership import cli_executor_id
    from callcheck.jobs.runs import TERMINAL_RUN_STATES, cancel_run, start_run
    from callcheck.reports import RunReport
    from callcheck.runtime import running_services

    # This process owns its run under an executor id of its own: killed, the run is never continued silently by
    # another command; the next process adopts it cancelled (jobs/ownership.py, jobs/executors.py).
    _quiet_dbos(settings)
    async with running_services(settings, executor_id=cli_executor_id()) as services:
        try:
            run = await start_run(services, text, source, concurrency=concurrency, rate_per_min=rate, only=only)
        except CallcheckError as exc:
            return exc.message
        loop = asyncio.get_running_loop()
        interrupts = 0
        quitting = asyncio.Event()

        def on_interrupt() -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts == 1:
                typer.echo(
                    "cancelling: no new calls; calls in flight are followed to their end (Ctrl-C again to stop "
                    "waiting for them)",
                    err=True,
                )
                loop.create_task(cancel_run(services, run.id))  # noqa: RUF006 - the loop below waits on its effect
            elif interrupts == 2:
                typer.echo(
                    "stopping: not waiting for the calls in flight; the reports show them as they are now "
                    "(Ctrl-C again to quit without reports)",
                    err=True,
                )
                quitting.set()
            else:
                raise KeyboardInterrupt

        loop.add_signal_handler(signal.SIGINT, on_interrupt)
        progress = _Progress()
        try:
            while True:
                if quitting.is_set():
                    return await _stop_waiting(services, run.id)
                fresh = await services.store.runs.get_run(run.id)
                assert fresh is not None
                await progress.show(services, run.id, planned)
                if fresh.state in TERMINAL_RUN_STATES and fresh.report is not None:
                    if fresh.error:
                        typer.echo(fresh.error, err=True)
                    if services.tracker is not None:  # let the calls' workflows finish before DBOS stops
                        await _finish_adopted(services, run.id)
                        placed = [call.id for _, call in await services.store.run_calls(run.id) if call is not None]
                        await services.tracker.settle(placed)
                    return RunReport.model_validate(fresh.report), fresh.exit_code or 0
                await services.notifier.wait(f"run-{run.id}", 0.5)
        finally:
            loop.remove_signal_handler(signal.SIGINT)


async def _stop_waiting(services: Services, run_id: str) -> tuple[RunReport, int]:
    """A second Ctrl-C: judge the calls as they stand, store the (cancelled) report, and exit 2 without waiting."""
    from callcheck.jobs.runs import cancel_run, finish
    from callcheck.reports import RunReport

    await cancel_run(services, run_id)  # a no-op unless the first Ctrl-C's request has not landed yet
    await finish(services, run_id)
    fresh = await services.store.runs.get_run(run_id)
    assert fresh is not None and fresh.report is not None
    in_flight = [call.id for _, call in await services.store.run_calls(run_id) if call and not call.state.terminal]
    if in_flight:
        typer.echo(
            f"{counted(len(in_flight), 'call')} still in flight: reported as they stood, and may still complete "
            "upstream; the next `callcheck serve` on this data follows them to their end",
            err=True,
        )
    _quiet_dbos(services.settings)
    return RunReport.model_validate(fresh.report), EXIT_COULD_NOT_RUN


DBOS_LOG = "dbos.log"


def _quiet_dbos(settings: Settings) -> None:
    """DBOS's own log lines (its warnings about workflows cut off, say) go to a file in the data directory, never to
    the terminal of someone running a suite."""
    logger = logging.getLogger("dbos")
    logger.propagate = False
    if any(isinstance(h, logging.FileHandler) for h in logger.handlers):
        return
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(settings.data_dir / DBOS_LOG, delay=True, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)


async def _finish_adopted(services: Services, own_run: str) -> None:
    """Before exiting, see the runs this process took over from dead processes to their end (PostgreSQL): with no
    other process on the database (CI's throwaway one), nobody else would."""
    from callcheck.jobs.runs import TERMINAL_RUN_STATES
    from callcheck.jobs.tracking import Tracker

    tracker = services.tracker
    assert isinstance(tracker, Tracker)
    finished: set[str] = set()
    told = False
    while waiting := tracker.adopted_runs - finished - {own_run}:
        if not told:
            typer.echo(f"finishing {counted(len(waiting), 'run')} left by a stopped process", err=True)
            told = True
        for run_id in waiting:
            run = await services.store.runs.get_run(run_id)
            if run is None or (run.state in TERMINAL_RUN_STATES and run.report is not None):
                finished.add(run_id)
        if tracker.adopted_runs - finished - {own_run}:
            await asyncio.sleep(0.5)


def _why(result: AssertionResult) -> str:
    """The evidence of a result and, where one exists, its reason (a judge's, a rationale), on one line."""
    from callcheck.domain.assertions import excerpt

    # Evidence that only restates the verdict ("judge: fail") adds nothing; the reason says why.
    restated = result.evidence == f"{result.kind}: {result.status}"
    parts = [part for part in ("" if restated else result.evidence, result.detail) if part]
    return excerpt(" — ".join(parts), SUMMARY_CHARS)


def _summary(report: RunReport) -> str:
    lines = []
    for scenario in report.scenarios:
        stats = scenario.stats
        not_run = scenario.not_run_summary()
        lines.append(
            f"  {scenario.status.upper():5} {scenario.name}: {stats.passed}/{stats.total} passed"
            + (f" ({not_run})" if not_run else "")
            + f" (95% CI {stats.low:.0%}-{stats.high:.0%}, required {scenario.required_pass_rate:.0%})"
        )
        for run in scenario.runs:
            lines += [f"      {run.display_name}: note: {note}" for note in run.notes]
            for result in run.verdict.results:
                if result.status != "pass":
                    lines.append(f"      {run.display_name}: {result.kind} {result.status}: {_why(result)}")
    head = "PASSED" if report.passed else ("CANCELLED" if report.cancelled else "FAILED")
    return f"{head}: {report.suite}" + (" (simulated)" if report.simulated else "") + "\n" + "\n".join(lines)


def run_suite_command(
    suite_file: Annotated[Path, typer.Argument(help="The suite file (YAML or JSON).")],
    concurrency: Annotated[int, typer.Option(min=1, max=50, help="Never more than N calls active at once.")] = 1,
    rate: Annotated[str | None, typer.Option(help="Never faster than this, e.g. 10/min.")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Run only this scenario (repeatable).")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write a JSON report here.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report here.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and list the calls; dial nothing.")] = False,
    sandbox: Annotated[bool, typer.Option("--sandbox", help="Run against callcheck's local sandbox.")] = False,
    time_scale: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            max=MAX_SANDBOX_TIME_SCALE,
            help="With --sandbox: real seconds per simulated second (0.05 = twenty times faster).",
        ),
    ] = None,
) -> None:
    """Run a suite: exit 0 when every scenario passes, 1 when any does not, 2 when the suite could not run."""
    from sqlalchemy.exc import SQLAlchemyError

    from callcheck.jobs.runs import plan
    from callcheck.reports import render_html, render_json, render_junit

    text = read_suite_file(suite_file)
    rate_per_min = parse_rate(rate)
    settings = load_settings()
    try:
        # The size limits too (CALLCHECK_MAX_SUITE_*, CALLCHECK_MAX_CALLS_PER_RUN), so --dry-run tells of them.
        _, planned = plan(text, str(suite_file), only, settings=settings)
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc
    if dry_run:
        typer.echo(f"{counted(len(planned), 'call')} would be placed:")
        for call in planned:
            typer.echo(_describe(call))
        raise typer.Exit(EXIT_PASSED)
    reports = [
        (option, path, render)
        for option, path, render in (
            ("--junit", junit, render_junit),
            ("--json", json_out, render_json),
            ("--html", html, render_html),
        )
        if path is not None
    ]
    if sandbox:
        settings = settings.model_copy(update={"sandbox": True})
    if time_scale is not None:
        if not settings.sandbox:
            typer.echo("--time-scale only applies with --sandbox (a real call takes the time it takes)", err=True)
            raise typer.Exit(EXIT_COULD_NOT_RUN)
        settings = settings.model_copy(update={"sandbox_time_scale": time_scale})
    # Every report path is checked before the first call is dialed: calls cost money, a typo should not.
    problems = _report_path_problems([(option, path) for option, path, _ in reports])
    database = database_problem(settings)
    if database:
        problems.append(database)
    if problems:
        for problem in problems:
            typer.echo(problem, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    try:
        outcome = asyncio.run(_run(settings, text, str(suite_file), planned, concurrency, rate_per_min, only))
    except KeyboardInterrupt:
        _quiet_dbos(settings)
        typer.echo("quit without reports: calls in flight may still complete upstream", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from None
    except SQLAlchemyError as exc:
        typer.echo(database_error_line(settings, exc), err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from None
    if isinstance(outcome, str):
        typer.echo(outcome, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    report, exit_code = outcome
    # One report that cannot be written still leaves the others and the summary; the run then exits 2.
    unwritten = []
    for option, path, render in reports:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(report), encoding="utf-8")
        except OSError as exc:
            unwritten.append(_cannot_write(option, path, exc))
    typer.echo(_summary(report))
    for line in unwritten:
        typer.echo(line, err=True)
    raise typer.Exit(EXIT_COULD_NOT_RUN if unwritten else exit_code)


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` when it is a file, where a directory is needed."""
    for ancestor in path.parents:
        if ancestor.exists():
            return None if ancestor.is_dir() else ancestor
    return None


def _why_unwritable(path: Path, exc: OSError) -> str:
    blocker = _file_in_the_way(path)
    if blocker is not None:
        return f"{blocker} is a file, not a directory"
    return exc.strerror or str(exc)


def _cannot_write(option: str, path: Path, exc: OSError) -> str:
    return f"cannot write the {option} report to {path}: {_why_unwritable(path, exc)}"


def _report_path_problems(paths: list[tuple[str, Path]]) -> list[str]:
    """Why each report path cannot be written (its parent directories are made on the way); empty when all can."""
    problems = []
    seen: dict[Path, str] = {}
    for option, path in paths:
        resolved = path.resolve()
        if resolved in seen:
            problems.append(f"{seen[resolved]} and {option} both write {path}: give each report its own file")
            continue
        seen[resolved] = option
        if path.is_dir():
            problems.append(f"cannot write the {option} report to {path}: it is a directory")
            continue
        existed = path.exists()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opened for appending, so an existing report is not truncated before the run has a new one.
            with path.open("a", encoding="utf-8"):
                pass
            if not existed:
                path.unlink()
        except OSError as exc:
            problems.append(_cannot_write(option, path, exc))
    return problems


def suggest_command(
    description: Annotated[str, typer.Option(help="What the business is and does.")],
    number: Annotated[str | None, typer.Option(help="The line to call (E.164).")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the suite here (default: stdout).")
    ] = None,
) -> None:
    """Draft a starter suite for a business (richer when an LLM is configured with CALLCHECK_JUDGE_*)."""
    import httpx

    from callcheck.domain.suggest import suggest_suite_with_llm
    from callcheck.providers.llm import judge_from_settings

    if output is not None and (problem := _output_problem(output)):
        typer.echo(problem, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    settings = load_settings()

    async def draft() -> tuple[str, str | None]:
        async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
            return await suggest_suite_with_llm(description, number, judge_from_settings(settings, http))

    try:
        text, note = asyncio.run(draft())
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc
    if note:
        typer.echo(note, err=True)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"cannot write --output {output}: {_why_unwritable(output, exc)}", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from None
    typer.echo(f"wrote {output}", err=True)


def _output_problem(output: Path) -> str | None:
    """Why `suggest` could not write to `output`, found before the (possibly paid) draft is asked for."""
    if output.is_dir():
        return f"cannot write --output {output}: it is a directory"
    if output.parent.is_dir():
        return None
    blocker = _file_in_the_way(output)
    if blocker is not None:
        return f"cannot write --output {output}: {blocker} is a file, not a directory"
    return f"cannot write --output {output}: the directory {output.parent} does not exist"


def register(app: typer.Typer) -> None:
    """Add `run` and `suggest` to the CLI."""
    app.command("run")(run_suite_command)
    app.command("suggest")(suggest_command)
