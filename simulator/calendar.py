"""The fiscal calendar the simulator lives by (domain.md §6, reconciliation-rules.md "Calendar").

Dates are kept as Gregorian ``date`` objects inside the world and converted to Jalali only when a
page is rendered. A quarter is closed when its last day is before the as-of day; its report is due
`REPORT_DUE_DAYS` days after that last day.

The simulator keeps this small calendar of its own instead of importing foundation.jalali's: it is
the oracle the product's reconciliation is tested against (expected deviations hold from due days
computed here), and a due day computed by the product's code on both sides would let a calendar
mistake pass both.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

import jdatetime

REPORT_DUE_DAYS = 15
APPROVAL_DUE_DAYS = 15


@lru_cache(maxsize=4096)
def to_jalali(day: date) -> tuple[int, int, int]:
    j = jdatetime.date.fromgregorian(date=day)
    return j.year, j.month, j.day


@lru_cache(maxsize=256)
def from_jalali(year: int, month: int, day: int) -> date:
    return jdatetime.date(year, month, day).togregorian()


def jalali_text(day: date) -> str:
    """'YYYY/MM/DD', padded and in ASCII digits: how SABA writes a day, and the inspections file."""
    y, m, d = to_jalali(day)
    return f"{y:04d}/{m:02d}/{d:02d}"


def jalali_year(day: date) -> int:
    return to_jalali(day)[0]


@lru_cache(maxsize=64)
def is_leap(year: int) -> bool:
    return bool(jdatetime.date(year, 1, 1).isleap())


@lru_cache(maxsize=256)
def quarter_start(year: int, quarter: int) -> date:
    return from_jalali(year, 3 * quarter - 2, 1)


@lru_cache(maxsize=256)
def quarter_end(year: int, quarter: int) -> date:
    if quarter in (1, 2):
        return from_jalali(year, 3 * quarter, 31)
    if quarter == 3:
        return from_jalali(year, 9, 30)
    return from_jalali(year, 12, 30 if is_leap(year) else 29)


def year_start(year: int) -> date:
    return quarter_start(year, 1)


def year_end(year: int) -> date:
    return quarter_end(year, 4)


def due_day(year: int, quarter: int) -> date:
    return quarter_end(year, quarter) + timedelta(days=REPORT_DUE_DAYS)


def is_closed(year: int, quarter: int, as_of: date) -> bool:
    return quarter_end(year, quarter) < as_of


def closed_quarters(year: int, as_of: date) -> list[int]:
    return [q for q in (1, 2, 3, 4) if is_closed(year, q, as_of)]
