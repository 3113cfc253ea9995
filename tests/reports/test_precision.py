"""The places each figure of the report is shown with (reports/precision.py), which the page writes
and the workbook's number format repeats."""

from __future__ import annotations

from decimal import Decimal

import pytest

from foundation import present
from reconcile.settings import RulesConfig
from reports import precision
from reports.model import Limits


@pytest.mark.parametrize("shown, text, number_format", [
    (precision.points(Decimal("45.5")), "۴۵٫۵٪", "0.0%"),
    (precision.points(Decimal(21)), "۲۱٪", "0%"),  # no trailing zero, as present.percent writes it
    (precision.ratio(Decimal("0.84994"), [Decimal("0.85")]), "۸۴٫۹۹٪", "0.00%"),  # not on the limit it is below
    (precision.ratio(Decimal("0.84994")), "۸۵٪", "0%"),  # no limit near: one place, its zero dropped
    (precision.ratio(Decimal("0.85")), "۸۵٪", "0%"),
    (precision.ratio(Decimal("1.19996"), [Decimal("1.2"), Decimal("1.5")]), "۱۱۹٫۹۹۶٪", "0.000%"),
    (precision.points(Decimal("4.96"), [Decimal(5), Decimal(15), Decimal(30)]), "۴٫۹۶٪", "0.00%"),
    (precision.points(Decimal(1250)), "۱٬۲۵۰٪", "0%"),  # grouped, as every figure (a trial: «۱۲۵۰٪»)
    (precision.points(Decimal("-1.4")), "\u2066-۱٫۴\u2069٪", "0.0%"),  # its minus left of its digits
    (precision.quantity(Decimal("849.94")), "۸۴۹٫۹۴", "#,##0.00"),
    (precision.quantity(Decimal("849.50")), "۸۴۹٫۵", "#,##0.0"),
    (precision.quantity(Decimal("1000")), "۱٬۰۰۰", "#,##0"),
    (precision.quantity(Decimal("849.999")), "۸۵۰", "#,##0"),
    (precision.unit_cost(Decimal(2)), "۲٫۰۰", "#,##0.00"),
    (precision.unit_cost(Decimal("0.5666")), "۰٫۵۷", "#,##0.00"),
    (precision.whole(Decimal("1699.88")), "۱٬۷۰۰", "#,##0"),
])
def test_a_figure_is_written_and_formatted_to_the_same_places(shown, text, number_format):
    assert (shown.text(), shown.number_format()) == (text, number_format)


@pytest.mark.parametrize("kind, rule, value, other, bounds", [
    ("capital", "progress_lag", Decimal(45), Decimal("31.75"), ()),
    ("capital", "progress_lag", Decimal("31.75"), Decimal(45), ()),
    ("capital", "progress_lag", Decimal("30.004"), Decimal(45), (Decimal(5), Decimal(15))),
    ("capital", "completion_overdue", Decimal("99.996"), Decimal(100), ()),
    ("capital", "spend_progress_gap", Decimal("0.45"), Decimal("0.1"), ()),
    ("capital", "spend_progress_gap", Decimal("0.100004"), Decimal("0.6"), (Decimal("0.3"), Decimal("0.5"))),
    ("capital", "credit_inconsistency", Decimal("600.50005"), Decimal(600), (Decimal("0.5"),)),
    ("expense", "unit_cost_overrun", Decimal("2.504"), Decimal("2.5"), ()),
    ("expense", "unit_cost_overrun", Decimal("2.9998"), Decimal(2), (Decimal("1.2"), Decimal("1.5"))),
    ("expense", "operation_shortfall", Decimal("849.94"), Decimal(1000), ()),
    ("expense", "operation_shortfall", Decimal("849.945"), Decimal(1000), ()),
])
def test_a_deviations_figure_has_the_places_its_rule_writes_it_with(kind, rule, value, other, bounds):
    # the workbook's cell must read as the page's and the e-mail's (present.figure)
    written = present.figure(kind, rule, value, other=other, bounds=bounds, unit=False)
    shown = precision.rule_figure(kind, rule, value, other, bounds)
    assert shown.text() == written


def test_the_limits_are_those_configured():
    rules = RulesConfig.model_validate({"operation_shortfall": {"threshold": 0.9}, "progress_lag": {"minor": 4}})
    limits = Limits.of(rules)
    assert limits.achievement == (Decimal("0.9"), Decimal("0.7"), Decimal("0.4"))
    assert limits.gap == (Decimal(4), Decimal(15), Decimal(30))
    assert Limits.of().cost_ratio == (Decimal("1.2"), Decimal("1.5"))  # the catalogue's
