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
    # a measure given limits is judged rounded to four places (reconciliation-rules.md): 1.19996 is
    # 1.2, on the limit and flagged, and reads so; 1.19994 is 1.1999, below it (a trial: «۱۱۹٫۹۹۵٪»)
    (precision.ratio(Decimal("1.19996"), [Decimal("1.2"), Decimal("1.5")]), "۱۲۰٪", "0%"),
    (precision.ratio(Decimal("1.19995"), [Decimal("1.2"), Decimal("1.5")]), "۱۲۰٪", "0%"),
    (precision.ratio(Decimal("1.19994"), [Decimal("1.2"), Decimal("1.5")]), "۱۱۹٫۹۹٪", "0.00%"),
    (precision.points(Decimal("4.99995"), [Decimal(5), Decimal(15), Decimal(30)]), "۵٪", "0%"),
    (precision.point_gap(Decimal("4.99995"), [Decimal(5), Decimal(15), Decimal(30)]), "۵", "#,##0"),
    (precision.point_gap(Decimal("4.99994"), [Decimal(5), Decimal(15), Decimal(30)]), "۴٫۹۹۹۹", "#,##0.0000"),
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
    assert Limits.of().credit == (Decimal("0.5"),)  # credit_inconsistency's tolerance, million rials
    assert Limits.of(RulesConfig.model_validate({"credit_inconsistency": {"tolerance": 1.5}})).credit == (Decimal("1.5"),)


TOLERANCE = (Decimal("0.5"),)  # credit_inconsistency's, million rials


@pytest.mark.parametrize("stages, texts, formats", [
    # a trial: notified 599.8 and allocated 600.4 (flagged: 0.6 more) read «۶۰۰» beside «۶۰۰» in the report
    (("1250.5", "599.8", "600.4", 300), ["۱٬۲۵۰٫۵", "۵۹۹٫۸", "۶۰۰٫۴", "۳۰۰"],
     ["#,##0.0", "#,##0.0", "#,##0.0", "#,##0"]),
    # up to two places, trailing zeros dropped, as a finding writes an amount (present.amount)
    (("1699.88", "1699.884", "1000.10", "0.5666"), ["۱٬۶۹۹٫۸۸", "۱٬۶۹۹٫۸۸۴", "۱٬۰۰۰٫۱", "۰٫۵۷"],
     ["#,##0.00", "#,##0.000", "#,##0.0", "#,##0.00"]),  # 1699.884 beside 1699.88: told apart, as a finding
    # flagged for more than 0.5: «۶۰۰٫۵» would read as at the tolerance
    ((700, 600, "600.5001", 0), ["۷۰۰", "۶۰۰", "۶۰۰٫۵۰۰۱", "۰"], ["#,##0", "#,##0", "#,##0.0000", "#,##0"]),
    # 0.50004 more is 0.5 to the rule (rounded to four places), not more: it reads at the tolerance
    ((700, 600, "600.50004", 0), ["۷۰۰", "۶۰۰", "۶۰۰٫۵", "۰"], ["#,##0", "#,##0", "#,##0.0", "#,##0"]),
    # 0.496 more, not flagged: «۶۰۰» beside «۶۰۰٫۵» would read as at it; 600.004 beside 600.5 does not
    ((700, "600.004", "600.5", 0), ["۷۰۰", "۶۰۰٫۰۰۴", "۶۰۰٫۵", "۰"], ["#,##0", "#,##0.000", "#,##0.0", "#,##0"]),
])
def test_a_rows_credit_stages_show_every_break_the_rule_flags(stages, texts, formats):
    shown = precision.credit_stages([Decimal(str(v)) for v in stages], TOLERANCE)
    assert [s.text() for s in shown] == texts
    assert [s.number_format() for s in shown] == formats
    assert precision.credit_texts(stages, TOLERANCE) == texts  # the console's cells


def test_an_empty_credit_stage_is_shown_empty_and_compared_as_0():
    # the catalogue counts an empty figure as 0: 0.6 notified over an empty approved is a break
    assert precision.credit_texts([None, "0.6", None, None], TOLERANCE) == ["—", "۰٫۶", "—", "—"]
    assert precision.credit_texts([None, "0.5001"], TOLERANCE) == ["—", "۰٫۵۰۰۱"]  # flagged: not «۰٫۵»


def test_an_amount_outside_a_row_of_stages_has_up_to_two_places():
    assert [(s.text(), s.number_format()) for s in map(precision.amount, ("1699.88", 1700, "1250.50"))] == [
        ("۱٬۶۹۹٫۸۸", "#,##0.00"), ("۱٬۷۰۰", "#,##0"), ("۱٬۲۵۰٫۵", "#,##0.0")]
