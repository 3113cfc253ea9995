"""The web console's reads of the store: the deviations list, the overview, a project's, an
agreement's and a deviation's page.

Queries only; the console's writes go through reconcile/ (acknowledging, dismissing, field visits)
and store/users.py. Figures come back as stored (Decimal, date, UTC datetime): web/ formats them.

The deviations list is filtered, sorted and paged in SQL (LIMIT/OFFSET on a sort that ends with the
id, so pages never overlap); agency and county names are read for the page's rows only, after the
page is chosen, so a 100,000-row store sorts bare deviation rows and joins fifty (bench/web.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from foundation.persian import sort_key
from foundation.present import RULE_NAMES
from store import reporting
from store.models import (
    ACTIVE_STATUSES,
    Agency,
    ChangeLog,
    County,
    Deviation,
    DeviationFound,
    ExpenseAgreement,
    ExpenseCredit,
    FieldInspection,
    Operation,
    OperationPerformance,
    Plan,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
    ReconcileRun,
    SyncRun,
    agreement_numbers_in,
    found_again_of,
    last_found,
)

dev = Deviation.__table__
found_t = DeviationFound.__table__
agency_t, county_t = Agency.__table__, County.__table__
py_t, project_t, plan_t = ProjectYear.__table__, Project.__table__, Plan.__table__
pc_t, pr_t, fi_t = ProjectCredit.__table__, ProgressReport.__table__, FieldInspection.__table__
ea_t, ec_t, op_t, perf_t = (ExpenseAgreement.__table__, ExpenseCredit.__table__, Operation.__table__,
                            OperationPerformance.__table__)
log_t, sync_t, rec_t = ChangeLog.__table__, SyncRun.__table__, ReconcileRun.__table__

# the rules in the order of their Persian names (people read those, not the ids): sorting by rule
# sorts by this rank, a CASE the database computes (a rule it does not know comes last)
RULE_ORDER = tuple(sorted(RULE_NAMES, key=lambda rule: sort_key(RULE_NAMES[rule])))
_RULE_RANK = sa.case({rule: rank for rank, rule in enumerate(RULE_ORDER)}, value=dev.c.rule,
                     else_=len(RULE_ORDER)).label("rule_rank")
# 'critical' < 'major' < 'minor': ascending text order is most severe first, no CASE needed
SORTS: dict[str, tuple[Any, ...]] = {
    "severity": (dev.c.severity,),
    "rule": (_RULE_RANK,),
    "subject": (dev.c.subject,),
    "period": (dev.c.fiscal_year, dev.c.quarter),
    "status": (dev.c.status,),
    "found": (last_found(dev, found_t).label("found_on"),),  # as people read it, found_t joined (below)
}
# the tables a deviation's evidence may point at (Deviation.evidence_table): nothing else is read
EVIDENCE_TABLES = {t.name: t for t in (pr_t, py_t, pc_t, fi_t, ea_t, ec_t, op_t, perf_t)}
ACTIVE = ACTIVE_STATUSES  # deviations someone still has to deal with


@dataclass(frozen=True)
class DeviationQuery:
    """Which deviations, in which order, which page. Empty tuples mean 'any'."""

    years: tuple[int, ...] = ()
    quarters: tuple[int, ...] = ()  # 1..4; 0 is 'no quarter'
    county_ids: tuple[int, ...] = ()
    agencies: tuple[str, ...] = ()
    # an expert group, as agency codes: the group's routed agencies, or (the routing's default group)
    # every agency except those routed to other groups
    group_agencies: tuple[str, ...] | None = None
    group_excludes: tuple[str, ...] | None = None
    rules: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()  # empty: every status but dismissed
    subject: str | None = None  # a code's beginning
    sort: str = "severity"
    descending: bool = False
    page: int = 1
    per_page: int = 50


@dataclass
class Page:
    rows: list[dict[str, Any]]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _where(q: DeviationQuery) -> list[Any]:
    chosen = ((q.years, dev.c.fiscal_year), (q.quarters, dev.c.quarter), (q.county_ids, dev.c.county_id),
              (q.agencies, dev.c.agency_code), (q.rules, dev.c.rule), (q.kinds, dev.c.kind),
              (q.severities, dev.c.severity))
    where: list[Any] = [column.in_(values) for values, column in chosen if values]
    # A group is a quarter of the agencies: through the agency index SQLite made 60,000 lookups
    # where one scan is three times faster (PostgreSQL scans either way). coalesce() keeps the
    # index out, and counts a deviation without an agency in the default group, as routing does.
    routed = sa.func.coalesce(dev.c.agency_code, "")
    if q.group_agencies is not None:
        where.append(routed.in_(q.group_agencies))
    if q.group_excludes is not None:
        where.append(routed.not_in(q.group_excludes))
    where.append(dev.c.status.in_(q.statuses) if q.statuses else dev.c.status != "dismissed")
    if q.subject:
        where.append(dev.c.subject.startswith(q.subject, autoescape=True))
    return where


LIST_COLUMNS = (dev.c.id, dev.c.kind, dev.c.rule, dev.c.severity, dev.c.subject, dev.c.fiscal_year, dev.c.quarter,
                dev.c.planned, dev.c.actual, dev.c.measure, dev.c.status, dev.c.message, dev.c.agency_code,
                dev.c.county_id, last_found(dev).label("last_found_on"),
                dev.c.numbers)  # numbers: an operation's unit of measure


def deviation_page_query(q: DeviationQuery) -> sa.Select:
    """The SELECT behind one page of the list (bench/web.py times it bare).

    The page's ids are chosen first, sorting only the sort keys and the id, and the fifty rows are
    read after: sorting whole rows (the Persian sentence is most of a row) made a deep page of a
    243,000-deviation store cost seconds on SQLite, the sorter spilling the sentences to disk.
    """
    keys = SORTS.get(q.sort, SORTS["severity"])

    def order(columns: list[Any]) -> list[Any]:
        return [c.desc() for c in columns] if q.descending else columns

    joined = dev.outerjoin(found_t, found_again_of(dev)) if q.sort == "found" else dev
    chosen = (sa.select(dev.c.id, *keys).select_from(joined).where(*_where(q)).order_by(*order([*keys, dev.c.id]))
              .limit(q.per_page).offset((max(q.page, 1) - 1) * q.per_page).subquery("chosen"))
    return (sa.select(*LIST_COLUMNS).join_from(dev, chosen, chosen.c.id == dev.c.id)
            .order_by(*order([*(chosen.c[k.name] for k in keys), chosen.c.id])))


def list_deviations(conn: Connection, q: DeviationQuery) -> Page:
    total = conn.execute(sa.select(sa.func.count()).select_from(dev).where(*_where(q))).scalar_one()
    rows = [dict(r) for r in conn.execute(deviation_page_query(q)).mappings()]
    _name_rows(conn, rows)
    return Page(rows, total, max(q.page, 1), q.per_page)


def _name_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Agency and county names for these rows only."""
    agencies = agency_names(conn, {r["agency_code"] for r in rows if r["agency_code"]})
    counties = county_names(conn, {r["county_id"] for r in rows if r["county_id"]})
    for r in rows:
        r["agency_name"] = agencies.get(r["agency_code"])
        r["county_name"] = counties.get(r["county_id"])


def _names(conn: Connection, key: Any, name: Any, wanted: set[Any] | None) -> dict[Any, str]:
    """key -> name in the Persian alphabet's order of the names (foundation.persian.sort_key: SQL
    orders by code point, which put دزفول before دزپارت and گتوند after هویزه)."""
    query = sa.select(key, name)
    if wanted is not None:
        if not wanted:
            return {}
        query = query.where(key.in_(sorted(wanted)))
    return dict(sorted(conn.execute(query).all(), key=lambda row: sort_key(row[1])))


def agency_names(conn: Connection, codes: set[str] | None = None) -> dict[str, str]:
    """Agency code -> name, of these codes or of every agency (in the alphabet's order of names)."""
    return _names(conn, agency_t.c.code, agency_t.c.name, codes)


def county_names(conn: Connection, ids: set[int] | None = None) -> dict[int, str]:
    """County id -> name, of these ids or of every county (in the alphabet's order of names)."""
    return _names(conn, county_t.c.id, county_t.c.name, ids)


def fiscal_years(conn: Connection) -> list[int]:
    """The years the store holds data of (listed or not), newest first."""
    return reporting.fiscal_years(conn, listed_only=False)[::-1]


# --- overview ---------------------------------------------------------------------------------


def active_by_agency(conn: Connection) -> list[tuple[str | None, str, str, int]]:
    """(agency code, severity, status, count) of the deviations someone still has to deal with."""
    query = (sa.select(dev.c.agency_code, dev.c.severity, dev.c.status, sa.func.count())
             .where(dev.c.status.in_(ACTIVE)).group_by(dev.c.agency_code, dev.c.severity, dev.c.status))
    return [tuple(r) for r in conn.execute(query)]


def active_by_county(conn: Connection) -> list[dict[str, Any]]:
    """Per county: its id, name and count of active deviations per severity, most first (then by
    name, in the alphabet's order); every county that has any, and those of no county as one row."""
    query = (sa.select(dev.c.county_id, dev.c.severity, sa.func.count())
             .where(dev.c.status.in_(ACTIVE)).group_by(dev.c.county_id, dev.c.severity))
    counts: dict[int | None, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for county_id, severity, n in conn.execute(query):
        counts[county_id][severity] += n
    names = county_names(conn, {c for c in counts if c is not None})
    rows = [{"county_id": c, "county_name": names.get(c) if c else None, "counts": dict(by),
             "total": sum(by.values())} for c, by in counts.items()]
    return sorted(rows, key=lambda r: (-r["total"], sort_key(r["county_name"])))


def last_sync_runs(conn: Connection, sources: tuple[str, ...]) -> dict[str, dict[str, Any] | None]:
    found = {}
    for source in sources:
        row = conn.execute(sa.select(sync_t).where(sync_t.c.source == source)
                           .order_by(sync_t.c.id.desc()).limit(1)).mappings().first()
        found[source] = dict(row) if row else None
    return found


def reconcile_runs(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(sa.select(rec_t).order_by(rec_t.c.id.desc()).limit(limit)).mappings()]


def sync_run(conn: Connection, run_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(sync_t).where(sync_t.c.id == run_id)).mappings().first()
    return dict(row) if row else None


# --- one deviation ----------------------------------------------------------------------------


def evidence(conn: Connection, table: str | None, row_id: int | None) -> dict[str, Any] | None:
    """The stored row a deviation's figures came from, as column -> value."""
    t = EVIDENCE_TABLES.get(table or "")
    if t is None or row_id is None:
        return None
    row = conn.execute(sa.select(t).where(t.c.id == row_id)).mappings().first()
    return dict(row) if row else None


def subject_agency(conn: Connection, kind: str, subject: str) -> str | None:
    """The agency of a project (its latest year) or an agreement: who may act on its visits."""
    if kind == "capital":
        query = (sa.select(py_t.c.agency_code).join(project_t, project_t.c.id == py_t.c.project_id)
                 .where(project_t.c.code == subject).order_by(py_t.c.fiscal_year.desc()).limit(1))
    else:
        number = agreement_of(conn, subject)
        if number is None:
            return None
        query = (sa.select(ea_t.c.agency_code).where(ea_t.c.agreement_no == number)
                 .order_by(ea_t.c.fiscal_year.desc()).limit(1))
    return conn.execute(query).scalar()


def agreement_of(conn: Connection, subject: str) -> str | None:
    """The stored agreement an expense subject names (an agreement's number, or ``agreement_no/op``
    whatever '/' the number holds), the longest that is one; None when none is stored."""
    candidates = agreement_numbers_in(subject)
    found = set(conn.execute(sa.select(ea_t.c.agreement_no).where(ea_t.c.agreement_no.in_(candidates))).scalars())
    return next((number for number in candidates if number in found), None)


def project_agencies(conn: Connection, codes: list[str]) -> dict[str, str]:
    """Project code -> the agency of its latest year (for checking a visits file's rows at once)."""
    found: dict[str, str] = {}
    for start in range(0, len(codes), 1000):
        query = (sa.select(project_t.c.code, py_t.c.agency_code, py_t.c.fiscal_year)
                 .join(py_t, py_t.c.project_id == project_t.c.id)
                 .where(project_t.c.code.in_(codes[start:start + 1000])).order_by(py_t.c.fiscal_year))
        for code, agency, _year in conn.execute(query):
            found[code] = agency  # ordered by year: the latest wins
    return found


# --- a project's and an agreement's page ------------------------------------------------------


@dataclass
class SubjectPage:
    """Everything the console shows of one project or agreement, per fiscal year where it varies."""

    code: str
    years: list[dict[str, Any]] = field(default_factory=list)  # newest first, with names
    credits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by year row id
    reports: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by year row id (projects)
    operations: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by agreement id
    performance: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by operation id
    visits: list[dict[str, Any]] = field(default_factory=list)
    deviations: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # newest first


def _by(rows: Any, key: str) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        grouped[r[key]].append(dict(r))
    return dict(grouped)


def _history(conn: Connection, entities: dict[str, list[int]], limit: int) -> list[dict[str, Any]]:
    clauses = [sa.and_(log_t.c.entity == name, log_t.c.entity_id.in_(ids)) for name, ids in entities.items() if ids]
    if not clauses:
        return []
    query = sa.select(log_t).where(sa.or_(*clauses)).order_by(log_t.c.changed_at.desc(), log_t.c.id.desc())
    return [dict(r) for r in conn.execute(query.limit(limit)).mappings()]


def _subject_deviations(conn: Connection, where: Any) -> list[dict[str, Any]]:
    query = (sa.select(*LIST_COLUMNS).where(where)
             .order_by(dev.c.fiscal_year.desc(), dev.c.quarter.desc(), dev.c.severity, dev.c.id))
    return [dict(r) for r in conn.execute(query).mappings()]


def project_page(conn: Connection, code: str, history_limit: int = 300) -> SubjectPage | None:
    project = conn.execute(sa.select(project_t).where(project_t.c.code == code)).mappings().first()
    if project is None:
        return None
    page = SubjectPage(code)
    query = (sa.select(py_t, agency_t.c.name.label("agency_name"), county_t.c.name.label("county_name"),
                       plan_t.c.title.label("plan_title"))
             .join(project_t, project_t.c.id == py_t.c.project_id)
             .join(agency_t, agency_t.c.code == py_t.c.agency_code)
             .outerjoin(county_t, county_t.c.id == py_t.c.county_id)
             .outerjoin(plan_t, plan_t.c.code == py_t.c.plan_code)  # the year's plan
             .where(py_t.c.project_id == project["id"]).order_by(py_t.c.fiscal_year.desc()))
    page.years = [dict(r) for r in conn.execute(query).mappings()]
    ids = [y["id"] for y in page.years]
    if ids:
        page.credits = _by(conn.execute(sa.select(pc_t).where(pc_t.c.project_year_id.in_(ids))
                                        .order_by(pc_t.c.source)).mappings(), "project_year_id")
        page.reports = _by(conn.execute(sa.select(pr_t).where(pr_t.c.project_year_id.in_(ids))
                                        .order_by(pr_t.c.quarter)).mappings(), "project_year_id")
    page.visits = [dict(r) for r in conn.execute(sa.select(fi_t).where(fi_t.c.project_code == code)
                                                .order_by(fi_t.c.visited_on.desc())).mappings()]
    page.deviations = _subject_deviations(conn, sa.and_(dev.c.kind == "capital", dev.c.subject == code))
    report_ids = [r["id"] for rows in page.reports.values() for r in rows]
    credit_ids = [c["id"] for rows in page.credits.values() for c in rows]
    page.history = _history(conn, {"project_year": ids, "progress_report": report_ids,
                                   "project_credit": credit_ids}, history_limit)
    return page


def agreement_page(conn: Connection, agreement_no: str, history_limit: int = 300) -> SubjectPage | None:
    query = (sa.select(ea_t, agency_t.c.name.label("agency_name"), county_t.c.name.label("county_name"))
             .join(agency_t, agency_t.c.code == ea_t.c.agency_code)
             .outerjoin(county_t, county_t.c.id == ea_t.c.county_id)
             .where(ea_t.c.agreement_no == agreement_no).order_by(ea_t.c.fiscal_year.desc()))
    years = [dict(r) for r in conn.execute(query).mappings()]
    if not years:
        return None
    page = SubjectPage(agreement_no, years=years)
    ids = [y["id"] for y in years]
    page.credits = _by(conn.execute(sa.select(ec_t).where(ec_t.c.agreement_id.in_(ids))
                                    .order_by(ec_t.c.chapter)).mappings(), "agreement_id")
    page.operations = _by(conn.execute(sa.select(op_t).where(op_t.c.agreement_id.in_(ids))
                                       .order_by(op_t.c.code)).mappings(), "agreement_id")
    op_ids = [o["id"] for rows in page.operations.values() for o in rows]
    if op_ids:
        page.performance = _by(conn.execute(sa.select(perf_t).where(perf_t.c.operation_id.in_(op_ids))
                                            .order_by(perf_t.c.quarter)).mappings(), "operation_id")
    page.deviations = _subject_deviations(conn, sa.and_(dev.c.kind == "expense", sa.or_(
        dev.c.subject == agreement_no, dev.c.subject.startswith(agreement_no + "/", autoescape=True))))
    perf_ids = [p["id"] for rows in page.performance.values() for p in rows]
    credit_ids = [c["id"] for rows in page.credits.values() for c in rows]
    page.history = _history(conn, {"expense_agreement": ids, "expense_credit": credit_ids, "operation": op_ids,
                                   "operation_performance": perf_ids}, history_limit)
    return page
