"""S-curves for the project and agreement pages: planned against reported, quarter by quarter.

This module only places points (quarter 0..4 across, 0..100 % up) in an SVG's coordinates; the
template draws them (web/templates/_macros.html, ``curve``), so every label is escaped like any other text.
The lines are drawn in the printed report's colours (foundation.present ``PLANNED_COLOUR`` …): planned
grey and dashed, reported blue and solid, so a reader sees one S-curve the same on a page and on paper.
A project's points are the report's too (reports.model.curve_year: each year from its start, at the
progress at the start of the year, which the rules measure the year from).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from foundation.present import PLANNED_COLOUR, PLANNED_DASH, REPORTED_COLOUR
WIDTH, HEIGHT = 360, 200
LEFT, RIGHT, TOP, BOTTOM = 40, 30, 12, 28  # margins for the axis labels (the last quarter's is centred on its point)


@dataclass(frozen=True)
class Point:
    quarter: int
    value: Decimal
    x: float
    y: float


@dataclass(frozen=True)
class Curve:
    planned: list[Point]
    actual: list[Point]
    top: int  # the value of the top grid line (100, or more when a figure exceeds it)
    width: int = WIDTH
    height: int = HEIGHT
    planned_colour: str = PLANNED_COLOUR
    actual_colour: str = REPORTED_COLOUR
    dash: str = PLANNED_DASH

    @property
    def grid(self) -> list[tuple[int, float]]:
        """(value, y) of the horizontal grid lines."""
        step = self.top // 4
        return [(v, _y(Decimal(v), self.top)) for v in range(0, self.top + 1, step)]

    @property
    def grid_x(self) -> tuple[int, int]:
        """Where the grid lines start and end."""
        return LEFT, self.width - RIGHT

    @property
    def quarters(self) -> list[tuple[int, float]]:
        return [(q, _x(q)) for q in range(5)]

    @staticmethod
    def path(points: list[Point]) -> str:
        return " ".join(f"{'M' if i == 0 else 'L'}{p.x:.1f},{p.y:.1f}" for i, p in enumerate(points))


def _x(quarter: int) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * quarter / 4


def _y(value: Decimal, top: int) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - float(value) / top)


def s_curve(planned: dict[int, Decimal | None], actual: dict[int, Decimal | None]) -> Curve | None:
    """Cumulative percentages by quarter (0 = the year's start); None where there is no figure.
    None when there is nothing to draw."""
    values = [v for v in (*planned.values(), *actual.values()) if v is not None]
    if not values:
        return None
    top = 100
    while max(values) > top:  # an overrun is drawn, not clipped
        top += 100

    def points(series: dict[int, Decimal | None]) -> list[Point]:
        return [Point(q, Decimal(v), _x(q), _y(Decimal(v), top)) for q, v in sorted(series.items()) if v is not None]

    return Curve(points(planned), points(actual), top)


def cumulative_share(per_quarter: dict[int, Decimal | None], total: Decimal | None) -> dict[int, Decimal | None]:
    """Quantities of each quarter as the cumulative percentage of `total` (an operation's year).

    A quarter without a figure counts 0 before a later quarter that has one, as the reconciliation's
    year-to-date sums count it (reconciliation-rules.md, expense agreements: null counts as 0); the
    series ends after the last quarter with a figure: what follows it is not known."""
    if not total:
        return {}
    known = [q for q in range(1, 5) if per_quarter.get(q) is not None]
    shares: dict[int, Decimal | None] = {0: Decimal(0)}
    running = Decimal(0)
    for q in range(1, max(known, default=0) + 1):
        value = per_quarter.get(q)
        running += Decimal(0) if value is None else Decimal(value)
        shares[q] = (running * 100 / Decimal(total)).quantize(Decimal("0.1"))
    return shares
