"""The JSON report: the whole result model, computed figures included (named json_report to not shadow json)."""

from __future__ import annotations

from callcheck.reports.model import RunReport

FORMAT_VERSION = 1


def render_json(report: RunReport) -> str:
    """The report as indented JSON, with a format version so readers can tell future changes apart."""
    body = report.model_dump_json(indent=2)
    # Prepend the version by hand: the model stays the one shape, and the key is first for a human reader.
    return '{\n  "format_version": ' + str(FORMAT_VERSION) + "," + body[1:] + "\n"


def read_json(text: str) -> RunReport:
    """A report back from its JSON (computed figures are recomputed, not trusted)."""
    return RunReport.model_validate_json(text)
