"""The report's own Persian words, shared by the Excel and HTML renderers so both say the same.

Names of severities, rules, groups and statuses come from foundation.present; only what is
particular to the report (its title, the forecast's outcomes, the cycle's step states, how a
period and a selection are described) lives here.
"""

from __future__ import annotations

from foundation import present

REPORT_TITLE = "گزارش نظارتی معاونت بودجه"
PROJECT_TITLE = "منحنی پیشرفت پروژه"

# how a completion year was come to (the workbook's column beside the year; a trial found «پیش‌بینی»
# under a header «پیش‌بینی» in most rows, which said nothing)
FORECAST_WORDS = {"forecast": "برآورد با سرعت اخیر", "complete": "تکمیل‌شده", "no_progress": "بدون پیشرفت",
                  "unknown": "نامعلوم"}
STEP_WORDS = {"done": "انجام‌شده", "pending": "در جریان", "none": "آغاز نشده"}


def period_text(selection) -> str:
    """'سه‌ماهه دوم ۱۴۰۵' for the period the report runs through."""
    return present.quarter(selection.year, selection.quarter)


WHOLE_PROVINCE = "کل استان"


def scope_parts(matched) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """What the report is narrowed to (a model.Matched): [(label, [(name, code or None)])], as the
    store names each county and agency, not as the options were typed; empty for the whole province."""
    parts = []
    if matched.counties:
        parts.append(("شهرستان", [(name, None) for name in matched.counties]))
    if matched.agencies:
        parts.append(("دستگاه", [(name, code) for code, name in matched.agencies]))
    if matched.groups:
        parts.append(("گروه", [(present.group(g), None) for g in matched.groups]))
    return parts


def scope_text(matched) -> str:
    """:func:`scope_parts` as one line of plain text, an agency's code after its name as the e-mails
    write it, isolated left-to-right in ASCII digits (present.code_text): 'شهرستان: اهواز، ایذه؛
    دستگاه: اداره کل … (کد ⁦201⁩)'; 'کل استان' when nothing."""
    return "؛ ".join(f"{label}: " + "، ".join(f"{name} (کد {present.code_text(code)})" if code else name
                                             for name, code in items)
                     for label, items in scope_parts(matched)) or WHOLE_PROVINCE
