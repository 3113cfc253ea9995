"""The Persian words of findings: how a subject, a quarter and a figure are written.

Sentences use Persian digits, the Persian decimal separator (٫) and thousands separator (٬), and
Jalali dates, the way a budget expert of the province writes them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache

from foundation.jalali import QUARTER_NAMES, format_jalali
from foundation.persian import to_persian_digits

from reconcile.facts import AgreementFacts, OperationFacts, Place, ProjectYearFacts

_SEPARATORS = str.maketrans({",": "٬", ".": "٫"})


def number(value: Decimal | int | None, *, grouped: bool = False) -> str:
    """32.5000 -> '۳۲٫۵', 12345 -> '۱۲٬۳۴۵' (grouped); trailing zeros dropped; None -> '؟'."""
    if value is None:
        return "؟"
    if isinstance(value, int):
        value = Decimal(value)
    value = value.normalize()
    if value == 0:
        value = Decimal(0)  # no '-0', no '0E+2'
    shown = format(value, ",f" if grouped else "f")
    return to_persian_digits(shown.translate(_SEPARATORS))


def percent(value: Decimal | None) -> str:
    return number(value) + "٪"


def amount(value: Decimal | None) -> str:
    return number(value, grouped=True) + " میلیون ریال"


def code(value: str) -> str:
    return to_persian_digits(value)


@lru_cache(maxsize=4096)
def day(value: date | None) -> str:
    return format_jalali(value) if value is not None else "(بی‌تاریخ)"


def entered(on: date | None) -> str:
    """'که در ۱۴۰۵/۰۷/۱۰ ثبت شده' or, for an undated entry, 'که بدون تاریخ ثبت شده'."""
    return f"که در {day(on)} ثبت شده" if on is not None else "که بدون تاریخ ثبت شده"


@lru_cache(maxsize=256)
def quarter(year: int, q: int) -> str:
    """'سه‌ماهه دوم ۱۴۰۵'."""
    return f"{QUARTER_NAMES[q]} {to_persian_digits(str(year))}"


@lru_cache(maxsize=256)
def year(value: int) -> str:
    return to_persian_digits(str(value))


@lru_cache(maxsize=4096)
def _place(place: Place) -> str:
    agency = f"«{place.agency_name}»" if place.agency_name else f"با کد {code(place.agency_code)}"
    where = f"در شهرستان {place.county_name}" if place.county_name else "در سطح استان"
    return f"از دستگاه {agency} {where}"


def project(p: ProjectYearFacts) -> str:
    """'پروژه «…» (کد ۱۳۰۵۰۱۲۰۰۷-۰۰۳) از دستگاه «…» در شهرستان اهواز'."""
    return _project(p.title, p.project_code, p.place)


@lru_cache(maxsize=1024)  # one project is named in several findings in a row
def _project(title: str, project_code: str, place: Place) -> str:
    return f"پروژه «{title}» (کد {code(project_code)}) {_place(place)}"


def agreement(a: AgreementFacts) -> str:
    return _agreement(a.agreement_no, a.program_title, a.place)


@lru_cache(maxsize=1024)
def _agreement(agreement_no: str, program_title: str | None, place: Place) -> str:
    program = f" (برنامه «{program_title}»)" if program_title else ""
    return f"موافقتنامه هزینه‌ای شماره {code(agreement_no)}{program} {_place(place)}"


def operation(a: AgreementFacts, o: OperationFacts) -> str:
    title = f"«{o.title}» " if o.title else ""
    return f"فعالیت {title}(کد {code(o.code)}) در {agreement(a)}"
