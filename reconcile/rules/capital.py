"""Capital-project rules (Nezarat-4 and field inspections): reconciliation-rules.md, "Capital projects".

One class per rule id. Each judges one project's fiscal year (`ProjectYearFacts`) as of a day.
For a project `p`, year `Y`, closed quarter `q`: `target[q]` is the agreement's planned cumulative
progress at the end of `q`, `actual[q]` the reported cumulative progress of `q` (whatever its
comptroller status), `start` the progress at the start of `Y` (an empty cell counts as 0). A
report whose progress cell is empty counts as a report (no missing_report) but carries no figure
for the progress rules. Projects whose agreement is cancelled or not exchanged (no targets) are
judged by credit_inconsistency only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from reconcile import wording as w
from reconcile.facts import APPROVED, AsOf, ProgressReportFact, ProjectYearFacts
from reconcile.findings import Finding, divide, figure, round4, text
from reconcile.rules.base import CreditLimits, Rule, describe_breaks, stage_breaks

HUNDRED = Decimal(100)
STAGE_WORDS = {"used": "جذب", "allocated": "تخصیص", "notified": "اعتبار ابلاغی", "approved": "اعتبار مصوب"}
STATUS_WORDS = {"pending": "در انتظار تأیید", "rejected": "رد شده"}


def _finding(rule: Rule, p: ProjectYearFacts, quarter: int | None, severity: str, message: str, *,
             planned: Decimal | None = None, actual: Decimal | None = None, measure: Decimal | None = None,
             numbers: dict | None = None, evidence: tuple[str, int | None] | None = None,
             run_id: int | None = None) -> Finding:
    table, row_id = evidence or ("project_year", p.id)
    return Finding(
        rule=rule.id, kind="capital", subject=p.project_code, fiscal_year=p.fiscal_year, quarter=quarter,
        severity=severity, planned=planned, actual=actual, measure=measure, message=message,
        numbers=numbers or {}, evidence_table=table, evidence_id=row_id,
        sync_run_id=run_id if run_id is not None else p.run_id,
        agency_code=p.place.agency_code, county_id=p.place.county_id, county=p.place.county_name,
    )


def _latest_report(p: ProjectYearFacts, quarters: range | tuple[int, ...]) -> ProgressReportFact | None:
    """The report with a progress figure of the latest of `quarters` that has one."""
    for q in sorted(quarters, reverse=True):
        report = p.progress_report(q)
        if report is not None:
            return report
    return None


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

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        if not p.active:
            return None
        judged, found = False, []
        for q in as_of.closed_quarters(p.fiscal_year):
            report, target = p.progress_report(q), p.target(q)
            if report is None or target is None:
                continue
            judged = True
            gap = round4(target - report.progress)
            if gap < limits.minor:
                continue
            severity = "critical" if gap >= limits.critical else "major" if gap >= limits.major else "minor"
            found.append(_finding(
                self, p, q, severity,
                f"{w.project(p)} در پایان {w.quarter(p.fiscal_year, q)} پیشرفت فیزیکی "
                f"{w.percent(report.progress)} گزارش کرده در برابر {w.percent(target)} پیش‌بینی‌شده "
                f"({w.number(gap)} واحد درصد عقب‌تر از برنامه)",
                planned=target, actual=report.progress, measure=gap,
                numbers={"target": text(target), "actual": text(report.progress), "gap": text(gap)},
                evidence=("progress_report", report.id), run_id=report.run_id,
            ))
        return found if judged else None


class MissingReport(Rule):
    """No report for a closed quarter after its due day (quarter end + report_due_days): major."""

    id = "missing_report"  # عدم ارسال گزارش عملکرد
    kind = "capital"
    unit = "project_year"
    rationale = "A quarter's performance report not entered by its due day leaves the project unmonitored."

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: object) -> list[Finding] | None:
        if not p.active:
            return None
        late = as_of.late_quarters(p.fiscal_year)
        if not late:
            return None
        found = []
        for q in late:
            if q in p.reports:
                continue
            due = as_of.report_due(p.fiscal_year, q)
            found.append(_finding(
                self, p, q, "major",
                f"{w.project(p)} گزارش عملکرد {w.quarter(p.fiscal_year, q)} را که مهلت ثبت آن "
                f"{w.day(due)} بود ثبت نکرده است",
                planned=p.target(q),
                numbers={"quarter_end": as_of.quarter_end(p.fiscal_year, q).isoformat(),
                         "due": due.isoformat(), "target": text(p.target(q))},
            ))
        return found


class ApprovalOverdue(Rule):
    """A report not approved by the comptroller, entered more than approval_due_days ago: minor.

    A report without an entry date is taken as entered on its quarter's last day.
    """

    id = "approval_overdue"  # تأخیر در تأیید ذیحساب
    kind = "capital"
    unit = "project_year"
    rationale = "Figures the comptroller (ذیحساب) has not confirmed in time cannot be relied on."

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: object) -> list[Finding] | None:
        if not p.active or not p.reports:
            return None
        found = []
        for q in sorted(p.reports):
            report = p.reports[q]
            if report.comptroller_status == APPROVED:
                continue
            entered = report.reported_on or as_of.quarter_end(p.fiscal_year, q)
            if not as_of.approval_late(entered):
                continue
            due = as_of.approval_due(entered)
            status = STATUS_WORDS.get(report.comptroller_status, report.comptroller_status)
            found.append(_finding(
                self, p, q, "minor",
                f"گزارش {w.quarter(p.fiscal_year, q)} {w.project(p)} {w.entered(report.reported_on)}، پس از {w.day(due)} هنوز تأیید ذیحساب ندارد (وضعیت: {status})",
                actual=report.progress,
                numbers={"reported_on": report.reported_on.isoformat() if report.reported_on else None,
                         "entered": entered.isoformat(), "approval_due": due.isoformat(),
                         "comptroller_status": report.comptroller_status},
                evidence=("progress_report", report.id), run_id=report.run_id,
            ))
        return found


class ProgressRegression(Rule):
    """actual[q] < previous − 0.5, previous = the latest earlier reported quarter of Y, else start: major."""

    id = "progress_regression"  # کاهش پیشرفت فیزیکی گزارش‌شده
    kind = "capital"
    unit = "project_year"
    rationale = "Cumulative progress cannot go down; a lower figure means one of the two reports is wrong."

    @dataclass(frozen=True)
    class Limits:
        tolerance: Decimal = Decimal("0.5")

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        if not p.active:
            return None
        judged, found = False, []
        for q in as_of.closed_quarters(p.fiscal_year):
            report = p.progress_report(q)
            if report is None:
                continue
            judged = True
            earlier = _latest_report(p, range(1, q))
            previous = earlier.progress if earlier is not None else p.start
            drop = round4(previous - report.progress)
            if drop <= limits.tolerance:
                continue
            before = (f"{w.percent(previous)} گزارش‌شده در پایان {w.quarter(p.fiscal_year, earlier.quarter)}"
                      if earlier is not None else f"پیشرفت ابتدای سال ({w.percent(previous)})")
            found.append(_finding(
                self, p, q, "major",
                f"{w.project(p)} در پایان {w.quarter(p.fiscal_year, q)} پیشرفت فیزیکی "
                f"{w.percent(report.progress)} گزارش کرده که {w.number(drop)} واحد درصد کمتر از {before} است",
                planned=previous, actual=report.progress, measure=drop,
                numbers={"previous": text(previous), "previous_quarter": earlier.quarter if earlier else None,
                         "actual": text(report.progress), "drop": text(drop)},
                evidence=("progress_report", report.id), run_id=report.run_id,
            ))
        return found if judged else None


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

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        if not p.active or p.target(4) is None:
            return None
        start = p.start
        planned_gain = p.target(4) - start
        notified_total = figure(p.total_notified)
        if planned_gain <= 0 or notified_total <= 0:
            return None
        judged, found = False, []
        for q in as_of.closed_quarters(p.fiscal_year):
            report = p.progress_report(q)
            if report is None:
                continue
            judged = True
            absorbed = figure(report.absorbed)
            physical_share = divide(report.progress - start, planned_gain)
            spend_share = divide(absorbed, notified_total)
            gap = round4(spend_share - physical_share)
            if gap < limits.major:
                continue
            severity = "critical" if gap >= limits.critical else "major"
            spend, physical = round4(spend_share), round4(physical_share)
            found.append(_finding(
                self, p, q, severity,
                f"{w.project(p)} تا پایان {w.quarter(p.fiscal_year, q)} {w.percent(spend * 100)} اعتبار ابلاغی "
                f"را جذب کرده ({w.amount(absorbed)} از {w.amount(notified_total)}) اما تنها "
                f"{w.percent(physical * 100)} پیشرفت فیزیکی برنامه‌ریزی‌شده سال را به دست آورده است "
                f"(فاصله {w.number(gap)})",
                planned=spend, actual=physical, measure=gap,
                numbers={"start": text(start), "target_q4": text(p.target(4)), "planned_gain": text(planned_gain),
                         "actual": text(report.progress), "physical_share": text(physical),
                         "absorbed": text(absorbed), "notified_total": text(notified_total),
                         "spend_share": text(spend), "gap": text(gap)},
                evidence=("progress_report", report.id), run_id=report.run_id,
            ))
        return found if judged else None


class CreditInconsistency(Rule):
    """On a source row or the total: absorbed > allocated, allocated > notified or notified > approved
    by more than 0.5 (million rials). One major deviation per project and year, no quarter."""

    id = "credit_inconsistency"  # ناسازگاری مراحل اعتبار (مصوب ≥ ابلاغی ≥ تخصیص ≥ جذب)
    kind = "capital"
    unit = "project_year"
    rationale = "Money cannot be absorbed beyond its allocation, nor allocated beyond what was notified or approved."

    Limits = CreditLimits

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: CreditLimits) -> list[Finding] | None:
        if not p.credits:
            return None
        breaks = stage_breaks(p.credits, limits.tolerance)
        if not breaks:
            return []
        said, figures = describe_breaks(breaks, STAGE_WORDS, "ردیف ")
        return [_finding(self, p, None, "major", f"{w.project(p)} در سال {w.year(p.fiscal_year)} {said}", **figures)]


class CompletionOverdue(Rule):
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

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        if not p.active or p.end_year is None or not as_of.year_begun(p.fiscal_year):
            return None
        years_late = p.fiscal_year - p.end_year
        if years_late < 1:
            return []
        report = _latest_report(p, (1, 2, 3, 4))
        latest = report.progress if report is not None else p.start
        if round4(latest) >= HUNDRED:
            return []
        severity = ("critical" if years_late >= limits.critical_years
                    else "major" if years_late >= limits.major_years else "minor")
        when = (f"در گزارش {w.quarter(p.fiscal_year, report.quarter)}" if report is not None
                else f"در ابتدای سال {w.year(p.fiscal_year)}")
        evidence = ("progress_report", report.id) if report is not None else None
        return [_finding(
            self, p, None, severity,
            f"{w.project(p)} باید تا پایان سال {w.year(p.end_year)} به پایان می‌رسید اما {when} پیشرفت فیزیکی "
            f"آن {w.percent(latest)} است ({w.number(years_late)} سال تأخیر)",
            planned=HUNDRED, actual=latest, measure=Decimal(years_late),
            numbers={"end_year": p.end_year, "years_late": years_late, "latest_progress": text(latest),
                     "latest_quarter": report.quarter if report is not None else None},
            evidence=evidence, run_id=report.run_id if report is not None else None,
        )]


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

    def check(self, p: ProjectYearFacts, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        if not p.active:
            return None
        visits = [v for v in p.inspections
                  if as_of.in_year(p.fiscal_year, v.visited_on) and v.visited_on <= as_of.day]
        if not visits:
            return None
        visit = max(visits, key=lambda v: (v.visited_on, v.id))  # same day: the last recorded
        ended = tuple(q for q in (1, 2, 3, 4) if as_of.quarter_end(p.fiscal_year, q) <= visit.visited_on)
        report = _latest_report(p, ended)
        reported = report.progress if report is not None else p.start
        difference = round4(abs(visit.observed_progress - reported))
        if difference < limits.major:
            return []
        severity = "critical" if difference >= limits.critical else "major"
        claim = (f"گزارش {w.quarter(p.fiscal_year, report.quarter)} {w.percent(reported)} اعلام کرده است"
                 if report is not None else f"پیشرفت ابتدای سال {w.year(p.fiscal_year)} {w.percent(reported)} بوده است")
        return [_finding(
            self, p, report.quarter if report is not None else None, severity,
            f"در بازدید میدانی {w.day(visit.visited_on)} ({visit.inspector}) پیشرفت فیزیکی {w.project(p)} "
            f"{w.percent(visit.observed_progress)} دیده شد در حالی که {claim} "
            f"(اختلاف {w.number(difference)} واحد درصد)",
            planned=reported, actual=visit.observed_progress, measure=difference,
            numbers={"visited_on": visit.visited_on.isoformat(), "inspector": visit.inspector,
                     "observed": text(visit.observed_progress), "reported": text(reported),
                     "reported_quarter": report.quarter if report is not None else None,
                     "difference": text(difference)},
            evidence=("field_inspection", visit.id),
            run_id=report.run_id if report is not None else None,
        )]
