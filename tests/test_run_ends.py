"""Every run ends: a run whose placing or judging meets an unexpected error ends failed, saying why."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from callcheck.jobs import runs as runs_module
from callcheck.jobs.recovery import start_run_workflow
from callcheck.providers.elevenlabs.sandbox import SandboxServer
from tests.conftest import settings_for
from tests.servers import outbound_calls

# Stored by a bug or by hand: no suite parses from it, so placing (and judging) a call of the run raises.
BROKEN_SUITE = "scenarios: [unclosed"


async def test_a_run_whose_steps_raise_ends_failed_with_the_error(
    client_for: Any,
    sandbox: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="callcheck.runs")
    # The slots' waits between failed tries, shortened: the test is about where the run ends, not how long it waits.
    monkeypatch.setattr(runs_module, "SLOT_RETRY_S", 0.05)
    api = await client_for(settings_for(sandbox, tmp_path))
    services = api.callcheck_app.state.services
    run = await services.store.runs.create_run(
        [("s0", "s0", 2)], name="n", source_name="api", suite_text=BROKEN_SUITE, concurrency=2
    )
    await start_run_workflow(run.id)
    deadline = asyncio.get_running_loop().time() + 60
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        body = (await api.get(f"/api/runs/{run.id}")).json()
        if body["state"] in ("completed", "cancelled", "failed"):
            break
        await asyncio.sleep(0.1)
    assert body["state"] == "failed", body
    assert body["exit_code"] == 2
    assert body["error"].startswith(f"{runs_module.UNEXPECTED_RUN}: ") and "invalid YAML" in body["error"]
    # Nothing was placed: the planned calls are skipped, not left pending for ever.
    assert body["items"] and {item["status"] for item in body["items"]} == {"skipped"}
    # Both ways out were taken: each slot tried its placing step SLOT_ATTEMPTS times and gave the run up, then
    # judging the run (which parses the suite too) raised and the run's workflow ended it.
    messages = [r.getMessage() for r in caplog.records]
    attempts = runs_module.SLOT_ATTEMPTS
    assert any(f"placing failed ({attempts} of {attempts})" in m for m in messages), messages
    assert any("its workflow failed; the run ends failed" in m for m in messages), messages
    assert outbound_calls(sandbox) == []


def test_the_reason_a_workflow_gives_is_one_line_of_at_most_300_characters() -> None:
    # The same words end a call (its error) and a run (its note): every line of the exception, on one line.
    from callcheck.errors import MissingSettings
    from callcheck.jobs.workflows import one_line

    assert (
        one_line(RuntimeError("the database\n  went away\tmid-query"))
        == "RuntimeError: the database went away mid-query"
    )
    assert one_line(MissingSettings(["X", "Y"])) == ("Missing required environment variables: X, Y")
    assert one_line(ValueError("x" * 1000)) == "ValueError: " + "x" * 288
    assert one_line(KeyError()) == "KeyError:"
