"""Generators of *clean* records: the province's ordinary projects and agreements.

"Clean" is meant literally: as of the world's clock no reconciliation rule fires on a record made
here (reports on time and on target, approvals within the due days, spend in step with progress,
approved ≥ notified ≥ allocated ≥ absorbed). The only thing that can still fire later is time
itself — a report still pending today becomes overdue 16 days after it was entered — and those
latent deviations are booked by truth.py from what was generated (its bookkeeping).

The planted situations (planted/) build on the same helpers with their own numbers.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from simulator import calendar as cal
from simulator.epoch import Epoch
from simulator.model import (
    Agreement,
    CapitalCredit,
    ExpenseCredit,
    ExpenseOperation,
    OperationReport,
    ProgressReport,
    Project,
    ProjectYear,
)
from simulator.reference import (
    LOCATIONS,
    PERFORMANCE_REMARKS,
    REPORT_REMARKS,
    SOURCES,
    Agency,
    County,
    Program,
)

ZERO = Decimal(0)
ONE = Decimal(1)
TENTH = Decimal("0.1")
CENT = Decimal("0.01")
HUNDRED = Decimal(100)
CHECKED = ("exchanged", "amended")  # statuses the time- and progress-rules look at


def floor(value: Decimal, step: Decimal = ONE) -> Decimal:
    return value.quantize(step, rounding=ROUND_FLOOR)


def round_to(value: Decimal, step: Decimal = TENTH) -> Decimal:
    return value.quantize(step, rounding=ROUND_HALF_UP)


def dec(x: float, step: Decimal = TENTH) -> Decimal:
    return Decimal(repr(x)).quantize(step, rounding=ROUND_HALF_UP)


def report_timing(rng: random.Random, epoch: Epoch, year: int, quarter: int) -> tuple[date, str, date | None]:
    """When a diligent agency reports a closed quarter and when the comptroller approves it."""
    end = cal.quarter_end(year, quarter)
    reported = min(end + timedelta(days=rng.randint(1, 14)), epoch.today)
    decided = reported + timedelta(days=rng.randint(1, 12))
    if decided <= epoch.today:
        return reported, "approved", decided
    return reported, "pending", None


def agreement_day(rng: random.Random, epoch: Epoch, year: int) -> date:
    start = cal.year_start(year)
    return max(start, min(start + timedelta(days=rng.randint(20, 60)), epoch.today))


def split(total: Decimal, weights: list[int], step: Decimal = ONE) -> list[Decimal]:
    """Per-row shares of a total, floored; floors keep approved ≥ notified ≥ … row by row."""
    whole = sum(weights)
    return [floor(total * w / whole, step) for w in weights]


# ---------------------------------------------------------------------------------------------
# Capital projects


def capital_year(
    rng: random.Random,
    epoch: Epoch,
    project: Project,
    year: int,
    status: str,
    start: Decimal,
    agreement_no: str | None,
    *,
    force_reports: bool = False,
) -> ProjectYear:
    """A clean record of `project` for `year`, starting from cumulative progress `start`."""
    closed = epoch.closed(year)
    decimals = rng.random() < 0.35
    amount_step = TENTH if decimals else ONE
    approved_total = Decimal(rng.randint(5, 60) * 1000) if project.total_cost > 60000 else Decimal(
        rng.randint(20, 200) * 100
    )
    notified_total = floor(approved_total * dec(rng.uniform(0.85, 1.0), CENT))
    if status == "awaiting":
        notified_total = ZERO
    sources = _pick_sources(rng)
    weights = [rng.randint(1, 9) for _ in sources]
    approved_rows = split(approved_total, weights)
    notified_rows = split(notified_total, weights)
    notified_sum = sum(notified_rows, ZERO)

    targets: dict[int, Decimal] = {}
    reports: list[ProgressReport] = []
    remaining = max(1, project.end_year - year + 1)
    if status != "awaiting":
        if remaining == 1:
            t4 = HUNDRED
        else:
            gain = (HUNDRED - start) / remaining * dec(rng.uniform(0.7, 1.0), CENT)
            t4 = min(HUNDRED, round_to(start + max(gain, Decimal(3))))
        if t4 <= start:
            t4 = min(HUNDRED, start + Decimal(2))
        cuts = sorted(rng.uniform(0.1, 0.95) for _ in range(3))
        fractions = [dec(c, CENT) for c in cuts] + [ONE]
        previous_target = start
        for q, fraction in enumerate(fractions, start=1):
            t = round_to(start + (t4 - start) * fraction)
            t = max(t, previous_target)
            targets[q] = t
            previous_target = t
        targets[4] = t4

    report_quarters: list[int] = []
    if status in CHECKED:
        report_quarters = closed
    elif status == "cancelled" and targets:
        report_quarters = closed[:1] if (force_reports or rng.random() < 0.6) else []
        if force_reports and not report_quarters and closed:
            report_quarters = closed[:1]
    gain = targets.get(4, start) - start
    previous_actual = start
    previous_absorbed = ZERO
    for q in report_quarters:
        actual = round_to(targets[q] + dec(rng.uniform(-3.0, 2.0)))
        actual = min(HUNDRED, max(previous_actual, actual))
        physical = (actual - start) / gain if gain > 0 else ZERO
        share = min(Decimal("0.95"), max(ZERO, physical + dec(rng.uniform(-0.12, 0.08), CENT)))
        absorbed = max(previous_absorbed, floor(notified_sum * share, amount_step))
        reported, decision, decided = report_timing(rng, epoch, year, q)
        remarks = rng.choice(REPORT_REMARKS) if rng.random() < 0.25 else None
        reports.append(ProgressReport(q, reported, actual, absorbed, decision, decided, remarks))
        previous_actual, previous_absorbed = actual, absorbed

    # Credits of the year as of now: allocated covers what was absorbed, absorbed ≥ last report.
    if status == "awaiting":
        allocated_total = ZERO
        absorbed_now = ZERO
    else:
        absorbed_now = previous_absorbed
        if reports and year == epoch.current_year:
            absorbed_now = min(
                floor(notified_sum * Decimal("0.95"), amount_step),
                absorbed_now + floor(notified_sum * dec(rng.uniform(0, 0.03), CENT), amount_step),
            )
        share_by_time = Decimal(len(closed) + 1) / 5
        allocated_total = min(
            notified_sum,
            max(
                floor(absorbed_now * dec(rng.uniform(1.02, 1.25), CENT)) + 1,
                floor(notified_sum * share_by_time),
            ),
        )
        if status == "cancelled":
            allocated_total = min(allocated_total, max(absorbed_now, floor(notified_sum / 5)))
    allocated_rows = split(allocated_total, weights)
    # Rows are floored at different steps; never let a row's absorbed pass its allocation.
    absorbed_rows = [min(ab, al) for ab, al in zip(split(absorbed_now, weights, amount_step), allocated_rows)]
    credits = [
        CapitalCredit(src, a, n, al, ab)
        for src, a, n, al, ab in zip(sources, approved_rows, notified_rows, allocated_rows, absorbed_rows)
    ]
    if rng.random() < 0.04 and "سایر" not in sources:
        # A refund: money returned to the treasury shows as a negative absorbed amount.
        credits.append(CapitalCredit("سایر", ZERO, ZERO, ZERO, -Decimal(rng.randint(5, 120))))
    elif rng.random() < 0.05 and "درآمد اختصاصی" not in sources:
        credits.append(CapitalCredit("درآمد اختصاصی", ZERO, ZERO, ZERO, ZERO))
    credits.sort(key=lambda c: SOURCES.index(c.source))

    agreed = agreement_day(rng, epoch, year) if status != "awaiting" else None
    return ProjectYear(
        fiscal_year=year,
        progress_at_year_start=start,
        status=status,
        agreement_no=agreement_no if status != "awaiting" else None,
        agreement_date=agreed,
        credits=credits,
        targets=targets,
        reports=reports,
        last_modified=epoch.last_modified(agreed or cal.year_start(year), reports, rng),
        location=rng.choice(LOCATIONS) if rng.random() < 0.4 else None,
    )


def _pick_sources(rng: random.Random) -> list[str]:
    roll = rng.random()
    if roll < 0.45:
        return ["ملی"]
    if roll < 0.65:
        return ["استانی"]
    if roll < 0.9:
        return ["ملی", "استانی"]
    return ["ملی", "استانی", "درآمد اختصاصی"]


# ---------------------------------------------------------------------------------------------
# Expense agreements

_PATTERNS = (
    (25, 25, 25, 25),
    (30, 30, 20, 20),
    (10, 30, 30, 30),
    (0, 50, 50, 0),
    (40, 20, 20, 20),
    (0, 0, 60, 40),
)


def operations_for(rng: random.Random, program: Program, count: int) -> list[ExpenseOperation]:
    chosen = sorted(rng.sample(program.operations, min(count, len(program.operations))), key=lambda o: o.suffix)
    operations = []
    for template in chosen:
        unit_cost = dec(rng.uniform(*template.unit_cost), CENT)
        budget = Decimal(rng.randint(4, 120) * 100)
        annual = max(4, int(budget / unit_cost))
        pattern = rng.choice(_PATTERNS)
        targets = [Decimal(annual * p // 100) for p in pattern]
        targets[max(range(4), key=lambda i: pattern[i])] += annual - sum(targets)
        operations.append(
            ExpenseOperation(
                code=f"{program.code}-{template.suffix}",
                title=template.title,
                unit=template.unit,
                quarterly_targets=targets,
                unit_cost=unit_cost,
            )
        )
    return operations


def expense_agreement(
    rng: random.Random,
    epoch: Epoch,
    *,
    portal_id: int,
    agreement_no: str,
    year: int,
    status: str,
    agency: Agency,
    county: County | None,
    program: Program,
    operations: list[ExpenseOperation],
    force_reports: bool = False,
) -> Agreement:
    closed = epoch.closed(year)
    report_quarters: list[int] = []
    if status in CHECKED or force_reports:
        report_quarters = closed
    elif status == "cancelled" and rng.random() < 0.5:
        report_quarters = closed[:1]
    for q in report_quarters:
        reported, decision, decided = report_timing(rng, epoch, year, q)
        for op in operations:
            target = op.quarterly_targets[q - 1]
            if target > 0:
                # Truncate toward zero: a small target never loses a whole unit to rounding.
                adjustment = (target * dec(rng.uniform(-0.08, 0.05), CENT)).quantize(ONE, rounding=ROUND_DOWN)
                quantity = target + adjustment
                spent = floor(quantity * op.unit_cost * dec(rng.uniform(0.85, 1.08), CENT), TENTH)
            elif rng.random() < 0.15:
                quantity = spent = None  # reported, nothing entered: the quarter planned nothing
            else:
                continue
            remarks = rng.choice(PERFORMANCE_REMARKS) if rng.random() < 0.2 else None
            op.performance.append(OperationReport(q, quantity, spent, reported, decision, decided, remarks))

    planned_cost = sum((sum(op.quarterly_targets, ZERO) * op.unit_cost for op in operations), ZERO)
    spent_now = sum((r.spent or ZERO for op in operations for r in op.performance), ZERO)
    chapters = _pick_chapters(rng)
    weights = [rng.randint(2, 9) for _ in chapters]
    approved_total = floor(max(planned_cost, Decimal(100)) * dec(rng.uniform(1.3, 1.6), CENT))
    if status == "awaiting":
        notified_total = allocated_total = ZERO
    else:
        notified_total = floor(approved_total * dec(rng.uniform(0.92, 1.0), CENT))
        allocated_total = min(
            notified_total,
            max(
                floor(spent_now * dec(rng.uniform(1.02, 1.2), CENT)) + 1,
                floor(notified_total * Decimal(len(closed) + 1) / 5),
            ),
        )
    credits = []
    for chapter, a, n, al, sp in zip(
        chapters,
        split(approved_total, weights),
        split(notified_total, weights),
        split(allocated_total, weights),
        split(spent_now, weights, TENTH),
    ):
        if status == "awaiting":
            credits.append(ExpenseCredit(chapter, a, None if rng.random() < 0.5 else ZERO, None, None))
            continue
        sp = min(sp, al)
        credits.append(ExpenseCredit(chapter, a, n, al, None if sp == 0 and rng.random() < 0.5 else sp))

    exchanged = agreement_day(rng, epoch, year) if status != "awaiting" else None
    return Agreement(
        portal_id=portal_id,
        agreement_no=agreement_no,
        fiscal_year=year,
        agency=agency,
        county=county,
        program_code=program.code,
        program_title=program.title,
        status=status,
        exchanged_on=exchanged,
        credits=credits,
        operations=operations,
        modified_at=epoch.last_modified(exchanged or cal.year_start(year),
                                        [r for op in operations for r in op.performance], rng),
    )


def _pick_chapters(rng: random.Random) -> list[int]:
    roll = rng.random()
    if roll < 0.35:
        return [2]
    if roll < 0.6:
        return [1, 2]
    if roll < 0.8:
        return [2, 5]
    if roll < 0.88:
        return [1, 2, 6]
    if roll < 0.94:
        return [2, 4]
    return [2, 3, 7]
