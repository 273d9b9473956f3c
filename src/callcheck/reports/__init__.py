"""Reports of a suite run, all rendered from one result model (`callcheck.reports.model.RunReport`)."""

from callcheck.reports.html import render_html
from callcheck.reports.json_report import read_json, render_json
from callcheck.reports.junit import render_junit
from callcheck.reports.model import (
    NotRun,
    RunReport,
    RunResult,
    ScenarioReport,
    TranscriptLine,
    build_report,
    not_run_result,
    run_result,
    transcript_excerpt,
)

__all__ = [
    "NotRun",
    "RunReport",
    "RunResult",
    "ScenarioReport",
    "TranscriptLine",
    "build_report",
    "not_run_result",
    "read_json",
    "render_html",
    "render_json",
    "render_junit",
    "run_result",
    "transcript_excerpt",
]
