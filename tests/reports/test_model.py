"""The report model on a hand-made province, on SQLite and PostgreSQL: every figure stated by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa

from foundation.jalali import parse_day
from reconcile.settings import RoutingConfig
from reports.model import Matched, ReportError, Selection, build
from tests.reports.builders import make_province

AS_OF = parse_day("1405/09/04")
ROUTING = RoutingConfig(agencies={"305": "infrastructure", "118": "social"})


@pytest.fixture
def report(engine):
    make_province(engine)
    with engine.connect() as conn:
        return build(conn, Selection(1405, 2, AS_OF), routing=ROUTING)


def test_totals_add_every_credit_stage_of_projects_and_agreements(report):
    t = report.total
    assert (t.projects, t.agreements) == (3, 1)
    assert (t.approved, t.notified, t.allocated, t.absorbed) == (2400, 2000, 1450, 775)
    assert t.absorption == Decimal(775) / Decimal(1450)


def test_progress_is_weighted_by_notified_credit_over_projects_reporting_the_quarter(report):
    assert (report.total.planned_progress, report.total.reported_progress) == (45, 40)


def test_reporting_discipline_counts_due_entered_approved_and_overdue(report):
    t = report.total
    assert (t.reports_due, t.reports_entered, t.reports_approved, t.reports_overdue) == (3, 2, 1, 1)


def test_standing_deviations_up_to_the_quarter_are_counted_by_severity(report):
    assert dict(report.total.deviations) == {"minor": 1, "major": 2}
    assert [(d.rule, d.subject) for d in report.deviations] == [
        ("credit_inconsistency", "A-1"), ("missing_report", "P-2"), ("progress_lag", "P-1")]
    assert [(k, r, dict(c)) for k, r, c in report.rule_counts] == [
        ("capital", "missing_report", {"major": 1}), ("capital", "progress_lag", {"minor": 1}),
        ("expense", "credit_inconsistency", {"major": 1})]


def test_each_standing_deviation_carries_its_stored_id(engine, report):
    # the id people act on (`budgetwatch deviations ack ID`): the reports list it beside each deviation
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.text("SELECT subject, id FROM deviation")).all())
    assert [(d.subject, d.id) for d in report.deviations] == [(s, ids[s]) for s in ("A-1", "P-2", "P-1")]


def test_summaries_by_county_agency_and_group(report):
    counties = {t.name: (t.projects, t.agreements) for t in report.counties}
    assert counties == {"اهواز": (2, 0), "دزفول": (1, 1)}
    agencies = {t.key: (t.name, t.projects, t.absorbed) for t in report.agencies}
    assert agencies["305"] == ("اداره کل راه و شهرسازی", 2, 450)
    assert [g.key for g in report.groups] == ["social", "infrastructure", "consolidation"]
    assert report.groups[0].name == "امور اجتماعی" and report.groups[0].absorbed == 225


def test_one_row_per_project_and_quarter_with_gap_visit_and_forecast(report):
    assert [(p.code, p.quarter) for p in report.projects] == [
        ("P-1", 1), ("P-1", 2), ("P-2", 1), ("P-2", 2), ("P-3", 1), ("P-3", 2)]
    q1, q2 = report.projects[0], report.projects[1]
    assert (q2.target, q2.reported, q2.gap, q2.comptroller) == (45, 40, 5, "approved")
    assert q2.reported_on == parse_day("1405/07/05")
    assert (q2.visited_on, q2.observed) == (parse_day("1405/06/20"), 35)
    assert q1.visited_on is None  # the visit came after the first quarter ended
    # 20 -> 30 -> 40: 10 points a quarter, 60 left = 6 quarters after 1405 Q2 -> 1406 Q4
    assert (q2.forecast.outlook, q2.forecast.year, q2.forecast.end_year) == ("forecast", 1406, 1407)
    missing = report.projects[3]
    assert (missing.reported, missing.comptroller, missing.gap) == (None, None, None)


def test_expense_operations_are_cumulative_through_the_quarter(report):
    [op] = report.operations
    assert (op.planned, op.delivered, op.spent) == (200, 170, 380)
    assert op.achievement == Decimal("0.85")
    assert op.actual_unit_cost == Decimal(380) / Decimal(170)
    assert op.cost_ratio == Decimal(380) / Decimal(170) / 2


def test_the_cycle_shows_each_agency_and_quarter(report):
    cycle = {(c.agency_code, c.quarter): c for c in report.cycle}
    assert set(cycle) == {("305", 1), ("305", 2), ("118", 1), ("118", 2)}
    first = cycle[("305", 1)]
    assert (first.reported_on, first.approved_on) == (parse_day("1405/04/05"), parse_day("1405/04/10"))
    assert (first.report.days, first.approval.days) == (5, 5)
    waiting = cycle[("305", 2)]  # P-2 never reported: 64 days since 1405/06/31
    assert (waiting.due, waiting.entered, waiting.report.days, waiting.report.late) == (2, 1, 64, True)
    pending = cycle[("118", 2)]
    assert pending.reported_on == parse_day("1405/07/03") and not pending.approval.done


@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
def test_filters_narrow_every_part(engine):
    make_province(engine)
    with engine.connect() as conn:
        dezful = build(conn, Selection(1405, 2, AS_OF, counties=("دزفول",)), routing=ROUTING)
        roads = build(conn, Selection(1405, 2, AS_OF, agencies=("305",)), routing=ROUTING)
        social = build(conn, Selection(1405, 2, AS_OF, groups=("social",)), routing=ROUTING)
    assert (dezful.total.projects, dezful.total.agreements, len(dezful.deviations)) == (1, 1, 2)
    assert (roads.total.projects, roads.total.agreements) == (2, 0)
    assert {p.code for p in roads.projects} == {"P-1", "P-2"}
    assert (social.total.projects, social.total.agreements, len(social.operations)) == (0, 1, 1)


@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
@pytest.mark.parametrize("selection, message", [
    (Selection(1405, 2, AS_OF, counties=("تهران",)), "unknown county 'تهران'"),
    (Selection(1405, 2, AS_OF, agencies=("999",)), "unknown agency '999'"),
    (Selection(1405, 5, AS_OF), "quarter 5"),
])
def test_an_unknown_county_or_agency_is_named(engine, selection, message):
    make_province(engine)
    with engine.connect() as conn, pytest.raises(ReportError, match=message):
        build(conn, selection, routing=ROUTING)


def test_a_signed_off_quarter_is_the_cycles_review_day(engine):
    make_province(engine)
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 1, AS_OF), routing=ROUTING, reviews={1: date(2026, 7, 10)})
    row = next(c for c in report.cycle if c.agency_code == "305")
    assert (row.reviewed_on, row.review.days, row.review.done) == (date(2026, 7, 10), 9, True)
    assert report.reviewed_on == date(2026, 7, 10)


def test_the_report_says_what_its_filters_matched_as_the_store_names_it(engine):
    make_province(engine)
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF, counties=("دزفول", "دزفول ", "اهواز"), agencies=("305",),
                                       groups=("social",)), routing=ROUTING)
    assert report.matched == Matched(("دزفول", "اهواز"), (("305", "اداره کل راه و شهرسازی"),), ("social",))


@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
def test_counties_are_in_the_persian_alphabets_order(engine):
    # the printed report's county chart put دزفول before دزپارت and اندیمشک before اندیکا (code points)
    from tests.reports.builders import Province

    province = Province(engine)
    for number, county in enumerate(("دزفول", "اندیمشک", "دزپارت", "اندیکا", "آبادان")):
        province.agreement(f"A-{number}", county=county)
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=ROUTING)
    assert [t.name for t in report.counties] == ["آبادان", "اندیکا", "اندیمشک", "دزپارت", "دزفول"]


# A trial by a consolidation group member: a report as of a past day showed later events as done
# (the sign-off on the cover, reports entered or approved after that day in the cycle and the
# reporting discipline). P-1's second quarter: entered 1405/07/05, approved 1405/07/12; A-1's:
# entered 1405/07/03, pending; P-2's never; the reports are due by 1405/07/15.

@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
@pytest.mark.parametrize("as_of, entered, approved, overdue", [
    ("1405/07/04", 1, 0, 0),  # A-1 only: P-1 entered the next day
    ("1405/07/10", 2, 0, 0),  # P-1 entered, its approval two days later
    ("1405/07/20", 2, 1, 1),  # P-1 approved; P-2 past its due day
    ("1405/09/04", 2, 1, 1),
])
def test_reporting_discipline_counts_what_was_done_by_the_as_of_day(engine, as_of, entered, approved, overdue):
    make_province(engine)
    with engine.connect() as conn:
        t = build(conn, Selection(1405, 2, parse_day(as_of)), routing=ROUTING).total
    assert (t.reports_due, t.reports_entered, t.reports_approved, t.reports_overdue) == (3, entered, approved, overdue)


@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
def test_the_cycle_as_of_a_past_day_shows_later_steps_pending_and_no_later_sign_off(engine):
    make_province(engine)
    signed = parse_day("1405/09/16")  # the group's sign-off, after the as-of day
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 2, parse_day("1405/07/04")), routing=ROUTING,
                       reviews={1: signed, 2: signed})
    assert report.reviewed_on is None  # the cover: «انجام نشده», not the later day
    cycle = {(c.agency_code, c.quarter): c for c in report.cycle}
    roads = cycle[("305", 2)]  # P-1 entered on 1405/07/05: not yet; P-2 never
    assert (roads.entered, roads.approved, roads.reported_on) == (0, 0, None)
    assert (roads.report.days, roads.report.done) == (4, False)
    schools = cycle[("118", 2)]  # A-1 entered the day before, not approved
    assert (schools.reported_on, schools.approval.days, schools.approval.done) == (parse_day("1405/07/03"), 1, False)
    first = cycle[("305", 1)]  # done long before: its review of 1405/09/16 is not
    assert (first.reviewed_on, first.review.done, first.review.days) == (None, False, 87)
    assert first.approved_on == parse_day("1405/04/10")
    # the rows keep the store's figures: P-1's second-quarter report as it stands now, with its day
    p1 = next(p for p in report.projects if p.code == "P-1" and p.quarter == 2)
    assert (p1.reported, p1.reported_on, p1.comptroller) == (40, parse_day("1405/07/05"), "approved")


@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
def test_an_agreement_is_entered_with_its_first_item_as_missing_report_judges_it(engine):
    # a trial: an agreement whose two operations reported on 1405/07/06 and 1405/07/28 (after the due
    # day) counted as overdue on 1405/07/20, while the same agreement with the late operation never
    # reported counted as entered — missing_report fires only with "no performance item for q at all"
    from tests.reports.builders import Province

    province = Province(engine)
    a = province.agreement("A-9")
    early, late = province.operation(a, "1-01"), province.operation(a, "1-02")
    for o in (early, late):
        province.performance(o, 1, 100, 200, reported_on="1405/04/10")
    province.performance(early, 2, 100, 200, status="pending", reported_on="1405/07/06")
    province.performance(late, 2, 100, 200, status="pending", reported_on="1405/07/28")
    with engine.connect() as conn:
        t = build(conn, Selection(1405, 2, parse_day("1405/07/20")), routing=ROUTING).total
    assert (t.reports_due, t.reports_entered, t.reports_overdue) == (1, 1, 0)
    with engine.connect() as conn:  # before its first item: not entered (nor overdue: due by 1405/07/15)
        t = build(conn, Selection(1405, 2, parse_day("1405/07/05")), routing=ROUTING).total
    assert (t.reports_due, t.reports_entered, t.reports_overdue) == (1, 0, 0)


@pytest.mark.slow_on_postgresql  # counted from the rows in Python: the rows on PostgreSQL are tested by the report fixture's tests
def test_a_report_without_its_entry_day_is_shown_without_one(engine):
    # a trial: the projects sheet showed «۱۴۰۵/۰۶/۳۱», the day the catalogue counts such a report as
    # entered on, as if the portal had said it; counted so, shown empty
    from tests.reports.builders import Province

    province = Province(engine)
    py = province.project("P-9")
    province.report(py, 1, 25, reported_on="1405/04/05")
    province.report(py, 2, 40)  # the portal gave no entry day
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=ROUTING)
    assert [(p.quarter, p.reported_on) for p in report.projects] == [(1, parse_day("1405/04/05")), (2, None)]
    assert (report.total.reports_due, report.total.reports_entered) == (1, 1)
