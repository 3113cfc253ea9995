"""What the monitoring report reads from the store: plain rows, one query per table and fiscal year.

reports/model.py turns these rows into the report; nothing here computes a ratio or a forecast.
Items the portals no longer list (``gone``) are left out, as they are of reconciliation. Credits
are the stored figures (cumulative within the year, as the portal shows them at the last sync);
a capital project's are the sum of its source rows, an agreement's the sum of its chapters, with
what the agreement spent standing for what was absorbed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from store.models import (
    Agency,
    County,
    Deviation,
    ExpenseAgreement,
    ExpenseCredit,
    FieldInspection,
    Operation,
    OperationPerformance,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
    SyncRun,
)

py, pr, pc, proj = ProjectYear.__table__, ProgressReport.__table__, ProjectCredit.__table__, Project.__table__
ea, ec, op, perf = (ExpenseAgreement.__table__, ExpenseCredit.__table__, Operation.__table__,
                    OperationPerformance.__table__)
ag, co, dev, visits = Agency.__table__, County.__table__, Deviation.__table__, FieldInspection.__table__
# the sync runs that first read a report and last changed it: their start is when the store could first
# have known it (a report entered on a sign-off day after the sign-off is not one its archive saw)
first_read, last_read = SyncRun.__table__.alias("first_read"), SyncRun.__table__.alias("last_read")


def _read_moments(table: sa.Table) -> tuple[list, Any]:
    """``first_read_at`` and ``last_read_at`` of `table`'s rows, and the joins that give them."""
    columns = [first_read.c.started_at.label("first_read_at"), last_read.c.started_at.label("last_read_at")]
    return columns, lambda query: (query.outerjoin(first_read, first_read.c.id == table.c.first_run_id)
                                   .outerjoin(last_read, last_read.c.id == table.c.last_run_id))

OPEN_STATUSES = ("open", "acknowledged")
ZERO = Decimal(0)  # what a report lists as still standing


@dataclass(frozen=True)
class Credits:
    """The four stages of credit, million rials; a figure the portal left empty counts as 0."""

    approved: Decimal = ZERO
    notified: Decimal = ZERO
    allocated: Decimal = ZERO
    absorbed: Decimal = ZERO


def _credits(conn: Connection, query: sa.Select) -> dict[int, Credits]:
    # summed here as Decimals: SQLite would add the stored REALs as floats (0.1 + 0.2 ...)
    totals: dict[int, list[Decimal]] = {}
    for owner, *figures in conn.execute(query):
        sums = totals.setdefault(owner, [ZERO] * 4)
        for i, figure in enumerate(figures):
            sums[i] += figure or ZERO
    return {owner: Credits(*sums) for owner, sums in totals.items()}


def project_credits(conn: Connection, year: int) -> dict[int, Credits]:
    """project_year id -> the sum of its source rows."""
    return _credits(conn, sa.select(pc.c.project_year_id, pc.c.approved, pc.c.notified, pc.c.allocated, pc.c.absorbed)
                    .join(py, py.c.id == pc.c.project_year_id).where(py.c.fiscal_year == year, ~py.c.gone))


def agreement_credits(conn: Connection, year: int) -> dict[int, Credits]:
    """expense_agreement id -> the sum of its chapters (spent standing for absorbed)."""
    return _credits(conn, sa.select(ec.c.agreement_id, ec.c.approved, ec.c.notified, ec.c.allocated, ec.c.spent)
                    .join(ea, ea.c.id == ec.c.agreement_id).where(ea.c.fiscal_year == year, ~ea.c.gone))


def fiscal_years(conn: Connection, *, listed_only: bool = True) -> list[int]:
    """Every fiscal year the store holds project years or expense agreements of, oldest first; with
    `listed_only`, of those the portals still list (not ``gone``). The reports, the console's year
    choices and every reconciliation run ask this.

    Read by a loose index scan of each table's fiscal_year index (the first year, then the first
    after it, …: a probe of the index per year), not by reading every row for a few distinct years
    (a union of both tables at 100k projects: 8-13 ms on SQLite and 24-26 ms on PostgreSQL, where
    this takes 1-3 ms).
    """
    years: set[int] = set()
    for table in (py, ea):
        years.update(_distinct(conn, table.c.fiscal_year, *((~table.c.gone,) if listed_only else ())))
    return sorted(years)


def _distinct(conn: Connection, column: sa.Column, *where: sa.ColumnElement[bool]) -> list[Any]:
    """The distinct non-NULL values of the indexed `column` among the rows `where` selects: a
    recursive query asking its index for the least value above the last one (SQLite and PostgreSQL
    alike), which costs a probe per value rather than a read of every row."""
    seen = sa.select(sa.func.min(column).label("value")).where(*where).cte("seen", recursive=True)
    following = sa.select(sa.func.min(column)).where(column > seen.c.value, *where).scalar_subquery()
    seen = seen.union_all(sa.select(following).select_from(seen).where(seen.c.value.is_not(None)))
    return list(conn.execute(sa.select(seen.c.value).where(seen.c.value.is_not(None))).scalars())


def agencies(conn: Connection) -> dict[str, str]:
    """Agency code -> name."""
    return dict(conn.execute(sa.select(ag.c.code, ag.c.name)).all())


def counties(conn: Connection) -> list[Row]:
    """Every county: id, name, code."""
    return list(conn.execute(sa.select(co.c.id, co.c.name, co.c.code)))


def project_years(conn: Connection, year: int) -> list[Row]:
    """The projects of a fiscal year with their agency and county, by code."""
    query = (
        sa.select(py.c.id, py.c.project_id, proj.c.code, py.c.title, py.c.agency_code, ag.c.name.label("agency_name"),
                  py.c.county_id, co.c.name.label("county_name"), py.c.start_year, py.c.end_year,
                  py.c.progress_at_year_start, py.c.agreement_status, py.c.target_q1, py.c.target_q2,
                  py.c.target_q3, py.c.target_q4)
        .join(proj, proj.c.id == py.c.project_id)
        .join(ag, ag.c.code == py.c.agency_code)
        .outerjoin(co, co.c.id == py.c.county_id)
        .where(py.c.fiscal_year == year, ~py.c.gone)
        .order_by(proj.c.code)
    )
    return conn.execute(query).all()


def progress_history(conn: Connection, up_to_year: int, project_ids: Sequence[int] | None = None) -> list[Row]:
    """Every stored progress report of years up to ``up_to_year`` (the forecast looks back across
    years), with the year's starting progress: project_id, fiscal_year, quarter (0 = the year's
    start), progress, absorbed, comptroller_status, reported_on, decided_on, first_read_at, last_read_at
    (when the sync runs that first read the report and last changed it started)."""
    moments, joined = _read_moments(pr)
    reports = (joined(sa.select(py.c.project_id, py.c.fiscal_year, pr.c.quarter, pr.c.progress, pr.c.absorbed,
                                pr.c.comptroller_status, pr.c.reported_on, pr.c.decided_on, *moments)
                      .select_from(pr).join(py, py.c.id == pr.c.project_year_id))
               .where(py.c.fiscal_year <= up_to_year))
    starts = (sa.select(py.c.project_id, py.c.fiscal_year, sa.literal(0).label("quarter"),
                        py.c.progress_at_year_start.label("progress"), sa.null().label("absorbed"),
                        sa.null().label("comptroller_status"), sa.null().label("reported_on"),
                        sa.null().label("decided_on"), sa.null().label("first_read_at"),
                        sa.null().label("last_read_at"))
              .where(py.c.fiscal_year <= up_to_year, py.c.progress_at_year_start.is_not(None)))
    if project_ids is not None:
        reports = reports.where(py.c.project_id.in_(project_ids))
        starts = starts.where(py.c.project_id.in_(project_ids))
    rows = conn.execute(reports).all() + conn.execute(starts).all()
    return sorted(rows, key=lambda r: (r.project_id, r.fiscal_year, r.quarter))


def latest_visits(conn: Connection, until: date) -> dict[str, Row]:
    """Each project's latest field visit on or before ``until``: code -> (visited_on, observed_progress)."""
    rows = conn.execute(sa.select(visits.c.project_code, visits.c.visited_on, visits.c.observed_progress)
                        .where(visits.c.visited_on <= until)
                        .order_by(visits.c.project_code, visits.c.visited_on, visits.c.id)).all()
    return {row.project_code: row for row in rows}  # ordered: the last one per code stays


def agreements(conn: Connection, year: int) -> list[Row]:
    """The expense agreements of a fiscal year with their agency and county, by number."""
    query = (
        sa.select(ea.c.id, ea.c.agreement_no, ea.c.program_title, ea.c.agency_code, ag.c.name.label("agency_name"),
                  ea.c.county_id, co.c.name.label("county_name"), ea.c.status)
        .join(ag, ag.c.code == ea.c.agency_code)
        .outerjoin(co, co.c.id == ea.c.county_id)
        .where(ea.c.fiscal_year == year, ~ea.c.gone)
        .order_by(ea.c.agreement_no)
    )
    return conn.execute(query).all()


def operations(conn: Connection, year: int) -> list[Row]:
    """The operations of a year's agreements with their quarterly targets (of each quarter, not cumulative)."""
    query = (sa.select(op.c.id, op.c.agreement_id, op.c.code, op.c.title, op.c.unit, op.c.target_q1, op.c.target_q2,
                       op.c.target_q3, op.c.target_q4, op.c.unit_cost)
             .join(ea, ea.c.id == op.c.agreement_id)
             .where(ea.c.fiscal_year == year, ~ea.c.gone)
             .order_by(op.c.agreement_id, op.c.code))
    return conn.execute(query).all()


def performance(conn: Connection, year: int) -> list[Row]:
    """What each operation of the year delivered and spent, per quarter, with when the sync runs that
    first read it and last changed it started (``first_read_at``, ``last_read_at``)."""
    moments, joined = _read_moments(perf)
    query = (joined(sa.select(perf.c.operation_id, perf.c.quarter, perf.c.quantity, perf.c.spent, perf.c.reported_on,
                              perf.c.comptroller_status, perf.c.decided_on, *moments).select_from(perf))
             .join(op, op.c.id == perf.c.operation_id)
             .join(ea, ea.c.id == op.c.agreement_id)
             .where(ea.c.fiscal_year == year, ~ea.c.gone)
             .order_by(perf.c.operation_id, perf.c.quarter))
    return conn.execute(query).all()


def standing_deviations(conn: Connection, year: int, through_quarter: int) -> list[Row]:
    """Deviations of the year still standing (open or acknowledged) up to a quarter, and those
    recorded without a quarter; worst first."""
    severity_order = sa.case({"critical": 0, "major": 1, "minor": 2}, value=dev.c.severity, else_=3)
    query = (sa.select(dev.c.id, dev.c.kind, dev.c.rule, dev.c.severity, dev.c.status, dev.c.subject,
                       dev.c.fiscal_year, dev.c.quarter, dev.c.planned, dev.c.actual, dev.c.message,
                       dev.c.agency_code, dev.c.county_id, co.c.name.label("county_name"), dev.c.numbers)
             .outerjoin(co, co.c.id == dev.c.county_id)
             .where(dev.c.fiscal_year == year, dev.c.quarter <= through_quarter, dev.c.status.in_(OPEN_STATUSES))
             .order_by(severity_order, dev.c.rule, dev.c.subject, dev.c.quarter))
    return conn.execute(query).all()


def project_history(conn: Connection, code: str) -> tuple[list[Row], list[Row]]:
    """One project across its years, for its S-curve: (years with targets, reports), oldest first.
    Both lists are empty for an unknown code."""
    years = conn.execute(
        sa.select(py.c.id, py.c.fiscal_year, py.c.title, py.c.agency_code, ag.c.name.label("agency_name"),
                  co.c.name.label("county_name"), py.c.start_year, py.c.end_year, py.c.progress_at_year_start,
                  py.c.target_q1, py.c.target_q2, py.c.target_q3, py.c.target_q4)
        .join(proj, proj.c.id == py.c.project_id)
        .join(ag, ag.c.code == py.c.agency_code)
        .outerjoin(co, co.c.id == py.c.county_id)
        .where(proj.c.code == code)
        .order_by(py.c.fiscal_year)).all()
    reports = conn.execute(
        sa.select(py.c.fiscal_year, pr.c.quarter, pr.c.progress, pr.c.comptroller_status)
        .join(py, py.c.id == pr.c.project_year_id)
        .join(proj, proj.c.id == py.c.project_id)
        .where(proj.c.code == code)
        .order_by(py.c.fiscal_year, pr.c.quarter)).all()
    return years, reports
