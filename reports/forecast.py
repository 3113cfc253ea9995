"""Completion forecast of a capital project, earned-schedule style: at its recent pace, which year
does it reach 100 %?

The pace is the progress gained over the last four quarters up to the latest report, divided by
the quarters elapsed: the baseline is the earliest known progress within four quarters before the
latest report — an earlier report, or a year's starting progress, which stands at the end of the
previous year's fourth quarter. From the latest progress, the quarters still needed at that pace
give the quarter, hence the fiscal year, of completion. A project already at 100 % is complete (in
the year it first got there); a pace of zero or less is "no progress"; a project with a single
known figure has no pace and no forecast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

WINDOW = 4  # quarters looked back from the latest report
FULL = Decimal(100)

Outlook = Literal["complete", "forecast", "no_progress", "unknown"]


@dataclass(frozen=True)
class Point:
    """Cumulative progress known at the end of (year, quarter); quarter 0 is the year's start."""

    year: int
    quarter: int
    progress: Decimal

    @property
    def index(self) -> int:
        # quarter 0 of Y and quarter 4 of Y-1 are the same moment: one index
        return self.year * 4 + self.quarter


@dataclass(frozen=True)
class Forecast:
    outlook: Outlook
    year: int | None = None  # the fiscal year it reaches (or reached) 100 %
    pace: Decimal | None = None  # percentage points per quarter
    end_year: int | None = None  # the planned end year, for comparison

    @property
    def late(self) -> bool:
        """Finishing after the planned end year, or not moving while unfinished."""
        if self.outlook == "no_progress":
            return True
        return self.year is not None and self.end_year is not None and self.year > self.end_year


def year_of(index: int) -> int:
    return (index - 1) // 4


def forecast(points: Iterable[Point], end_year: int | None = None) -> Forecast:
    """The completion forecast from a project's known progress (in any order)."""
    by_index: dict[int, Point] = {}
    for point in sorted(points, key=lambda p: (p.index, p.quarter == 0)):
        # a report and the next year's start at one moment: the report, listed first, is kept
        by_index.setdefault(point.index, point)
    if not by_index:
        return Forecast("unknown", end_year=end_year)
    ordered = [by_index[i] for i in sorted(by_index)]
    latest = ordered[-1]
    if latest.progress >= FULL:
        first_full = next(p for p in ordered if p.progress >= FULL)
        return Forecast("complete", year_of(first_full.index), end_year=end_year)
    window = [p for p in ordered[:-1] if p.index >= latest.index - WINDOW]
    if not window:
        return Forecast("unknown", end_year=end_year)
    baseline = window[0]
    pace = (latest.progress - baseline.progress) / (latest.index - baseline.index)
    if pace <= 0:
        return Forecast("no_progress", pace=pace, end_year=end_year)
    needed = math.ceil((FULL - latest.progress) / pace)
    return Forecast("forecast", year_of(latest.index + needed), pace, end_year)
