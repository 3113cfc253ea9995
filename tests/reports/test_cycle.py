"""The monitoring cycle on hand-made submissions: each step in days against the service time."""

from __future__ import annotations

from datetime import date, timedelta

from foundation.jalali import quarter_end
from reports.cycle import Submission, cycle_rows

END = quarter_end(1405, 2)  # 1405/06/31 = 2026-09-22


def rows(submissions, *, reviewed=None, as_of=END + timedelta(days=60), service_days=10):
    return cycle_rows(1405, submissions, agency_names={"305": "راه و شهرسازی"}, group_of=lambda a: "infrastructure",
                      reviewed_on={2: reviewed} if reviewed else {}, as_of=as_of, service_days=service_days)


def on(days: int) -> date:
    return END + timedelta(days=days)


def test_each_step_counts_from_the_end_of_the_one_before():
    [row] = rows([Submission("305", 2, on(4), on(9)), Submission("305", 2, on(6), on(12))], reviewed=on(20))
    assert (row.due, row.entered, row.approved) == (2, 2, 2)
    assert (row.reported_on, row.approved_on, row.reviewed_on) == (on(6), on(12), on(20))  # the last item decides
    assert [(s.days, s.done, s.late) for s in (row.report, row.approval, row.review)] == [
        (6, True, False), (6, True, False), (8, True, False)]
    assert not row.late
    assert (row.agency_name, row.group, row.quarter_end) == ("راه و شهرسازی", "infrastructure", END)


def test_a_step_longer_than_the_service_time_is_late_and_ten_days_is_not():
    [row] = rows([Submission("305", 2, on(10), on(21))], reviewed=on(22))
    assert (row.report.days, row.report.late) == (10, False)
    assert (row.approval.days, row.approval.late) == (11, True)
    assert row.late


def test_an_agency_with_an_item_missing_waits_at_its_report_and_counts_the_days():
    [row] = rows([Submission("305", 2, on(3), on(5)), Submission("305", 2, None, None)], as_of=on(15))
    assert (row.entered, row.reported_on) == (1, None)
    assert (row.report.days, row.report.done, row.report.late) == (15, False, True)
    assert (row.approval.days, row.review.days) == (None, None)  # not started


def test_an_approved_report_waits_for_the_group_review():
    [row] = rows([Submission("305", 2, on(2), on(4))], as_of=on(9))
    assert (row.review.days, row.review.done, row.review.late) == (5, False, False)
    [later] = rows([Submission("305", 2, on(2), on(4))], as_of=on(30))
    assert later.review.late


def test_the_service_time_is_a_setting():
    [row] = rows([Submission("305", 2, on(8), on(9))], reviewed=on(10), service_days=7)
    assert row.report.late and not row.approval.late


# A trial by a consolidation group member: a report as of 1405/07/10 showed a sign-off of 1405/09/16
# as done, and a report entered on 1405/08/30 as entered, its approval step «در جریان» with 0 days
# (a negative wait clamped). The cycle is seen as it stood on the as-of day.

def test_an_entry_after_the_as_of_day_is_not_made_yet_and_its_report_step_waits():
    [row] = rows([Submission("305", 2, on(70), on(72))], reviewed=on(80), as_of=on(20))
    assert (row.entered, row.approved, row.reported_on, row.approved_on, row.reviewed_on) == (0, 0, None, None, None)
    assert (row.report.days, row.report.done, row.report.late) == (20, False, True)  # waited up to the as-of day
    assert (row.approval.days, row.review.days) == (None, None)  # not begun


def test_an_approval_after_the_as_of_day_is_pending_with_the_days_waited():
    [row] = rows([Submission("305", 2, on(5), on(30))], reviewed=on(40), as_of=on(20))
    assert (row.entered, row.approved, row.reported_on, row.approved_on) == (1, 0, on(5), None)
    assert (row.approval.days, row.approval.done, row.approval.late) == (15, False, True)
    assert (row.review.days, row.reviewed_on) == (None, None)


def test_a_review_after_the_as_of_day_is_pending_and_one_on_it_is_done():
    [row] = rows([Submission("305", 2, on(2), on(4))], reviewed=on(30), as_of=on(9))
    assert row.reviewed_on is None
    assert (row.review.days, row.review.done, row.review.late) == (5, False, False)
    [same] = rows([Submission("305", 2, on(2), on(4))], reviewed=on(9), as_of=on(9))
    assert (same.reviewed_on, same.review.days, same.review.done) == (on(9), 5, True)


def test_a_step_whose_start_is_after_the_as_of_day_has_not_begun():
    from reports.cycle import step

    assert step(on(5), None, on(2), 10) == step(None, None, on(2), 10)
    assert not step(on(5), None, on(2), 10).done and step(on(5), None, on(2), 10).days is None
