"""Capital-project rules (Nezarat-4 and field inspections): reconciliation-rules.md, "Capital projects".

One class per rule id. Each judges project years as of a day: its query (``select``) returns the
reports or project years that may break it, joined with what names the project
(Scope.capital_subjects), and ``finding`` decides each row exactly and words it.
For a project `p`, year `Y`, closed quarter `q`: `target[q]` is the agreement's planned cumulative
progress at the end of `q`, `actual[q]` the reported cumulative progress of `q` (whatever its
comptroller status), `start` the progress at the start of `Y` (an empty cell counts as 0). A
report whose progress cell is empty counts as a report (no missing_report) but carries no figure
for the progress rules. Projects whose agreement is cancelled or not exchanged (no targets) are
judged by credit_inconsistency only.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from foundation import jalali, present
from reconcile import wording as w
from reconcile.facts import APPROVED, CreditStages
from reconcile.findings import Finding, divide, figure, round4, text
from reconcile.rules.base import (CreditLimits, Identity, Rule, YearBegunRule, approval_clock, approval_moved,
                                  describe_breaks, late_clock, limit_texts, place_of, stage_breaks, stages_may_break)
from reconcile.scope import MARGIN, Scope, at_least, below, fi, pc, pj, pr, py, zero

HUNDRED = Decimal(100)
STAGE_WORDS = {"used": "جذب", "allocated": "تخصیص", "notified": "اعتبار ابلاغی", "approved": "اعتبار مصوب"}
STATUS_WORDS = present.COMPTROLLER_NAMES  # a comptroller's status, in the words of every output


class ProgressLag(Rule):
    """gap = target[q] − actual[q] ≥ 5 points: minor < 15 ≤ major < 30 ≤ critical."""

    id = "progress_lag"  # عقب‌ماندگی پیشرفت فیزیکی از برنامه
    kind = "capital"
    unit = "project_year"
    rationale = "A project reporting less physical progress than its agreement planned is falling behind."

    @dataclass(frozen=True)
    class Limits:
        minor: Decimal = Decimal(5)
        major: Decimal = Decimal(15)
        critical: Decimal = Decimal(30)

    bands = (("minor", "minor"), ("major", "major"), ("critical", "critical"))

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        target = _target_of(pr.c.quarter)
        return (_reports(scope).where(target.is_not(None), at_least(target - pr.c.progress, limits.minor))
                .order_by(py.c.id, pr.c.quarter))

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        return _count(scope, Scope.active_project_year(), _has_report(
            pr.c.progress.is_not(None), _target_of(pr.c.quarter).is_not(None),
            scope.is_closed(py.c.fiscal_year, pr.c.quarter)))

    def finding(self, row: Any, scope: Scope, limits: Limits) -> Finding | None:
        q, year = row.quarter, row.fiscal_year
        target = getattr(row, f"t{q}")
        gap = round4(target - row.progress)
        if gap < limits.minor:
            return None
        severity = "critical" if gap >= limits.critical else "major" if gap >= limits.major else "minor"
        band, bounds = self.band(limits, severity, gap)
        return _row_finding(
            self, row, q, severity,
            f"{_named(row)} در پایان {w.quarter(year, q)} پیشرفت فیزیکی "
            f"{w.percent(row.progress, target, rule=self.id, bounds=bounds)} گزارش کرده "
            f"در برابر {w.percent(target, row.progress, rule=self.id, bounds=bounds)} پیش‌بینی‌شده "
            f"({w.number(gap)} واحد درصد عقب‌تر از برنامه)",
            planned=target, actual=row.progress, measure=gap,
            numbers={"target": text(target), "actual": text(row.progress), "gap": text(gap),
                     "threshold": limit_texts(limits)["minor"], **band},
            evidence=("progress_report", row.report_id), run_id=row.report_run_id,
        )


class MissingReport(Rule):
    """No report for a closed quarter after its due day (quarter end + report_due_days): major."""

    id = "missing_report"  # عدم ارسال گزارش عملکرد
    kind = "capital"
    unit = "project_year"
    rationale = "A quarter's performance report not entered by its due day leaves the project unmonitored."

    time_driven = True

    def identity(self, c: Any) -> Identity:
        return c.project_code, c.fiscal_year, c.quarter

    def clock(self, scope: Scope) -> str:
        return late_clock(scope)

    def select(self, scope: Scope, limits: object) -> sa.Select:
        late = scope.late_quarters()
        return (_with_targets(scope.capital_subjects()).add_columns(late.c.quarter)
                .join(late, late.c.fiscal_year == py.c.fiscal_year)
                .where(Scope.active_project_year(), ~_has_report(pr.c.quarter == late.c.quarter))
                .order_by(py.c.id, late.c.quarter))

    def checked(self, scope: Scope, limits: object) -> sa.Select:
        return _count(scope, Scope.active_project_year(),
                      py.c.fiscal_year.in_([y for y in scope.years if scope.late(y)]))

    def finding(self, row: Any, scope: Scope, limits: object) -> Finding | None:
        q, year, as_of = row.quarter, row.fiscal_year, scope.as_of
        due, target = as_of.report_due(year, q), getattr(row, f"t{q}")
        return _row_finding(
            self, row, q, "major",
            f"{_named(row)} گزارش عملکرد {w.quarter(year, q)} را که مهلت ثبت آن "
            f"{w.day(due)} بود ثبت نکرده است",
            planned=target,
            numbers={"quarter_end": as_of.quarter_end(year, q).isoformat(), "due": due.isoformat(),
                     "target": text(target)},
        )


class ApprovalOverdue(Rule):
    """A report not approved by the comptroller, entered more than approval_due_days ago: minor.

    A report without an entry date is taken as entered on its quarter's last day.
    """

    id = "approval_overdue"  # تأخیر در تأیید ذیحساب
    kind = "capital"
    unit = "project_year"
    rationale = "Figures the comptroller (ذیحساب) has not confirmed in time cannot be relied on."

    time_driven = True

    def identity(self, c: Any) -> Identity:
        return c.project_code, c.fiscal_year, c.quarter

    def clock(self, scope: Scope) -> str:
        return approval_clock(scope)

    def moved(self, scope: Scope, then: str) -> sa.ColumnElement[bool] | None:
        return approval_moved(scope, then, self._entered(scope))

    @staticmethod
    def _entered(scope: Scope) -> sa.ColumnElement:
        return sa.func.coalesce(pr.c.reported_on, scope.quarter_end(py.c.fiscal_year, pr.c.quarter))

    def select(self, scope: Scope, limits: object) -> sa.Select:
        entered = self._entered(scope)
        return (scope.capital_subjects()
                .add_columns(pr.c.id.label("report_id"), pr.c.quarter, pr.c.reported_on, pr.c.progress,
                             pr.c.comptroller_status, pr.c.last_run_id.label("report_run_id"))
                .join(pr, pr.c.project_year_id == py.c.id)
                .where(Scope.active_project_year(), pr.c.comptroller_status != APPROVED,
                       entered < scope.approval_cutoff)
                # the pending reports' index order (store.models.pending_index): read by it, not every report
                .order_by(pr.c.project_year_id, pr.c.quarter))

    def checked(self, scope: Scope, limits: object) -> sa.Select:
        return _count(scope, Scope.active_project_year(), _has_report())

    def finding(self, row: Any, scope: Scope, limits: object) -> Finding | None:
        q, year, as_of = row.quarter, row.fiscal_year, scope.as_of
        entered = row.reported_on or as_of.quarter_end(year, q)
        if not as_of.approval_late(entered):
            return None
        due = as_of.approval_due(entered)
        status = STATUS_WORDS.get(row.comptroller_status, row.comptroller_status)
        return _row_finding(
            self, row, q, "minor",
            f"گزارش {w.quarter(year, q)} {_named(row)} {w.entered(row.reported_on)}، پس از {w.day(due)} هنوز تأیید ذیحساب ندارد (وضعیت: {status})",
            actual=row.progress,
            numbers={"reported_on": row.reported_on.isoformat() if row.reported_on else None,
                     "entered": entered.isoformat(), "approval_due": due.isoformat(),
                     "comptroller_status": row.comptroller_status},
            evidence=("progress_report", row.report_id), run_id=row.report_run_id,
        )


class ProgressRegression(Rule):
    """actual[q] < previous − 0.5, previous = the latest earlier reported quarter of Y, else start: major."""

    id = "progress_regression"  # کاهش پیشرفت فیزیکی گزارش‌شده
    kind = "capital"
    unit = "project_year"
    rationale = "Cumulative progress cannot go down; a lower figure means one of the two reports is wrong."

    @dataclass(frozen=True)
    class Limits:
        tolerance: Decimal = Decimal("0.5")

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        # each report with a figure beside the latest earlier one of its year that has one
        window = {"partition_by": pr.c.project_year_id, "order_by": pr.c.quarter}
        reports = (sa.select(pr.c.id, pr.c.project_year_id, pr.c.quarter, pr.c.progress, pr.c.last_run_id,
                             sa.func.lag(pr.c.progress, type_=pr.c.progress.type).over(**window).label("previous"),
                             sa.func.lag(pr.c.quarter).over(**window).label("previous_quarter"))
                   .join(py, py.c.id == pr.c.project_year_id)
                   .where(pr.c.progress.is_not(None), scope.project_years()).subquery("reported"))
        previous = sa.func.coalesce(reports.c.previous, _START)
        return (_with_targets(scope.capital_subjects())
                .add_columns(reports.c.id.label("report_id"), reports.c.quarter, reports.c.progress,
                             reports.c.last_run_id.label("report_run_id"), reports.c.previous,
                             reports.c.previous_quarter)
                .join(reports, reports.c.project_year_id == py.c.id)
                .where(Scope.active_project_year(), scope.is_closed(py.c.fiscal_year, reports.c.quarter),
                       at_least(previous - reports.c.progress, limits.tolerance))
                .order_by(py.c.id, reports.c.quarter))

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        return _count(scope, Scope.active_project_year(), _has_report(
            pr.c.progress.is_not(None), scope.is_closed(py.c.fiscal_year, pr.c.quarter)))

    def finding(self, row: Any, scope: Scope, limits: Limits) -> Finding | None:
        q, year = row.quarter, row.fiscal_year
        previous = row.previous if row.previous is not None else _start(row)
        drop = round4(previous - row.progress)
        if drop <= limits.tolerance:
            return None
        earlier = row.previous_quarter if row.previous is not None else None
        bounds = (limits.tolerance,)  # shown more than the limit apart
        was = w.percent(previous, row.progress, rule=self.id, bounds=bounds)
        before = (f"{was} گزارش‌شده در پایان {w.quarter(year, earlier)}" if earlier is not None
                  else f"پیشرفت ابتدای سال ({was})")
        return _row_finding(
            self, row, q, "major",
            f"{_named(row)} در پایان {w.quarter(year, q)} پیشرفت فیزیکی "
            f"{w.percent(row.progress, previous, rule=self.id, bounds=bounds)} گزارش کرده "
            f"که {w.number(drop)} واحد درصد کمتر از {before} است",
            planned=previous, actual=row.progress, measure=drop,
            numbers={"previous": text(previous), "previous_quarter": earlier,
                     "actual": text(row.progress), "drop": text(drop), "threshold": limit_texts(limits)["tolerance"]},
            evidence=("progress_report", row.report_id), run_id=row.report_run_id,
        )


class SpendProgressGap(Rule):
    """spend_share − physical_share ≥ 0.30: major; ≥ 0.50: critical.

    planned_gain = target[4] − start (> 0), physical_share = (actual[q] − start) / planned_gain,
    spend_share = absorbed[q] / notified_total (> 0).
    """

    id = "spend_progress_gap"  # فاصله جذب اعتبار و پیشرفت فیزیکی
    kind = "capital"
    unit = "project_year"
    rationale = "Money absorbed well ahead of physical progress suggests payments without work done."

    @dataclass(frozen=True)
    class Limits:
        major: Decimal = Decimal("0.30")
        critical: Decimal = Decimal("0.50")

    bands = (("major", "major"), ("critical", "critical"))

    def _applies(self) -> sa.ColumnElement[bool]:
        return sa.and_(Scope.active_project_year(), py.c.target_q4.is_not(None), py.c.target_q4 - _START > 0,
                       zero(py.c.total_notified) > 0)

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        # spend_share − physical_share ≥ major, multiplied out by notified_total × planned_gain (> 0)
        gain, notified = py.c.target_q4 - _START, py.c.total_notified
        gap_times = zero(pr.c.absorbed) * gain - (pr.c.progress - _START) * notified
        return (_reports(scope).add_columns(py.c.total_notified)
                .where(self._applies(), gap_times >= (limits.major - MARGIN) * notified * gain)
                .order_by(py.c.id, pr.c.quarter))

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        return _count(scope, self._applies(), _has_report(
            pr.c.progress.is_not(None), scope.is_closed(py.c.fiscal_year, pr.c.quarter)))

    def finding(self, row: Any, scope: Scope, limits: Limits) -> Finding | None:
        q, year = row.quarter, row.fiscal_year
        start, target_q4 = _start(row), row.t4
        planned_gain, notified_total = target_q4 - start, figure(row.total_notified)
        absorbed = figure(row.absorbed)
        physical_share = divide(row.progress - start, planned_gain)
        spend_share = divide(absorbed, notified_total)
        gap = round4(spend_share - physical_share)
        if gap < limits.major:
            return None
        severity = "critical" if gap >= limits.critical else "major"
        spend, physical = round4(spend_share), round4(physical_share)
        band, bounds = self.band(limits, severity, gap)
        bounds = tuple(bound * 100 for bound in bounds)  # the shares are written as percentages
        physical_text = w.percent(physical * 100, spend * 100, rule=self.id, bounds=bounds)
        # progress below the year's start is no "only X %" of the year's plan (an alerts trial read
        # «تنها -۲۹٫۴۱٪»): said as the fall it is, its share beside
        gained = (f"اما تنها {physical_text} پیشرفت فیزیکی برنامه‌ریزی‌شده سال را به دست آورده است" if physical >= 0
                  else f"اما پیشرفت فیزیکی آن از آغاز سال کاهش یافته است (سهم پیشرفت {physical_text} از برنامهٔ سال)")
        return _row_finding(
            self, row, q, severity,
            f"{_named(row)} تا پایان {w.quarter(year, q)} "
            f"{w.percent(spend * 100, physical * 100, rule=self.id, bounds=bounds)} اعتبار ابلاغی "
            f"را جذب کرده ({w.figure(absorbed)} از {w.amount(notified_total)}) {gained} "
            f"(فاصله {w.number(gap * 100)} واحد درصد)",
            planned=spend, actual=physical, measure=gap,
            numbers={"start": text(start), "target_q4": text(target_q4), "planned_gain": text(planned_gain),
                     "actual": text(row.progress), "physical_share": text(physical),
                     "absorbed": text(absorbed), "notified_total": text(notified_total),
                     "spend_share": text(spend), "gap": text(gap), "threshold": limit_texts(limits)["major"],
                     **band},
            evidence=("progress_report", row.report_id), run_id=row.report_run_id,
        )


class CreditInconsistency(YearBegunRule):
    """On a source row or the total: absorbed > allocated, allocated > notified or notified > approved
    by more than 0.5 (million rials). One major deviation per project and year, no quarter; a year
    is judged once it has begun (a portal may list next year's agreements before 1 Farvardin)."""

    id = "credit_inconsistency"  # ناسازگاری مراحل اعتبار (مصوب ≥ ابلاغی ≥ تخصیص ≥ جذب)
    kind = "capital"
    unit = "project_year"
    rationale = "Money cannot be absorbed beyond its allocation, nor allocated beyond what was notified or approved."

    Limits = CreditLimits

    subject_key, year_column = "project_code", py.c.fiscal_year

    def select(self, scope: Scope, limits: CreditLimits) -> sa.Select:
        # every credit row of the project years that have a row (or a total) that may break
        any_row = pc.alias("any_row")
        broken_row = sa.exists().where(any_row.c.project_year_id == py.c.id, stages_may_break(
            any_row.c.approved, any_row.c.notified, any_row.c.allocated, any_row.c.absorbed, limits.tolerance))
        broken_total = stages_may_break(py.c.total_approved, py.c.total_notified, py.c.total_allocated,
                                        py.c.total_absorbed, limits.tolerance)
        return (scope.capital_subjects()
                .add_columns(py.c.total_approved, py.c.total_notified, py.c.total_allocated, py.c.total_absorbed,
                             pc.c.id.label("credit_id"), pc.c.source, pc.c.approved, pc.c.notified,
                             pc.c.allocated, pc.c.absorbed)
                .outerjoin(pc, pc.c.project_year_id == py.c.id)
                .where(py.c.fiscal_year.in_(scope.begun_years()), sa.or_(broken_row, broken_total))
                .order_by(py.c.id, pc.c.id))

    def checked(self, scope: Scope, limits: CreditLimits) -> sa.Select:
        return _count(scope, py.c.fiscal_year.in_(scope.begun_years()), sa.or_(sa.exists().where(pc.c.project_year_id == py.c.id),
                                    py.c.total_approved.is_not(None), py.c.total_notified.is_not(None),
                                    py.c.total_allocated.is_not(None), py.c.total_absorbed.is_not(None)))

    def findings(self, rows: Iterable[Any], scope: Scope, limits: CreditLimits) -> Iterator[Finding]:
        for _, group in itertools.groupby(rows, key=lambda r: r.id):
            group = list(group)
            row = group[0]
            credits = [CreditStages(r.source, r.approved, r.notified, r.allocated, r.absorbed, "project_credit",
                                    r.credit_id) for r in group if r.credit_id is not None]
            totals = (row.total_approved, row.total_notified, row.total_allocated, row.total_absorbed)
            if any(v is not None for v in totals):
                credits.append(CreditStages(TOTAL_ROW, *totals, "project_year", row.id))
            breaks = stage_breaks(tuple(credits), limits.tolerance)
            if not breaks:
                continue
            said, figures = describe_breaks(breaks, STAGE_WORDS, "ردیف ", limits.tolerance)
            yield _row_finding(self, row, None, "major", f"{_named(row)} در سال {w.year(row.fiscal_year)} {said}",
                               **figures)


class CompletionOverdue(YearBegunRule):
    """Y after the planned end year and the latest progress of Y below 100: minor for 1 year,
    major from major_years (2), critical from critical_years (3). Judged once Y has begun."""

    id = "completion_overdue"  # تأخیر در اتمام پروژه
    kind = "capital"
    unit = "project_year"
    rationale = "A project still unfinished after its planned completion year ties up credit and delays its benefits."

    @dataclass(frozen=True)
    class Limits:
        major_years: int = 2
        critical_years: int = 3

    subject_key, year_column = "project_code", py.c.fiscal_year

    def _applies(self, scope: Scope) -> sa.ColumnElement[bool]:
        return sa.and_(Scope.active_project_year(), py.c.end_year.is_not(None),
                       py.c.fiscal_year.in_(scope.begun_years()))

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        late = (self._applies(scope), py.c.fiscal_year - py.c.end_year >= 1)
        latest = _latest_reports(scope, *late)
        progress = sa.func.coalesce(latest.c.progress, _START)
        return (_with_targets(scope.capital_subjects()).add_columns(
                    py.c.end_year, latest.c.id.label("report_id"), latest.c.quarter, latest.c.progress,
                    latest.c.last_run_id.label("report_run_id"))
                .outerjoin(latest, sa.and_(latest.c.project_year_id == py.c.id, latest.c.n == 1))
                .where(*late, below(progress, HUNDRED))
                .order_by(py.c.id))

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        return _count(scope, self._applies(scope))

    def finding(self, row: Any, scope: Scope, limits: Limits) -> Finding | None:
        year, years_late = row.fiscal_year, row.fiscal_year - row.end_year
        reported = row.report_id is not None
        latest = row.progress if reported else _start(row)
        if round4(latest) >= HUNDRED:
            return None
        severity = ("critical" if years_late >= limits.critical_years
                    else "major" if years_late >= limits.major_years else "minor")
        when = (f"در گزارش {w.quarter(year, row.quarter)}" if reported else f"در ابتدای سال {w.year(year)}")
        return _row_finding(
            self, row, None, severity,
            f"{_named(row)} باید تا پایان سال {w.year(row.end_year)} به پایان می‌رسید اما {when} پیشرفت فیزیکی "
            f"آن {w.percent(latest, HUNDRED)} است ({w.number(years_late)} سال تأخیر)",
            planned=HUNDRED, actual=latest, measure=Decimal(years_late),
            numbers={"end_year": row.end_year, "years_late": years_late, "latest_progress": text(latest),
                     "latest_quarter": row.quarter if reported else None,
                     "band": {"critical": limits.critical_years,
                              "major": limits.major_years}.get(severity, 1)},
            evidence=("progress_report", row.report_id) if reported else None,
            run_id=row.report_run_id if reported else None,
        )


class InspectionMismatch(Rule):
    """The latest field visit of Y (on day d) against the latest report of Y whose quarter ended on
    or before d (else start): |observed − reported| ≥ 10 major, ≥ 25 critical."""

    id = "inspection_mismatch"  # مغایرت بازدید میدانی با پیشرفت گزارش‌شده
    kind = "capital"
    unit = "project_year"
    rationale = "An expert who saw a different progress on site than the agency reports found a claim to check."

    @dataclass(frozen=True)
    class Limits:
        major: Decimal = Decimal(10)
        critical: Decimal = Decimal(25)

    bands = (("major", "major"), ("critical", "critical"))

    # Visits arrive by import, not by a sync, and a visit counts from its day on: an incremental run
    # judges again the project years whose visits an import wrote since the last run or whose day
    # came since (reconcile/changes.py), like those a sync changed. Judged whole in every run until
    # session 32: a tenth of a nightly run at 100k (docs/benchmarks.md).

    def _visits(self, scope: Scope) -> sa.Subquery:
        """Each project year's latest visit of its year up to the as-of day (same day: the last recorded)."""
        in_year = sa.or_(*(sa.and_(py.c.fiscal_year == y, fi.c.visited_on >= jalali.year_start(y),
                                   fi.c.visited_on <= min(jalali.year_end(y), scope.as_of.day))
                           for y in scope.years)) if scope.years else sa.false()
        return (sa.select(py.c.id.label("project_year_id"), fi.c.id, fi.c.visited_on, fi.c.observed_progress,
                          fi.c.inspector,
                          sa.func.row_number().over(partition_by=py.c.id,
                                                    order_by=(fi.c.visited_on.desc(), fi.c.id.desc())).label("n"))
                .select_from(py).join(pj, pj.c.id == py.c.project_id).join(fi, fi.c.project_code == pj.c.code)
                .where(scope.project_years(), Scope.active_project_year(), in_year).subquery("visit"))

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        visit = self._visits(scope)
        quarters = {k: pr.alias(f"r{k}") for k in (1, 2, 3, 4)}
        select = (_with_targets(scope.capital_subjects())
                  .add_columns(visit.c.id.label("visit_id"), visit.c.visited_on, visit.c.observed_progress,
                               visit.c.inspector)
                  .join(visit, sa.and_(visit.c.project_year_id == py.c.id, visit.c.n == 1)))
        for k, r in quarters.items():  # the year's four reports side by side
            select = (select.add_columns(r.c.id.label(f"i{k}"), r.c.progress.label(f"p{k}"),
                                         r.c.last_run_id.label(f"r{k}"))
                      .outerjoin(r, sa.and_(r.c.project_year_id == py.c.id, r.c.quarter == k)))
        return select.order_by(py.c.id)

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        visit = self._visits(scope)
        return sa.select(sa.func.count()).select_from(visit).where(visit.c.n == 1)

    def finding(self, row: Any, scope: Scope, limits: Limits) -> Finding | None:
        year, as_of = row.fiscal_year, scope.as_of
        ended = [q for q in (1, 2, 3, 4) if as_of.quarter_end(year, q) <= row.visited_on]
        quarter = next((q for q in reversed(ended) if getattr(row, f"p{q}") is not None), None)
        reported = getattr(row, f"p{quarter}") if quarter is not None else _start(row)
        difference = round4(abs(row.observed_progress - reported))
        if difference < limits.major:
            return None
        severity = "critical" if difference >= limits.critical else "major"
        band, bounds = self.band(limits, severity, difference)
        shown = w.percent(reported, row.observed_progress, rule=self.id, bounds=bounds)
        claim = (f"گزارش {w.quarter(year, quarter)} {shown} اعلام کرده است"
                 if quarter is not None else f"پیشرفت ابتدای سال {w.year(year)} {shown} بوده است")
        return _row_finding(
            self, row, quarter, severity,
            f"در بازدید میدانی {w.day(row.visited_on)} ({row.inspector}) پیشرفت فیزیکی {_named(row)} "
            f"{w.percent(row.observed_progress, reported, rule=self.id, bounds=bounds)} دیده شد در حالی که {claim} "
            f"(اختلاف {w.number(difference)} واحد درصد)",
            planned=reported, actual=row.observed_progress, measure=difference,
            numbers={"visited_on": row.visited_on.isoformat(), "inspector": row.inspector,
                     "observed": text(row.observed_progress), "reported": text(reported),
                     "reported_quarter": quarter, "difference": text(difference),
                     "threshold": limit_texts(limits)["major"], **band},
            evidence=("field_inspection", row.visit_id),
            run_id=getattr(row, f"r{quarter}") if quarter is not None else None,
        )


# --- set-wise: the rows of Scope.capital_subjects() and the findings they make -----------------

_TARGETS = (py.c.target_q1, py.c.target_q2, py.c.target_q3, py.c.target_q4)
_START = zero(py.c.progress_at_year_start)


def _target_of(quarter: Any) -> Any:
    """target[q] for a quarter given by a column (SQL)."""
    return sa.case((quarter == 1, py.c.target_q1), (quarter == 2, py.c.target_q2), (quarter == 3, py.c.target_q3),
                   else_=py.c.target_q4)


def _with_targets(select: sa.Select) -> sa.Select:
    return select.add_columns(*(t.label(f"t{k}") for k, t in enumerate(_TARGETS, 1)),
                              py.c.progress_at_year_start.label("start"))


def _named(row: Any) -> str:
    return w.project_named(row.title, row.project_code, place_of(row))


def _row_finding(rule: Rule, row: Any, quarter: int | None, severity: str, message: str, *,
                 planned: Decimal | None = None, actual: Decimal | None = None, measure: Decimal | None = None,
                 numbers: dict | None = None, evidence: tuple[str, int | None] | None = None,
                 run_id: int | None = None) -> Finding:
    """A capital finding of a row of Scope.capital_subjects()."""
    table, row_id = evidence or ("project_year", row.id)
    return Finding(
        rule=rule.id, kind="capital", subject=row.project_code, fiscal_year=row.fiscal_year, quarter=quarter,
        severity=severity, planned=planned, actual=actual, measure=measure, message=message,
        numbers=numbers or {}, evidence_table=table, evidence_id=row_id,
        sync_run_id=run_id if run_id is not None else row.last_run_id,
        agency_code=row.agency_code, county_id=row.county_id, county=row.county_name,
    )


def _count(scope: Scope, *where: Any) -> sa.Select:
    """How many project years in scope meet `where`."""
    return sa.select(sa.func.count()).select_from(py).where(scope.project_years(), *where)


def _has_report(*where: Any) -> sa.ColumnElement[bool]:
    return sa.exists().where(pr.c.project_year_id == py.c.id, *where)


TOTAL_ROW = "جمع"  # the gvCredits `total` row in messages


def _latest_reports(scope: Scope, *among: sa.ColumnElement[bool]) -> sa.Subquery:
    """Reports carrying a progress figure of the project years in scope that `among` selects,
    numbered from each project year's latest quarter (n = 1). Numbered only where a rule will read
    them: every report of the store was numbered and sorted before (completion_overdue at 100k
    ~1 s of SQL for the 16,000 project years past their end; docs/benchmarks.md, session 22)."""
    return (sa.select(pr.c.id, pr.c.project_year_id, pr.c.quarter, pr.c.progress, pr.c.last_run_id,
                      sa.func.row_number().over(partition_by=pr.c.project_year_id,
                                                order_by=pr.c.quarter.desc()).label("n"))
            .join(py, py.c.id == pr.c.project_year_id)
            .where(pr.c.progress.is_not(None), scope.project_years(), *among).subquery("latest_report"))


def _start(row: Any) -> Decimal:
    return row.start if row.start is not None else Decimal(0)


def _reports(scope: Scope) -> sa.Select:
    """Active project years in scope joined with their reports of closed quarters that carry a progress figure."""
    return (_with_targets(scope.capital_subjects())
            .add_columns(pr.c.id.label("report_id"), pr.c.quarter, pr.c.progress, pr.c.absorbed,
                         pr.c.last_run_id.label("report_run_id"))
            .join(pr, pr.c.project_year_id == py.c.id)
            .where(Scope.active_project_year(), pr.c.progress.is_not(None),
                   scope.is_closed(py.c.fiscal_year, pr.c.quarter)))
