"""Typed records: what a connector hands to the sync engine.

These dataclasses are the boundary between reading a portal and storing what was read. Every value
in them is already canonical (see foundation.persian / foundation.jalali): codes with ASCII digits,
Persian text in its display form, county names in their canonical spelling
(foundation.counties), Decimal amounts in million rials, Gregorian ``date`` values and
Asia/Tehran-aware ``datetime`` values. A connector never returns raw strings here; what it could not
read becomes a :class:`Rejection` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from foundation.vocabulary import Source
AgreementStatus = Literal["exchanged", "awaiting", "amended", "cancelled"]
ComptrollerStatus = Literal["approved", "pending", "rejected"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row or item the connector could not read: stored with the run, never silently dropped."""

    source: Source
    locator: str  # where it was: "ProjectDetail id=48213 year=1405 gvPerformance row 2"
    reason: str  # why, in words an operator understands
    field: str | None = None  # which field, when one field was at fault
    raw: str | None = None  # the raw text as the portal wrote it (never a credential)
    key: str | None = None  # business key of the record it belongs to, when known


# --- Nezarat-4 (capital projects) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProjectListRow:
    """One data row of the ProjectList GridView."""

    portal_id: int  # ProjectDetail.aspx?id=..., stable for the life of the project
    project_code: str
    title: str
    agency_name: str
    county: str | None
    approved_credit: Decimal | None
    progress: Decimal | None
    last_modified: datetime


@dataclass(slots=True)
class ProjectListPage:
    """One page of the project list, as read."""

    fiscal_year: int
    page_no: int
    announced_total: int  # lblCount on this page
    rows: list[ProjectListRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CreditRow:
    """One funding source of a project's year (gvCredits); an empty cell is 0 per the contract."""

    source: str  # canonical Persian name: ملی, استانی, درآمد اختصاصی, سایر, ...
    approved: Decimal
    notified: Decimal
    allocated: Decimal
    absorbed: Decimal


@dataclass(frozen=True, slots=True)
class ProgressReportRecord:
    """One quarterly performance report (gvPerformance row)."""

    quarter: int  # 1..4
    reported_on: date | None
    progress: Decimal | None  # cumulative physical progress of the project, percent
    absorbed: Decimal | None  # cumulative absorbed credit within the year, million rials
    comptroller_status: ComptrollerStatus
    decided_on: date | None
    remarks: str | None


@dataclass(slots=True)
class ProjectDetail:
    """A project's detail page for one fiscal year."""

    portal_id: int
    fiscal_year: int
    project_code: str
    title: str
    plan_code: str | None
    plan_title: str | None
    agency_code: str
    agency_name: str
    county: str | None
    location: str | None
    start_year: int | None
    end_year: int | None
    total_cost: Decimal | None
    progress_at_year_start: Decimal | None
    agreement_no: str | None
    agreement_date: date | None
    agreement_status: AgreementStatus
    last_modified: datetime
    credits: list[CreditRow] = field(default_factory=list)
    credit_total: CreditRow | None = None  # the grid's own `total` row, as the portal summed it
    targets: dict[int, Decimal] = field(default_factory=dict)  # quarter -> planned cumulative %
    reports: list[ProgressReportRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)  # rows of this page not stored


# --- SABA (expense agreements) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpenseCredit:
    """One expense chapter (فصل هزینه) of an agreement; a null amount stays None."""

    chapter: int  # 1..7
    title: str | None
    approved: Decimal | None
    notified: Decimal | None
    allocated: Decimal | None
    spent: Decimal | None


@dataclass(slots=True)
class ExpenseAgreementRecord:
    """One agreement of the SABA listing."""

    portal_id: int
    agreement_no: str
    fiscal_year: int
    agency_code: str
    agency_name: str
    county_code: str | None  # None for province-wide agreements
    county_name: str | None
    program_code: str
    program_title: str | None
    status: AgreementStatus
    exchanged_on: date | None
    modified_at: datetime
    credits: list[ExpenseCredit] = field(default_factory=list)


@dataclass(slots=True)
class AgreementListPage:
    """One page of GET /api/v1/agreements."""

    fiscal_year: int
    page_no: int
    page_size: int
    announced_total: int  # totalCount
    items: list[ExpenseAgreementRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One operation (activity with a quantity target) of an agreement."""

    code: str
    title: str | None
    unit: str | None
    annual_target: Decimal | None
    quarterly_targets: tuple[Decimal | None, Decimal | None, Decimal | None, Decimal | None]
    unit_cost: Decimal | None


@dataclass(frozen=True, slots=True)
class OperationPerformanceRecord:
    """What the agency reported for one operation in one quarter (per-quarter, not cumulative)."""

    quarter: int
    operation_code: str
    quantity: Decimal | None
    spent: Decimal | None
    reported_on: date | None
    comptroller_status: ComptrollerStatus
    decided_on: date | None
    remarks: str | None


@dataclass(slots=True)
class AgreementDetail:
    """Operations and performance of one agreement (two calls), with what could not be read."""

    portal_id: int
    operations: list[OperationRecord] = field(default_factory=list)
    performance: list[OperationPerformanceRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
