"""The geometry of the HTML report's charts: where each bar, point, line and label goes.

Only numbers and words come out of here; templates/charts.html.j2 turns them into inline SVG with
Jinja2's autoescaping, so a county or agency name from a portal can never become markup. Bar charts
are horizontal and read right to left: names on the right, bars growing leftwards from a zero at
the right edge of the plot. The S-curve runs in time from left to right, as Persian budget charts
usually do, each year from its start (reports.model.curve_year: the points the console draws too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from foundation import present
from reports import precision
from reports.model import CurveYear

PLANNED, REPORTED, SINGLE = present.PLANNED_COLOUR, present.REPORTED_COLOUR, present.SINGLE_COLOUR
DASH = present.PLANNED_DASH


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    colour: str
    tip: str  # shown by the browser on hover (an SVG <title>)


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "end"  # start | middle | end
    size: int = 11


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: tuple[tuple[float, float], ...]
    dashed: bool = False


@dataclass(frozen=True)
class Chart:
    title: str
    width: int
    height: int
    rects: tuple[Rect, ...] = ()
    labels: tuple[Label, ...] = ()
    grid: tuple[Line, ...] = ()
    series: tuple[Series, ...] = ()
    legend: tuple[tuple[str, str], ...] = ()  # (colour, name)

    @property
    def points(self) -> list[tuple[float, float, str]]:
        return [(x, y, s.colour) for s in self.series for x, y in s.points]


WIDTH, NAME_WIDTH, MARGIN, TOP = 960, 250, 56, 44
# the names one part of a bar chart holds: 16 groups of two bars (~570 px with its axis, caption and
# legend) fit the ~700 px of an A4 landscape page's printable height, so a part never splits
PART_NAMES = 16


def _short(name: str, limit: int = 38) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _scaled(series: Sequence[tuple[str, str, Sequence[Decimal | None]]], ratio: bool) -> list[list[Decimal | None]]:
    return [[(Decimal(v) * 100 if ratio else Decimal(v)) if v is not None else None for v in values]
            for _, _, values in series]


def _top(shown: list[list[Decimal | None]]) -> Decimal:
    return max([Decimal(100)] + [v for values in shown for v in values if v is not None])


def bars(title: str, names: Sequence[str], series: Sequence[tuple[str, str, Sequence[Decimal | None]]], *,
         ratio: bool = False, top_value: Decimal | None = None) -> Chart:
    """Horizontal grouped bars, one group per name; ``series`` is (name, colour, values). Values are
    percentage points, or ratios with ``ratio`` (shown as percentages). The axis runs to 100 % or
    the largest value, or to ``top_value`` (shared by the parts of one chart)."""
    shown = _scaled(series, ratio)
    top_value = top_value if top_value is not None else _top(shown)
    right, left = WIDTH - NAME_WIDTH, MARGIN
    scale = (right - left) / float(top_value)
    bar_h, gap = 11, 9
    group_h = bar_h * len(series) + gap
    height = TOP + group_h * max(len(names), 1) + 24
    rects, labels, grid = [], [], []
    step = 25 if top_value <= 150 else 50
    for tick in range(0, int(top_value) + 1, step):
        x = right - tick * scale
        grid.append(Line(x, TOP - 6, x, height - 20))
        labels.append(Label(x, TOP - 10, present.percent(tick, places=0), "middle", 10))
    for i, name in enumerate(names):
        y0 = TOP + i * group_h
        labels.append(Label(WIDTH - 8, y0 + group_h / 2, _short(name), "end", 11))
        for j, (series_name, colour, _) in enumerate(series):
            value = shown[j][i]
            if value is None:
                continue
            length = max(float(value) * scale, 0.5)
            y = y0 + j * bar_h
            text = precision.points(value).text()  # as the tables write it
            rects.append(Rect(right - length, y, length, bar_h - 2, colour, f"{name} — {series_name}: {text}"))
            labels.append(Label(right - length - 4, y + bar_h - 3, text, "end", 9))
    legend = tuple((colour, name) for name, colour, _ in series)
    return Chart(title, WIDTH, height, tuple(rects), tuple(labels), tuple(grid), legend=legend)


def bars_in_parts(title: str, names: Sequence[str], series: Sequence[tuple[str, str, Sequence[Decimal | None]]],
                  *, ratio: bool = False, most: int = PART_NAMES) -> list[Chart]:
    """:func:`bars`, in parts of at most ``most`` names (as even as they go) on one scale, each titled
    «… (بخش ۱ از ۲)»: printed, a part fits one page with its caption, so none is split or parted
    from its caption. One chart when the names fit."""
    count = max(math.ceil(len(names) / most), 1)
    if count == 1:
        return [bars(title, names, series, ratio=ratio)]
    size, top_value = math.ceil(len(names) / count), _top(_scaled(series, ratio))
    return [bars(f"{title} (بخش {present.digits(i + 1)} از {present.digits(count)})", names[i * size:(i + 1) * size],
                 [(name, colour, list(values)[i * size:(i + 1) * size]) for name, colour, values in series],
                 ratio=ratio, top_value=top_value)
            for i in range(count)]


# «سه‌ماهه دوم ۱۴۰۵» is too long for an axis: the ordinal of each quarter's name, the year below
QUARTER_ORDINALS = {1: "اول", 2: "دوم", 3: "سوم", 4: "چهارم"}
YEAR_START = "آغاز سال"  # the axis's word for a year's start, as the console's S-curve writes it


def curve_slots(years: Sequence[CurveYear]) -> dict[tuple[int, int], int]:
    """Where each (year, quarter) of an S-curve across ``years`` goes along the time axis: quarter 0
    is the year's start, 1-4 the quarters' ends. A year's start is the moment its previous year's
    fourth quarter ends: when that year is drawn too, both are one place (the two lines step there
    from the year's last figures to the next year's `start`); a first year, or one after a year the
    store does not hold, starts at a place of its own."""
    slots: dict[tuple[int, int], int] = {}
    last = -1
    for year in years:
        y = year.fiscal_year
        if (y - 1, 4) in slots:
            slots[(y, 0)] = slots[(y - 1, 4)]
        else:
            last += 1
            slots[(y, 0)] = last
        for q in range(1, 5):
            last += 1
            slots[(y, q)] = last
    return slots


def s_curve(title: str, years: Sequence[CurveYear]) -> Chart:
    """Planned and reported cumulative progress of one project across ``years`` (oldest first), each
    year from its start (reports.model.curve_year: the points the console's S-curve draws too)."""
    left, right, top, bottom = 60, WIDTH - 30, TOP, 360
    height = bottom + 60
    slots = curve_slots(years)
    count = max(max(slots.values(), default=0), 1)

    def x_of(i: int) -> float:
        return left + (right - left) * i / count

    def y_of(value) -> float:
        return bottom - (bottom - top) * float(value) / 100

    grid, labels = [], []
    for tick in range(0, 101, 20):
        grid.append(Line(left, y_of(tick), right, y_of(tick)))
        labels.append(Label(left - 8, y_of(tick) + 4, present.percent(tick, places=0), "end", 10))
    for (year, q), i in slots.items():
        follows = (year - 1, 4) in slots  # its start is the previous year's end, named «چهارم» there
        if q == 0 and follows:
            continue
        # the quarter by its name's ordinal, the year under each year's first place: «۱۴۰۵/۱» read as a day
        labels.append(Label(x_of(i), bottom + 18, YEAR_START if q == 0 else QUARTER_ORDINALS[q], "middle", 10))
        if (q == 0) or (q == 1 and follows):
            labels.append(Label(x_of(i), bottom + 32, present.digits(year), "middle", 10))
    curves = []
    for name, colour, dashed, of in (("پیشرفت برنامه‌ای", PLANNED, True, lambda y: y.planned),
                                     ("پیشرفت گزارش‌شده", REPORTED, False, lambda y: y.reported)):
        points = tuple((x_of(slots[(y.fiscal_year, q)]), y_of(min(max(v, 0), 100)))
                       for y in years for q, v in sorted(of(y).items()) if v is not None)
        curves.append(Series(name, colour, points, dashed))
    labels.append(Label((left + right) / 2, height - 8, "سه‌ماهه و سال", "middle", 10))
    return Chart(title, WIDTH, height, (), tuple(labels), tuple(grid), tuple(curves),
                 tuple((s.colour, s.name) for s in curves))
