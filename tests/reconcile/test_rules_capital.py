"""Capital rules at, just below and just above each edge of reconciliation-rules.md.

Each test states its inputs as the catalogue does (targets, reports, start, credits, visits) and
the flags the catalogue's text expects. As of 1405/09/02 quarters 1 and 2 of 1405 are closed.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconcile.rules.capital import (
    ApprovalOverdue,
    CompletionOverdue,
    CreditInconsistency,
    InspectionMismatch,
    MissingReport,
    ProgressLag,
    ProgressRegression,
    SpendProgressGap,
)
from fact_store import check
from reconcile_builders import as_of, credit, project, report, visit

AUTUMN = as_of("1405/09/02")  # Q1, Q2 closed; Q3 open


def flags(rule, facts, when=AUTUMN, limits=None):
    found = check(rule, facts, when, limits or rule.Limits())
    return None if found is None else [(f.quarter, f.severity) for f in found]


# --- progress_lag: gap = target − actual ≥ 5; minor < 15 ≤ major < 30 ≤ critical ---------------

LAG = ProgressLag()


@pytest.mark.parametrize(("actual", "expected"), [
    ("25.0001", []),             # gap 4.9999
    ("25", [(1, "minor")]),      # gap exactly 5
    ("24.9999", [(1, "minor")]),
    ("15.0001", [(1, "minor")]),  # gap 14.9999
    ("15", [(1, "major")]),      # gap exactly 15
    ("0.0001", [(1, "major")]),  # gap 29.9999
    ("0", [(1, "critical")]),    # gap exactly 30
])
def test_progress_lag_gap_edges(actual, expected):
    assert flags(LAG, project(reports=[report(1, actual)], targets=(30, 45, 60, 80))) == expected


def test_progress_lag_gap_exactly_5_is_minor():
    assert flags(LAG, project(reports=[report(1, 25)])) == [(1, "minor")]


def test_progress_lag_gap_4_99995_rounds_to_5_and_is_minor():
    assert flags(LAG, project(reports=[report(1, "25.00005")])) == [(1, "minor")]


def test_progress_lag_gap_4_99994_rounds_to_4_9999_and_does_not_flag():
    assert flags(LAG, project(reports=[report(1, "25.00006")])) == []


def test_progress_lag_gap_exactly_15_is_major_and_30_critical():
    assert flags(LAG, project(reports=[report(1, 15), report(2, 15)])) == [(1, "major"), (2, "critical")]


def test_progress_lag_ignores_open_quarter():
    # Q3 ends 1405/09/30: on 1405/09/30 it is still open, the next day closed
    facts = project(reports=[report(3, 0)], targets=(30, 45, 60, 80))
    assert flags(LAG, facts, as_of("1405/09/30")) is None
    assert flags(LAG, facts, as_of("1405/10/01")) == [(3, "critical")]


def test_progress_lag_needs_a_report_and_a_target():
    assert flags(LAG, project(reports=[])) is None
    assert flags(LAG, project(reports=[report(1, 0)], targets=(None, 45, 60, 80))) is None


def test_progress_lag_report_with_empty_progress_is_not_judged():
    assert flags(LAG, project(reports=[report(1, None)])) is None


@pytest.mark.parametrize("status", ["cancelled", "awaiting"])
def test_progress_lag_skips_cancelled_and_not_exchanged(status):
    assert flags(LAG, project(reports=[report(1, 0)], status=status)) is None


def test_progress_lag_skips_agreement_without_targets():
    assert flags(LAG, project(reports=[report(1, 0)], targets=(None, None, None, None))) is None


def test_progress_lag_amended_agreement_is_judged():
    assert flags(LAG, project(reports=[report(1, 0)], status="amended")) == [(1, "critical")]


def test_progress_lag_finding_keeps_its_numbers():
    [f] = check(LAG, project(reports=[report(2, 32)], targets=(30, 55, 60, 80)), AUTUMN, LAG.Limits())
    assert (f.planned, f.actual, f.measure) == (Decimal(55), Decimal(32), Decimal(23))
    assert f.numbers == {"target": "55", "actual": "32", "gap": "23", "threshold": "5",
                         "band": "15", "next": "30"}
    assert (f.evidence_table, f.evidence_id, f.sync_run_id) == ("progress_report", 102, 7)
    assert "در پایان سه\u200cماهه دوم ۱۴۰۵ پیشرفت فیزیکی ۳۲٪ گزارش کرده در برابر ۵۵٪ پیش\u200cبینی\u200cشده" in f.message
    # the code as stored, isolated left-to-right (shared/presentation.md), not reversed by the RTL line
    assert "(کد \u20661305012007-003\u2069)" in f.message and "در شهرستان اهواز" in f.message


def test_progress_lag_thresholds_come_from_limits():
    limits = ProgressLag.limits_from(type("S", (), {"minor": 2, "major": 4, "critical": 6})())
    assert flags(LAG, project(reports=[report(1, 26)]), limits=limits) == [(1, "major")]


# --- missing_report: as-of after the due day (quarter end + 15) and no report: major -----------

MISSING = MissingReport()


def test_missing_report_on_the_due_day_does_not_flag():
    # Q1 1405 ends 1405/03/31, due 1405/04/15
    assert flags(MISSING, project(), as_of("1405/04/15")) is None


def test_missing_report_the_day_after_the_due_day_is_major():
    assert flags(MISSING, project(), as_of("1405/04/16")) == [(1, "major")]


def test_missing_report_any_report_even_pending_counts():
    facts = project(reports=[report(1, 10, status="pending")])
    assert flags(MISSING, facts, as_of("1405/04/16")) == []


def test_missing_report_report_without_progress_figure_counts_as_report():
    assert flags(MISSING, project(reports=[report(1, None)]), as_of("1405/04/16")) == []


def test_missing_report_due_days_from_config():
    assert flags(MISSING, project(), as_of("1405/04/01", report_due_days=0)) == [(1, "major")]
    assert flags(MISSING, project(), as_of("1405/03/31", report_due_days=0)) is None


def test_missing_report_skips_cancelled():
    assert flags(MISSING, project(status="cancelled"), as_of("1405/08/01")) is None


# --- approval_overdue: not approved, entered MORE than 15 days before the as-of day: minor ------

APPROVAL = ApprovalOverdue()


def test_approval_overdue_exactly_15_days_does_not_flag():
    facts = project(reports=[report(2, 40, status="pending", reported_on="1405/07/10")])
    assert flags(APPROVAL, facts, as_of("1405/07/25")) == []


def test_approval_overdue_16_days_is_minor():
    facts = project(reports=[report(2, 40, status="pending", reported_on="1405/07/10")])
    assert flags(APPROVAL, facts, as_of("1405/07/26")) == [(2, "minor")]


def test_approval_overdue_rejected_counts_as_not_approved():
    facts = project(reports=[report(2, 40, status="rejected", reported_on="1405/07/10")])
    assert flags(APPROVAL, facts, as_of("1405/08/01")) == [(2, "minor")]


def test_approval_overdue_approved_never_flags():
    facts = project(reports=[report(2, 40, status="approved", reported_on="1405/01/10")])
    assert flags(APPROVAL, facts, as_of("1406/01/01")) == []


def test_approval_overdue_undated_report_counts_from_quarter_end():
    # Q2 ends 1405/06/31: overdue from 1405/07/16 (more than 15 days after)
    facts = project(reports=[report(2, 40, status="pending")])
    assert flags(APPROVAL, facts, as_of("1405/07/15")) == []
    assert flags(APPROVAL, facts, as_of("1405/07/16")) == [(2, "minor")]


# --- progress_regression: actual[q] < previous − 0.5: major -------------------------------------

REGRESSION = ProgressRegression()


def test_progress_regression_drop_exactly_0_5_does_not_flag():
    assert flags(REGRESSION, project(reports=[report(1, 30), report(2, "29.5")])) == []


def test_progress_regression_drop_0_5001_is_major():
    assert flags(REGRESSION, project(reports=[report(1, 30), report(2, "29.4999")])) == [(2, "major")]


def test_progress_regression_first_quarter_compares_with_start():
    assert flags(REGRESSION, project(start=20, reports=[report(1, "19.5")])) == []
    assert flags(REGRESSION, project(start=20, reports=[report(1, "19.4999")])) == [(1, "major")]


def test_progress_regression_previous_is_latest_earlier_reported_quarter():
    # Q2 not reported: Q3 is compared with Q1
    facts = project(reports=[report(1, 40), report(3, 39)])
    assert flags(REGRESSION, facts, as_of("1405/10/01")) == [(3, "major")]
    # Q2 reported lower than Q1 (flags itself); Q3 compared with Q2 only
    facts = project(reports=[report(1, 40), report(2, 35), report(3, 36)])
    assert flags(REGRESSION, facts, as_of("1405/10/01")) == [(2, "major")]


def test_progress_regression_keeps_previous_and_drop():
    [f] = check(REGRESSION, project(reports=[report(1, 30), report(2, 28)]), AUTUMN, REGRESSION.Limits())
    assert (f.planned, f.actual, f.measure) == (Decimal(30), Decimal(28), Decimal(2))


# --- spend_progress_gap: spend_share − physical_share ≥ 0.30 major, ≥ 0.50 critical ------------
# start 20, target[4] 70: planned_gain 50; actual 30: physical_share 0.2; notified_total 1000

GAP = SpendProgressGap()


def _spend(absorbed, **kw):
    return project(start=20, targets=(30, 45, 60, 70), notified_total=1000,
                   reports=[report(1, 30, absorbed=absorbed)], **kw)


@pytest.mark.parametrize(("absorbed", "expected"), [
    ("499.9", []),                 # 0.2999
    ("500", [(1, "major")]),       # exactly 0.30
    ("699.9", [(1, "major")]),     # 0.4999
    ("700", [(1, "critical")]),    # exactly 0.50
])
def test_spend_progress_gap_edges(absorbed, expected):
    assert flags(GAP, _spend(absorbed)) == expected


def test_spend_progress_gap_0_29995_rounds_to_0_30_and_is_major():
    assert flags(GAP, _spend("499.95")) == [(1, "major")]


def test_spend_progress_gap_0_29994_rounds_down_and_does_not_flag():
    assert flags(GAP, _spend("499.94")) == []


def test_spend_progress_gap_computed_from_unrounded_shares():
    # physical share 1/3 (start 0, target 30, actual 10), spend share 0.63325: the gap is
    # 0.2999166…, i.e. 0.2999 — no flag. Rounding the shares first (0.6333 − 0.3333) would say 0.30.
    facts = project(start=0, targets=(10, 20, 25, 30), notified_total=10000,
                    reports=[report(1, 10, absorbed="6332.5")])
    assert flags(GAP, facts) == []
    facts = project(start=0, targets=(10, 20, 25, 30), notified_total=10000,
                    reports=[report(1, 10, absorbed="6333.3334")])  # 0.63333334 − 0.3333… = 0.30000000…
    [f] = check(GAP, facts, AUTUMN, GAP.Limits())
    assert (f.severity, f.measure, f.planned, f.actual) == ("major", Decimal("0.3000"), Decimal("0.6333"),
                                                            Decimal("0.3333"))


def test_spend_progress_gap_empty_absorbed_counts_0():
    assert flags(GAP, _spend(None)) == []


def test_spend_progress_gap_needs_planned_gain_and_notified_total():
    assert flags(GAP, project(start=70, targets=(30, 45, 60, 70), notified_total=1000,
                              reports=[report(1, 30, absorbed=900)])) is None
    assert flags(GAP, project(start=20, targets=(30, 45, 60, 70), notified_total=0,
                              reports=[report(1, 30, absorbed=900)])) is None
    assert flags(GAP, project(start=20, targets=(30, 45, 60, 70), notified_total=None,
                              reports=[report(1, 30, absorbed=900)])) is None


# --- credit_inconsistency: later stage > earlier stage by more than 0.5: major, one per year ----

CREDIT = CreditInconsistency()


@pytest.mark.parametrize(("row", "flagged"), [
    (dict(allocated=100, used="100.5"), False),         # absorbed − allocated = 0.5
    (dict(allocated=100, used="100.5001"), True),
    (dict(notified=100, allocated="100.5"), False),
    (dict(notified=100, allocated="100.5001"), True),
    (dict(approved=100, notified="100.5", allocated=90, used=80), False),
    (dict(approved=100, notified="100.5001", allocated=90, used=80), True),
])
def test_credit_inconsistency_excess_edges(row, flagged):
    values = dict(approved=200, notified=200, allocated=200, used=50) | row
    assert flags(CREDIT, project(credits=[credit(**values)])) == ([(None, "major")] if flagged else [])


def test_credit_inconsistency_empty_figure_counts_0():
    assert flags(CREDIT, project(credits=[credit(approved=None, notified=10, allocated=5, used=1)])) == [(None, "major")]


def test_credit_inconsistency_one_deviation_however_many_rows_break():
    rows = [credit("ملی", 100, 120, 130, 140, id=1), credit("استانی", 10, 20, 30, 40, id=2),
            credit("جمع", 110, 140, 160, 180, table="project_year", id=1)]
    [f] = check(CREDIT, project(credits=rows), AUTUMN, CREDIT.Limits())
    assert len(f.numbers["breaks"]) == 9 and f.quarter is None
    assert (f.evidence_table, f.measure) == ("project_year", Decimal(30))  # total row: notified 140 − approved 110


@pytest.mark.parametrize("status", ["cancelled", "awaiting"])
def test_credit_inconsistency_checks_cancelled_and_awaiting_too(status):
    facts = project(status=status, targets=(None,) * 4, credits=[credit(allocated=100, used=200)])
    assert flags(CREDIT, facts) == [(None, "major")]


def test_credit_inconsistency_not_judged_before_the_year_begins():
    # a trial: a what-if as of 1404/06/01 found 1405's credits inconsistent; the catalogue checks a
    # year once it has begun (a portal may list next year's agreements in Esfand)
    facts = project(credits=[credit(allocated=100, used=200)])
    assert flags(CREDIT, facts, as_of("1404/12/29")) is None
    assert flags(CREDIT, facts, as_of("1405/01/01")) == [(None, "major")]


# --- completion_overdue: Y after end year, latest progress of Y below 100 ------------------------

COMPLETION = CompletionOverdue()


@pytest.mark.parametrize(("end_year", "expected"), [
    (1405, []), (1404, [(None, "minor")]), (1403, [(None, "major")]), (1402, [(None, "critical")]),
    (1400, [(None, "critical")]),
])
def test_completion_overdue_years_late_bands(end_year, expected):
    assert flags(COMPLETION, project(end_year=end_year, reports=[report(1, 90)])) == expected


def test_completion_overdue_progress_exactly_100_does_not_flag():
    assert flags(COMPLETION, project(end_year=1404, reports=[report(1, 100)])) == []


def test_completion_overdue_progress_99_9999_flags():
    assert flags(COMPLETION, project(end_year=1404, reports=[report(1, "99.9999")])) == [(None, "minor")]


def test_completion_overdue_uses_latest_report_of_year_else_start():
    assert flags(COMPLETION, project(end_year=1404, start=100, reports=[])) == []
    assert flags(COMPLETION, project(end_year=1404, start=99, reports=[])) == [(None, "minor")]
    # the latest report (Q2, 100) decides, not an earlier one
    assert flags(COMPLETION, project(end_year=1404, reports=[report(1, 95), report(2, 100)])) == []


def test_completion_overdue_not_judged_before_the_year_begins():
    # a 1405 record stored in Esfand 1404 is judged from 1 Farvardin 1405
    facts = project(end_year=1404, reports=[])
    assert flags(COMPLETION, facts, as_of("1404/12/29")) is None
    assert flags(COMPLETION, facts, as_of("1405/01/01")) == [(None, "minor")]


# --- inspection_mismatch: latest visit of Y vs latest report ended on or before it -------------

MISMATCH = InspectionMismatch()


@pytest.mark.parametrize(("reported", "expected"), [
    ("40.0001", []),                 # 9.9999
    ("40", [(2, "major")]),          # exactly 10
    ("25.0001", [(2, "major")]),     # 24.9999
    ("25", [(2, "critical")]),       # exactly 25
    ("60", [(2, "major")]),          # observed below reported, by 10
    ("75", [(2, "critical")]),
])
def test_inspection_mismatch_difference_edges(reported, expected):
    facts = project(reports=[report(1, 20), report(2, reported)], inspections=[visit("1405/08/10", 50)])
    assert flags(MISMATCH, facts) == expected


def test_inspection_mismatch_uses_report_whose_quarter_ended_on_or_before_visit():
    # a visit on 1405/06/31, Q2's last day, compares with Q2
    facts = project(reports=[report(1, 20), report(2, 40)], inspections=[visit("1405/06/31", 50)])
    assert flags(MISMATCH, facts, as_of("1405/08/01")) == [(2, "major")]
    # a visit on 1405/06/30 compares with Q1 (Q2 not ended yet)
    facts = project(reports=[report(1, 40), report(2, 20)], inspections=[visit("1405/06/30", 50)])
    assert flags(MISMATCH, facts, as_of("1405/08/01")) == [(1, "major")]


def test_inspection_mismatch_compares_with_start_when_no_report_ended():
    facts = project(start=20, reports=[report(1, 45)], inspections=[visit("1405/02/10", 30)])
    assert flags(MISMATCH, facts) == [(None, "major")]


def test_inspection_mismatch_uses_latest_visit_of_the_year_only():
    visits = [visit("1405/07/01", 90, id=1), visit("1405/08/01", 41, id=2), visit("1404/11/01", 0, id=3)]
    facts = project(reports=[report(2, 40)], inspections=visits)
    assert flags(MISMATCH, facts) == []


def test_inspection_mismatch_ignores_visits_after_the_as_of_day():
    facts = project(reports=[report(2, 40)], inspections=[visit("1405/09/10", 90)])
    assert flags(MISMATCH, facts, as_of("1405/09/02")) is None
    assert flags(MISMATCH, facts, as_of("1405/09/11")) == [(2, "critical")]


def test_spend_progress_gap_with_progress_below_the_years_start_says_it_fell():
    # an alerts trial: «اما تنها ⁦-۲۹٫۴۱⁩٪ پیشرفت فیزیکی برنامه‌ریزی‌شده سال را به دست آورده است»
    [fell] = check(GAP, project(start=20, targets=(30, 45, 60, 70), notified_total=1000,
                                reports=[report(1, 10, absorbed=400)]), AUTUMN, GAP.Limits())
    assert fell.actual == Decimal("-0.2") and fell.severity == "critical"  # 0.4 − (−0.2) = 0.6
    assert "اما پیشرفت فیزیکی آن از آغاز سال کاهش یافته است (سهم پیشرفت \u2066-۲۰\u2069٪ از برنامهٔ سال)" in fell.message
    assert "تنها" not in fell.message
    [gained] = check(GAP, _spend(500), AUTUMN, GAP.Limits())
    assert "اما تنها ۲۰٪ پیشرفت فیزیکی برنامه‌ریزی‌شده سال را به دست آورده است" in gained.message
