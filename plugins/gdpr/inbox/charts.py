"""The dashboard's pictures, drawn here as inline SVG: the page needs no script and nothing from the
internet. Each picture carries its figures as text too (a title for screen readers, the numbers beside
the bars), so nothing is known only from a shape's length."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

from include.common.reports import uk_date

WIDTH = 400
BAR = 18  # height of a bar, in pixels
LABEL = 170  # width kept for the labels left of the bars


def _svg(height: int, title: str, body: str) -> Markup:
    return Markup(f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
                  f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>{body}</svg>')


def bars(title: str, items: Sequence[tuple[str, int, str]]) -> Markup:
    """One horizontal bar per (label, count, tone); tone is a CSS class (`overdue` draws in red)."""
    top = max((count for _, count, _ in items), default=0) or 1
    room = WIDTH - LABEL - 40
    rows = []
    for i, (label, count, tone) in enumerate(items):
        y = i * (BAR + 8)
        length = round(room * count / top)
        rows.append(f'<text class="label" x="0" y="{y + BAR - 5}">{escape(label)}</text>'
                    f'<rect class="bar {escape(tone)}" x="{LABEL}" y="{y}" width="{length}" height="{BAR}"/>'
                    f'<text class="figure" x="{LABEL + length + 6}" y="{y + BAR - 5}">{count}</text>')
    summary = "; ".join(f"{label}: {count}" for label, count, _ in items)
    return _svg(len(items) * (BAR + 8), f"{title}: {summary}", "".join(rows))


def on_time(completed: int, in_time: int) -> Markup:
    """Completed requests as one bar, the part answered by the due date in green, the rest in red."""
    if not completed:
        return _svg(BAR + 20, "No request completed in the last 90 days",
                    f'<rect class="bar empty" x="0" y="0" width="{WIDTH}" height="{BAR}"/>'
                    f'<text class="label" x="0" y="{BAR + 16}">None completed in the last 90 days</text>')
    good = round(WIDTH * in_time / completed)
    late = completed - in_time
    text = f"{in_time} of {completed} on time" + (f", {late} late" if late else "")
    return _svg(BAR + 20, f"Completed in the last 90 days: {text}",
                f'<rect class="bar on-time" x="0" y="0" width="{good}" height="{BAR}"/>'
                f'<rect class="bar overdue" x="{good}" y="0" width="{WIDTH - good}" height="{BAR}"/>'
                f'<text class="label" x="0" y="{BAR + 16}">{escape(text)}</text>')


def weekly(points: Sequence[tuple[date, int]]) -> Markup:
    """Open requests at the end of each week, as a line over the weeks (oldest on the left)."""
    height, plot_top, plot_bottom = 120, 14, 92
    most = max((count for _, count in points), default=0)
    top = most or 1  # the scale: a flat line of zeros sits on the axis
    step = (WIDTH - 20) / max(len(points) - 1, 1)

    def y(count: int) -> float:
        return round(plot_bottom - (plot_bottom - plot_top) * count / top, 1)
    line = " ".join(f"{10 + i * step:.1f},{y(count)}" for i, (_, count) in enumerate(points))
    dots = "".join(f'<circle class="point" cx="{10 + i * step:.1f}" cy="{y(count)}" r="3">'
                   f'<title>week of {uk_date(week)}: {count} open</title></circle>'
                   for i, (week, count) in enumerate(points))
    body = (f'<line class="axis" x1="10" y1="{plot_bottom}" x2="{WIDTH - 10}" y2="{plot_bottom}"/>'
            f'<polyline class="caseload" points="{line}"/>{dots}'
            f'<text class="figure" x="10" y="10">{most} at most</text>')
    if points:
        body += (f'<text class="label" x="10" y="{height - 6}">{escape(uk_date(points[0][0]))}</text>'
                 f'<text class="label end" x="{WIDTH - 10}" y="{height - 6}">{escape(uk_date(points[-1][0]))}</text>')
        summary = ", ".join(str(count) for _, count in points)
        title = f"Open requests week by week since {uk_date(points[0][0])}: {summary}"
    else:
        title = "No weeks to show"
    return _svg(height, title, body)
