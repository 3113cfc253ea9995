"""How many decimal places each figure of the report is shown with: one decision for the workbook
(reports/excel.py turns it into the cell's number format) and the page (reports/html.py writes it
through foundation.present), so that the two never show the same figure two ways.

- counts, days and million rials: whole;
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

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from foundation import present

PERCENT_PLACES = 1
UNIT_COST_PLACES = 2
QUANTITY_PLACES = 2  # at most


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
    """A count or an amount in million rials."""
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


def quantity(value: Decimal | int | float | None) -> Shown | None:
    """A quantity of an operation's unit: up to two places."""
    return as_written(value, QUANTITY_PLACES)


def points(value: Decimal | int | float | None, limits: Iterable[Decimal] = ()) -> Shown | None:
    """Percentage points (45.5 -> '۴۵٫۵٪'): one place, or the places that tell it from each of
    ``limits`` (in points) one place would show it on."""
    if value is None:
        return None
    value = _decimal(value)
    places = max([PERCENT_PLACES, *(present.places_apart(value, Decimal(limit), least=PERCENT_PLACES)
                                    for limit in limits)])
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
    return points(_decimal(value) * 100, [Decimal(limit) * 100 for limit in limits])


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
