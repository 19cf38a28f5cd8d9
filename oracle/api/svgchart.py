"""Line charts as inline SVG, drawn by the server: the dashboard's charts need no JavaScript.

Pure (no I/O). ``oracle.api.dashboard_page`` turns the store's history into
``Series`` of exact values and this module draws them; the page works offline
and in any browser, and a test can count what was drawn: each data point is one
``<circle data-point>`` inside its ``<g data-series=KEY>``, inside the
``<figure data-chart=KEY>``.

Values stay exact (``int`` or ``Fraction``) up to here; floats appear only as
drawing coordinates. The y axis is logarithmic, because what the oracle charts
(difficulty, BME_N) spans 14 decades from 2009 to now; its base-10 logarithm is
taken from the exact numerator and denominator, so even values far beyond a
float's range are placed correctly.

Accessibility: each chart is ``role="img"`` named by its ``<title>`` and
described by its ``<desc>`` (what it shows, the range, the latest value); the
legend is HTML text; the caller adds a table of the same data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction

from oracle.errors import InputError

WIDTH = 960
HEIGHT = 320
#: Plot area margins: room for the y labels on the left and the x labels below.
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 30
POINT_RADIUS = 2.0
MAX_Y_TICKS = 8
MAX_X_TICKS = 10
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


@dataclass(frozen=True, slots=True)
class Point:
    """One data point: ``x`` in unix seconds, ``y`` exact (> 0), ``label`` for the tooltip."""

    x: int
    y: Fraction | int
    label: str


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a chart; ``key`` becomes its ``data-series`` attribute."""

    key: str
    name: str
    color: str
    points: tuple[Point, ...]


def log10_exact(value: Fraction | int) -> float:
    """log10 of a positive exact value, from its integer numerator and denominator.

    ``float(value)`` would overflow or underflow for huge or tiny values; Python's
    ``math.log10`` of an ``int`` does not.
    """
    if value <= 0:
        raise InputError(f"a log-scale chart needs positive values, got {value!r}")
    exact = Fraction(value)
    return math.log10(exact.numerator) - math.log10(exact.denominator)


def power_of_ten_text(exponent: int) -> str:
    """``10`` with a superscript exponent: ``10¹³``, ``10⁻⁷``."""
    return "10" + str(exponent).translate(_SUPERSCRIPT)


def year_ticks(x_min: int, x_max: int, max_ticks: int = MAX_X_TICKS) -> list[tuple[int, str]]:
    """January 1st (UTC) of the years within ``[x_min, x_max]``, thinned to ``max_ticks``."""
    first = datetime.fromtimestamp(x_min, UTC).year + 1
    last = datetime.fromtimestamp(x_max, UTC).year
    years = list(range(first, last + 1))
    step = max(1, math.ceil(len(years) / max_ticks))
    return [(int(datetime(y, 1, 1, tzinfo=UTC).timestamp()), str(y)) for y in years[::step]]


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps data to drawing coordinates (the only place floats are made)."""

    x_min: int
    x_max: int
    y_low: int  # decade exponents bounding the plot
    y_high: int

    def x(self, value: int) -> float:
        span = self.x_max - self.x_min
        fraction = 0.5 if span == 0 else (value - self.x_min) / span
        return LEFT + fraction * (WIDTH - LEFT - RIGHT)

    def y_log(self, log_value: float) -> float:
        fraction = (log_value - self.y_low) / (self.y_high - self.y_low)
        return TOP + (1 - fraction) * (HEIGHT - TOP - BOTTOM)


def _frame(series: Sequence[Series]) -> _Frame | None:
    points = [p for s in series for p in s.points]
    if not points:
        return None
    logs = [log10_exact(p.y) for p in points]
    low, high = math.floor(min(logs)), math.ceil(max(logs))
    if high == low:
        high += 1
    return _Frame(min(p.x for p in points), max(p.x for p in points), low, high)


def _axes(frame: _Frame) -> list[str]:
    """Grid lines and labels: decades on y, years on x."""
    parts = ['<g class="axes" fill="#57606a" stroke="#d0d7de" font-size="12">']
    step = max(1, math.ceil((frame.y_high - frame.y_low) / MAX_Y_TICKS))
    for exponent in range(frame.y_low, frame.y_high + 1, step):
        y = frame.y_log(exponent)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" stroke="none">'
            f"{power_of_ten_text(exponent)}</text>"
        )
    for at, label in year_ticks(frame.x_min, frame.x_max):
        x = frame.x(at)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle" stroke="none">'
            f"{label}</text>"
        )
    parts.append("</g>")
    return parts


def _series(frame: _Frame, series: Series) -> list[str]:
    coordinates = [(frame.x(p.x), frame.y_log(log10_exact(p.y))) for p in series.points]
    color = html.escape(series.color)
    parts = [f'<g data-series="{html.escape(series.key)}" fill="{color}" stroke="{color}">']
    if len(coordinates) > 1:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        parts.append(f'<polyline fill="none" stroke-width="1.5" points="{line}"/>')
    for point, (x, y) in zip(series.points, coordinates, strict=True):
        parts.append(
            f'<circle data-point="" cx="{x:.1f}" cy="{y:.1f}" r="{POINT_RADIUS}">'
            f"<title>{html.escape(point.label)}</title></circle>"
        )
    parts.append("</g>")
    return parts


def legend(series: Sequence[Series]) -> str:
    """The legend as an HTML list: a colour swatch (decorative) and the series name."""
    items = "".join(
        f'<li><svg width="14" height="14" aria-hidden="true" focusable="false">'
        f'<rect width="14" height="14" rx="2" fill="{html.escape(s.color)}"/></svg> '
        f"{html.escape(s.name)} ({len(s.points)} points)</li>"
        for s in series
    )
    return f'<ul class="legend">{items}</ul>'


def line_chart(
    *,
    key: str,
    title: str,
    description: str,
    series: Sequence[Series],
    empty_text: str = "No data yet.",
    caption: Callable[[Sequence[Series]], str] = legend,
) -> str:
    """A ``<figure data-chart=KEY>`` holding a log-scale line chart of ``series`` and its legend.

    ``title`` names the chart for assistive technology (``role="img"``) and
    ``description`` says what it shows; every point is a ``<circle data-point>``
    with its ``label`` as tooltip; the first series is drawn on top of the others.
    With no points at all, the chart says ``empty_text`` instead of drawing axes.
    """
    ident = f"chart-{html.escape(key)}"
    frame = _frame(series)
    parts = [
        f'<figure class="chart" data-chart="{html.escape(key)}">',
        f'<svg role="img" viewBox="0 0 {WIDTH} {HEIGHT}" aria-labelledby="{ident}-title" '
        f'aria-describedby="{ident}-desc" focusable="false">',
        f'<title id="{ident}-title">{html.escape(title)}</title>',
        f'<desc id="{ident}-desc">{html.escape(description)}</desc>',
    ]
    if frame is None:
        parts.append(
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" '
            f'fill="#57606a" font-size="16">{html.escape(empty_text)}</text>'
        )
    else:
        parts.extend(_axes(frame))
        for item in reversed(series):  # the first series is drawn last: on top
            parts.extend(_series(frame, item))
    parts.append("</svg>")
    parts.append(f"<figcaption>{caption(series)}</figcaption>")
    parts.append("</figure>")
    return "\n".join(parts)
