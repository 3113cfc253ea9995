"""Reading the store set-wise into facts: a few queries per chunk of subjects, never one per subject.

Subjects (project years, agreements) of the years judged are read in id order, in chunks of a few
thousand (:func:`chunks`: id ranges): for each chunk one query per table (the subjects with their
agency and county, their credit rows, their reports or operations and performance), each a range
scan on an indexed foreign key. Memory therefore stays bounded by the chunk, whatever the size of
the store, and any connection can read any chunk (a run may hand chunks to worker processes,
reconcile/parallel.py). Field inspections are few and are read once per reader.

Items the portal no longer lists (``gone``) are not judged: their open deviations are resolved by
the life cycle with the reason "gone".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from foundation import jalali
from foundation.persian import to_persian_digits
from reconcile.facts import (
    AgreementFacts,
    CreditStages,
    InspectionFact,
    OperationFacts,
    PerformanceFact,
    Place,
    ProgressReportFact,
    ProjectYearFacts,
)
from store.driver import day_reader, driver_rows, figure_reader
from store.models import (
    Agency,
    County,
    ExpenseAgreement,
    ExpenseCredit,
    FieldInspection,
    Operation,
    OperationPerformance,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
)

TOTAL_ROW = "جمع"  # the gvCredits `total` row in messages

py = ProjectYear.__table__
pj = Project.__table__
ag = Agency.__table__
ct = County.__table__
pr = ProgressReport.__table__
pc = ProjectCredit.__table__
fi = FieldInspection.__table__
ea = ExpenseAgreement.__table__
ec = ExpenseCredit.__table__
op = Operation.__table__
perf = OperationPerformance.__table__


def store_years(conn: Connection) -> list[int]:
    """Every fiscal year the store holds a project year or an expense agreement of."""
    years = sa.union(sa.select(py.c.fiscal_year), sa.select(ea.c.fiscal_year))
    return sorted(row[0] for row in conn.execute(years))


def gone_subjects(conn: Connection, years: Sequence[int]) -> set[tuple[str, int]]:
    """(subject, year) of projects and agreements the portals no longer list."""
    gone = {(code, year) for code, year in conn.execute(
        sa.select(pj.c.code, py.c.fiscal_year).join(pj, pj.c.id == py.c.project_id)
        .where(py.c.fiscal_year.in_(years), py.c.gone.is_(True)))}
    gone |= {(no, year) for no, year in conn.execute(
        sa.select(ea.c.agreement_no, ea.c.fiscal_year).where(ea.c.fiscal_year.in_(years), ea.c.gone.is_(True)))}
    return gone


Family = str  # "capital" (project years) | "expense" (agreements)


def chunks(conn: Connection, family: Family, years: Sequence[int], size: int) -> list[tuple[int, int]]:
    """The (first id, last id) ranges of at most `size` subjects of `family` not gone, in id order."""
    table = py if family == "capital" else ea
    where = sa.and_(table.c.fiscal_year.in_(years), table.c.gone.is_(False))
    ids = conn.execute(sa.select(table.c.id).where(where).order_by(table.c.id)).scalars().all()
    return [(ids[start], ids[min(start + size, len(ids)) - 1]) for start in range(0, len(ids), size)]


def inspections(conn: Connection, years: Sequence[int], as_of: date) -> dict[str, tuple[InspectionFact, ...]]:
    """Field visits of `years` up to the as-of day, by project code (for inspection_mismatch)."""
    first, last = jalali.year_start(min(years)), min(jalali.year_end(max(years)), as_of)
    by_code: dict[str, list[InspectionFact]] = defaultdict(list)
    rows = conn.execute(
        sa.select(fi.c.id, fi.c.project_code, fi.c.visited_on, fi.c.observed_progress, fi.c.inspector)
        .where(fi.c.visited_on >= first, fi.c.visited_on <= last).order_by(fi.c.id)).all()
    for row_id, code, visited_on, observed, inspector in rows:
        by_code[code].append(InspectionFact(row_id, visited_on, observed, inspector))
    return {code: tuple(visits) for code, visits in by_code.items()}


def project_years(conn: Connection, years: Sequence[int], as_of: date, *, chunk: int = 5000
                  ) -> Iterator[list[ProjectYearFacts]]:
    """The project years of `years` not gone, in chunks of `chunk`, with reports, credits and visits."""
    if not years:
        return
    visits = inspections(conn, years, as_of)
    for lo, hi in chunks(conn, "capital", years, chunk):
        yield project_years_between(conn, years, lo, hi, visits)


def project_years_between(conn: Connection, years: Sequence[int], lo: int, hi: int,
                          visits: dict[str, tuple[InspectionFact, ...]]) -> list[ProjectYearFacts]:
    """The project years of `years` not gone with ids lo..hi, with reports, credits and `visits`."""
    day, dec = day_reader(conn), figure_reader(conn)
    in_scope = sa.and_(py.c.fiscal_year.in_(years), py.c.gone.is_(False))
    reports: dict[int, dict[int, ProgressReportFact]] = defaultdict(dict)
    for py_id, row_id, quarter, reported_on, progress, absorbed, status, run_id in driver_rows(conn, (
        sa.select(pr.c.project_year_id, pr.c.id, pr.c.quarter, pr.c.reported_on, pr.c.progress,
                  pr.c.absorbed, pr.c.comptroller_status, pr.c.last_run_id)
        .where(pr.c.project_year_id.between(lo, hi))
    )):
        reports[py_id][quarter] = ProgressReportFact(row_id, quarter, day(reported_on), dec(progress),
                                                     dec(absorbed), status, run_id)
    credits: dict[int, list[CreditStages]] = defaultdict(list)
    for py_id, row_id, source, approved, notified, allocated, absorbed in driver_rows(conn, (
        sa.select(pc.c.project_year_id, pc.c.id, pc.c.source, pc.c.approved, pc.c.notified,
                  pc.c.allocated, pc.c.absorbed)
        .where(pc.c.project_year_id.between(lo, hi)).order_by(pc.c.id)
    )):
        credits[py_id].append(CreditStages(source, dec(approved), dec(notified), dec(allocated), dec(absorbed),
                                           "project_credit", row_id))
    facts = []
    for row in driver_rows(conn, (
        sa.select(py.c.id, pj.c.code, py.c.fiscal_year, py.c.title, py.c.agency_code, ag.c.name,
                  py.c.county_id, ct.c.name, py.c.agreement_status, py.c.start_year, py.c.end_year,
                  py.c.last_run_id, py.c.progress_at_year_start, py.c.target_q1,
                  py.c.target_q2, py.c.target_q3, py.c.target_q4, py.c.total_approved,
                  py.c.total_notified, py.c.total_allocated, py.c.total_absorbed)
        .join(pj, pj.c.id == py.c.project_id)
        .join(ag, ag.c.code == py.c.agency_code)
        .outerjoin(ct, ct.c.id == py.c.county_id)
        .where(py.c.id.between(lo, hi), in_scope)
        .order_by(py.c.id)
    )):
        (py_id, code, year, title, agency_code, agency_name, county_id, county_name, status, start_year,
         end_year, run_id) = row[:12]
        start, t1, t2, t3, t4, tot_approved, tot_notified, tot_allocated, tot_absorbed = map(dec, row[12:])
        rows = credits.get(py_id, [])
        if any(v is not None for v in (tot_approved, tot_notified, tot_allocated, tot_absorbed)):
            rows.append(CreditStages(TOTAL_ROW, tot_approved, tot_notified, tot_allocated, tot_absorbed,
                                     "project_year", py_id))
        facts.append(ProjectYearFacts(
            id=py_id, project_code=code, fiscal_year=year, title=title,
            place=Place(agency_code, agency_name, county_id, county_name), agreement_status=status,
            start_year=start_year, end_year=end_year, progress_at_year_start=start,
            targets=(t1, t2, t3, t4), total_notified=tot_notified, credits=tuple(rows),
            reports=reports.get(py_id, {}), inspections=visits.get(code, ()), run_id=run_id,
        ))
    return facts


def agreements(conn: Connection, years: Sequence[int], *, chunk: int = 2000) -> Iterator[list[AgreementFacts]]:
    """The expense agreements of `years` not gone, in chunks, with chapters, operations and performance."""
    if not years:
        return
    for lo, hi in chunks(conn, "expense", years, chunk):
        yield agreements_between(conn, years, lo, hi)


def agreements_between(conn: Connection, years: Sequence[int], lo: int, hi: int) -> list[AgreementFacts]:
    """The expense agreements of `years` not gone with ids lo..hi, with chapters, operations and performance."""
    day, dec = day_reader(conn), figure_reader(conn)
    in_scope = sa.and_(ea.c.fiscal_year.in_(years), ea.c.gone.is_(False))
    chapters: dict[int, list[CreditStages]] = defaultdict(list)
    for agreement_id, row_id, chapter, approved, notified, allocated, spent in driver_rows(conn, (
        sa.select(ec.c.agreement_id, ec.c.id, ec.c.chapter, ec.c.approved, ec.c.notified,
                  ec.c.allocated, ec.c.spent)
        .where(ec.c.agreement_id.between(lo, hi)).order_by(ec.c.agreement_id, ec.c.chapter)
    )):
        chapters[agreement_id].append(CreditStages(
            f"فصل {to_persian_digits(str(chapter))}", dec(approved), dec(notified), dec(allocated),
            dec(spent), "expense_credit", row_id))
    operation_rows = driver_rows(conn, (
        sa.select(op.c.agreement_id, op.c.id, op.c.code, op.c.title, op.c.unit, op.c.target_q1,
                  op.c.target_q2, op.c.target_q3, op.c.target_q4, op.c.unit_cost)
        .where(op.c.agreement_id.between(lo, hi)).order_by(op.c.agreement_id, op.c.code)
    ))
    performance: dict[int, dict[int, PerformanceFact]] = defaultdict(dict)
    if operation_rows:
        # The range of the chunk's operation ids is redundant with the join, and there for the
        # planner: without it PostgreSQL hashes the chunk's operations and scans the whole
        # performance table for every chunk (a million rows, 20 times at 100k agreements); with it
        # the (operation_id, quarter) index reads just the chunk's rows. (An agreement's operations
        # are stored together, so the range is narrow; were it not, the join still decides.)
        first_op, last_op = min(r[1] for r in operation_rows), max(r[1] for r in operation_rows)
        for operation_id, row_id, quarter, quantity, spent, reported_on, status, run_id in driver_rows(conn, (
            sa.select(perf.c.operation_id, perf.c.id, perf.c.quarter, perf.c.quantity, perf.c.spent,
                      perf.c.reported_on, perf.c.comptroller_status, perf.c.last_run_id)
            .join(op, op.c.id == perf.c.operation_id)
            .where(op.c.agreement_id.between(lo, hi), perf.c.operation_id.between(first_op, last_op))
        )):
            performance[operation_id][quarter] = PerformanceFact(row_id, quarter, dec(quantity), dec(spent),
                                                                 day(reported_on), status, run_id)
    operations: dict[int, list[OperationFacts]] = defaultdict(list)
    for agreement_id, row_id, code, title, unit, t1, t2, t3, t4, unit_cost in operation_rows:
        operations[agreement_id].append(OperationFacts(
            id=row_id, code=code, title=title, unit=unit, targets=(dec(t1), dec(t2), dec(t3), dec(t4)),
            unit_cost=dec(unit_cost), performance=performance.get(row_id, {}),
        ))
    facts = []
    for row in driver_rows(conn, (
        sa.select(ea.c.id, ea.c.agreement_no, ea.c.fiscal_year, ea.c.program_title, ea.c.agency_code,
                  ag.c.name, ea.c.county_id, ct.c.name, ea.c.status, ea.c.last_run_id)
        .join(ag, ag.c.code == ea.c.agency_code)
        .outerjoin(ct, ct.c.id == ea.c.county_id)
        .where(ea.c.id.between(lo, hi), in_scope)
        .order_by(ea.c.id)
    )):
        a_id, no, year, program, agency_code, agency_name, county_id, county_name, status, run_id = row
        facts.append(AgreementFacts(
            id=a_id, agreement_no=no, fiscal_year=year, program_title=program,
            place=Place(agency_code, agency_name, county_id, county_name), status=status,
            credits=tuple(chapters.get(a_id, ())), operations=tuple(operations.get(a_id, ())), run_id=run_id,
        ))
    return facts
