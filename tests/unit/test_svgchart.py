"""The dashboard's SVG charts (oracle.api.svgchart): pure, exact in, one element per point.

Values far beyond a float's range (difficulty 1 in 2009 and BME around 10^9 then,
10^-6 now) must land in the plot; every point is one ``<circle data-point>``;
text is escaped; the module does no I/O.
"""

from __future__ import annotations

import ast
import itertools
import re
from fractions import Fraction
from pathlib import Path

import pytest

from oracle.api import svgchart
from oracle.api.svgchart import (
    HEIGHT,
    WIDTH,
    Point,
    Series,
    line_chart,
    log10_exact,
    power_of_ten_text,
    year_ticks,
)
from oracle.errors import InputError

JAN_2009 = 1230768000
JAN_2024 = 1704067200


def _circles(svg: str) -> list[tuple[float, float]]:
    return [
        (float(x), float(y))
        for x, y in re.findall(r'<circle data-point="" cx="([-0-9.]+)" cy="([-0-9.]+)"', svg)
    ]


def test_log10_is_exact_beyond_float_range() -> None:
    huge = Fraction(10**400 * 3, 1)
    tiny = Fraction(7, 10**500)
    assert log10_exact(huge) == pytest.approx(400 + 0.47712125)
    assert log10_exact(tiny) == pytest.approx(-500 + 0.84509804)
    assert log10_exact(1) == 0
    for bad in (0, -1, Fraction(-1, 3)):
        with pytest.raises(InputError):
            log10_exact(bad)


def test_every_point_is_one_circle_inside_the_plot() -> None:
    points = tuple(
        Point(JAN_2009 + i * 1_209_600, Fraction(10**i, 3), f"p{i}") for i in range(0, 40)
    )
    other = tuple(Point(p.x, p.y * 2, "q") for p in points[5:])
    svg = line_chart(
        key="k",
        title="T",
        description="D",
        series=[Series("a", "A", "#000000", points), Series("b", "B", "#111111", other)],
    )
    assert svg.count("<circle data-point") == len(points) + len(other)
    a = svg[svg.index('data-series="a"') :]
    assert len(_circles(a[: a.index("</g>")])) == len(points)
    for x, y in _circles(svg):
        assert 0 <= x <= WIDTH and 0 <= y <= HEIGHT
    # Larger values are higher up (smaller y), and time runs left to right.
    coordinates = _circles(a[: a.index("</g>")])
    assert all(y2 < y1 and x2 > x1 for (x1, y1), (x2, y2) in itertools.pairwise(coordinates))
    assert 'role="img"' in svg and '<title id="chart-k-title">T</title>' in svg
    assert "A (40 points)" in svg and "B (35 points)" in svg


def test_empty_and_single_point_charts() -> None:
    empty = line_chart(key="e", title="T", description="D", series=[Series("s", "S", "#000", ())])
    assert "data-point" not in empty and "No data yet." in empty
    single = line_chart(
        key="one",
        title="T",
        description="D",
        series=[Series("s", "S", "#000", (Point(JAN_2024, 5, "only"),))],
    )
    assert len(_circles(single)) == 1 and "<polyline" not in single


def test_text_is_escaped() -> None:
    svg = line_chart(
        key="x",
        title="<b>&",
        description='"quote"',
        series=[Series("s", "<i>", "#000", (Point(JAN_2024, 1, "<script>"),))],
    )
    assert "<script>" not in svg and "<b>" not in svg and "<i>" not in svg
    assert "&lt;script&gt;" in svg


def test_axis_labels() -> None:
    assert power_of_ten_text(13) == "10¹³"
    assert power_of_ten_text(-7) == "10⁻⁷"
    ticks = year_ticks(JAN_2009 + 100, JAN_2024 + 100)
    assert [label for _, label in ticks][:3] == ["2010", "2012", "2014"]
    assert len(ticks) <= svgchart.MAX_X_TICKS


def test_module_is_pure() -> None:
    tree = ast.parse(Path(svgchart.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported.isdisjoint({"aiohttp", "asyncio", "sqlalchemy", "web3", "socket"})
