"""Expense rules at, just below and just above each edge of reconciliation-rules.md.

Operations plan 100 units a quarter unless a test says otherwise; unit cost 1 million rials. As of
1405/09/02 quarters 1 and 2 of 1405 are closed.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconcile.rules.expense import (
    ApprovalOverdue,
    CreditInconsistency,
    MissingReport,
    OperationShortfall,
    UnitCostOverrun,
)
from fact_store import check
from reconcile_builders import agreement, as_of, credit, item, op_unit, operation

AUTUMN = as_of("1405/09/02")


def flags(rule, facts, when=AUTUMN):
    found = check(rule, facts, when, rule.Limits())
    return None if found is None else [(f.quarter, f.severity) for f in found]


# --- operation_shortfall: actual_cum / planned_cum < 0.85; minor ≥ 0.70, major ≥ 0.40, critical --

SHORTFALL = OperationShortfall()


@pytest.mark.parametrize(("quantity", "expected"), [
    ("85", []),                       # exactly 0.85
    ("84.9999", []),                  # 0.849999 rounds to 0.85
    ("84.9995", []),                  # 0.849995 rounds half up to 0.85
    ("84.995", []),                   # 0.84995 rounds half up to 0.85
    ("84.994", [(1, "minor")]),       # 0.84994 rounds to 0.8499
    ("84.99", [(1, "minor")]),
    ("70", [(1, "minor")]),           # exactly 0.70
    ("69.99", [(1, "major")]),
    ("40", [(1, "major")]),           # exactly 0.40
    ("39.99", [(1, "critical")]),
    ("0", [(1, "critical")]),
])
def test_operation_shortfall_ratio_edges(quantity, expected):
    assert flags(SHORTFALL, op_unit(items=[item(1, quantity)]), as_of("1405/05/01")) == expected


def test_operation_shortfall_ratio_0_85_does_not_flag():
    assert flags(SHORTFALL, op_unit(items=[item(1, 85)]), as_of("1405/05/01")) == []


def test_operation_shortfall_ratio_0_849996_rounds_to_0_85_and_does_not_flag():
    # planned 250 000 in Q1; 212 499 / 250 000 = 0.849996
    unit = op_unit(targets=(250000, 0, 0, 0), items=[item(1, 212499)])
    assert flags(SHORTFALL, unit, as_of("1405/05/01")) == []


def test_operation_shortfall_is_year_to_date():
    # Q1 90/100 fine; Q2 cumulative (90 + 60) / 200 = 0.75 minor
    unit = op_unit(items=[item(1, 90), item(2, 60)])
    assert flags(SHORTFALL, unit) == [(2, "minor")]


def test_operation_shortfall_judges_each_closed_quarter_in_order():
    # short at Q1 (50 / 100) and at Q2 (100 / 200): a finding each, Q1 first
    assert flags(SHORTFALL, op_unit(items=[item(1, 50), item(2, 50)])) == [(1, "major"), (2, "major")]
    # short at Q1, caught up by Q2 (200 / 200): Q1 only
    assert flags(SHORTFALL, op_unit(items=[item(1, 50), item(2, 150)])) == [(1, "major")]


def test_operation_shortfall_empty_quantity_counts_0():
    assert flags(SHORTFALL, op_unit(items=[item(1, None, 50)]), as_of("1405/05/01")) == [(1, "critical")]


def test_operation_shortfall_needs_a_report_in_quarters_1_to_q():
    assert flags(SHORTFALL, op_unit(items=[]), AUTUMN) is None
    # reported in Q2 only: Q1 not judged, Q2 judged year to date (100 / 200)
    assert flags(SHORTFALL, op_unit(items=[item(2, 100)])) == [(2, "major")]


def test_operation_shortfall_needs_planned_cum_above_0():
    assert flags(SHORTFALL, op_unit(targets=(0, 0, 100, 100), items=[item(1, 0)])) is None


@pytest.mark.parametrize("status", ["cancelled", "awaiting"])
def test_operation_shortfall_skips_cancelled_and_awaiting(status):
    assert flags(SHORTFALL, op_unit(items=[item(1, 0)], agreement_status=status)) is None


def test_operation_shortfall_subject_is_agreement_and_operation():
    [f] = check(SHORTFALL, op_unit(items=[item(1, 50)]), as_of("1405/05/01"), SHORTFALL.Limits())
    assert f.subject == "1405-032-11002/11002-03" and f.kind == "expense"
    assert (f.planned, f.actual, f.measure) == (Decimal(100), Decimal(50), Decimal("0.5"))


# --- unit_cost_overrun: (spent_cum / actual_cum) / unitCost ≥ 1.20; major from 1.50 ------------

OVERRUN = UnitCostOverrun()


@pytest.mark.parametrize(("spent", "expected"), [
    ("119.99", []),                # 1.1999
    ("119.995", [(1, "minor")]),   # 1.19995 rounds to 1.2
    ("120", [(1, "minor")]),       # exactly 1.20
    ("149.99", [(1, "minor")]),
    ("150", [(1, "major")]),       # exactly 1.50
])
def test_unit_cost_overrun_ratio_edges(spent, expected):
    assert flags(OVERRUN, op_unit(unit_cost=1, items=[item(1, 100, spent)]), as_of("1405/05/01")) == expected


def test_unit_cost_overrun_unit_cost_not_1():
    # 100 units for 102 at 0.85 each: 1.02 / 0.85 = 1.2 exactly
    assert flags(OVERRUN, op_unit(unit_cost="0.85", items=[item(1, 100, 102)]), as_of("1405/05/01")) == [(1, "minor")]


def test_unit_cost_overrun_needs_quantity_and_unit_cost():
    assert flags(OVERRUN, op_unit(items=[item(1, 0, 500)]), as_of("1405/05/01")) is None
    assert flags(OVERRUN, op_unit(unit_cost=0, items=[item(1, 10, 500)]), as_of("1405/05/01")) is None
    assert flags(OVERRUN, op_unit(unit_cost=None, items=[item(1, 10, 500)]), as_of("1405/05/01")) is None


def test_unit_cost_overrun_empty_spent_counts_0():
    assert flags(OVERRUN, op_unit(items=[item(1, 100, None)]), as_of("1405/05/01")) == []


def test_unit_cost_overrun_is_year_to_date():
    # Q1 100 for 100 (1.0); Q2 +100 for 200: cumulative 300 / 200 = 1.5 major
    assert flags(OVERRUN, op_unit(items=[item(1, 100, 100), item(2, 100, 200)])) == [(2, "major")]


def test_unit_cost_overrun_judges_each_closed_quarter_in_order():
    # 1.3 at Q1 and year to date at Q2 (260 / 200): a finding each, Q1 first
    assert flags(OVERRUN, op_unit(items=[item(1, 100, 130), item(2, 100, 130)])) == [(1, "minor"), (2, "minor")]
    # 1.5 at Q1, back to 1.0 year to date by Q2 (200 / 200): Q1 only
    assert flags(OVERRUN, op_unit(items=[item(1, 100, 150), item(2, 100, 50)])) == [(1, "major")]


# --- missing_report: after q's due day, no item for q at all while an operation plans q ----------

MISSING = MissingReport()


def test_missing_report_expense_on_due_day_does_not_flag_and_day_after_does():
    facts = agreement(operations=[operation(items=[])])
    assert flags(MISSING, facts, as_of("1405/04/15")) is None
    assert flags(MISSING, facts, as_of("1405/04/16")) == [(1, "major")]


def test_missing_report_expense_any_operation_item_counts():
    facts = agreement(operations=[operation(items=[]), operation(code="11002-04", items=[item(1, 5)])])
    assert flags(MISSING, facts, as_of("1405/04/16")) == []


def test_missing_report_expense_needs_a_planned_quantity_in_q():
    facts = agreement(operations=[operation(targets=(0, 100, 100, 100), items=[])])
    assert flags(MISSING, facts, as_of("1405/04/16")) == []
    facts = agreement(operations=[operation(targets=(None, 100, 100, 100), items=[])])
    assert flags(MISSING, facts, as_of("1405/04/16")) == []


def test_missing_report_expense_subject_is_the_agreement():
    [f] = check(MISSING, agreement(operations=[operation()]), as_of("1405/04/16"), MISSING.Limits())
    assert f.subject == "1405-032-11002" and f.evidence_table == "expense_agreement"


def test_missing_report_expense_skips_awaiting():
    assert flags(MISSING, agreement(operations=[operation()], status="awaiting"), as_of("1405/08/01")) is None


# --- approval_overdue (per performance item) ---------------------------------------------------

APPROVAL = ApprovalOverdue()


def test_approval_overdue_expense_edges():
    unit = op_unit(items=[item(2, 100, 50, status="pending", reported_on="1405/07/10")])
    assert flags(APPROVAL, unit, as_of("1405/07/25")) == []
    assert flags(APPROVAL, unit, as_of("1405/07/26")) == [(2, "minor")]


def test_approval_overdue_expense_subject_and_quarter_of_the_item():
    unit = op_unit(items=[item(1, 100, status="approved", reported_on="1405/04/01"),
                          item(2, 100, status="rejected", reported_on="1405/07/01")])
    [f] = check(APPROVAL, unit, as_of("1405/08/01"), APPROVAL.Limits())
    assert (f.subject, f.quarter, f.evidence_table) == ("1405-032-11002/11002-03", 2, "operation_performance")


# --- credit_inconsistency (chapters) ----------------------------------------------------------

CREDIT = CreditInconsistency()


@pytest.mark.parametrize(("spent", "flagged"), [("100.5", False), ("100.5001", True)])
def test_credit_inconsistency_expense_spent_over_allocated(spent, flagged):
    facts = agreement(credits=[credit("فصل ۱", 200, 200, 100, spent, table="expense_credit")])
    assert flags(CREDIT, facts) == ([(None, "major")] if flagged else [])


def test_credit_inconsistency_expense_not_judged_before_the_year_begins():
    facts = agreement(credits=[credit("فصل ۱", 200, 200, 100, 300, table="expense_credit")])
    assert flags(CREDIT, facts, as_of("1404/12/29")) is None
    assert flags(CREDIT, facts, as_of("1405/01/01")) == [(None, "major")]


def test_credit_inconsistency_expense_one_per_agreement_checked_even_when_cancelled():
    chapters = [credit("فصل ۱", 100, 200, 300, 400, id=1, table="expense_credit"),
                credit("فصل ۲", 100, 200, 300, 400, id=2, table="expense_credit")]
    assert flags(CREDIT, agreement(credits=chapters, status="cancelled")) == [(None, "major")]
