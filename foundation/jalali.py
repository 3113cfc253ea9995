"""Jalali dates as the portals write them, and the fiscal calendar the reconciliation rules use.

The portals write Jalali dates in any digit system, padded or not, now and then day-first or with
a two-digit year (domain.md §11); SABA stamps changes with ISO 8601 date-times. This module turns
all of them into Gregorian ``date`` values and Asia/Tehran-aware ``datetime`` values once, at the
boundary, and answers the calendar questions of reconciliation-rules.md "Calendar": which fiscal
year and quarter a day falls in, when a quarter ends and its report is due, whether it is closed.
jdatetime does the calendar arithmetic; an impossible day raises `BadDate` naming the raw text.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jdatetime

from foundation.persian import (
    NormalizationError,
    _plain,
    is_empty_marker,
    text_key,
    to_persian_digits,
)

__all__ = [
    "QUARTER_NAMES",
    "TEHRAN",
    "BadDate",
    "closed_quarters",
    "fiscal_year_of",
    "format_jalali",
    "is_leap",
    "is_quarter_closed",
    "parse_day",
    "parse_iso_datetime",
    "parse_jalali_date",
    "parse_jalali_datetime",
    "parse_quarter_name",
    "quarter_end",
    "quarter_of",
    "quarter_start",
    "report_due",
    "to_jalali",
    "today_tehran",
    "year_end",
    "year_start",
]

TEHRAN = ZoneInfo("Asia/Tehran")


class BadDate(NormalizationError):
    kind = "date"


# --- parsing ---------------------------------------------------------------------------------

# The same separator twice; '[0-9]' rather than '\d', which would also take other scripts' digits.
_DATE = re.compile(r"([0-9]{1,4}) ?([/.,-]) ?([0-9]{1,2}) ?\2 ?([0-9]{1,4})")
_DATE_TIME = re.compile(
    r"(?P<date>.+?) (?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2}))?"
)
_ISO_DAY = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
# A Jalali year outside these bounds is a Gregorian date or a typo, never a budget year.
_JALALI_YEARS = range(1300, 1500)
# the Gregorian days of those years, as an ISO day is checked against them
_ISO_SPAN = (jdatetime.date(min(_JALALI_YEARS), 1, 1).togregorian(),
             jdatetime.date(max(_JALALI_YEARS) + 1, 1, 1).togregorian() - timedelta(days=1))


def _jalali_day(text: str, raw: str) -> date:
    """`text` (already plain: ASCII digits, single spaces) as a Jalali day; errors name `raw`."""
    m = _DATE.fullmatch(text)
    if m is None:
        raise BadDate(raw, "not a Jalali date")
    first, _, month, last = m.groups()
    if len(first) == 4 and len(last) <= 2:
        year, day = int(first), int(last)
    elif len(last) == 4 and len(first) <= 2:
        year, day = int(last), int(first)  # day-first D/M/YYYY
    elif len(first) == 2 and len(last) <= 2:
        year, day = int(first) + (1300 if int(first) >= 50 else 1400), int(last)
    else:
        raise BadDate(raw, "no recognisable year group")
    if year not in _JALALI_YEARS:
        raise BadDate(raw, f"year {year} is not a Jalali year from 1300 to 1499")
    try:
        return jdatetime.date(year, int(month), day).togregorian()
    except ValueError as exc:
        raise BadDate(raw, f"no such Jalali day ({exc})") from exc


def parse_jalali_date(raw: str | None) -> date | None:
    """Jalali date text to a Gregorian date; None for an empty cell.

    Any digit system; separators / - . , with optional spaces; padded or not; year-first
    YYYY/M/D, day-first D/M/YYYY, or a two-digit year first (>= 50 is 13xx, else 14xx).
    """
    if raw is None or is_empty_marker(raw):
        return None
    return _jalali_day(_plain(raw), raw)


def parse_jalali_datetime(raw: str | None) -> datetime | None:
    """A Jalali date with an optional 24-hour H:MM[:SS] time, as an Asia/Tehran datetime."""
    if raw is None or is_empty_marker(raw):
        return None
    text = _plain(raw)
    m = _DATE_TIME.fullmatch(text)
    if m is None:
        return datetime.combine(_jalali_day(text, raw), time(), tzinfo=TEHRAN)
    day = _jalali_day(m["date"], raw)
    try:
        clock = time(int(m["hour"]), int(m["minute"]), int(m["second"] or 0))
    except ValueError as exc:
        raise BadDate(raw, f"no such time of day ({exc})") from exc
    return datetime.combine(day, clock, tzinfo=TEHRAN)


def parse_iso_datetime(raw: str | None) -> datetime | None:
    """An ISO 8601 date-time with a UTC offset (SABA ``modifiedAt``), as an Asia/Tehran datetime."""
    if raw is None or is_empty_marker(raw):
        return None
    try:
        moment = datetime.fromisoformat(_plain(raw))
    except ValueError as exc:
        raise BadDate(raw, "not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        # Without an offset the instant is unknown; guessing Tehran would hide a contract break.
        raise BadDate(raw, "ISO 8601 date-time without a UTC offset")
    return moment.astimezone(TEHRAN)


def parse_day(raw: str) -> date:
    """A day typed on the command line or in a CSV: Jalali (year >= 1300) or ISO 'YYYY-MM-DD'."""
    if raw is None or is_empty_marker(raw):
        raise BadDate(raw, "empty")
    text = _plain(raw)
    m = _ISO_DAY.fullmatch(text)
    if m is not None and int(m[1]) >= 1900:
        try:
            day = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError as exc:
            raise BadDate(raw, f"no such Gregorian day ({exc})") from exc
        # the Jalali years a day may have: 9999-12-31 passed here and failed later, in the conversion
        # every output makes ("ValueError: year is out of range", exit 1: a trial)
        first, last = _ISO_SPAN
        if not first <= day <= last:
            raise BadDate(raw, f"outside the Jalali years {min(_JALALI_YEARS)} to {max(_JALALI_YEARS)} "
                               f"({first.isoformat()} to {last.isoformat()})")
        return day
    return _jalali_day(text, raw)


# --- conversion and display ------------------------------------------------------------------


def _tehran_local(moment: datetime) -> datetime:
    # A naive datetime is taken to be Tehran wall time already.
    return moment.astimezone(TEHRAN) if moment.tzinfo is not None else moment


def to_jalali(d: date) -> jdatetime.date:
    """The Jalali day of `d`; an aware datetime is first moved to Tehran time."""
    if isinstance(d, datetime):
        d = _tehran_local(d).date()
    return _jalali_of(d)


@functools.lru_cache(maxsize=4096)  # outputs name a few days many times over
def _jalali_of(d: date) -> jdatetime.date:
    # jdatetime asks the process's locale on every conversion (~5 µs): 1.2 s of a listing of
    # 242,741 deviations with two days each (docs/benchmarks.md, session 36)
    return jdatetime.date.fromgregorian(date=d)


def format_jalali(
    d: date | datetime | None, *, persian_digits: bool = True, with_time: bool = False
) -> str:
    """'۱۴۰۵/۰۹/۰۴' (zero-padded); with_time adds ' HH:MM' for a datetime. None gives ''."""
    if d is None:
        return ""
    j = to_jalali(d)
    text = f"{j.year:04d}/{j.month:02d}/{j.day:02d}"
    if with_time and isinstance(d, datetime):
        local = _tehran_local(d)
        text += f" {local.hour:02d}:{local.minute:02d}"
    return to_persian_digits(text) if persian_digits else text


def terminal_day(day: date) -> str:
    """A day as the terminal's lines write it (docs/decisions.md): Jalali first, ISO beside it,
    '1405/09/12 (2026-12-03)'."""
    return f"{format_jalali(day, persian_digits=False)} ({day.isoformat()})"


def today_tehran() -> date:
    """Today's date in Tehran, the default as-of day of a run."""
    return datetime.now(TEHRAN).date()


# --- fiscal calendar -------------------------------------------------------------------------

QUARTER_NAMES: dict[int, str] = {
    1: "سه\u200cماهه اول",
    2: "سه\u200cماهه دوم",
    3: "سه\u200cماهه سوم",
    4: "سه\u200cماهه چهارم",
}
_QUARTER_BY_KEY = {text_key(name): quarter for quarter, name in QUARTER_NAMES.items()}


def _check_quarter(quarter: int) -> None:
    if quarter not in QUARTER_NAMES:
        raise ValueError(f"quarter must be 1 to 4, not {quarter!r}")


def is_leap(year: int) -> bool:
    """Whether Jalali `year` is a leap year, i.e. Esfand has 30 days."""
    return jdatetime.date(year, 1, 1).isleap()


def fiscal_year_of(d: date) -> int:
    """The fiscal year of a day: the Jalali year (1 Farvardin to the end of Esfand)."""
    return to_jalali(d).year


def quarter_of(d: date) -> tuple[int, int]:
    """(fiscal year, quarter) of a day; quarter 1 is Farvardin to Khordad, and so on."""
    j = to_jalali(d)
    return j.year, (j.month - 1) // 3 + 1


def year_start(year: int) -> date:
    """1 Farvardin of `year`."""
    return jdatetime.date(year, 1, 1).togregorian()


def year_end(year: int) -> date:
    """The last day of Esfand of `year`: the 29th, or the 30th in a leap year."""
    return jdatetime.date(year, 12, 30 if is_leap(year) else 29).togregorian()


def quarter_start(year: int, quarter: int) -> date:
    """The first day of the quarter's first month."""
    _check_quarter(quarter)
    return jdatetime.date(year, 3 * quarter - 2, 1).togregorian()


def quarter_end(year: int, quarter: int) -> date:
    """31 Khordad, 31 Shahrivar, 30 Azar, or 29/30 Esfand."""
    _check_quarter(quarter)
    if quarter == 4:
        return year_end(year)
    return jdatetime.date(year, 3 * quarter, 31 if quarter <= 2 else 30).togregorian()


def report_due(year: int, quarter: int, due_days: int = 15) -> date:
    """The day a quarter's report is due: `due_days` after the quarter's last day."""
    if due_days < 0:
        raise ValueError(f"due_days must not be negative, not {due_days!r}")
    return quarter_end(year, quarter) + timedelta(days=due_days)


def is_quarter_closed(year: int, quarter: int, as_of: date) -> bool:
    """A quarter is closed once its last day is before the as-of day (on that day it is open)."""
    return quarter_end(year, quarter) < as_of


def closed_quarters(year: int, as_of: date) -> list[int]:
    """The quarters of `year` closed on `as_of`: all four for a past year, none for a future one."""
    return [q for q in QUARTER_NAMES if is_quarter_closed(year, q, as_of)]


def parse_quarter_name(raw: str) -> int:
    """The quarter number of a period name ('سه‌ماهه دوم', 'سه ماهه دوم', Arabic letters, ...)."""
    quarter = _QUARTER_BY_KEY.get(text_key(raw))
    if quarter is None:
        raise NormalizationError(raw, "not a quarter name", kind="quarter")
    return quarter
