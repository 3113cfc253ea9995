"""Expense-agreement rules (SABA): reconciliation-rules.md, "Expense agreements".

For agreement `a`, operation `o`, closed quarter `q`, year to date through `q`:
planned_cum = Σ quarterly targets[1..q], actual_cum = Σ quantity[1..q], spent_cum = Σ spent[1..q],
empty figures counting 0. Agreements cancelled or awaiting exchange are judged by
credit_inconsistency only. Per-operation rules judge an `OperationInAgreement` (subject
'agreement_no/operation_code'); per-agreement rules an `AgreementFacts` (subject 'agreement_no').
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from reconcile import wording as w
from reconcile.facts import APPROVED, AgreementFacts, AsOf, OperationInAgreement
from reconcile.findings import Finding, divide, figure, round4, text
from reconcile.rules.base import CreditLimits, Rule, describe_breaks, stage_breaks
from reconcile.rules.capital import STATUS_WORDS

STAGE_WORDS = {"used": "هزینه", "allocated": "تخصیص", "notified": "اعتبار ابلاغی", "approved": "اعتبار مصوب"}


def _finding(rule: Rule, a: AgreementFacts, subject: str, quarter: int | None, severity: str, message: str, *,
             planned: Decimal | None = None, actual: Decimal | None = None, measure: Decimal | None = None,
             numbers: dict | None = None, evidence: tuple[str, int | None] | None = None,
             run_id: int | None = None) -> Finding:
    table, row_id = evidence or ("expense_agreement", a.id)
    return Finding(
        rule=rule.id, kind="expense", subject=subject, fiscal_year=a.fiscal_year, quarter=quarter,
        severity=severity, planned=planned, actual=actual, measure=measure, message=message,
        numbers=numbers or {}, evidence_table=table, evidence_id=row_id,
        sync_run_id=run_id if run_id is not None else a.run_id,
        agency_code=a.place.agency_code, county_id=a.place.county_id, county=a.place.county_name,
    )


def _unit(u: OperationInAgreement) -> str:
    return u.operation.unit or "واحد"


class OperationShortfall(Rule):
    """actual_cum / planned_cum < 0.85 (planned_cum > 0, some report in 1..q): minor ≥ 0.70,
    major ≥ 0.40, critical below."""

    id = "operation_shortfall"  # عدم تحقق مقدار هدف کمی فعالیت
    kind = "expense"
    unit = "operation"
    rationale = "Credit paid for a quantity of service that is not delivered is performance-based budgeting's first warning."

    @dataclass(frozen=True)
    class Limits:
        threshold: Decimal = Decimal("0.85")
        minor: Decimal = Decimal("0.70")
        major: Decimal = Decimal("0.40")

    def check(self, u: OperationInAgreement, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        a = u.agreement
        if not a.active:
            return None
        judged, found = False, []
        for q, planned, actual, _spent, latest in u.year_to_date(as_of):
            if planned <= 0 or latest is None:
                continue
            judged = True
            ratio = round4(divide(actual, planned))
            if ratio >= limits.threshold:
                continue
            severity = "minor" if ratio >= limits.minor else "major" if ratio >= limits.major else "critical"
            found.append(_finding(
                self, a, u.subject, q, severity,
                f"{w.operation(a, u.operation)} تا پایان {w.quarter(a.fiscal_year, q)} "
                f"{w.number(actual, grouped=True)} {_unit(u)} انجام داده در برابر {w.number(planned, grouped=True)} "
                f"{_unit(u)} برنامه‌ریزی‌شده (تحقق {w.percent(ratio * 100)})",
                planned=planned, actual=actual, measure=ratio,
                numbers={"planned_cum": text(planned), "actual_cum": text(actual), "ratio": text(ratio)},
                evidence=("operation_performance", latest.id), run_id=latest.run_id,
            ))
        return found if judged else None


class UnitCostOverrun(Rule):
    """(spent_cum / actual_cum) / unitCost ≥ 1.20 (actual_cum > 0, unitCost > 0): minor below 1.50, major from 1.50."""

    id = "unit_cost_overrun"  # افزایش قیمت تمام‌شده واحد فعالیت
    kind = "expense"
    unit = "operation"
    rationale = "Each unit of service costing well above the agreement's unit cost (قیمت تمام‌شده) wastes credit or hides under-reporting."

    @dataclass(frozen=True)
    class Limits:
        minor: Decimal = Decimal("1.20")
        major: Decimal = Decimal("1.50")

    def check(self, u: OperationInAgreement, as_of: AsOf, limits: Limits) -> list[Finding] | None:
        a, unit_cost = u.agreement, u.operation.unit_cost
        if not a.active or unit_cost is None or unit_cost <= 0:
            return None
        judged, found = False, []
        for q, _planned, actual, spent, latest in u.year_to_date(as_of):
            if actual <= 0:
                continue
            judged = True
            ratio = round4(divide(spent, actual * unit_cost))
            if ratio < limits.minor:
                continue
            severity = "major" if ratio >= limits.major else "minor"
            cost = round4(divide(spent, actual))
            found.append(_finding(
                self, a, u.subject, q, severity,
                f"{w.operation(a, u.operation)} تا پایان {w.quarter(a.fiscal_year, q)} برای هر {_unit(u)} "
                f"{w.amount(cost)} هزینه کرده در برابر قیمت واحد {w.amount(unit_cost)} در موافقتنامه "
                f"({w.number(ratio)} برابر)",
                planned=unit_cost, actual=cost, measure=ratio,
                numbers={"spent_cum": text(spent), "actual_cum": text(actual), "unit_cost": text(unit_cost),
                         "actual_unit_cost": text(cost), "ratio": text(ratio)},
                evidence=("operation_performance", latest.id), run_id=latest.run_id,
            ))
        return found if judged else None


class MissingReport(Rule):
    """No performance item at all for a closed quarter after its due day, while some operation plans
    a quantity in it: major."""

    id = "missing_report"  # عدم ارسال گزارش عملکرد
    kind = "expense"
    unit = "agreement"
    rationale = "A quarter's performance not entered by its due day leaves the agreement's spending unexplained."

    def check(self, a: AgreementFacts, as_of: AsOf, limits: object) -> list[Finding] | None:
        if not a.active:
            return None
        late = as_of.late_quarters(a.fiscal_year)
        if not late:
            return None
        found = []
        for q in late:
            if any(q in o.performance for o in a.operations):
                continue
            planned = [o.code for o in a.operations if figure(o.targets[q - 1]) > 0]
            if not planned:
                continue
            due = as_of.report_due(a.fiscal_year, q)
            found.append(_finding(
                self, a, a.agreement_no, q, "major",
                f"{w.agreement(a)} برای {w.quarter(a.fiscal_year, q)}، که {w.number(len(planned))} فعالیت آن "
                f"در این دوره مقدار برنامه‌ریزی‌شده دارد، تا مهلت {w.day(due)} هیچ گزارش عملکردی ثبت نکرده است",
                numbers={"quarter_end": as_of.quarter_end(a.fiscal_year, q).isoformat(), "due": due.isoformat(),
                         "operations_planned": planned},
            ))
        return found


class ApprovalOverdue(Rule):
    """A performance item not approved by the comptroller, entered more than approval_due_days ago:
    minor, per item (subject agreement/operation, the item's quarter). An item without an entry
    date is taken as entered on its quarter's last day."""

    id = "approval_overdue"  # تأخیر در تأیید ذیحساب
    kind = "expense"
    unit = "operation"
    rationale = "Performance the comptroller (ذیحساب) has not confirmed in time cannot be relied on."

    def check(self, u: OperationInAgreement, as_of: AsOf, limits: object) -> list[Finding] | None:
        a = u.agreement
        if not a.active or not u.operation.performance:
            return None
        found = []
        for q in sorted(u.operation.performance):
            item = u.operation.performance[q]
            if item.comptroller_status == APPROVED:
                continue
            entered = item.reported_on or as_of.quarter_end(a.fiscal_year, q)
            if not as_of.approval_late(entered):
                continue
            due = as_of.approval_due(entered)
            status = STATUS_WORDS.get(item.comptroller_status, item.comptroller_status)
            found.append(_finding(
                self, a, u.subject, q, "minor",
                f"عملکرد {w.quarter(a.fiscal_year, q)} {w.operation(a, u.operation)} {w.entered(item.reported_on)}، پس از {w.day(due)} هنوز تأیید ذیحساب ندارد (وضعیت: {status})",
                actual=item.quantity,
                numbers={"reported_on": item.reported_on.isoformat() if item.reported_on else None,
                         "entered": entered.isoformat(), "approval_due": due.isoformat(),
                         "comptroller_status": item.comptroller_status},
                evidence=("operation_performance", item.id), run_id=item.run_id,
            ))
        return found


class CreditInconsistency(Rule):
    """On any chapter: spent > allocated, allocated > notified or notified > approved by more than 0.5.
    One major deviation per agreement and year, no quarter."""

    id = "credit_inconsistency"  # ناسازگاری مراحل اعتبار (مصوب ≥ ابلاغی ≥ تخصیص ≥ هزینه)
    kind = "expense"
    unit = "agreement"
    rationale = "Money cannot be spent beyond its allocation, nor allocated beyond what was notified or approved."

    Limits = CreditLimits

    def check(self, a: AgreementFacts, as_of: AsOf, limits: CreditLimits) -> list[Finding] | None:
        if not a.credits:
            return None
        breaks = stage_breaks(a.credits, limits.tolerance)
        if not breaks:
            return []
        said, figures = describe_breaks(breaks, STAGE_WORDS, "")
        return [_finding(self, a, a.agreement_no, None, "major",
                         f"{w.agreement(a)} در سال {w.year(a.fiscal_year)} {said}", **figures)]
