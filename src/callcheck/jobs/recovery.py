"""The Tracker with the runs' part of recovery: the one module that imports both jobs/tracking.py (calls) and
jobs/runs.py (runs, which follow calls), so neither imports the other's way back.

The Tracker resumes unfinished calls itself; for a run (its workflow, `runs.run_suite`, resumed at launch on SQLite,
or started for a run without one on PostgreSQL) it calls the `start_run` handed in here.
"""

from __future__ import annotations

from dbos import DBOS, SetWorkflowID

from callcheck.jobs.runs import run_suite
from callcheck.jobs.tracking import Tracker
from callcheck.jobs.workflows import run_workflow_id
from callcheck.services import Services


async def start_run_workflow(run_id: str) -> None:
    """Start a run's workflow (a no-op when one with its id exists)."""
    with SetWorkflowID(run_workflow_id(run_id)):
        await DBOS.start_workflow_async(run_suite, run_id)


def tracker(services: Services, executor_id: str | None = None, role: str = "server") -> Tracker:
    """The Tracker of a running callcheck: it follows calls and resumes runs."""
    return Tracker(services, executor_id, role, start_run=start_run_workflow)
