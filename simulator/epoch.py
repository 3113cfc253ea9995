"""The world's "now" and what follows from it: the current year, closed quarters, the plant quarter.

`Epoch.at(clock)` is computed once per world from the simulated clock. Generation, the planting
plan and the ground truth all read the same epoch, so they agree on which quarters are closed, where
cases are planted and up to which day the expected deviations are known; its stamps keep every
generated last-modified on or before the clock.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from simulator import calendar as cal
from simulator.config import TEHRAN

if TYPE_CHECKING:
    from simulator.model import OperationReport, ProgressReport


@dataclass(frozen=True)
class Epoch:
    """The world's "now" and what follows from it: current year, closed quarters, plant quarter."""

    clock: datetime
    today: date
    current_year: int
    previous_year: int
    plant_year: int  # the latest quarter whose report is overdue by now: where cases are planted
    plant_quarter: int
    next_close: date  # the next quarter end on or after today; an as-of day past it is unknown data

    @classmethod
    def at(cls, clock: datetime) -> Epoch:
        local = clock.astimezone(TEHRAN)
        today = local.date()
        year = cal.jalali_year(today)
        plant = None
        for y in (year, year - 1):
            for q in (4, 3, 2, 1):
                if today > cal.due_day(y, q):
                    plant = (y, q)
                    break
            if plant:
                break
        assert plant is not None  # Q3 of the previous year is always overdue
        next_close = min(
            cal.quarter_end(y, q)
            for y in (year - 1, year)
            for q in (1, 2, 3, 4)
            if cal.quarter_end(y, q) >= today
        )
        return cls(local, today, year, year - 1, plant[0], plant[1], next_close)

    @property
    def years(self) -> tuple[int, int]:
        return (self.previous_year, self.current_year)

    def closed(self, year: int) -> list[int]:
        return cal.closed_quarters(year, self.today)

    def stamp(self, day: date, rng: random.Random) -> datetime:
        """A time of day on `day`, never after the clock."""
        moment = datetime.combine(day, time(rng.randint(7, 21), rng.randint(0, 59)), TEHRAN)
        latest = self.clock - timedelta(minutes=1)
        return min(moment, latest.replace(second=0, microsecond=0))

    def last_modified(self, first: date, entries: Iterable[ProgressReport | OperationReport],
                      rng: random.Random) -> datetime:
        """A record's last-modified stamp: its latest day (`first`, an entry or a decision), never after today."""
        days = [first]
        for entry in entries:
            days.append(entry.reported_on)
            if entry.decided_on:
                days.append(entry.decided_on)
        return self.stamp(min(max(days), self.today), rng)

