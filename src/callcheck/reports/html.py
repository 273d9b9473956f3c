"""The HTML report: one self-contained file (inline CSS, inline SVG charts, no script, no external URL).

Every piece of user text (scenario names, goals, transcripts, evidence) is escaped: by Jinja's autoescape in the
page, by `html.escape` in the SVG built here. Charts are drawn as SVG strings so the file opens anywhere offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from callcheck.reports.junit import scenario_summary
from callcheck.reports.model import RunReport, ScenarioReport

COLORS = {"pass": "#1a7f37", "fail": "#cf222e", "flaky": "#bf8700", "not_evaluated": "#8250df", "not_run": "#6e7781"}
LABEL_W = 220  # room for scenario names on the left of every chart
PLOT_W = 760
RIGHT = 40  # room right of the plot for the last tick label ("100%", drawn ending there so it is never cut)
ROW_H = 34
TOP = 28  # room for the axis labels above the rows
DOT_R = 5
SPREAD_PX = 6  # dots of equal (or nearly equal) value are spread up and down by this much, never drawn on one another
NAME_CHARS = 28
WIDEST_CHAR_PX = 7.6  # a wide letter (W, M) at the charts' 13 px: above this estimate a label is squeezed to fit


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("callcheck.reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def _svg(width: int, height: int, label: str, body: Sequence[str]) -> Markup:
    # No xmlns: inline SVG in HTML5 needs none, and the report must not contain any URL.
    head = (
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, sans-serif" font-size="13">'
    )
    # Markup is safe here: every piece of user text in `body` went through html.escape.
    return Markup(head + "".join(body) + "</svg>")


def nice_top(value: float) -> float:
    """The axis end above `value` that splits into four readable ticks (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    step = value / 4
    power: float = 10 ** math.floor(math.log10(step))  # int ** int is typed Any (a negative power gives a float)
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= step:
            return factor * power * 4
    return value  # pragma: no cover - factor 10 always reaches step


def _x(value: float, top: float) -> float:
    return LABEL_W + (value / top) * PLOT_W if top > 0 else LABEL_W


def _axis(top: float, unit: str, height: int) -> list[str]:
    parts = []
    for step in range(5):
        value = top * step / 4
        x = _x(value, top)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 4}" stroke="#d0d7de"/>')
        anchor = "end" if step == 4 else "middle"  # the last label ends at its tick: it cannot run off the chart
        parts.append(f'<text x="{x:.1f}" y="{TOP - 10}" text-anchor="{anchor}" fill="#57606a">{value:g}{unit}</text>')
    return parts


def spread(values: Sequence[float], top: float) -> list[float]:
    """A vertical offset per dot: dots that would overlap (closer than a dot's width) alternate above and below the
    row's middle, 0, -6, +6, -12, +12 px..., so five repeats at one value show as five dots (a strip plot)."""
    offsets: list[float] = []
    placed: list[tuple[float, float]] = []
    for value in values:
        x = _x(value, top)
        taken = {dy for px, dy in placed if abs(px - x) < 2 * DOT_R}
        candidates = [0.0] + [sign * SPREAD_PX * k for k in range(1, 50) for sign in (-1, 1)]
        dy = next(c for c in candidates if c not in taken)
        limit = ROW_H / 2 - DOT_R
        dy = max(-limit, min(limit, dy))
        placed.append((x, dy))
        offsets.append(dy)
    return offsets


def _label(index: int, name: str) -> str:
    y = TOP + index * ROW_H + ROW_H / 2 + 4
    shown = _short(name)
    # A name of wide letters could still run past the left edge: squeeze it into the label area instead (the full
    # name is in the tooltip).
    room = LABEL_W - 12
    fit = f' textLength="{room}" lengthAdjust="spacingAndGlyphs"' if len(shown) * WIDEST_CHAR_PX > room else ""
    return (
        f'<text x="{LABEL_W - 8}" y="{y:.1f}" text-anchor="end"{fit}><title>{escape(name)}</title>'
        f"{escape(shown)}</text>"
    )


def pass_rate_chart(scenarios: Sequence[ScenarioReport]) -> Markup:
    """Bars of each scenario's pass rate, with 95% Wilson whiskers and a mark at the required rate."""
    height = TOP + ROW_H * max(1, len(scenarios)) + 8
    body = _axis(100, "%", height)
    for index, scenario in enumerate(scenarios):
        s = scenario.stats
        y = TOP + index * ROW_H
        mid = y + ROW_H / 2
        body.append(_label(index, scenario.name))
        color = COLORS[scenario.status]
        if s.rate is not None:
            width = _x(s.rate * 100, 100) - LABEL_W
            body.append(
                f'<rect x="{LABEL_W}" y="{y + 5}" width="{width:.1f}" height="{ROW_H - 10}" fill="{color}" '
                f'opacity="0.75"><title>{escape(scenario_summary(scenario))}</title></rect>'
            )
            low, high = _x(s.low * 100, 100), _x(s.high * 100, 100)
            body.append(f'<line x1="{low:.1f}" y1="{mid}" x2="{high:.1f}" y2="{mid}" stroke="#24292f"/>')
            for x in (low, high):
                body.append(f'<line x1="{x:.1f}" y1="{mid - 5}" x2="{x:.1f}" y2="{mid + 5}" stroke="#24292f"/>')
        else:
            body.append(f'<text x="{LABEL_W + 4}" y="{mid + 4}" fill="#57606a">no runs</text>')
        req = _x(s.required * 100, 100)
        body.append(
            f'<line x1="{req:.1f}" y1="{y + 2}" x2="{req:.1f}" y2="{y + ROW_H - 2}" stroke="#0969da" '
            f'stroke-width="2" stroke-dasharray="3 2"><title>required {s.required * 100:g}%</title></line>'
        )
    return _svg(LABEL_W + PLOT_W + RIGHT, height, "Pass rate per scenario with 95% Wilson interval", body)


def distribution_chart(scenarios: Sequence[ScenarioReport], field: str, title: str) -> Markup:
    """One dot per run on a shared seconds axis, a row per scenario: `field` is duration_s or first_response_s."""
    values = [getattr(run, field) for s in scenarios for run in s.runs if getattr(run, field) is not None]
    height = TOP + ROW_H * max(1, len(scenarios)) + 8
    if not values:
        return _svg(LABEL_W + PLOT_W + RIGHT, 40, title, ['<text x="8" y="24" fill="#57606a">no data</text>'])
    top = nice_top(max(values))
    body = _axis(top, "s", height)
    for index, scenario in enumerate(scenarios):
        mid = TOP + index * ROW_H + ROW_H / 2
        body.append(_label(index, scenario.name))
        shown = [run for run in scenario.runs if getattr(run, field) is not None]
        for run, dy in zip(shown, spread([getattr(run, field) for run in shown], top), strict=True):
            value = getattr(run, field)
            tip = escape(f"{run.display_name}: {value:g}s ({run.status})")
            body.append(
                f'<circle cx="{_x(value, top):.1f}" cy="{mid + dy:.1f}" r="{DOT_R}" fill="{COLORS[run.status]}" '
                f'fill-opacity="0.7" stroke="#ffffff" stroke-width="1"><title>{tip}</title></circle>'
            )
    return _svg(LABEL_W + PLOT_W + RIGHT, height, title, body)


def when(moment: datetime) -> str:
    """`2025-01-02 10:00:00 UTC`: a timestamp as a person reads it (not raw ISO)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def lasted(report: RunReport) -> str | None:
    """How long the run took: `4 min 43 s`, `12 s`; None while it has no end."""
    if report.finished_at is None:
        return None
    seconds = round(max((report.finished_at - report.started_at).total_seconds(), 0))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def render_html(report: RunReport) -> str:
    """The report as one self-contained HTML page."""
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        when=when,
        lasted=lasted(report),
        colors=COLORS,
        summary=scenario_summary,
        pass_rate_chart=pass_rate_chart(report.scenarios),
        duration_chart=distribution_chart(report.scenarios, "duration_s", "Call duration per run"),
        first_response_chart=distribution_chart(
            report.scenarios, "first_response_s", "Time to the business's first response per run"
        ),
    )
