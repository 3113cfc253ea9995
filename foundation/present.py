"""How budgetwatch shows figures, dates and names to people: one form in every output.

shared/presentation.md is the reference. E-mails, reports, the console and the CLI's human output
all write a figure, a day or a rule's name through this module, so the same thing never appears two
ways. Machine formats (JSON, CSV, API) keep ASCII digits and ISO dates; ``jalali_ascii`` is the
Jalali twin a machine format carries beside an ISO date where people will read it.

- digits are Persian (۰۱۲۳۴۵۶۷۸۹), thousands ``٬`` (U+066C), decimals ``٫`` (U+066B), percent ``٪``;
- amounts are million rials, the unit written once per column or sentence (``AMOUNT_UNIT``);
- days are Jalali ``۱۴۰۵/۰۹/۱۲`` (``day``) or ``۱۲ آذر ۱۴۰۵`` in sentences (``day_long``);
  date-times ``۱۴۰۵/۰۹/۱۲ ساعت ۰۹:۴۳`` in Asia/Tehran;
- codes keep ASCII digits and their left-to-right order inside right-to-left text: ``code_text``
  isolates them with U+2066…U+2069 for plain text; HTML templates wrap them in ``<bdi>``;
- a negative figure is isolated so too (``signed``): its minus stays left of its digits.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from foundation.jalali import QUARTER_NAMES, TEHRAN, to_jalali
from foundation.persian import to_ascii_digits, to_persian_digits

AMOUNT_UNIT = "میلیون ریال"
NOTHING = "—"  # an empty cell or unknown figure
NO_COUNTY = "نامشخص"  # a subject the portals give no county for (in reports, e-mails and the console)

MONTHS = ("فروردین", "اردیبهشت", "خرداد", "تیر", "مرداد", "شهریور",
          "مهر", "آبان", "آذر", "دی", "بهمن", "اسفند")

SEVERITY_NAMES = {"minor": "جزئی", "major": "عمده", "critical": "بحرانی"}
# colours for screen and print alike: severity is also always written as a word
SEVERITY_COLOURS = {"critical": "#b71c1c", "major": "#e65100", "minor": "#616161"}
# what a spreadsheet (Excel, LibreOffice) runs as a formula when a text cell starts with it: a CSV
# export's or a workbook's text cell that does is written quote-prefixed, so portal text stays text
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# the lines and bars of a planned figure against a reported one, on every chart (the report's, the
# console's S-curves, the workbook's): the same colours everywhere, planned dashed where it is a line
PLANNED_COLOUR, REPORTED_COLOUR, SINGLE_COLOUR = "#90a4ae", "#1565c0", "#2e7d32"
PLANNED_DASH = "6 4"
STATUS_NAMES = {
    "open": "باز",
    "escalated": "تشدیدشده",
    "resolved": "برطرف‌شده",
    "acknowledged": "بررسی‌شده",
    "dismissed": "رد شده (نادرست)",
}
GROUP_NAMES = {
    "social": "امور اجتماعی",
    "infrastructure": "امور زیربنایی",
    "production": "امور تولیدی",
    "consolidation": "گروه تلفیق بودجه",
}
KIND_NAMES = {"capital": "پروژه تملک دارایی‌های سرمایه‌ای", "expense": "موافقتنامه هزینه‌ای"}
SOURCE_NAMES = {"nezarat4": "سامانه نظارت ۴", "saba": "سامانه سبا"}
RULE_NAMES = {
    "progress_lag": "عقب‌ماندگی پیشرفت فیزیکی از برنامه",
    "missing_report": "عدم ثبت گزارش عملکرد",
    "approval_overdue": "تأخیر در تأیید ذیحساب",
    "progress_regression": "کاهش پیشرفت گزارش‌شده",
    "spend_progress_gap": "عدم تناسب جذب اعتبار با پیشرفت فیزیکی",
    "credit_inconsistency": "ناسازگاری مراحل اعتبار",
    "completion_overdue": "تأخیر در اتمام پروژه",
    "inspection_mismatch": "مغایرت بازدید میدانی با گزارش",
    "operation_shortfall": "کسری تحقق عملیات",
    "unit_cost_overrun": "افزایش بهای تمام‌شده واحد",
}
COMPTROLLER_NAMES = {"approved": "تأییدشده", "pending": "در انتظار تأیید", "rejected": "ردشده"}

# a formatted number's ASCII digits and separators to Persian, in one pass (a run words 600,000 figures)
_PERSIAN_NUMBER = str.maketrans({",": "٬", ".": "٫", **{str(d): to_persian_digits(str(d)) for d in range(10)}})
_ZERO = Decimal(0)
_LRI, _PDI = "\u2066", "\u2069"  # left-to-right isolate … pop directional isolate


def digits(value: object) -> str:
    """Any text with its ASCII (and Arabic-Indic) digits written as Persian digits."""
    return to_persian_digits(str(value))


def number(value: Decimal | int | float | None, *, places: int | None = None, grouped: bool = True) -> str:
    """12345.5 -> '۱۲٬۳۴۵٫۵'. ``places`` rounds to that many decimals (trailing zeros kept);
    without it trailing zeros are dropped. None -> '—'. A negative figure is isolated left to right
    (:func:`signed`), so that its minus stays left of its digits in right-to-left text."""
    return signed(_number(value, places, grouped))


def signed(shown: str) -> str:
    """A figure as written, isolated left to right (U+2066…U+2069) when it has a minus: in a
    right-to-left line the bidi algorithm put the minus of «-۱۲٫۵٪» right of its digits («۱۲٫۵٪-»),
    in sentences, e-mails and the console alike, where the report's figures in a left-to-right
    ``<bdi>`` read «-۱۲٫۵٪» (a trial)."""
    return f"{_LRI}{shown}{_PDI}" if shown.startswith("-") else shown


def _number(value: Decimal | int | float | None, places: int | None, grouped: bool) -> str:
    if value is None:
        return NOTHING
    if value.__class__ is not Decimal:
        value = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if places is not None:
        value = rounded(value, places)
    else:
        value = value.normalize()
    if not value:
        value = abs(value) if places is not None else _ZERO  # no '-0', no '0E+2'
    return format(value, ",f" if grouped else "f").translate(_PERSIAN_NUMBER)


_EXPONENTS = {places: Decimal(1).scaleb(-places) for places in range(12)}  # made once: a run rounds ~1M figures


def _decimal(value: Decimal | int | float) -> Decimal:
    return value if value.__class__ is Decimal else Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


JUDGED_PLACES = 4  # reconciliation-rules.md: a gap, share difference or ratio is rounded to 4 places, then compared


def rounded(value: Decimal, places: int) -> Decimal:
    """`value` to `places` decimals, half away from zero — the one rounding of every figure shown
    (sentences, e-mails, the console, reports), as the catalogue rounds: 54.985 -> 54.99 everywhere."""
    exponent = _EXPONENTS.get(places)
    return value.quantize(exponent if exponent is not None else Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def places_apart(value: Decimal | None, other: Decimal | None, *, least: int = 2, most: int = 6) -> int:
    """The places that show `value` and `other` as the figures they are: `least`, or more where
    rounding to `least` would show two different figures alike (99.996 beside 100 is '۹۹٫۹۹۶', not
    '۱۰۰'; a rule flagged it for being below 100)."""
    if value is None or other is None or value == other:
        return least
    value, other = _decimal(value), _decimal(other)
    if abs(value - other) > _EXPONENTS[least]:  # the usual case: further apart than a unit of the last place
        return least
    places = least
    while places < most and rounded(value, places) == rounded(other, places):
        places += 1
    return places


# How a rule compares a deviation's two figures (planned and actual, or two of its ``numbers``) with
# its limits: by their difference (a gap of points, a share, an excess of money) or by their ratio.
# Each figure is shown apart from the other *and* from the other moved by each limit the deviation was
# judged against (``bounds_of``): its threshold, where its severity's band begins and where the next
# begins. Else the figures beside a sentence tell another severity: a unit cost of 2.9998 beside 2,
# 1.4999 times (minor below 1.5), read «۳» beside «۲» — major; 600.50005 beside 600, more than 0.5
# apart, read «۶۰۰٫۵» — not more.
_BY_DIFFERENCE = frozenset({"progress_lag", "progress_regression", "spend_progress_gap", "credit_inconsistency",
                            "inspection_mismatch"})
_BY_RATIO = frozenset({"operation_shortfall", "unit_cost_overrun"})
LIMIT_KEYS = ("threshold", "band", "next")  # the keys of ``numbers`` that hold limits, not the deviation's figures


def bounds_of(numbers: dict | None) -> tuple[Decimal, ...]:
    """The limits a deviation's figures are shown apart from, each once: its threshold
    (``numbers["threshold"]``, as configured when it was judged), where its severity's band begins
    (``"band"``) and where the next severity's begins (``"next"``, none for the highest) — but not one
    its measure sits on (:func:`apart_from`)."""
    numbers = numbers or {}
    found: list[Decimal] = []
    for key in LIMIT_KEYS:
        limit = numbers.get(key)
        if limit is not None and (bound := Decimal(str(limit))) not in found:
            found.append(bound)
    measure = next((numbers[key] for key in _MEASURES if numbers.get(key) is not None), None)
    return apart_from(tuple(found), None if measure is None else Decimal(str(measure)))


_MEASURES = ("gap", "ratio", "difference")  # the key a banded rule keeps its measure under (reconcile/rules/)


def apart_from(bounds: tuple[Decimal, ...], measure: Decimal | None) -> tuple[Decimal, ...]:
    """`bounds` but the one a deviation's `measure` sits on: a rule judges its measure rounded to four
    places (reconciliation-rules.md), so a gap of 14.99995 is 15 and major from 15, and its figures
    read on that bound («۴۰» beside «۵۵»), not apart from it («۴۰٫۰۰۰۱», a gap below 15: a review)."""
    if measure is None or measure not in bounds:
        return bounds
    return tuple(bound for bound in bounds if bound != measure)


def limit_of(numbers: dict | None) -> Decimal | None:
    """The limit a deviation's rule compared it with (``numbers["threshold"]``), None if not kept."""
    limit = (numbers or {}).get("threshold")
    return None if limit is None else Decimal(str(limit))


def places_for(rule: str, value: Decimal | None, other: Decimal | None, bounds: tuple[Decimal, ...] = (),
               *, scale: int = 1) -> int:
    """The places of a deviation's figure `value` beside the `other` it is compared with: apart from
    it (:func:`places_apart`) and from where each of `bounds` (:func:`bounds_of`) puts the other, on
    the value's side, by the way `rule` compares them. `scale` is what the figures were multiplied by
    to be shown (100 for a share shown as a percentage): a limit of a difference is too."""
    places = places_apart(value, other)
    if value is None or other is None or not bounds or value == other:
        return places
    value, other = _decimal(value), _decimal(other)
    above, by_ratio = value > other, rule in _BY_RATIO
    if not by_ratio and rule not in _BY_DIFFERENCE:
        return places
    for bound in bounds:  # a run words ~100,000 such figures: the usual far mark costs a subtraction
        if by_ratio:
            if not bound or not other:
                continue
            mark = other * bound if (bound > 1) == above else other / bound
        else:
            mark = other + bound * scale if above else other - bound * scale
        if abs(value - mark) <= _EXPONENTS[places]:
            places = max(places, places_apart(value, mark))
    return places


def amount(value: Decimal | int | float | None, *, unit: bool = False, places: int | None = None) -> str:
    """A sum of money in million rials: '۱٬۲۵۰' (the column carries the unit) or, with ``unit``,
    '۱٬۲۵۰ میلیون ریال' for a sentence."""
    shown = number(value, places=places)
    return f"{shown} {AMOUNT_UNIT}" if unit and value is not None else shown


def percent(points: Decimal | int | float | None, *, places: int = 1) -> str:
    """Percentage points as people read them, rounded to ``places`` without trailing zeros:
    45.5 -> '۴۵٫۵٪', 45 -> '۴۵٪', 1250 -> '۱٬۲۵۰٪' (grouped as every figure: a trial saw «۱۲۵۰٪»)."""
    if points is None:
        return NOTHING
    if isinstance(points, float):
        points = Decimal(repr(points))
    return percent_sign(number(rounded(Decimal(points), places)))


def percent_sign(shown: str) -> str:
    """A figure :func:`number` wrote, with the percent sign: '۱٬۲۵۰٫۵' -> '۱٬۲۵۰٫۵٪'. After a negative
    figure's isolate, not inside it: in right-to-left text Persian digits after Persian words are
    Arabic numbers to the bidi algorithm, and «۴۵٫۵٪» shows its sign left of the digits; inside the
    isolate the sign of «-۱۲٫۵٪» went to their right. Outside, both show it on the same side, in a
    left-to-right cell (``<bdi dir=ltr>``) too (measured in Chromium)."""
    return f"{shown}٪"


def ratio(value: Decimal | int | float | None, *, places: int = 1) -> str:
    """A ratio shown as a percentage: 0.455 -> '۴۵٫۵٪'."""
    if value is None:
        return NOTHING
    if isinstance(value, float):
        value = Decimal(repr(value))
    return percent(Decimal(value) * 100, places=places)


def day(value: date | datetime | None) -> str:
    """'۱۴۰۵/۰۹/۱۲'; an aware datetime is taken on its Tehran day. None -> '—'."""
    if value is None:
        return NOTHING
    j = to_jalali(value)
    return to_persian_digits(f"{j.year:04d}/{j.month:02d}/{j.day:02d}")


def day_long(value: date | datetime | None) -> str:
    """'۱۲ آذر ۱۴۰۵', for sentences."""
    if value is None:
        return NOTHING
    j = to_jalali(value)
    return f"{to_persian_digits(str(j.day))} {MONTHS[j.month - 1]} {to_persian_digits(str(j.year))}"


def moment(value: datetime | None) -> str:
    """'۱۴۰۵/۰۹/۱۲ ساعت ۰۹:۴۳' in Asia/Tehran; a naive datetime is taken as UTC (the store's)."""
    if value is None:
        return NOTHING
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    local = value.astimezone(TEHRAN)
    return f"{day(local)} ساعت {to_persian_digits(f'{local.hour:02d}:{local.minute:02d}')}"


def jalali_ascii(value: date | datetime | None) -> str | None:
    """'1405/09/12': the Jalali twin of an ISO date in machine formats (JSON, CSV)."""
    if value is None:
        return None
    j = to_jalali(value)
    return f"{j.year:04d}/{j.month:02d}/{j.day:02d}"


def quarter(fiscal_year: int, q: int | None) -> str:
    """'سه‌ماهه دوم ۱۴۰۵'; a finding without a quarter gives the year alone: 'سال ۱۴۰۵'."""
    if not q:
        return f"سال {to_persian_digits(str(fiscal_year))}"
    return f"{QUARTER_NAMES[q]} {to_persian_digits(str(fiscal_year))}"


def code_text(value: str | None) -> str:
    """A code as stored (ASCII digits), isolated left-to-right for plain right-to-left text."""
    return f"{_LRI}{value}{_PDI}" if value else NOTHING


def severity(code: str) -> str:
    return SEVERITY_NAMES.get(code, code)


def status(code: str) -> str:
    return STATUS_NAMES.get(code, code)


def group(code: str) -> str:
    return GROUP_NAMES.get(code, code)


def rule(code: str) -> str:
    """A rule's Persian name; 'capital.progress_lag' and 'progress_lag' both work."""
    return RULE_NAMES.get(code.rpartition(".")[2], code)


def kind(code: str) -> str:
    return KIND_NAMES.get(code, code)


def source(code: str) -> str:
    return SOURCE_NAMES.get(code, code)


# --- a rule's figures, in the unit each compares -------------------------------------------------
# A deviation's planned and actual figures (and the named figures a rule keeps in ``numbers``) are
# percentage points for most capital rules, a share for spending against progress, money, or a
# quantity of an operation's unit. Every output writes them in that unit: e-mails, the console.

POINTS, SHARE, AMOUNT, QUANTITY, TIMES = "points", "share", "amount", "quantity", "times"
SHARE_GAP = "share_gap"  # a difference of two shares, in percentage points: 0.35 -> «۳۵ واحد درصد»
POINT_GAP = "point_gap"  # a difference of two percentages: «۲۵ واحد درصد», as the sentences write it (not «۲۵٪»)
_PLANNED_ACTUAL = {
    ("capital", "spend_progress_gap"): SHARE,
    ("capital", "credit_inconsistency"): AMOUNT,
    ("expense", "credit_inconsistency"): AMOUNT,
    ("expense", "unit_cost_overrun"): AMOUNT,
    ("expense", "operation_shortfall"): QUANTITY,
    ("expense", "approval_overdue"): QUANTITY,
    ("expense", "missing_report"): QUANTITY,
}
_NAMED = {  # a figure kept in a deviation's ``numbers`` (reconcile/rules/), by its name
    **dict.fromkeys(("target", "actual", "start", "target_q4", "previous", "latest_progress", "observed", "reported",
                     "progress", "observed_progress"), POINTS),
    **dict.fromkeys(("gap", "drop", "difference", "planned_gain"), POINT_GAP),
    **dict.fromkeys(("physical_share", "spend_share", "ratio"), SHARE),
    **dict.fromkeys(("absorbed", "notified_total", "spent_cum", "unit_cost", "actual_unit_cost", "value", "limit",
                     "excess", "approved", "notified", "allocated", "spent"), AMOUNT),
    **dict.fromkeys(("planned_cum", "actual_cum", "quantity"), QUANTITY),
}
# spend_progress_gap's gap is a difference of two shares, as its sentence writes it
_NAMED_IN_RULE = {("spend_progress_gap", "gap"): SHARE_GAP,
                  ("unit_cost_overrun", "ratio"): TIMES}


# what a rule's planned and actual figures are (reconciliation-rules.md); «برنامه / عملکرد» otherwise
_PLANNED_ACTUAL_NAMES = {
    ("capital", "spend_progress_gap"): ("سهم جذب اعتبار", "سهم پیشرفت فیزیکی"),
    ("capital", "inspection_mismatch"): ("پیشرفت گزارش‌شده", "پیشرفت مشاهده‌شده"),
    ("capital", "progress_regression"): ("گزارش پیشین", "گزارش‌شده"),
    ("capital", "approval_overdue"): ("برنامه", "پیشرفت گزارش‌شده"),
    ("capital", "credit_inconsistency"): ("سقف", "رقم"),
    ("expense", "credit_inconsistency"): ("سقف", "رقم"),
    ("expense", "unit_cost_overrun"): ("بهای واحد مصوب", "بهای واحد واقعی"),
}


def figure_names(kind: str, rule: str) -> tuple[str, str]:
    """How a rule's planned and actual figures are named to people: («برنامه», «عملکرد») for most."""
    return _PLANNED_ACTUAL_NAMES.get((kind, rule), ("برنامه", "عملکرد"))


def figure_unit(kind: str, rule: str, name: str | None = None) -> str | None:
    """The unit of a rule's planned/actual figures (no ``name``) or of a named one: POINTS, SHARE,
    AMOUNT, QUANTITY, TIMES, or None for a name of no known unit."""
    if name is None:
        return _PLANNED_ACTUAL.get((kind, rule), POINTS)
    return _NAMED_IN_RULE.get((rule, name), _NAMED.get(name))


def figure(kind: str, rule: str, value: Decimal | int | float | None, *, name: str | None = None,
           unit: bool = True, measure: str | None = None, other: Decimal | int | float | None = None,
           bounds: tuple[Decimal, ...] = ()) -> str | None:
    """A rule's figure in its unit: planned/actual (no ``name``) or a named one of its ``numbers``.
    '۵۵٪', '۴۵٫۵٪' (a share), '۱٬۲۵۰ میلیون ریال' (``unit=False``: '۱٬۲۵۰'), '۱٫۲۵ برابر'. None for
    a name of no known unit (the caller writes it as it is). ``measure`` is an operation's unit of
    measure (the deviation's ``numbers["unit"]``), written after a quantity: '۱٬۲۰۰ نفر-ساعت'. ``other``
    is the figure it is compared with (planned beside actual): shown apart from it and from where the
    deviation's ``bounds`` (:func:`bounds_of`) put it, so that the two tell the severity the rule found
    (:func:`places_for`)."""
    how = figure_unit(kind, rule, name)
    if how is None:
        return None
    if how == QUANTITY and measure and value is not None and unit:
        return f"{number(value)} {measure}"
    if how in (POINTS, AMOUNT, SHARE) and value is not None and other is not None:
        scale = 100 if how == SHARE else 1
        places = places_for(rule, _decimal(value) * scale, _decimal(other) * scale, bounds, scale=scale)
        return in_unit(how, value, unit=unit, places=places)
    return in_unit(how, value, unit=unit, other=other)


_ASCII = str.maketrans({"٫": ".", "٬": ",", "٪": "%", **dict.fromkeys(map(ord, "\u2066\u2067\u2068\u2069"))})


def in_ascii(text: str) -> str:
    """A figure as this module writes it, for a terminal (ASCII digits and separators, no isolating
    marks), to the same places: '۶۰۰٫۵۰۰۱' -> '600.5001', '۴۵٫۵٪' -> '45.5%', '۱٬۲۵۰' -> '1,250'."""
    return to_ascii_digits(text).translate(_ASCII)


def measure_of(numbers: dict | None) -> str | None:
    """The unit of measure a deviation's quantities are counted in (an operation's; None for others)."""
    return (numbers or {}).get("unit") or None


def in_unit(how: str, value: Decimal | int | float | None, *, unit: bool = True,
            other: Decimal | None = None, places: int | None = None) -> str:
    """A figure in one of the units above (POINTS, SHARE, AMOUNT, QUANTITY, TIMES, POINT_GAP, SHARE_GAP),
    beside the `other` it is compared with, if any; `places` (POINTS, SHARE, AMOUNT) as the caller chose them."""
    if value is None:
        return NOTHING
    if isinstance(value, float):
        value = Decimal(repr(value))
    # two places, as the finding's sentence writes them (54.99 was '۵۵٪' beside a sentence's '۵۴٫۹۹٪'),
    # more where two places would show it as the figure it was compared with
    if how == POINTS:
        return percent(value, places=places if places is not None else places_apart(value, other))
    if how == SHARE:
        scaled = None if other is None else Decimal(other) * 100
        return ratio(value, places=places if places is not None else places_apart(Decimal(value) * 100, scaled))
    if how == AMOUNT:
        return amount(rounded(Decimal(value), places if places is not None else places_apart(value, other)),
                      unit=unit)
    if how == TIMES:
        return f"{number(value)} برابر"
    if how == POINT_GAP:
        return f"{number(value)} واحد درصد"
    if how == SHARE_GAP:
        return f"{number(Decimal(value) * 100)} واحد درصد"
    return number(value)


# --- the threshold a rule compared its measure with ------------------------------------------------
# presentation.md: every figure a rule compared travels with the deviation, the threshold included.
# The limit is the deviation's own (``numbers["threshold"]``: as configured when it was judged,
# reconcile/rules/); the rules of due days compare days, kept in ``numbers`` too.
_THRESHOLDS = {  # rule -> (the limit's unit, the condition that flags, as people read it)
    "progress_lag": (POINT_GAP, "عقب‌ماندگی {} یا بیشتر"),
    "progress_regression": (POINT_GAP, "کاهش بیش از {}"),
    "spend_progress_gap": (SHARE_GAP, "فاصلهٔ سهم جذب از سهم پیشرفت {} یا بیشتر"),
    "credit_inconsistency": (AMOUNT, "مازاد بیش از {}"),
    "inspection_mismatch": (POINT_GAP, "اختلاف {} یا بیشتر"),
    "operation_shortfall": (SHARE, "تحقق کمتر از {}"),
    "unit_cost_overrun": (TIMES, "بهای واحد واقعی {} مصوب یا بیشتر"),
}
def measure_unit(rule: str) -> str | None:
    """The unit of a deviation's ``measure`` (what its rule compared with the threshold): POINT_GAP,
    SHARE_GAP, SHARE, TIMES, AMOUNT, "years" (completion_overdue), None (the rules of due days)."""
    if rule == "completion_overdue":
        return "years"
    return _THRESHOLDS[rule][0] if rule in _THRESHOLDS else None


_DUE_DAYS = {  # rule -> (the day in ``numbers``, the condition)
    "missing_report": ("due", "ثبت گزارش تا {}"),
    "approval_overdue": ("approval_due", "تأیید ذیحساب تا {}"),
}


_BANDS = {  # rule -> (the bound's unit, how a severity's band is said, the rule's lowest severity)
    "progress_lag": (POINT_GAP, "{severity} از {bound}", "minor"),
    "spend_progress_gap": (SHARE_GAP, "{severity} از {bound}", "major"),
    "inspection_mismatch": (POINT_GAP, "{severity} از {bound}", "major"),
    "operation_shortfall": (SHARE, "{severity} زیر {bound}", "minor"),
    "unit_cost_overrun": (TIMES, "{severity} از {bound}", "minor"),
    "completion_overdue": ("years", "{severity} از {bound}", "minor"),
}


def threshold(rule: str, numbers: dict | None, severity: str | None = None) -> str | None:
    """The condition a deviation's rule flagged it by, with the limit it was judged against:
    'عقب‌ماندگی ۵ واحد درصد یا بیشتر', 'تحقق کمتر از ۸۵٪', 'ثبت گزارش تا ۱۴۰۵/۰۱/۱۵'; given the
    deviation's ``severity`` above the rule's lowest, where that band begins too:
    'عقب‌ماندگی ۵ واحد درصد یا بیشتر؛ بحرانی از ۳۰ واحد درصد'. None when its ``numbers`` hold no
    limit (a deviation recorded before the limits were kept)."""
    said = _condition(rule, numbers or {})
    band = (numbers or {}).get("band")
    if said is None or band is None or rule not in _BANDS or severity in (None, _BANDS[rule][2]):
        return said
    how, words, _lowest = _BANDS[rule]
    bound = f"{number(Decimal(str(band)))} سال تأخیر" if how == "years" else in_unit(how, Decimal(str(band)))
    return f"{said}؛ {words.format(severity=SEVERITY_NAMES.get(severity, severity), bound=bound)}"


def _condition(rule: str, numbers: dict) -> str | None:
    if rule in _THRESHOLDS:
        limit = numbers.get("threshold")
        if limit is None:
            return None
        how, words = _THRESHOLDS[rule]
        return words.format(in_unit(how, Decimal(str(limit)), unit=True))
    if rule in _DUE_DAYS:
        key, words = _DUE_DAYS[rule]
        due = numbers.get(key)
        return words.format(day(date.fromisoformat(due))) if due else None
    if rule == "completion_overdue" and numbers.get("end_year") is not None:
        return f"پایان تا سال {digits(numbers['end_year'])}"
    return None
