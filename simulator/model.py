"""The world's records, in canonical form: what the portals would say if they had no quirks.

Rendering (quirks, Persian digits, Jalali dates, the malformations of the `malformed` fault) happens
only in the portal modules; the ground truth is read straight from these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from simulator.reference import Agency, County


@dataclass(slots=True)
class CapitalCredit:
    """One gvCredits row: a funding source's amounts within the year (million rials)."""

    source: str
    approved: Decimal
    notified: Decimal
    allocated: Decimal
    absorbed: Decimal


@dataclass(slots=True)
class ProgressReport:
    """One gvPerformance row: the agency's report for a quarter and the comptroller's decision."""

    quarter: int
    reported_on: date
    progress: Decimal  # cumulative physical progress of the project, percent
    absorbed: Decimal  # cumulative absorbed credit within the year, million rials
    status: str  # approved | pending | rejected
    decided_on: date | None
    remarks: str | None


@dataclass(slots=True)
class ProjectYear:
    """A project's record for one fiscal year: its detail page."""

    fiscal_year: int
    progress_at_year_start: Decimal
    status: str  # exchanged | awaiting | amended | cancelled
    agreement_no: str | None
    agreement_date: date | None
    credits: list[CapitalCredit]
    targets: dict[int, Decimal]  # quarter -> planned cumulative progress
    reports: list[ProgressReport]
    last_modified: datetime
    location: str | None = None

    @property
    def approved_total(self) -> Decimal:
        return sum((c.approved for c in self.credits), Decimal(0))

    def latest_report(self) -> ProgressReport | None:
        return max(self.reports, key=lambda r: r.quarter) if self.reports else None


@dataclass(slots=True)
class Project:
    portal_id: int  # ProjectDetail.aspx?id=
    code: str  # '1305012007-003'
    title: str
    plan_code: str
    plan_title: str
    agency: Agency
    county: County
    start_year: int
    end_year: int
    total_cost: Decimal
    years: dict[int, ProjectYear] = field(default_factory=dict)
    case: str | None = None  # planted case id, None for background projects


@dataclass(slots=True)
class ExpenseCredit:
    chapter: int
    approved: Decimal | None
    notified: Decimal | None
    allocated: Decimal | None
    spent: Decimal | None


@dataclass(slots=True)
class OperationReport:
    """One SABA performance item: what was delivered and spent on an operation in one quarter."""

    quarter: int
    quantity: Decimal | None
    spent: Decimal | None
    reported_on: date
    status: str  # approved | pending | rejected
    decided_on: date | None
    remarks: str | None


@dataclass(slots=True)
class ExpenseOperation:
    code: str
    title: str
    unit: str
    quarterly_targets: list[Decimal]  # per quarter, not cumulative
    unit_cost: Decimal | None
    performance: list[OperationReport] = field(default_factory=list)


@dataclass(slots=True)
class Agreement:
    """A SABA expense agreement of one fiscal year."""

    portal_id: int
    agreement_no: str
    fiscal_year: int
    agency: Agency
    county: County | None
    program_code: str
    program_title: str
    status: str  # exchanged | awaiting | amended | cancelled
    exchanged_on: date | None
    credits: list[ExpenseCredit]
    operations: list[ExpenseOperation]
    modified_at: datetime
    case: str | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    """A field inspection (not on the portals; for the inspection_mismatch rule)."""

    project_code: str
    day: date
    observed_progress: Decimal
    inspector: str
    remarks: str | None


@dataclass(frozen=True, slots=True)
class ExpectedDeviation:
    """A deviation the reconciliation must find, and from which as-of day on it holds."""

    rule: str
    subject: str
    fiscal_year: int
    quarter: int | None
    severity: str
    active_from: date = date.min  # fires for every as-of day on or after this one
    case: str | None = None  # the planted case behind it (None: bookkeeping of background data)
