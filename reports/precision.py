"""How many decimal places each figure of the report is shown with: one decision for the workbook
(reports/excel.py turns it into the cell's number format) and the page (reports/html.py writes it
through foundation.present), so that the two never show the same figure two ways. The console's
credit tables (a project's credits by source, an agreement's by chapter: web/pages/subjects.py) take
their places from here too.

- counts and days: whole;
- million rials (a credit stage, spending): up to two places, trailing zeros dropped, as a finding's
  sentence, the e-mails and the console write an amount (present.amount: ``۱٬۲۵۰٫۵``, ``۶۰۰``;
  Excel ``#,##0.0``, ``#,##0``) — never whole. A row of credit stages (approved, notified, allocated,
  absorbed or spent: :func:`credit_stages`) shows each stage beside the one before it as
  credit_inconsistency's finding does (present.places_for with the rule's tolerance, 0.5 million
  rials by default): more places where two would show a stage on the other side of «exceeds the
  one before by more than the tolerance» than it is. Whole numbers hid the rule's breaks: notified
  599.8 and allocated 600.4 (allocated 0.6 above: flagged) read ``۶۰۰`` beside ``۶۰۰``; at two places
  they read ``۵۹۹٫۸`` and ``۶۰۰٫۴``, and 600.5001 beside 600 reads ``۶۰۰٫۵۰۰۱``, not ``۶۰۰٫۵`` (an
  excess of 0.50004, which the rule rounds to four places and so does not flag, reads ``۶۰۰٫۵``). A
  flagged break is so visible in every table that shows the row: the console's, the page's, the
  workbook's;
- a unit cost: two places (``۲٫۰۰`` and ``2.00``);
- a quantity: up to two places, without trailing zeros (``۸۴۹٫۹۴``, ``۱٬۰۰۰``);
- a difference of two percentages (a project's gap from its target): percentage points, a number in
  a column that says «واحد درصد», to the places of a percentage (:func:`point_gap`);
- a percentage or ratio: one place with its trailing zero dropped, as present.percent writes it in
  the console and the e-mails (``۴۵٫۵٪``, ``۸۵٪``; Excel's ``0.0%`` and ``0%``), and more where one
  place would show it *on* a threshold its rule compares it with while it is not there: an operation
  that delivered 84.994 % of its plan, flagged for delivering less than 85 %, reads ``۸۴٫۹۹٪``, not
  ``۸۵٪`` (the thresholds are the report's ``Limits``; present.places_apart counts the places);
- a deviation's planned and actual figures: as its rule writes them in the e-mails and the console
  (present.figure), to the place, trailing zeros dropped (:func:`as_written`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from foundation import present

PERCENT_PLACES = 1
UNIT_COST_PLACES = 2
QUANTITY_PLACES = 2  # at most
AMOUNT_PLACES = 2  # at most, as present.amount writes a finding's amount
CREDIT_RULE = "credit_inconsistency"  # the rule that compares a row's credit stages


@dataclass(frozen=True)
class Shown:
    """A figure as the report shows it: its value in the unit shown (percentage points for a
    percentage) and the decimal places written, trailing zeros included."""

    value: Decimal
    places: int
    percent: bool = False

    def text(self) -> str:
        """For the page: '۸۴٫۹۹٪', '۱٬۲۵۰', '۲٫۰۰' (present.number: Persian digits and separators;
        a percentage as present.percent writes it)."""
        shown = present.number(self.value, places=self.places)
        return present.percent_sign(shown) if self.percent else shown

    def number_format(self) -> str:
        """For the workbook: the format that shows the cell's number as :meth:`text` does."""
        decimals = "." + "0" * self.places if self.places else ""
        # a percentage as shared/presentation.md writes its format (`0.0%`): a thousand per cent and
        # more, where the page groups its digits, is too rare in a budget's figures to part from it
        return f"0{decimals}%" if self.percent else f"#,##0{decimals}"

    def cell_value(self) -> float:
        """The number the cell holds, exact as stored (a percentage as Excel's fraction)."""
        if present.rounded(self.value, self.places) == 0:  # -0.04 shown "0": Excel would write "-0"
            return 0.0
        return float(self.value / 100 if self.percent else self.value)


def _decimal(value: Decimal | int | float) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def whole(value: Decimal | int | float | None) -> Shown | None:
    """A count (an amount in million rials is :func:`amount`)."""
    return None if value is None else Shown(_decimal(value), 0)


def unit_cost(value: Decimal | int | float | None) -> Shown | None:
    return None if value is None else Shown(_decimal(value), UNIT_COST_PLACES)


def as_written(value: Decimal | int | float | None, places: int) -> Shown | None:
    """``value`` rounded to ``places`` with the trailing zeros dropped, as present.number writes a
    figure without fixed places: 849.94 -> 2 places, 850.00 -> none."""
    if value is None:
        return None
    value = _decimal(value)
    written = present.rounded(value, places).normalize()
    return Shown(value, max(-written.as_tuple().exponent, 0))


def amount(value: Decimal | int | float | None) -> Shown | None:
    """Million rials outside a row of credit stages (an operation's spending): up to two places,
    trailing zeros dropped, as present.amount writes a finding's amount (1699.88 -> '۱٬۶۹۹٫۸۸')."""
    return as_written(value, AMOUNT_PLACES)


def credit_stages(stages: Sequence[Decimal | int | float | None],
                  limits: Iterable[Decimal] = ()) -> list[Shown | None]:
    """One row's credit stages in the catalogue's order — approved, notified, allocated, then absorbed
    (a project's source row or total) or spent (an agreement's chapter) — each as :func:`amount`, and
    with the places credit_inconsistency's finding writes it with beside the stage before and after it
    (present.places_for with ``limits``, the rule's tolerance in million rials): 600.5001 beside 600,
    flagged for exceeding it by more than 0.5, reads '۶۰۰٫۵۰۰۱', not '۶۰۰٫۵'. An empty stage is shown
    empty (None) and compared as 0, as the rule counts it."""
    values = [None if v is None else _decimal(v) for v in stages]
    compared = [Decimal(0) if v is None else v for v in values]
    limits = tuple(_decimal(limit) for limit in limits)
    places = [AMOUNT_PLACES] * len(values)
    for i in range(1, len(values)):  # each stage against the one before it (rules' pairs are adjacent)
        earlier, later = compared[i - 1], compared[i]
        # the rule compares the excess rounded to four places: one of 0.50004 is 0.5, not more, and
        # reads so («۶۰۰٫۵» beside «۶۰۰»), not apart from the tolerance it sits on
        excess = present.rounded(later - earlier, 4)
        bounds = present.apart_from(limits, excess)
        places[i] = max(places[i], present.places_for(CREDIT_RULE, later, earlier, bounds))
        places[i - 1] = max(places[i - 1], present.places_for(CREDIT_RULE, earlier, later, bounds))
    return [None if v is None else as_written(v, p) for v, p in zip(values, places)]


def credit_texts(stages: Sequence[Decimal | int | float | None], limits: Iterable[Decimal] = ()) -> list[str]:
    """:func:`credit_stages` as the console's tables write them ('—' for an empty stage)."""
    return [present.NOTHING if s is None else s.text() for s in credit_stages(stages, limits)]


def quantity(value: Decimal | int | float | None) -> Shown | None:
    """A quantity of an operation's unit: up to two places."""
    return as_written(value, QUANTITY_PLACES)


def points(value: Decimal | int | float | None, limits: Iterable[Decimal] = (), *, scale: int = 1) -> Shown | None:
    """Percentage points (45.5 -> '۴۵٫۵٪'): one place, or the places that tell it from each of
    ``limits`` (in points) one place would show it on. A figure given ``limits`` is a rule's measure
    (``scale`` times it: 100 for a ratio shown as a percentage), which the rule rounds to four places
    before it compares it (reconciliation-rules.md): a gap of 4.99995 is 5, on a threshold of 5 and
    flagged, and reads «۵», not «۴٫۹۹۹۹۵» (a figure below the threshold beside its deviation: a trial)."""
    if value is None:
        return None
    value = _decimal(value)
    limits = [Decimal(limit) for limit in limits]
    judged = present.rounded(value / scale, present.JUDGED_PLACES) * scale if limits else value
    places = max([PERCENT_PLACES, *(present.places_apart(judged, limit, least=PERCENT_PLACES) for limit in limits)])
    written = as_written(value, places)  # trailing zeros dropped, as present.percent writes it
    return Shown(value, written.places, percent=True)


def point_gap(value: Decimal | int | float | None, limits: Iterable[Decimal] = ()) -> Shown | None:
    """A difference of two percentages in percentage points, a number whose column says «واحد درصد»
    as the sentences, e-mails and console write such a difference (a project's gap from its target:
    1.2 -> '۱٫۲', Excel ``#,##0.0``, never '۱٫۲٪' or ``0.0%``); to the places of :func:`points`."""
    shown = points(value, limits)
    return None if shown is None else Shown(shown.value, shown.places)


def ratio(value: Decimal | int | float | None, limits: Iterable[Decimal] = ()) -> Shown | None:
    """A ratio shown as a percentage (0.84994 -> '۸۴٫۹۹٪' beside a limit of 0.85); ``limits`` are ratios."""
    if value is None:
        return None
    return points(_decimal(value) * 100, [Decimal(limit) * 100 for limit in limits], scale=100)


def rule_figure(kind: str, rule: str, value: Decimal | int | float | None, other: Decimal | int | float | None,
                bounds: tuple[Decimal, ...] = ()) -> Shown | None:
    """A deviation's planned or actual figure beside the ``other`` it was compared with, in its rule's
    unit and to the places present.figure writes it (so the workbook's cell reads as the page's and
    the e-mail's): percentages and amounts to two places, more where two would show it as the other
    figure or on the other side of one of the limits it was judged against (``bounds``,
    present.bounds_of); a quantity as stored."""
    if value is None:
        return None
    value = _decimal(value)
    other = None if other is None else _decimal(other)
    unit = present.figure_unit(kind, rule)
    if unit == present.QUANTITY:
        return as_written(value, 12)
    if unit in (present.POINTS, present.SHARE):
        scale = 1 if unit == present.POINTS else 100
        compared = None if other is None else other * scale
        places = present.places_for(rule, value * scale, compared, bounds, scale=scale)
        written = as_written(value * scale, places)
        return Shown(written.value, written.places, percent=True)
    return as_written(value, present.places_for(rule, value, other, bounds))
