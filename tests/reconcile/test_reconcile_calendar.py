"""The as-of day, closed quarters and due days across Esfand 29/30 and year ends.

1403 is a leap year (Esfand has 30 days); 1404 is not. A quarter is closed when its last day is
before the as-of day; its report is due report_due_days (15) later and missing only after that day.
"""

from __future__ import annotations

import pytest

from reconcile.rules.capital import MissingReport, ProgressLag
from reconcile.rules.expense import MissingReport as ExpenseMissingReport
from fact_store import check
from reconcile_builders import agreement, as_of, day, operation, project, report


@pytest.mark.parametrize(("when", "closed"), [
    ("1405/03/31", ()), ("1405/04/01", (1,)), ("1405/06/31", (1,)), ("1405/07/01", (1, 2)),
    ("1405/09/30", (1, 2)), ("1405/10/01", (1, 2, 3)),
])
def test_closed_quarters_within_the_year(when, closed):
    assert as_of(when).closed_quarters(1405) == closed


def test_leap_year_1403_esfand_30_is_still_open():
    assert day("1403/12/30")  # exists
    assert as_of("1403/12/30").closed_quarters(1403) == (1, 2, 3)
    assert as_of("1404/01/01").closed_quarters(1403) == (1, 2, 3, 4)


def test_common_year_1404_closes_after_esfand_29():
    with pytest.raises(ValueError):
        day("1404/12/30")
    assert as_of("1404/12/29").closed_quarters(1404) == (1, 2, 3)
    assert as_of("1405/01/01").closed_quarters(1404) == (1, 2, 3, 4)


def test_past_year_has_all_quarters_closed_and_future_year_none():
    assert as_of("1406/05/01").closed_quarters(1405) == (1, 2, 3, 4)
    assert as_of("1405/05/01").closed_quarters(1406) == ()


def test_q4_1403_due_day_counts_esfand_30():
    # Q4 1403 ends 1403/12/30; due 15 days later: 1404/01/15
    assert as_of("1404/01/01").report_due(1403, 4) == day("1404/01/15")
    facts = project(year=1403, reports=[report(q, 50) for q in (1, 2, 3)])
    assert (day("1404/01/15") - day("1403/12/30")).days == 15
    assert check(MissingReport(), facts, as_of("1404/01/15"), None) == []
    [f] = check(MissingReport(), facts, as_of("1404/01/16"), None)
    assert (f.fiscal_year, f.quarter) == (1403, 4)


def test_q4_1404_due_day_counts_esfand_29():
    # Q4 1404 ends 1404/12/29 (no Esfand 30); due 15 days later: 1405/01/15
    assert as_of("1405/01/01").report_due(1404, 4) == day("1405/01/15")
    assert (day("1405/01/15") - day("1404/12/29")).days == 15
    facts = project(year=1404, reports=[report(q, 50) for q in (1, 2, 3)])
    assert check(MissingReport(), facts, as_of("1405/01/15"), None) == []
    [f] = check(MissingReport(), facts, as_of("1405/01/16"), None)
    assert (f.fiscal_year, f.quarter) == (1404, 4)


def test_q4_progress_is_judged_from_the_first_day_of_the_next_year():
    facts = project(year=1403, reports=[report(4, 0)])
    assert check(ProgressLag(), facts, as_of("1403/12/30"), ProgressLag.Limits()) is None
    assert [f.quarter for f in check(ProgressLag(), facts, as_of("1404/01/01"), ProgressLag.Limits())] == [4]


def test_past_year_every_unreported_quarter_is_missing():
    facts = project(year=1404, reports=[report(2, 50)])
    found = check(MissingReport(), facts, as_of("1406/01/01"), None)
    assert [f.quarter for f in found] == [1, 3, 4]


def test_expense_missing_report_across_year_end():
    facts = agreement(year=1404, operations=[operation(items=[])])
    assert [f.quarter for f in check(ExpenseMissingReport(), facts, as_of("1405/01/15"), None)] == [1, 2, 3]
    assert [f.quarter for f in check(ExpenseMissingReport(), facts, as_of("1405/01/16"), None)] == [1, 2, 3, 4]


def test_due_days_from_config_shift_the_due_day():
    facts = project(reports=[])
    # Q1 ends 1405/03/31; Tir has 31 days: 32 days later is 1405/05/01
    assert check(MissingReport(), facts, as_of("1405/05/01", report_due_days=32), None) is None
    [f] = check(MissingReport(), facts, as_of("1405/05/01", report_due_days=31), None)
    assert f.quarter == 1
