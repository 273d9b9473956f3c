"""Line charts drawn on the server as inline SVG: no script, no CDN, every point a link to its run.

Only presentation attributes are used (no `style`), so the pages' Content-Security-Policy needs no exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from markupsafe import Markup

from callcheck.domain.trends import format_figure

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 24, 30
COLOURS = ("#2f6fde", "#d9480f", "#2b8a3e", "#862e9c")


@dataclass
class Series:
    """One line of a chart: a value (or None) per run."""

    label: str
    values: list[float | None]


@dataclass
class RunMark:
    """A run along the x axis."""

    run_id: str
    at: str  # ISO time
    passed: bool | None


def _short(at: str) -> str:
    """`2026-12-01T23:41:07+00:00` -> `12-01 23:41`."""
    return f"{at[5:10]} {at[11:16]}" if len(at) >= 16 else at


def line_chart(title: str, figure: str, runs: list[RunMark], series: list[Series], chart_id: str) -> Markup:
    """An SVG line chart of `series` over `runs` (oldest left); `figure` names the unit (see trends.format_figure)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    known = [v for s in series for v in s.values if v is not None]
    if figure == "pass_rate":
        top = 1.0
    else:
        top = max(known) * 1.1 if known and max(known) > 0 else 1.0
    count = len(runs)

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if count == 1 else i * plot_w / (count - 1))

    def y(value: float) -> float:
        return TOP + plot_h - (value / top) * plot_h

    title_id = f"{chart_id}-title"
    parts = [
        f'<svg class="chart" id={quoteattr(chart_id)} viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{title_id}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{title_id}">{escape(title)}</title>',
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="600" fill="currentColor">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#999"/>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h + 4}" font-size="10" text-anchor="end" fill="currentColor">'
        f"{escape(format_figure(figure, 0.0))}</text>",
        f'<text x="{LEFT - 6}" y="{TOP + 4}" font-size="10" text-anchor="end" fill="currentColor">'
        f"{escape(format_figure(figure, top))}</text>",
    ]
    if runs:
        parts.append(
            f'<text x="{LEFT}" y="{HEIGHT - 8}" font-size="10" fill="currentColor">{escape(_short(runs[0].at))}</text>'
        )
        if count > 1:
            parts.append(
                f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 8}" font-size="10" text-anchor="end" fill="currentColor">'
                f"{escape(_short(runs[-1].at))}</text>"
            )
    if not known:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" font-size="12" text-anchor="middle" fill="#777">'
            "no figures yet</text>"
        )
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        if len(series) > 1:
            legend_x = WIDTH - RIGHT - 90 * (len(series) - index)
            parts.append(
                f'<rect x="{legend_x}" y="5" width="10" height="10" fill="{colour}"/>'
                f'<text x="{legend_x + 14}" y="14" font-size="10" fill="currentColor">{escape(line.label)}</text>'
            )
        points = [(x(i), y(v)) for i, v in enumerate(line.values) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, value in enumerate(line.values):
            if value is None:
                continue
            run = runs[i]
            label = f"{_short(run.at)} · {line.label}: {format_figure(figure, value)}"
            outline = "#e05d44" if run.passed is False else colour
            parts.append(
                f'<a href="/runs/{escape(run.run_id)}" class="chart-point" data-run-id={quoteattr(run.run_id)}>'
                f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="5" fill="{colour}" stroke="{outline}" '
                f'stroke-width="2"><title>{escape(label)}</title></circle></a>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
