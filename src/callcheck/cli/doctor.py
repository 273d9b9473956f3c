"""`callcheck doctor`: check the set-up, print the report, exit 0 only when every check passes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from callcheck.cli.common import load_settings
from callcheck.text import counted

if TYPE_CHECKING:
    from callcheck.doctor import DoctorReport


def doctor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    public_url: Annotated[
        str | None, typer.Option(help="Public base URL to check webhooks against (default: CALLCHECK_PUBLIC_URL).")
    ] = None,
) -> None:
    """Check the set-up (settings, API key, agent, phone number, webhooks, database); exit 0 only if all pass."""
    import asyncio

    import httpx

    from callcheck.doctor import run_doctor
    from callcheck.providers import caller_from_settings

    settings = load_settings()

    async def run() -> DoctorReport:
        async with httpx.AsyncClient(timeout=settings.http_timeout_s) as http:
            return await run_doctor(settings, caller_from_settings(settings, http), public_url=public_url)

    report = asyncio.run(run())
    typer.echo(report.model_dump_json(indent=2) if as_json else format_report(report))
    raise typer.Exit(0 if report.ok else 1)


def format_report(report: DoctorReport) -> str:
    """The doctor's report for a person: one line per check, with its fix under each problem."""
    marks = {"pass": "ok  ", "fail": "FAIL", "warn": "warn", "skip": "skip"}
    lines = []
    for check in report.checks:
        lines.append(f"[{marks[check.status]}] {check.name}: {check.message}")
        if check.fix and check.status in ("fail", "warn"):
            lines.append(f"       fix: {check.fix}")
    failed = sum(1 for c in report.checks if c.status == "fail")
    skipped = sum(1 for c in report.checks if c.status == "skip")
    warned = sum(1 for c in report.checks if c.status == "warn")
    if report.ok:
        lines.append("All checks passed." if not warned else f"All checks passed ({counted(warned, 'warning')}).")
    else:
        lines.append(f"{counted(failed, 'check')} failed, {skipped} skipped.")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add `doctor` to the CLI."""
    app.command()(doctor)
