"""Reading the store back out in the normalised export format (`budgetwatch export`).

One dict per project and fiscal year, or per agreement, with the keys the export contract names.
Codes keep ASCII digits, text its canonical Persian form, dates become ISO strings, and amounts stay
``Decimal`` (the JSON writer prints them as numbers). Queries are set-wise: one per table per chunk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.models import (
    Agency,
    County,
    ExpenseAgreement,
    ExpenseCredit,
    Operation,
    OperationPerformance,
    Plan,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
)

CHUNK = 2000


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _num(value: Any) -> Decimal | None:
    if value is None:
        return None
    return Decimal(value).normalize() + Decimal(0)  # normalise: 45.5000 -> 45.5, keeps exactness


def _chunks(conn: Connection, query: sa.Select, year_column: sa.Column, year: int | None
            ) -> Iterator[tuple[list, list[int]]]:
    """The rows of ``query`` (of the year, when given), CHUNK at a time, with their ids."""
    if year is not None:
        query = query.where(year_column == year)
    rows = conn.execute(query).mappings()
    while chunk := rows.fetchmany(CHUNK):
        yield chunk, [r["id"] for r in chunk]


def _children(conn: Connection, table: sa.Table, parent: str, ids: list[int]) -> dict[int, list]:
    """The rows of ``table`` whose ``parent`` column is among ``ids``, by parent id."""
    found: dict[int, list] = defaultdict(list)
    for start in range(0, len(ids), CHUNK):
        for row in conn.execute(sa.select(table).where(table.c[parent].in_(ids[start : start + CHUNK]))).mappings():
            found[row[parent]].append(row)
    return found


def export_projects(conn: Connection, year: int | None = None) -> Iterator[dict[str, Any]]:
    py, p, plan, ag, co = (ProjectYear.__table__, Project.__table__, Plan.__table__, Agency.__table__, County.__table__)
    query = (
        sa.select(py, p.c.code.label("project_code"), plan.c.title.label("plan_title"),
                  ag.c.name.label("agency_name"), co.c.name.label("county_name"))
        .join(p, p.c.id == py.c.project_id)
        .outerjoin(plan, plan.c.code == py.c.plan_code)  # the year's plan, as the portal shows it
        .join(ag, ag.c.code == py.c.agency_code)
        .outerjoin(co, co.c.id == py.c.county_id)
        .order_by(p.c.code, py.c.fiscal_year)
    )
    for chunk, ids in _chunks(conn, query, py.c.fiscal_year, year):
        credits = _children(conn, ProjectCredit.__table__, "project_year_id", ids)
        reports = _children(conn, ProgressReport.__table__, "project_year_id", ids)
        for r in chunk:
            targets = {str(q): _num(r[f"target_q{q}"]) for q in range(1, 5) if r[f"target_q{q}"] is not None}
            yield {
                "project_code": r["project_code"], "title": r["title"], "plan_code": r["plan_code"],
                "plan_title": r["plan_title"], "agency_code": r["agency_code"], "agency_name": r["agency_name"],
                "county": r["county_name"], "start_year": r["start_year"], "end_year": r["end_year"],
                "total_cost": _num(r["total_cost"]), "fiscal_year": r["fiscal_year"],
                "progress_at_year_start": _num(r["progress_at_year_start"]), "agreement_no": r["agreement_no"],
                "agreement_status": r["agreement_status"],
                "credits": [
                    {"source": c["source"], "approved": _num(c["approved"]), "notified": _num(c["notified"]),
                     "allocated": _num(c["allocated"]), "absorbed": _num(c["absorbed"])}
                    for c in sorted(credits[r["id"]], key=lambda c: c["source"])
                ],
                "targets": targets,
                "reports": [
                    {"quarter": x["quarter"], "reported_on": _iso(x["reported_on"]), "progress": _num(x["progress"]),
                     "absorbed": _num(x["absorbed"]), "comptroller_status": x["comptroller_status"],
                     "decided_on": _iso(x["decided_on"]), "remarks": x["remarks"]}
                    for x in sorted(reports[r["id"]], key=lambda x: x["quarter"])
                ],
                "gone": bool(r["gone"]),
            }


def export_agreements(conn: Connection, year: int | None = None) -> Iterator[dict[str, Any]]:
    ea, ag, co = ExpenseAgreement.__table__, Agency.__table__, County.__table__
    ec, op, perf = ExpenseCredit.__table__, Operation.__table__, OperationPerformance.__table__
    query = (
        sa.select(ea, ag.c.name.label("agency_name"), co.c.name.label("county_name"))
        .join(ag, ag.c.code == ea.c.agency_code)
        .outerjoin(co, co.c.id == ea.c.county_id)
        .order_by(ea.c.agreement_no, ea.c.fiscal_year)
    )
    for chunk, ids in _chunks(conn, query, ea.c.fiscal_year, year):
        credits = _children(conn, ec, "agreement_id", ids)
        operations = _children(conn, op, "agreement_id", ids)
        performance = _children(conn, perf, "operation_id", [o["id"] for ops in operations.values() for o in ops])
        for r in chunk:
            yield {
                "agreement_no": r["agreement_no"], "fiscal_year": r["fiscal_year"], "agency_code": r["agency_code"],
                "agency_name": r["agency_name"], "county": r["county_name"], "program_code": r["program_code"],
                "program_title": r["program_title"], "status": r["status"],
                "credits": [
                    {"chapter": c["chapter"], "approved": _num(c["approved"]), "notified": _num(c["notified"]),
                     "allocated": _num(c["allocated"]), "spent": _num(c["spent"])}
                    for c in sorted(credits[r["id"]], key=lambda c: c["chapter"])
                ],
                "operations": [
                    {"code": o["code"], "title": o["title"], "unit": o["unit"],
                     "quarterly_targets": [_num(o[f"target_q{q}"]) for q in range(1, 5)],
                     "unit_cost": _num(o["unit_cost"]),
                     "performance": [
                         {"quarter": x["quarter"], "quantity": _num(x["quantity"]), "spent": _num(x["spent"]),
                          "reported_on": _iso(x["reported_on"]), "comptroller_status": x["comptroller_status"],
                          "decided_on": _iso(x["decided_on"]), "remarks": x["remarks"]}
                         for x in sorted(performance[o["id"]], key=lambda x: x["quarter"])
                     ]}
                    for o in sorted(operations[r["id"]], key=lambda o: o["code"])
                ],
                "gone": bool(r["gone"]),
            }


def recent_runs(conn: Connection, limit: int = 20, source: str | None = None) -> list[dict[str, Any]]:
    from store.models import SyncRun

    t = SyncRun.__table__
    query = sa.select(t).order_by(t.c.id.desc()).limit(limit)
    if source:
        query = query.where(t.c.source == source)
    return [dict(r) for r in conn.execute(query).mappings()]


def run_exists(conn: Connection, run_id: int) -> bool:
    from store.models import SyncRun

    t = SyncRun.__table__
    return conn.execute(sa.select(t.c.id).where(t.c.id == run_id)).first() is not None


def run_rejections(conn: Connection, run_id: int, limit: int = 50) -> list[dict[str, Any]]:
    from store.models import RejectedRecord

    t = RejectedRecord.__table__
    return [dict(r) for r in conn.execute(sa.select(t).where(t.c.run_id == run_id).order_by(t.c.id).limit(limit)).mappings()]
