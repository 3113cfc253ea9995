"""The as-of day a run judges by (:class:`AsOf`), and the shapes of the facts the store holds.

Rules read the store set-wise (reconcile/scope.py); these plain, immutable records describe the
same facts in memory: a credit row's stages (:class:`CreditStages`, which credit_inconsistency
builds from its rows), who reports where (:class:`Place`), and whole project years and agreements
as tests describe them (tests/reconcile/fact_store.py writes them into a store). Values are
canonical as stored: codes with ASCII digits, Decimal figures (None where the portal left a cell
empty), Gregorian dates, Persian display names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from foundation import jalali

# Agreements in these states are checked by credit_inconsistency only (catalogue: "cancelled, or
# not exchanged").
INACTIVE_AGREEMENT = frozenset({"cancelled", "awaiting"})
APPROVED = "approved"


@lru_cache(maxsize=256)
def _quarter_end(year: int, quarter: int) -> date:
    return jalali.quarter_end(year, quarter)


@lru_cache(maxsize=64)
def _year_start(year: int) -> date:
    return jalali.year_start(year)


@lru_cache(maxsize=64)
def _year_end(year: int) -> date:
    return jalali.year_end(year)


@lru_cache(maxsize=256)
def _closed_quarters(year: int, day: date) -> tuple[int, ...]:
    return tuple(q for q in (1, 2, 3, 4) if _quarter_end(year, q) < day)


@dataclass(frozen=True, slots=True)
class AsOf:
    """The day a run judges as of, with the two deadlines of the configuration.

    - a quarter is closed when its last day is before ``day`` (on its last day it is still open);
    - a quarter's report is due ``report_due_days`` after its last day and is missing when ``day``
      is after the due day (on the due day itself it is not late yet);
    - a report not approved is overdue when it was entered more than ``approval_due_days`` days
      before ``day``.
    """

    day: date
    report_due_days: int = 15
    approval_due_days: int = 15

    def quarter_end(self, year: int, quarter: int) -> date:
        return _quarter_end(year, quarter)

    def closed_quarters(self, year: int) -> tuple[int, ...]:
        return _closed_quarters(year, self.day)

    def report_due(self, year: int, quarter: int) -> date:
        return _quarter_end(year, quarter) + timedelta(days=self.report_due_days)

    def report_late(self, year: int, quarter: int) -> bool:
        return self.day > self.report_due(year, quarter)

    def late_quarters(self, year: int) -> list[int]:
        """The closed quarters of `year` whose report is past its due day (missing_report judges them)."""
        return [q for q in self.closed_quarters(year) if self.report_late(year, q)]

    def approval_due(self, entered: date) -> date:
        """The last day an entry may wait for the comptroller before it is overdue."""
        return entered + timedelta(days=self.approval_due_days)

    def approval_late(self, entered: date) -> bool:
        return (self.day - entered).days > self.approval_due_days

    def year_begun(self, year: int) -> bool:
        return _year_start(year) <= self.day

    def in_year(self, year: int, day: date) -> bool:
        return _year_start(year) <= day <= _year_end(year)


# Row-like facts are NamedTuples: hundreds of thousands are built per run, and a tuple is the
# cheapest immutable record Python has.


class Place(NamedTuple):
    """Who reports and where: the agency and the county (None: province-wide)."""

    agency_code: str
    agency_name: str | None = None
    county_id: int | None = None
    county_name: str | None = None


class CreditStages(NamedTuple):
    """One credit row with its four money stages (اعتبار مصوب، ابلاغی، تخصیص، جذب/هزینه).

    ``used`` is the absorbed credit of a capital source row (جذب) or the spent amount of an expense
    chapter (هزینه). ``label`` names the row in messages: a source (ملی …), 'جمع' for the total row,
    'فصل ۱' for a chapter.
    """

    label: str
    approved: Decimal | None
    notified: Decimal | None
    allocated: Decimal | None
    used: Decimal | None
    evidence_table: str
    evidence_id: int | None


# --- capital projects (Nezarat-4) -------------------------------------------------------------


class ProgressReportFact(NamedTuple):
    id: int
    quarter: int
    reported_on: date | None
    progress: Decimal | None  # cumulative physical progress at the quarter's end
    absorbed: Decimal | None  # cumulative absorbed credit within the year
    comptroller_status: str
    run_id: int | None = None  # sync run that last changed it


class InspectionFact(NamedTuple):
    id: int
    visited_on: date
    observed_progress: Decimal
    inspector: str


@dataclass(frozen=True, slots=True)
class ProjectYearFacts:
    """A project's fiscal year: identity, targets, credits, reports and the field visits of it."""

    id: int
    project_code: str
    fiscal_year: int
    title: str
    place: Place
    agreement_status: str
    start_year: int | None = None
    end_year: int | None = None
    progress_at_year_start: Decimal | None = None
    targets: tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None] = (None, None, None, None)
    total_notified: Decimal | None = None
    credits: tuple[CreditStages, ...] = ()  # the source rows, then the portal's total row
    reports: dict[int, ProgressReportFact] = field(default_factory=dict)  # quarter -> report
    inspections: tuple[InspectionFact, ...] = ()  # every visit of the project (any year)
    run_id: int | None = None  # sync run that last saw the project's page
    # exchanged (or amended) with targets: judged by every capital rule (set from the fields above)
    active: bool = field(init=False)

    def __post_init__(self) -> None:
        active = self.agreement_status not in INACTIVE_AGREEMENT and any(t is not None for t in self.targets)
        object.__setattr__(self, "active", active)

    @property
    def start(self) -> Decimal:
        """Progress at the start of the year; an empty cell counts as 0."""
        return self.progress_at_year_start if self.progress_at_year_start is not None else Decimal(0)

    def target(self, quarter: int) -> Decimal | None:
        return self.targets[quarter - 1]

    def progress_report(self, quarter: int) -> ProgressReportFact | None:
        """The report of `quarter` when it carries a progress figure (an empty one says nothing)."""
        report = self.reports.get(quarter)
        return report if report is not None and report.progress is not None else None


# --- expense agreements (SABA) ----------------------------------------------------------------


class PerformanceFact(NamedTuple):
    id: int
    quarter: int
    quantity: Decimal | None  # delivered in that quarter
    spent: Decimal | None  # spent in that quarter
    reported_on: date | None
    comptroller_status: str
    run_id: int | None = None


@dataclass(frozen=True, slots=True)
class OperationFacts:
    id: int
    code: str
    title: str | None
    unit: str | None
    targets: tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]  # of each quarter
    unit_cost: Decimal | None
    performance: dict[int, PerformanceFact] = field(default_factory=dict)  # quarter -> item


@dataclass(frozen=True, slots=True)
class AgreementFacts:
    id: int
    agreement_no: str
    fiscal_year: int
    program_title: str | None
    place: Place
    status: str
    credits: tuple[CreditStages, ...] = ()
    operations: tuple[OperationFacts, ...] = ()
    run_id: int | None = None

    @property
    def active(self) -> bool:
        return self.status not in INACTIVE_AGREEMENT


class OperationInAgreement(NamedTuple):
    """The unit of the per-operation expense rules: an operation with its agreement (a test's facts)."""

    agreement: AgreementFacts
    operation: OperationFacts

