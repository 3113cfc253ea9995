"""Expense-agreement rules (SABA): reconciliation-rules.md, "Expense agreements".

For agreement `a`, operation `o`, closed quarter `q`, year to date through `q`:
planned_cum = Σ quarterly targets[1..q], actual_cum = Σ quantity[1..q], spent_cum = Σ spent[1..q],
empty figures counting 0. Agreements cancelled or awaiting exchange are judged by
credit_inconsistency only. Per-operation rules judge an `OperationInAgreement` (subject
'agreement_no/operation_code'); per-agreement rules an `AgreementFacts` (subject 'agreement_no').
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from foundation.persian import to_persian_digits
from reconcile import wording as w
from reconcile.facts import APPROVED, CreditStages
from reconcile.findings import Finding, divide, round4, text
from reconcile.rules.base import (CreditLimits, Identity, Rule, YearBegunRule, approval_clock, approval_moved,
                                  describe_breaks, late_clock, limit_texts, place_of, stage_breaks, stages_may_break)
from reconcile.rules.capital import STATUS_WORDS
from reconcile.scope import MARGIN, Scope, ea, ec, op, perf, zero

STAGE_WORDS = {"used": "هزینه", "allocated": "تخصیص", "notified": "اعتبار ابلاغی", "approved": "اعتبار مصوب"}


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

    # below the threshold minor, below minor major, below major critical
    bands = (("minor", "threshold"), ("major", "minor"), ("critical", "major"))

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        oq = scope.operation_quarters()

        def short(q: int) -> sa.ColumnElement[bool]:  # the year to date through closed quarter q
            planned, actual = Scope.through(_OP_TARGETS, q), Scope.through(_quantities(oq), q)
            return sa.and_(planned > 0, _some_item(oq, q), actual < (limits.threshold + MARGIN) * planned)

        return _year_to_date(scope, short, targets=True)

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        oq = scope.operation_quarters()
        judged = _at_a_closed_quarter(scope, lambda q: sa.and_(Scope.through(_OP_TARGETS, q) > 0, _some_item(oq, q)))
        return _count(oq.join(op, op.c.id == oq.c.operation_id).join(ea, ea.c.id == op.c.agreement_id), judged)

    def findings(self, rows: Iterable[Any], scope: Scope, limits: Limits) -> Iterator[Finding]:
        return _each_closed_quarter(self, rows, scope, limits, targets=True)

    def finding_at(self, row: Any, q: int, to_date: _ToDate, limits: Limits, named: _Named) -> Finding | None:
        """The finding of `row`'s operation through closed quarter `q` (its year to date `to_date`),
        if it falls short."""
        year, planned, actual = row.fiscal_year, to_date.planned, to_date.actual
        if planned <= 0 or to_date.latest is None:
            return None
        ratio = round4(divide(actual, planned))
        if ratio >= limits.threshold:
            return None
        severity = "minor" if ratio >= limits.minor else "major" if ratio >= limits.major else "critical"
        unit, band = _unit_of(row), self.band(limits, severity, ratio)[0]
        return _row_finding(
            self, row, f"{row.agreement_no}/{row.operation_code}", q, severity,
            f"{named.operation()} تا پایان {w.quarter(year, q)} "
            f"{w.number(actual, grouped=True)} {unit} انجام داده در برابر {w.number(planned, grouped=True)} "
            f"{unit} برنامه‌ریزی‌شده (تحقق {w.percent(ratio * 100)})",
            planned=planned, actual=actual, measure=ratio,
            numbers={"planned_cum": text(planned), "actual_cum": text(actual), "ratio": text(ratio),
                     "threshold": limit_texts(limits)["threshold"], "unit": unit, **band},
            evidence=("operation_performance", to_date.item), run_id=to_date.item_run,
        )


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

    bands = (("minor", "minor"), ("major", "major"))

    def select(self, scope: Scope, limits: Limits) -> sa.Select:
        oq = scope.operation_quarters()

        def over(q: int) -> sa.ColumnElement[bool]:  # the year to date through closed quarter q
            actual, spent = Scope.through(_quantities(oq), q), Scope.through([oq.c.s1, oq.c.s2, oq.c.s3, oq.c.s4], q)
            return sa.and_(actual > 0, spent >= (limits.minor - MARGIN) * actual * op.c.unit_cost)

        return _year_to_date(scope, over, spending=True, unit_cost=True).where(op.c.unit_cost > 0)

    def checked(self, scope: Scope, limits: Limits) -> sa.Select:
        oq = scope.operation_quarters()
        judged = _at_a_closed_quarter(scope, lambda q: Scope.through(_quantities(oq), q) > 0)
        return _count(oq.join(op, op.c.id == oq.c.operation_id).join(ea, ea.c.id == op.c.agreement_id),
                      op.c.unit_cost > 0, judged)

    def findings(self, rows: Iterable[Any], scope: Scope, limits: Limits) -> Iterator[Finding]:
        return _each_closed_quarter(self, rows, scope, limits, spending=True)

    def finding_at(self, row: Any, q: int, to_date: _ToDate, limits: Limits, named: _Named) -> Finding | None:
        """The finding of `row`'s operation through closed quarter `q` (its year to date `to_date`),
        if its unit cost overruns."""
        year, unit_cost, actual, spent = row.fiscal_year, row.unit_cost, to_date.actual, to_date.spent
        if unit_cost is None or unit_cost <= 0 or actual <= 0:
            return None
        ratio = round4(divide(spent, actual * unit_cost))
        if ratio < limits.minor:
            return None
        severity = "major" if ratio >= limits.major else "minor"
        cost, (band, bounds) = round4(divide(spent, actual)), self.band(limits, severity, ratio)
        return _row_finding(
            self, row, f"{row.agreement_no}/{row.operation_code}", q, severity,
            f"{named.operation()} تا پایان {w.quarter(year, q)} برای هر {_unit_of(row)} "
            f"{w.figure(cost, unit_cost, rule=self.id, bounds=bounds)} هزینه کرده "
            f"در برابر بهای واحد مصوب {w.amount(unit_cost, cost, rule=self.id, bounds=bounds)} "
            f"({w.number(ratio)} برابر)",
            planned=unit_cost, actual=cost, measure=ratio,
            numbers={"spent_cum": text(spent), "actual_cum": text(actual), "unit_cost": text(unit_cost),
                     "actual_unit_cost": text(cost), "ratio": text(ratio), "threshold": limit_texts(limits)["minor"],
                     **band, "unit": _unit_of(row)},
            evidence=("operation_performance", to_date.item), run_id=to_date.item_run,
        )


class MissingReport(Rule):
    """No performance item at all for a closed quarter after its due day, while some operation plans
    a quantity in it: major."""

    id = "missing_report"  # عدم ارسال گزارش عملکرد
    kind = "expense"
    unit = "agreement"
    rationale = "A quarter's performance not entered by its due day leaves the agreement's spending unexplained."

    time_driven = True

    def identity(self, c: Any) -> Identity:
        return c.agreement_no, c.fiscal_year, c.quarter

    def clock(self, scope: Scope) -> str:
        return late_clock(scope)

    def select(self, scope: Scope, limits: object) -> sa.Select:
        # one row per operation that plans a quantity in a late quarter no item of the agreement reports
        late = scope.late_quarters()
        target = sa.case((late.c.quarter == 1, op.c.target_q1), (late.c.quarter == 2, op.c.target_q2),
                         (late.c.quarter == 3, op.c.target_q3), else_=op.c.target_q4)
        other, item = op.alias("other"), perf.alias("item")
        reported = (sa.exists().where(other.c.agreement_id == ea.c.id, item.c.operation_id == other.c.id,
                                      item.c.quarter == late.c.quarter))
        return (scope.expense_subjects().add_columns(late.c.quarter, op.c.code.label("operation_code"))
                .join(late, late.c.fiscal_year == ea.c.fiscal_year)
                .join(op, op.c.agreement_id == ea.c.id)
                .where(Scope.active_agreement(), zero(target) > 0, ~reported)
                .order_by(ea.c.id, late.c.quarter, op.c.code))

    def checked(self, scope: Scope, limits: object) -> sa.Select:
        return _count(ea, scope.agreements(), Scope.active_agreement(),
                      ea.c.fiscal_year.in_([y for y in scope.years if scope.late(y)]))

    def findings(self, rows: Iterable[Any], scope: Scope, limits: object) -> Iterator[Finding]:
        as_of = scope.as_of
        for (_, q), group in itertools.groupby(rows, key=lambda r: (r.id, r.quarter)):
            group = list(group)
            row, planned = group[0], [r.operation_code for r in group]
            year = row.fiscal_year
            due = as_of.report_due(year, q)
            yield _row_finding(
                self, row, row.agreement_no, q, "major",
                f"{_named(row)} برای {w.quarter(year, q)}، که {w.number(len(planned))} فعالیت آن "
                f"در این دوره مقدار برنامه‌ریزی‌شده دارد، تا مهلت {w.day(due)} هیچ گزارش عملکردی ثبت نکرده است",
                numbers={"quarter_end": as_of.quarter_end(year, q).isoformat(), "due": due.isoformat(),
                         "operations_planned": planned},
            )


class ApprovalOverdue(Rule):
    """A performance item not approved by the comptroller, entered more than approval_due_days ago:
    minor, per item (subject agreement/operation, the item's quarter). An item without an entry
    date is taken as entered on its quarter's last day."""

    id = "approval_overdue"  # تأخیر در تأیید ذیحساب
    kind = "expense"
    unit = "operation"
    rationale = "Performance the comptroller (ذیحساب) has not confirmed in time cannot be relied on."

    time_driven = True

    def identity(self, c: Any) -> Identity:
        return c.agreement_no + "/" + c.operation_code, c.fiscal_year, c.quarter

    def clock(self, scope: Scope) -> str:
        return approval_clock(scope)

    def moved(self, scope: Scope, then: str) -> sa.ColumnElement[bool] | None:
        return approval_moved(scope, then, self._entered(scope))

    @staticmethod
    def _entered(scope: Scope) -> sa.ColumnElement:
        return sa.func.coalesce(perf.c.reported_on, scope.quarter_end(ea.c.fiscal_year, perf.c.quarter))

    def select(self, scope: Scope, limits: object) -> sa.Select:
        entered = self._entered(scope)
        return (_operations(scope, perf.c.id.label("item_id"), perf.c.quarter, perf.c.quantity,
                            perf.c.reported_on, perf.c.comptroller_status, perf.c.last_run_id.label("item_run_id"))
                .join(perf, perf.c.operation_id == op.c.id)
                .where(perf.c.comptroller_status != APPROVED, entered < scope.approval_cutoff)
                # the pending items' index order (store.models.pending_index): read by it, not every
                # item. New deviations of the rule take their ids in this order (operation id, not
                # agreement and code): sorted so, SQLite read every operation (0.36–0.46 s at 100k)
                .order_by(perf.c.operation_id, perf.c.quarter))

    def checked(self, scope: Scope, limits: object) -> sa.Select:
        return _count(op.join(ea, ea.c.id == op.c.agreement_id), scope.agreements(), Scope.active_agreement(),
                      sa.exists().where(perf.c.operation_id == op.c.id))

    def finding(self, row: Any, scope: Scope, limits: object) -> Finding | None:
        q, year, as_of = row.quarter, row.fiscal_year, scope.as_of
        entered = row.reported_on or as_of.quarter_end(year, q)
        if not as_of.approval_late(entered):
            return None
        due = as_of.approval_due(entered)
        status = STATUS_WORDS.get(row.comptroller_status, row.comptroller_status)
        return _row_finding(
            self, row, f"{row.agreement_no}/{row.operation_code}", q, "minor",
            f"عملکرد {w.quarter(year, q)} {_operation_named(row)} {w.entered(row.reported_on)}، پس از {w.day(due)} هنوز تأیید ذیحساب ندارد (وضعیت: {status})",
            actual=row.quantity,
            numbers={"reported_on": row.reported_on.isoformat() if row.reported_on else None,
                     "entered": entered.isoformat(), "approval_due": due.isoformat(),
                     "comptroller_status": row.comptroller_status, "unit": _unit_of(row)},
            evidence=("operation_performance", row.item_id), run_id=row.item_run_id,
        )


class CreditInconsistency(YearBegunRule):
    """On any chapter: spent > allocated, allocated > notified or notified > approved by more than 0.5.
    One major deviation per agreement and year, no quarter; a year is judged once it has begun."""

    id = "credit_inconsistency"  # ناسازگاری مراحل اعتبار (مصوب ≥ ابلاغی ≥ تخصیص ≥ هزینه)
    kind = "expense"
    unit = "agreement"
    rationale = "Money cannot be spent beyond its allocation, nor allocated beyond what was notified or approved."

    Limits = CreditLimits

    subject_key, year_column = "agreement_no", ea.c.fiscal_year

    def select(self, scope: Scope, limits: CreditLimits) -> sa.Select:
        # every chapter of the agreements that have a chapter that may break
        any_chapter = ec.alias("any_chapter")
        broken = sa.exists().where(any_chapter.c.agreement_id == ea.c.id, stages_may_break(
            any_chapter.c.approved, any_chapter.c.notified, any_chapter.c.allocated, any_chapter.c.spent,
            limits.tolerance))
        return (scope.expense_subjects()
                .add_columns(ec.c.id.label("chapter_id"), ec.c.chapter, ec.c.approved, ec.c.notified,
                             ec.c.allocated, ec.c.spent)
                .join(ec, ec.c.agreement_id == ea.c.id)
                .where(ea.c.fiscal_year.in_(scope.begun_years()), broken)
                .order_by(ea.c.id, ec.c.chapter))

    def checked(self, scope: Scope, limits: CreditLimits) -> sa.Select:
        return _count(ea, scope.agreements(), ea.c.fiscal_year.in_(scope.begun_years()), sa.exists().where(ec.c.agreement_id == ea.c.id))

    def findings(self, rows: Iterable[Any], scope: Scope, limits: CreditLimits) -> Iterator[Finding]:
        for _, group in itertools.groupby(rows, key=lambda r: r.id):
            group = list(group)
            row = group[0]
            chapters = tuple(CreditStages(f"فصل {to_persian_digits(str(r.chapter))}", r.approved, r.notified,
                                          r.allocated, r.spent, "expense_credit", r.chapter_id) for r in group)
            breaks = stage_breaks(chapters, limits.tolerance)
            if not breaks:
                continue
            said, figures = describe_breaks(breaks, STAGE_WORDS, "", limits.tolerance)
            yield _row_finding(self, row, row.agreement_no, None, "major",
                               f"{_named(row)} در سال {w.year(row.fiscal_year)} {said}", **figures)


# --- set-wise: rows of Scope.expense_subjects() and the findings they make ----------------------

_OP_TARGETS = (op.c.target_q1, op.c.target_q2, op.c.target_q3, op.c.target_q4)


def _named(row: Any) -> str:
    return w.agreement_named(row.agreement_no, row.program_title, place_of(row))


def _operation_named(row: Any) -> str:
    return w.operation_named(row.operation_title, row.operation_code, _named(row))


def _row_finding(rule: Rule, row: Any, subject: str, quarter: int | None, severity: str, message: str, *,
                 planned: Decimal | None = None, actual: Decimal | None = None, measure: Decimal | None = None,
                 numbers: dict | None = None, evidence: tuple[str, int | None] | None = None,
                 run_id: int | None = None) -> Finding:
    """An expense finding of a row of Scope.expense_subjects()."""
    table, row_id = evidence or ("expense_agreement", row.id)
    return Finding(
        rule=rule.id, kind="expense", subject=subject, fiscal_year=row.fiscal_year, quarter=quarter,
        severity=severity, planned=planned, actual=actual, measure=measure, message=message,
        numbers=numbers or {}, evidence_table=table, evidence_id=row_id,
        sync_run_id=run_id if run_id is not None else row.last_run_id,
        agency_code=row.agency_code, county_id=row.county_id, county=row.county_name,
    )


def _operations(scope: Scope, *columns: Any) -> sa.Select:
    """Operations of active agreements in scope, named, with `columns`."""
    return (scope.expense_subjects()
            .add_columns(op.c.id.label("operation_id"), op.c.code.label("operation_code"),
                         op.c.title.label("operation_title"), op.c.unit.label("operation_unit"), *columns)
            .join(op, op.c.agreement_id == ea.c.id)
            .where(Scope.active_agreement()))


def _year_to_date(scope: Scope, breaks: Callable[[int], sa.ColumnElement[bool]], *, targets: bool = False,
                  spending: bool = False, unit_cost: bool = False) -> sa.Select:
    """Each operation of an active agreement in scope whose year to date may break a rule through
    one of its year's closed quarters (`breaks(q)`: the rule's condition through quarter q, SQL),
    with the quarters' own figures (Scope.operation_quarters) for the exact sums (:func:`_to_date`):
    the quantities n1..n4 and the items' ids and runs (i1..i4, r1..r4) always; the targets t1..t4,
    the spending s1..s4 and the unit cost when asked. (Every figure read is a Decimal made from the
    store's value: at 100k, 600,000 of them that no rule used cost half a second.)

    One row an operation, judged in Python at each closed quarter (:func:`_each_closed_quarter`),
    in the order of agreement, operation code and quarter. Not a row an operation and quarter (a
    join with the closed quarters): SQLite then planned the quarters outermost, joined every
    operation four times and sorted the rows (at 100k the rows of operation_shortfall 2.8–3.9 s,
    now 1.0–1.3 s; docs/benchmarks.md, session 22)."""
    oq = scope.operation_quarters()
    columns = list(_quantities(oq))
    if targets:
        columns += [t.label(f"t{k}") for k, t in enumerate(_OP_TARGETS, 1)]
    if spending:
        columns += [oq.c[f"s{k}"] for k in (1, 2, 3, 4)]
    if unit_cost:
        columns.append(op.c.unit_cost)
    return (_operations(scope, *columns, *(oq.c[f"{c}{k}"] for c in "ir" for k in (1, 2, 3, 4)))
            .join(oq, oq.c.operation_id == op.c.id)
            .where(_at_a_closed_quarter(scope, breaks))
            .order_by(ea.c.id, op.c.code))


def _at_a_closed_quarter(scope: Scope, holds: Callable[[int], sa.ColumnElement[bool]]) -> sa.ColumnElement[bool]:
    """SQL: `holds(q)` at one of the closed quarters q of the agreement's year (an OR of constants per
    quarter, not a join with a table of the closed quarters; the counts of what the year-to-date
    rules checked too: 0.33–0.38 s each at 100k on PostgreSQL before)."""
    terms = [sa.and_(ea.c.fiscal_year.in_(years), holds(q)) for q in (1, 2, 3, 4)
             if (years := [y for y in scope.years if q in scope.closed(y)])]
    return sa.or_(*terms) if terms else sa.false()


def _each_closed_quarter(rule: Any, rows: Iterable[Any], scope: Scope, limits: Any, *, targets: bool = False,
                         spending: bool = False) -> Iterator[Finding]:
    """A year-to-date rule's findings (``finding_at``) on each row of :func:`_year_to_date` (read with
    its `targets` or `spending`) at each closed quarter of its year, in quarter order."""
    finding_at, closed = rule.finding_at, {y: scope.closed(y) for y in scope.years}
    for row in rows:
        quarters = closed.get(row.fiscal_year, ())
        if not quarters:
            continue
        named = _Named(row)
        for q, to_date in enumerate(_to_date(row, max(quarters), targets=targets, spending=spending), 1):
            if q in quarters:
                found = finding_at(row, q, to_date, limits, named)
                if found is not None:
                    yield found


class _Named:
    """What names a row's operation in a sentence, worded once for all its quarters' findings."""

    __slots__ = ("row", "_operation")

    def __init__(self, row: Any) -> None:
        self.row, self._operation = row, None

    def operation(self) -> str:
        if self._operation is None:
            self._operation = _operation_named(self.row)
        return self._operation


def _quantities(oq: sa.Table) -> list[Any]:
    return [oq.c.n1, oq.c.n2, oq.c.n3, oq.c.n4]


def _some_item(oq: sa.Table, quarter: int) -> sa.ColumnElement[bool]:
    """A performance item in quarters 1..quarter (SQL)."""
    return sa.or_(*(oq.c[f"i{k}"].is_not(None) for k in range(1, quarter + 1)))


@dataclass(frozen=True, slots=True)
class _ToDate:
    """An operation's year to date through a quarter, summed exactly (empty figures count 0)."""

    planned: Decimal | None  # None: the row has no targets (_year_to_date without targets)
    actual: Decimal
    spent: Decimal | None  # None: the row has no spending (_year_to_date without spending)
    latest: int | None  # the quarter in 1..q of the latest performance item, None: no item
    item: int | None  # that item's id and the sync run that last changed it (None: no item)
    item_run: int | None


_TARGETS, _QUANTITIES, _SPENT = ("t1", "t2", "t3", "t4"), ("n1", "n2", "n3", "n4"), ("s1", "s2", "s3", "s4")
_ITEMS, _ITEM_RUNS = ("i1", "i2", "i3", "i4"), ("r1", "r2", "r3", "r4")


def _to_date(row: Any, through: int, *, targets: bool = False, spending: bool = False) -> list[_ToDate]:
    """The years to date through quarters 1..`through` of a row of :func:`_year_to_date`, with its
    `targets` and `spending` when the row has them (the same flags): one pass over the quarters,
    each sum carried to the next."""
    planned = Decimal(0) if targets else None
    spent = Decimal(0) if spending else None
    actual = Decimal(0)
    latest = item = item_run = None
    sums = []
    for k in range(through):
        if targets:
            target = getattr(row, _TARGETS[k])
            if target is not None:
                planned += target
        quarter_item = getattr(row, _ITEMS[k])
        if quarter_item is not None:
            quantity = getattr(row, _QUANTITIES[k])
            if quantity is not None:
                actual += quantity
            if spending:
                cost = getattr(row, _SPENT[k])
                if cost is not None:
                    spent += cost
            latest, item, item_run = k + 1, quarter_item, getattr(row, _ITEM_RUNS[k])
        sums.append(_ToDate(planned, actual, spent, latest, item, item_run))
    return sums


def _unit_of(row: Any) -> str:
    return row.operation_unit or "واحد"


def _count(select_from: Any, *where: Any) -> sa.Select:
    return sa.select(sa.func.count()).select_from(select_from).where(*where)
