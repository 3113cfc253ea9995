"""The Persian words of findings: how a subject, a quarter and a figure are written.

Sentences use Persian digits, the Persian decimal separator (٫) and thousands separator (٬), and
Jalali dates, the way a budget expert of the province writes them; codes are written as stored, in
ASCII digits isolated left-to-right (shared/presentation.md). Figures, days and quarters are
written by foundation/present.py, as everywhere people read them, with three differences kept here
because finding sentences are fingerprinted and stored (a changed sentence would "update" every
deviation): a missing figure is '؟' (present: '—'), a number is not grouped unless asked (a
percentage is, as present writes it), and a percentage is written to two places, more where it
must be told apart (present rounds it to one place).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from foundation import present
from reconcile.facts import Place

UNKNOWN = "؟"  # a figure the facts do not hold

# Raised whenever a change here rewords stored sentences: the next run after an upgrade then judges
# the whole store (reconcile/engine.py `_basis`), so no deviation keeps a sentence of the old form.
# 2: codes as stored, isolated left-to-right (1 wrote them in Persian digits).
# 3: the threshold a rule compared its measure with kept in ``numbers["threshold"]`` (presentation.md:
#    every figure a rule compared travels with the deviation; foundation/present.py ``threshold``).
# 4: an operation's unit of measure kept in ``numbers["unit"]``: its quantities are shown in it; a
#    comptroller's status in present's words («ردشده»); no county «(شهرستان نامشخص)», not «در سطح استان».
# 5: spend_progress_gap's gap of shares in percentage points («۳۵ واحد درصد», was «۰٫۳۵»).
# 6: the bound of the severity band a finding reached kept in ``numbers["band"]``: an output says why
#    it is major or critical («بحرانی از ۳۰ واحد درصد»), not only the lowest limit.
# 7: percentages and amounts in sentences to two places, as the figures beside them (were every place
#    the portal gave: «۲۶٫۰۰۰۰۵٪», «۶۰۰٫۵۰۰۰۵ میلیون ریال»).
# 8: a figure compared with another is shown with the places that tell them apart (99.996 % against
#    100 was «۱۰۰٪»), rounded half away from zero as everywhere.
# 9: the two figures of a rule that flags their difference for being more than its limit
#    (credit_inconsistency, progress_regression) differ by more than it as written (600.50005 beside 600
#    with a limit of 0.5 read «۶۰۰٫۵» and «۶۰۰»).
# 10: a negative figure isolated left to right (U+2066…U+2069: «-۱۲٫۵٪» read «۱۲٫۵٪-» in right-to-left
#    lines), percentages grouped («۱٬۲۵۰٪»). The whole judgement after the upgrade also resolves the
#    credit_inconsistency deviations of years not yet begun, which the rule no longer judges.
# 11: where the next severity's band begins kept in ``numbers["next"]``, and a finding's two figures
#    shown apart from every limit it was judged against, not only the lowest: a unit cost of 2.9998
#    beside 2 (1.4999 times, minor below 1.5) read «۳» beside «۲», a major's figures.
# 12: million rials said once a sentence, after its last amount (presentation.md: «the unit once per
#    column or sentence»): «(۶۰۰ از ۱٬۰۰۰ میلیون ریال)», not «(۶۰۰ میلیون ریال از ۱٬۰۰۰ میلیون ریال)»
#    (spend_progress_gap, credit_inconsistency, unit_cost_overrun; a trial); an agreement's unit cost
#    named as its figure is everywhere, «بهای واحد مصوب» (the sentence said «قیمت واحد … در موافقتنامه»).
# 13: spend_progress_gap with progress below the year's start says so («اما پیشرفت فیزیکی آن از آغاز سال
#    کاهش یافته است (سهم پیشرفت ⁦-۲۹٫۴۱⁩٪ از برنامهٔ سال)»), not «اما تنها -۲۹٫۴۱٪ … به دست آورده است».
VERSION = 13


def number(value: Decimal | int | None, *, grouped: bool = False) -> str:
    """32.5000 -> '۳۲٫۵', 12345 -> '۱۲٬۳۴۵' (grouped); trailing zeros dropped; None -> '؟'."""
    return UNKNOWN if value is None else present.number(value, grouped=grouped)


_HUNDREDTHS = Decimal("0.01")


def _shown(value: Decimal | None, other: Decimal | None, rule: str | None = None,
           bounds: tuple[Decimal, ...] = ()) -> Decimal | None:
    """A figure as people read it in a sentence: to two places (a portal's 600.50005 million rials
    or 26.00005 % is noise to a reader), as the figures beside the sentence show it (present.figure);
    more where two places would show it as the `other` it is compared with (99.996 % against 100),
    or, given the limits `rule` judged the two against (its threshold and the bounds of the finding's
    severity band), on the other side of one of them (a unit cost of 2.9998 beside 2, 1.4999 times and
    minor below 1.5, is «۲٫۹۹۹۸», not «۳»; 600.50005 beside 600, more than 0.5 apart, «۶۰۰٫۵۰۰۱»)."""
    if value is None:
        return None
    shown = value.quantize(_HUNDREDTHS, rounding=ROUND_HALF_UP)  # the usual case, once per figure of a sentence
    if other is None or value == other:
        return shown
    if bounds:  # as present.figure shows it beside the sentence: one rule, one place
        places = present.places_for(rule or "", value, other, bounds)
        return shown if places == 2 else present.rounded(value, places)
    if shown != other.quantize(_HUNDREDTHS, rounding=ROUND_HALF_UP):
        return shown
    return present.rounded(value, present.places_apart(value, other))


def percent(value: Decimal | None, other: Decimal | None = None, *, rule: str | None = None,
            bounds: tuple[Decimal, ...] = ()) -> str:
    return present.percent_sign(number(_shown(value, other, rule, bounds), grouped=True))


def amount(value: Decimal | None, other: Decimal | None = None, *, rule: str | None = None,
           bounds: tuple[Decimal, ...] = ()) -> str:
    """'۶۰۰٫۵ میلیون ریال': an amount with its unit, the last (or only) amount of a sentence."""
    return f"{figure(value, other, rule=rule, bounds=bounds)} {present.AMOUNT_UNIT}"


def figure(value: Decimal | None, other: Decimal | None = None, *, rule: str | None = None,
           bounds: tuple[Decimal, ...] = ()) -> str:
    """An amount without its unit: every amount of a sentence but the last, which says the unit once
    for them all (shared/presentation.md: «the unit once per column or sentence»)."""
    return number(_shown(value, other, rule, bounds), grouped=True)


def code(value: str) -> str:
    """A code as stored, ASCII digits isolated left-to-right (shared/presentation.md): in Persian
    digits and without isolation, '1305012007-003' displayed as «۰۰۳-۱۳۰۵۰۱۲۰۰۷» in every RTL line."""
    return present.code_text(value)


@lru_cache(maxsize=4096)
def day(value: date | None) -> str:
    return present.day(value) if value is not None else "(بی‌تاریخ)"


def entered(on: date | None) -> str:
    """'که در ۱۴۰۵/۰۷/۱۰ ثبت شده' or, for an undated entry, 'که بدون تاریخ ثبت شده'."""
    return f"که در {day(on)} ثبت شده" if on is not None else "که بدون تاریخ ثبت شده"


@lru_cache(maxsize=256)
def quarter(year: int, q: int) -> str:
    """'سه‌ماهه دوم ۱۴۰۵'."""
    return present.quarter(year, q)


@lru_cache(maxsize=256)
def year(value: int) -> str:
    return present.digits(value)


@lru_cache(maxsize=4096)
def _place(place: Place) -> str:
    agency = f"«{place.agency_name}»" if place.agency_name else f"با کد {code(place.agency_code)}"
    # no county: the portal gave none (not "province-wide"), said as every output says it
    where = f"در شهرستان {place.county_name}" if place.county_name else f"(شهرستان {present.NO_COUNTY})"
    return f"از دستگاه {agency} {where}"


@lru_cache(maxsize=1024)  # one project is named in several findings in a row
def project_named(title: str, project_code: str, place: Place) -> str:
    """'پروژه «…» (کد ۱۳۰۵۰۱۲۰۰۷-۰۰۳) از دستگاه «…» در شهرستان اهواز'."""
    return f"پروژه «{title}» (کد {code(project_code)}) {_place(place)}"


@lru_cache(maxsize=1024)
def agreement_named(agreement_no: str, program_title: str | None, place: Place) -> str:
    """An expense agreement by its number, program title and place (a selected row's columns)."""
    program = f" (برنامه «{program_title}»)" if program_title else ""
    return f"موافقتنامه هزینه‌ای شماره {code(agreement_no)}{program} {_place(place)}"


def operation_named(title: str | None, operation_code: str, in_agreement: str) -> str:
    """An operation by its title and code, in an agreement worded by :func:`agreement_named`."""
    title_text = f"«{title}» " if title else ""
    return f"فعالیت {title_text}(کد {code(operation_code)}) در {in_agreement}"
