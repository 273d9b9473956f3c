"""`callcheck monitor ...` and `callcheck compare`: monitors are written to the database; a running server runs them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from callcheck.cli.common import EXIT_COULD_NOT_RUN, database_problem, exit_when, load_settings, read_suite_file
from callcheck.errors import CallcheckError

if TYPE_CHECKING:
    pass

T = TypeVar("T")

monitor_app = typer.Typer(
    help="Monitors: a suite run on a schedule by `callcheck serve`, alerting when the line breaks.",
    no_args_is_help=True,
)


def _run(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(services)` on the configured database; a CallcheckError is one line and exit 2."""
    settings = load_settings()
    exit_when(database_problem(settings))

    async def go() -> T:
        from callcheck.runtime import store_services  # the CLI only reads and writes the database: no workers

        async with store_services(settings) as services:
            return await work(services)

    try:
        return asyncio.run(go())
    except CallcheckError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from exc


@monitor_app.command("add")
def add(
    suite_file: Annotated[Path, typer.Argument(help="The suite (YAML or JSON), as for `callcheck run`.")],
    every: Annotated[str | None, typer.Option(help="Run every this long: 90s, 15m, 2h (at least 10s).")] = None,
    cron: Annotated[str | None, typer.Option(help='Run on a cron schedule, e.g. "*/30 8-20 * * 1-5".')] = None,
    tz: Annotated[str, typer.Option("--tz", help="Time zone of the cron schedule (IANA name).")] = "UTC",
    name: Annotated[str | None, typer.Option(help="The monitor's name (default: from the suite's name).")] = None,
    alert_webhook: Annotated[
        list[str] | None, typer.Option("--alert-webhook", help="POST a JSON alert to this URL (repeatable).")
    ] = None,
    alert_slack: Annotated[
        list[str] | None, typer.Option("--alert-slack", help="Slack incoming-webhook URL (repeatable).")
    ] = None,
    alert_email: Annotated[
        list[str] | None, typer.Option("--alert-email", help="Email address, sent over CALLCHECK_SMTP_* (repeatable).")
    ] = None,
    after: Annotated[int, typer.Option(help="Alert after this many failing runs in a row.", min=1, max=100)] = 1,
    concurrency: Annotated[int, typer.Option(help="Most calls of a run active at once.", min=1, max=50)] = 1,
    paused: Annotated[bool, typer.Option("--paused", help="Add it paused.")] = False,
) -> None:
    """Add a monitor; prints how many calls a day its schedule places."""
    from callcheck.domain.monitoring import calls_per_day_sentence
    from callcheck.jobs.monitors import create_monitor

    text = read_suite_file(suite_file)
    alerts = (
        [{"kind": "webhook", "target": u} for u in alert_webhook or []]
        + [{"kind": "slack", "target": u} for u in alert_slack or []]
        + [{"kind": "email", "target": a} for a in alert_email or []]
    )

    async def work(services: Any) -> Any:
        return await create_monitor(
            services.store.monitors,
            text,
            str(suite_file),
            name=name,
            every=every,
            cron=cron,
            timezone=tz,
            alerts=alerts,
            after=after,
            concurrency=concurrency,
            paused=paused,
            settings=services.settings,
        )

    monitor = _run(work)
    schedule = monitor.schedule
    typer.echo(f"monitor {monitor.name}: suite {monitor.suite_name!r}, {schedule.describe()}")
    typer.echo(calls_per_day_sentence(schedule, monitor.calls_per_run, time.time()))
    if monitor.paused:
        typer.echo("It is paused: `callcheck monitor resume` starts it.")
    else:
        typer.echo("A running `callcheck serve` on this database runs it (no restart needed).")


@monitor_app.command("update")
def update(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    suite_file: Annotated[Path | None, typer.Option("--suite", help="A new suite (YAML or JSON).")] = None,
    every: Annotated[str | None, typer.Option(help="A new period: 90s, 15m, 2h.")] = None,
    cron: Annotated[str | None, typer.Option(help="A new cron schedule.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="Time zone of the cron schedule.")] = None,
    alert_webhook: Annotated[list[str] | None, typer.Option("--alert-webhook", help="Replaces the alerts.")] = None,
    alert_slack: Annotated[list[str] | None, typer.Option("--alert-slack", help="Replaces the alerts.")] = None,
    alert_email: Annotated[list[str] | None, typer.Option("--alert-email", help="Replaces the alerts.")] = None,
    no_alerts: Annotated[bool, typer.Option("--no-alerts", help="Remove every alert channel.")] = False,
    after: Annotated[int | None, typer.Option(help="Alert after this many failing runs.", min=1, max=100)] = None,
    concurrency: Annotated[int | None, typer.Option(help="Most calls of a run at once.", min=1, max=50)] = None,
) -> None:
    """Change a monitor: its suite (e.g. the line's new number), schedule, alerts or threshold."""
    from callcheck.domain.monitoring import calls_per_day_sentence
    from callcheck.jobs.monitors import change_monitor

    changes: dict[str, Any] = {}
    if suite_file is not None:
        changes["suite"] = read_suite_file(suite_file)
    if every is not None or cron is not None:
        changes.update(every=every, cron=cron)
    if tz is not None:
        changes["timezone"] = tz
    alerts = (
        [{"kind": "webhook", "target": u} for u in alert_webhook or []]
        + [{"kind": "slack", "target": u} for u in alert_slack or []]
        + [{"kind": "email", "target": a} for a in alert_email or []]
    )
    if alerts or no_alerts:
        changes["alerts"] = alerts
    if after is not None:
        changes["after"] = after
    if concurrency is not None:
        changes["concurrency"] = concurrency
    if not changes:
        typer.echo("nothing to change (see `callcheck monitor update --help`)", err=True)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    monitor = _run(lambda services: change_monitor(services.store.monitors, name, changes, services.settings))
    typer.echo(f"monitor {monitor.name}: suite {monitor.suite_name!r}, {monitor.schedule.describe()}")
    typer.echo(calls_per_day_sentence(monitor.schedule, monitor.calls_per_run, time.time()))


def _print_list(views: list[dict[str, Any]]) -> None:
    if not views:
        typer.echo("no monitors (add one with `callcheck monitor add suite.yaml --every 15m`)")
        return
    width = max(len(v["name"]) for v in views)
    for v in views:
        typer.echo(f"{v['name']:<{width}}  {v['badge']:<8}  {v['calls_per_day']:>7g} calls/day  {v['schedule']}")


@monitor_app.command("list")
def list_monitors(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Every monitor: status, schedule, calls a day."""
    from callcheck.jobs.monitors import monitor_view

    async def work(services: Any) -> list[dict[str, Any]]:
        return [monitor_view(m) for m in await services.store.monitors.all()]

    views = _run(work)
    if as_json:
        typer.echo(json.dumps(views, indent=2))
    else:
        _print_list(views)


@monitor_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The monitor.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A monitor, its recent runs and alerts."""
    from callcheck.presenters.monitors import monitor_detail

    view = _run(lambda services: monitor_detail(services, name)).model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    lines = [
        f"monitor {view['name']}: {view['badge']}"
        + (f" ({view['consecutive_failures']} failing in a row)" if view["consecutive_failures"] else ""),
        f"  suite: {view['suite']}",
        f"  schedule: {view['schedule']}" + (f", next run {view['next_run_at']}" if view["next_run_at"] else ""),
        f"  calls a day: up to {view['calls_per_day']:g} ({view['calls_per_run']} per run)",
        f"  alerts: {', '.join(a['kind'] + ' ' + a['target'] for a in view['alerts']) or 'none'}"
        f" (after {view['alert_after']} failing run(s))",
        f"  skipped slots: {view['skipped_slots']}",
    ]
    if view["runs"]:
        lines.append("  runs (newest first):")
        for run in view["runs"][:10]:
            result = {0: "passed", 1: "failed", None: "—"}.get(run["exit_code"], "could not run")
            lines.append(f"    {run['id']}  {run['created_at']}  {run['state']:<9}  {result}")
    if view["deliveries"]:
        lines.append("  alerts sent (newest first):")
        for d in view["deliveries"][:10]:
            error = f": {d['last_error']}" if d["last_error"] else ""
            lines.append(f"    {d['created_at']}  {d['kind']:<8}  {d['channel']:<7}  {d['outcome']}{error}")
    typer.echo("\n".join(lines))


@monitor_app.command("pause")
def pause(name: Annotated[str, typer.Argument(help="The monitor.")]) -> None:
    """Stop running a monitor on its schedule (it keeps its status)."""
    from callcheck.jobs.monitors import set_paused

    monitor = _run(lambda services: set_paused(services.store.monitors, name, True))
    typer.echo(f"monitor {monitor.name}: paused")


@monitor_app.command("resume")
def resume(name: Annotated[str, typer.Argument(help="The monitor.")]) -> None:
    """Run a paused monitor on its schedule again."""
    from callcheck.jobs.monitors import set_paused

    monitor = _run(lambda services: set_paused(services.store.monitors, name, False))
    typer.echo(f"monitor {monitor.name}: resumed ({monitor.schedule.describe()})")


@monitor_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The monitor.")]) -> None:
    """Remove a monitor (its runs stay in the history)."""
    from callcheck.errors import NotFound

    async def work(services: Any) -> None:
        if not await services.store.monitors.delete(name):
            raise NotFound(f"No monitor named {name!r}.")

    _run(work)
    typer.echo(f"monitor {name}: removed")


@monitor_app.command("run")
def run_now(name: Annotated[str, typer.Argument(help="The monitor.")]) -> None:
    """Run a monitor now (a running `callcheck serve` on this database starts it within a second)."""
    from callcheck.jobs.monitors import request_run

    monitor = _run(lambda services: request_run(services.store.monitors, name))
    typer.echo(f"monitor {monitor.name}: run requested; a running `callcheck serve` on this database starts it")


@monitor_app.command("test-alert")
def test_alert(name: Annotated[str, typer.Argument(help="The monitor.")]) -> None:
    """Send a test message on each of the monitor's alert channels; exit 1 if one failed."""
    from callcheck.jobs.monitors import test_alert as send_test

    results = _run(lambda services: send_test(services, name))
    for result in results:
        error = f": {result['error']}" if result["error"] else ""
        typer.echo(f"{result['kind']} {result['target']}: {result['outcome']}{error}")
    raise typer.Exit(0 if all(r["outcome"] == "delivered" for r in results) else 1)


def compare(
    run_a: Annotated[str, typer.Argument(help="The earlier run's id.")],
    run_b: Annotated[str, typer.Argument(help="The later run's id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What changed from one run to another: scenarios that flipped, figures that moved."""
    from callcheck.domain.trends import format_delta, format_figure
    from callcheck.presenters.monitors import comparison

    result = _run(lambda services: comparison(services, run_a, run_b)).model_dump(mode="json")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(f"A: {result['a']['id']} {result['a']['name']} ({result['a']['created_at']})")
    typer.echo(f"B: {result['b']['id']} {result['b']['name']} ({result['b']['created_at']})")
    changes = [f"  {s['name']}: {s['a_status']} -> {s['b_status']}" for s in result["flipped"]]
    changes += [f"  {name}: only in B" for name in result["added"]]
    changes += [f"  {name}: only in A" for name in result["removed"]]
    typer.echo("scenarios that changed:" if changes else "no scenario changed its verdict")
    for line in changes:
        typer.echo(line)
    typer.echo("figures (A -> B):")
    for figure in result["figures"]:
        delta = format_delta(figure["name"], figure["delta"])
        typer.echo(
            f"  {figure['label']}: {format_figure(figure['name'], figure['a'])} -> "
            f"{format_figure(figure['name'], figure['b'])}" + (f" ({delta})" if delta else "")
        )


def register(app: typer.Typer) -> None:
    """Add `monitor ...` and `compare` to the `callcheck` command."""
    app.add_typer(monitor_app, name="monitor")
    app.command("compare")(compare)
