"""The report's own Persian words, shared by the Excel and HTML renderers so both say the same.

Names of severities, rules, groups and statuses come from foundation.present; only what is
particular to the report (its title, the forecast's outcomes, the cycle's step states, how a
period and a selection are described) lives here.
"""

from __future__ import annotations

from foundation import present
from foundation.persian import to_persian_digits

REPORT_TITLE = "گزارش نظارتی معاونت بودجه"
PROJECT_TITLE = "منحنی پیشرفت پروژه"

FORECAST_WORDS = {"forecast": "پیش‌بینی", "complete": "تکمیل‌شده", "no_progress": "بدون پیشرفت",
                  "unknown": "نامعلوم"}
STEP_WORDS = {"done": "انجام‌شده", "pending": "در جریان", "none": "آغاز نشده"}


def period_text(selection) -> str:
    """'سه‌ماهه دوم ۱۴۰۵' for the period the report runs through."""
    return present.quarter(selection.year, selection.quarter)


def filters_text(selection) -> str:
    """What the report is narrowed to, in words: 'کل استان' when nothing."""
    parts = []
    if selection.counties:
        parts.append("شهرستان: " + "، ".join(selection.counties))
    if selection.agencies:
        parts.append("دستگاه: " + "، ".join(present.code_text(a) for a in selection.agencies))
    if selection.groups:
        parts.append("گروه: " + "، ".join(present.group(g) for g in selection.groups))
    return to_persian_digits("؛ ".join(parts)) if parts else "کل استان"
