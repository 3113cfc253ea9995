"""Writing what a sync read: bulk upserts that keep the history of every changed figure.

The sync engine hands over batches of canonical records (foundation.records). For each batch this
module loads the rows that already exist with one query per table, compares field by field, writes
new and changed rows with one ``INSERT … ON CONFLICT DO UPDATE`` per table, and logs each change in
``change_log`` with the run that saw it. Persian text is compared by its match key, so a portal that
spells a name with a space today and a ZWNJ tomorrow does not produce a change.

Rows are never deleted: a report the portal stopped showing, or a row the connector rejected this
time, keeps its last good value. Whole items no longer listed are marked ``gone`` by a full sync.

Everything here runs inside the caller's transaction (a ``Connection`` from ``engine.begin()``):
the caller decides what commits together. On PostgreSQL the ``save_*`` functions turn sequential
scans off for the rest of that transaction (:func:`_by_index`): give them a transaction of their
own, not one that goes on to read whole tables (``mark_*_gone`` runs in another).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from foundation.counties import canonical_county
from foundation.persian import text_key
from foundation.records import (
    AgreementDetail,
    ExpenseAgreementRecord,
    ProjectDetail,
    Rejection,
)
from store.models import (
    Agency,
    ChangeLog,
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
    RejectedRecord,
    utcnow,
)

T = lambda model: model.__table__  # noqa: E731 - the Core table of a SQLModel class

# What a sync of each source writes (store.db.refresh_statistics is given these after a run)
TABLES_WRITTEN: dict[str, tuple[sa.Table, ...]] = {
    "nezarat4": tuple(T(m) for m in (Agency, Plan, County, Project, ProjectYear, ProjectCredit, ProgressReport,
                                      ChangeLog, RejectedRecord)),
    "saba": tuple(T(m) for m in (Agency, County, ExpenseAgreement, ExpenseCredit, Operation, OperationPerformance,
                                  ChangeLog, RejectedRecord)),
}


@dataclass
class WriteCounts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    changes: int = 0  # fields logged in change_log

    def add(self, other: WriteCounts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.gone += other.gone
        self.changes += other.changes


# --- generic machinery ------------------------------------------------------------------------


def _insert(conn: Connection, table: sa.Table) -> Any:
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def upsert(conn: Connection, table: sa.Table, rows: Sequence[dict], keys: Sequence[str], update: Sequence[str] | None = None) -> None:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update-columns (DO NOTHING when none).

    One statement for all rows, sent as an executemany: it is compiled once (and cached), and the
    drivers batch the rows (psycopg pipelines them, sqlite3 loops in C). Every row must have the
    same columns.
    """
    if not rows:
        return
    stmt = _insert(conn, table)
    columns = update if update is not None else [c for c in rows[0] if c not in keys and c != "id"]
    if columns:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(stmt, list(rows))


def _canon(value: Any) -> str | None:
    """The text a value is logged as in change_log."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).isoformat()  # one zone in the log, whatever the source
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def _same(old: Any, new: Any, is_text: bool) -> bool:
    if is_text:
        return text_key(old) == text_key(new)
    if isinstance(old, Decimal) or isinstance(new, Decimal):
        if old is None or new is None:
            return old is new
        return Decimal(old) == Decimal(new)
    return old == new


@dataclass
class _Diff:
    """What one row's comparison found."""

    new: bool
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def _diff(existing: dict | None, row: dict, fields: Iterable[str], text_fields: frozenset[str]) -> _Diff:
    if existing is None:
        return _Diff(new=True)
    changed = {
        name: (existing[name], row[name])
        for name in fields
        if name in row and not _same(existing[name], row[name], name in text_fields)
    }
    return _Diff(new=False, changed=changed)


def _select_existing(conn: Connection, table: sa.Table, keys: Sequence[str], values: Iterable[tuple]) -> dict[tuple, dict]:
    """The stored rows whose ``keys`` are among ``values``, by key.

    The query filters on the first key column only and the rest is matched here. A row-value
    ``(a, b) IN (VALUES …)`` reads the whole table on SQLite (its planner uses no index for it), so
    every batch of a sync cost as much as the store was large. Every composite key here starts with
    its selective column (a parent's id, an agreement number), which a UNIQUE index leads with;
    the few extra rows it brings (a parent's other children) are dropped below.
    """
    wanted = set(values)
    if not wanted:
        return {}
    found: dict[tuple, dict] = {}
    first = sorted({v[0] for v in wanted}, key=repr)  # a stable order: same statements, same plans
    for start in range(0, len(first), 400):
        cond = table.c[keys[0]].in_(first[start : start + 400])
        for row in conn.execute(sa.select(table).where(cond)).mappings():
            key = tuple(row[k] for k in keys)
            if key in wanted:
                found[key] = dict(row)
    return found


def _by_index(conn: Connection) -> None:
    """PostgreSQL: plan this transaction's statements without sequential scans.

    A batch looks rows up by key (a few hundred values at most), which an index answers in
    microseconds. PostgreSQL's planner picks by statistics: on a table without column statistics
    (never analyzed: a first sync; autovacuum late, or off as on the test server) it assumes each
    value of ``col IN (…)`` matches 0.5 % of the table, so a lookup of 25–400 keys looks like a
    large share of it and is planned as a sequential scan, and each batch costs as much as the store
    is large (measured: 0.5 → 4.4 ms per lookup while 12,000 project-years were saved).
    ``SET LOCAL`` lasts until the caller's transaction ends (see the module docstring); a statement
    no index can answer is still run, by a scan.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


class _Changes:
    """Collects change_log rows for one batch and writes them at once."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.rows: list[dict] = []
        self.at = utcnow()

    def log(self, entity: str, entity_id: int, business_key: str, changed: dict[str, tuple[Any, Any]]) -> None:
        for name, (old, new) in changed.items():
            self.rows.append(
                dict(run_id=self.run_id, entity=entity, entity_id=entity_id, business_key=business_key,
                     field=name, old_value=_canon(old), new_value=_canon(new), changed_at=self.at)
            )

    def flush(self, conn: Connection) -> int:
        if self.rows:
            conn.execute(sa.insert(T(ChangeLog)), self.rows)
        count = len(self.rows)
        self.rows = []
        return count


def _merge_rows(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: list[dict],
    fields: Sequence[str],
    text_fields: frozenset[str],
    entity: str,
    business_key: Callable[[dict], str],
    changes: _Changes,
    run_id: int,
) -> tuple[dict[tuple, int], set[tuple], set[tuple]]:
    """Upsert ``rows`` keyed by ``keys``; log changed fields. Returns (ids by key, new keys, changed keys)."""
    existing = _select_existing(conn, table, keys, (tuple(r[k] for k in keys) for r in rows))
    to_write: list[dict] = []
    new_keys: set[tuple] = set()
    changed_keys: set[tuple] = set()
    has_runs = "first_run_id" in table.c
    for row in rows:
        key = tuple(row[k] for k in keys)
        old = existing.get(key)
        diff = _diff(old, row, fields, text_fields)
        if diff.new:
            new_keys.add(key)
            if has_runs:
                row = {**row, "first_run_id": run_id, "last_run_id": run_id}
            to_write.append(row)
        elif diff.changed:
            changed_keys.add(key)
            # keep the stored spelling of text whose match key did not change
            merged = {**old, **{name: new for name, (_, new) in diff.changed.items()}}
            merged.pop("id", None)
            if has_runs:
                merged["last_run_id"] = run_id
            to_write.append(merged)
            changes.log(entity, old["id"], business_key(row), diff.changed)
    if to_write:
        # one column set for the whole statement: merged rows carry every column, new rows all
        # but the surrogate id (callers build them complete)
        columns = [c.name for c in table.c if c.name != "id"]
        upsert(conn, table, [{c: r.get(c) for c in columns} for r in to_write], keys,
               update=[c for c in columns if c not in keys and c != "first_run_id"])
    ids = {k: v["id"] for k, v in existing.items()}
    if new_keys:
        ids.update({k: v["id"] for k, v in _select_existing(conn, table, keys, new_keys).items()})
    return ids, new_keys, changed_keys


# --- reference data ---------------------------------------------------------------------------


def ensure_agencies(conn: Connection, agencies: dict[str, str]) -> None:
    """code -> name; a new spelling of the same name is not a change."""
    if not agencies:
        return
    existing = _select_existing(conn, T(Agency), ["code"], ((c,) for c in agencies))
    rows = [
        dict(code=code, name=name, name_key=text_key(name) or "")
        for code, name in agencies.items()
        if (code,) not in existing or existing[(code,)]["name_key"] != text_key(name)
    ]
    upsert(conn, T(Agency), rows, ["code"])


def ensure_plans(conn: Connection, plans: dict[str, str | None]) -> None:
    rows = [dict(code=code, title=title) for code, title in plans.items()]
    existing = _select_existing(conn, T(Plan), ["code"], ((c,) for c in plans))
    rows = [r for r in rows if (r["code"],) not in existing or text_key(existing[(r["code"],)]["title"]) != text_key(r["title"])]
    upsert(conn, T(Plan), rows, ["code"])


def ensure_counties(conn: Connection, counties: Iterable[tuple[str | None, str | None]]) -> dict[str, int]:
    """(name, code) pairs -> ids by name key. Counties are matched by name key (Nezarat-4 has no codes)."""
    wanted: dict[str, tuple[str, str | None]] = {}
    for name, code in counties:
        name = canonical_county(name)  # هفتگل and هفتکل are one county
        key = text_key(name)
        if key:
            prev = wanted.get(key)
            wanted[key] = (name, code or (prev[1] if prev else None))  # type: ignore[assignment]
    if not wanted:
        return {}
    existing = _select_existing(conn, T(County), ["name_key"], ((k,) for k in wanted))
    rows = [dict(name=n, name_key=k, code=c) for k, (n, c) in wanted.items() if (k,) not in existing]
    upsert(conn, T(County), rows, ["name_key"], update=[])
    # a county first seen without a code (Nezarat-4) gets it when SABA names it
    for k, (_, code) in wanted.items():
        row = existing.get((k,))
        if row and code and not row["code"]:
            conn.execute(sa.update(T(County)).where(T(County).c.id == row["id"]).values(code=code))
    found = _select_existing(conn, T(County), ["name_key"], ((k,) for k in wanted))
    return {k[0]: v["id"] for k, v in found.items()}


# --- Nezarat-4 --------------------------------------------------------------------------------

_PROJECT_YEAR_FIELDS = (
    "title", "agency_code", "county_id", "location", "start_year", "end_year", "total_cost",
    "progress_at_year_start", "agreement_no", "agreement_date", "agreement_status",
    "target_q1", "target_q2", "target_q3", "target_q4",
    "total_approved", "total_notified", "total_allocated", "total_absorbed", "last_modified", "gone",
)
_PROJECT_YEAR_TEXT = frozenset({"title", "location"})
_CREDIT_FIELDS = ("source", "approved", "notified", "allocated", "absorbed")
_REPORT_FIELDS = ("reported_on", "progress", "absorbed", "comptroller_status", "decided_on", "remarks")


def save_project_details(conn: Connection, run_id: int, details: Sequence[ProjectDetail]) -> WriteCounts:
    """Store a batch of detail pages (one per project and year) with their credits and reports."""
    counts = WriteCounts()
    if not details:
        return counts
    changes = _Changes(run_id)
    _by_index(conn)
    ensure_agencies(conn, {d.agency_code: d.agency_name for d in details})
    ensure_plans(conn, {d.plan_code: d.plan_title for d in details if d.plan_code})
    county_ids = ensure_counties(conn, ((d.county, None) for d in details))

    project_rows = {d.project_code: dict(code=d.project_code, portal_id=d.portal_id, plan_code=d.plan_code) for d in details}
    existing_projects = _select_existing(conn, T(Project), ["code"], ((c,) for c in project_rows))
    fresh = [r for c, r in project_rows.items() if (c,) not in existing_projects
             or existing_projects[(c,)]["portal_id"] != r["portal_id"] or existing_projects[(c,)]["plan_code"] != r["plan_code"]]
    upsert(conn, T(Project), fresh, ["code"])
    project_ids = {k[0]: v["id"] for k, v in _select_existing(conn, T(Project), ["code"], ((c,) for c in project_rows)).items()}

    year_rows = []
    for d in details:
        t = d.targets
        total = d.credit_total
        year_rows.append(dict(
            project_id=project_ids[d.project_code], fiscal_year=d.fiscal_year,
            title=d.title, title_key=text_key(d.title) or "", agency_code=d.agency_code,
            county_id=county_ids.get(text_key(canonical_county(d.county)) or ""), location=d.location,
            start_year=d.start_year, end_year=d.end_year, total_cost=d.total_cost,
            progress_at_year_start=d.progress_at_year_start, agreement_no=d.agreement_no,
            agreement_date=d.agreement_date, agreement_status=d.agreement_status,
            target_q1=t.get(1), target_q2=t.get(2), target_q3=t.get(3), target_q4=t.get(4),
            total_approved=total.approved if total else None, total_notified=total.notified if total else None,
            total_allocated=total.allocated if total else None, total_absorbed=total.absorbed if total else None,
            last_modified=d.last_modified, gone=False,
        ))
    code_of = {project_ids[d.project_code]: d.project_code for d in details}
    year_ids, new_years, changed_years = _merge_rows(
        conn, T(ProjectYear), ["project_id", "fiscal_year"], year_rows, _PROJECT_YEAR_FIELDS,
        _PROJECT_YEAR_TEXT, "project_year", lambda r: f"{code_of[r['project_id']]}/{r['fiscal_year']}", changes, run_id,
    )

    credit_rows, report_rows = [], []
    label: dict[int, str] = {}
    for d in details:
        py_id = year_ids[(project_ids[d.project_code], d.fiscal_year)]
        label[py_id] = f"{d.project_code}/{d.fiscal_year}"
        for c in d.credits:
            credit_rows.append(dict(project_year_id=py_id, source=c.source, source_key=text_key(c.source) or "",
                                    approved=c.approved, notified=c.notified, allocated=c.allocated, absorbed=c.absorbed))
        for r in d.reports:
            report_rows.append(dict(project_year_id=py_id, quarter=r.quarter, reported_on=r.reported_on,
                                    progress=r.progress, absorbed=r.absorbed, comptroller_status=r.comptroller_status,
                                    decided_on=r.decided_on, remarks=r.remarks))
    _, new_c, changed_c = _merge_rows(
        conn, T(ProjectCredit), ["project_year_id", "source_key"], credit_rows, _CREDIT_FIELDS, frozenset({"source"}),
        "project_credit", lambda r: f"{label[r['project_year_id']]}/{r['source']}", changes, run_id,
    )
    _, new_r, changed_r = _merge_rows(
        conn, T(ProgressReport), ["project_year_id", "quarter"], report_rows, _REPORT_FIELDS, frozenset({"remarks"}),
        "progress_report", lambda r: f"{label[r['project_year_id']]}/q{r['quarter']}", changes, run_id,
    )
    touched = {k[0] for k in new_c | changed_c | new_r | changed_r}
    for key in year_ids:
        py_id = year_ids[key]
        if key in new_years:
            counts.inserted += 1
        elif key in changed_years or py_id in touched:
            counts.updated += 1
        else:
            counts.unchanged += 1
    counts.changes = changes.flush(conn)
    return counts


def stored_project_versions(conn: Connection, fiscal_year: int, codes: Iterable[str]) -> dict[str, datetime | None]:
    """project code -> stored last_modified of its year (absent: never stored or gone)."""
    codes = list(codes)
    if not codes:
        return {}
    py, p = T(ProjectYear), T(Project)
    out: dict[str, datetime | None] = {}
    for start in range(0, len(codes), 400):
        rows = conn.execute(
            sa.select(p.c.code, py.c.last_modified)
            .join(py, py.c.project_id == p.c.id)
            .where(py.c.fiscal_year == fiscal_year, py.c.gone.is_(False), p.c.code.in_(codes[start : start + 400]))
        )
        out.update(dict(rows.all()))
    return out


def mark_projects_gone(conn: Connection, run_id: int, fiscal_year: int, seen_codes: set[str]) -> int:
    """A full sync did not list these projects for the year: mark them gone (never delete)."""
    py, p = T(ProjectYear), T(Project)
    rows = conn.execute(
        sa.select(py.c.id, p.c.code).join(p, p.c.id == py.c.project_id)
        .where(py.c.fiscal_year == fiscal_year, py.c.gone.is_(False))
    ).all()
    gone = [(row_id, code) for row_id, code in rows if code not in seen_codes]
    return _mark_gone(conn, run_id, py, "project_year", [(i, f"{c}/{fiscal_year}") for i, c in gone])


def mark_project_gone(conn: Connection, run_id: int, fiscal_year: int, code: str) -> int:
    """The detail page said the project is not there (any more) for the year."""
    py, p = T(ProjectYear), T(Project)
    row = conn.execute(
        sa.select(py.c.id).join(p, p.c.id == py.c.project_id)
        .where(py.c.fiscal_year == fiscal_year, p.c.code == code, py.c.gone.is_(False))
    ).first()
    return _mark_gone(conn, run_id, py, "project_year", [(row[0], f"{code}/{fiscal_year}")] if row else [])


def _mark_gone(conn: Connection, run_id: int, table: sa.Table, entity: str, items: list[tuple[int, str]]) -> int:
    if not items:
        return 0
    changes = _Changes(run_id)
    for row_id, key in items:
        changes.log(entity, row_id, key, {"gone": (False, True)})
    ids = [i for i, _ in items]
    for start in range(0, len(ids), 400):
        conn.execute(sa.update(table).where(table.c.id.in_(ids[start : start + 400])).values(gone=True, last_run_id=run_id))
    changes.flush(conn)
    return len(items)


# --- SABA -------------------------------------------------------------------------------------

_AGREEMENT_FIELDS = ("portal_id", "agency_code", "county_id", "program_code", "program_title", "status",
                     "exchanged_on", "modified_at", "gone")
_EXPENSE_CREDIT_FIELDS = ("title", "approved", "notified", "allocated", "spent")
_OPERATION_FIELDS = ("title", "unit", "annual_target", "target_q1", "target_q2", "target_q3", "target_q4", "unit_cost")
_PERFORMANCE_FIELDS = ("quantity", "spent", "reported_on", "comptroller_status", "decided_on", "remarks")


@dataclass
class AgreementsSaved:
    new_ids: set[int] = field(default_factory=set)
    changed_ids: set[int] = field(default_factory=set)  # the agreement or its credits changed
    ids: dict[tuple[str, int], int] = field(default_factory=dict)  # (agreement no, year) -> store id
    owed: list[tuple[int, int]] = field(default_factory=list)  # (store id, portal id) to read details of
    changes: int = 0


def save_agreements(conn: Connection, run_id: int, records: Sequence[ExpenseAgreementRecord]) -> AgreementsSaved:
    """Store a page of agreements with their credits.

    ``owed`` lists every agreement whose operations and performance must be (re)read: new ones,
    ones whose modifiedAt moved, and any an earlier run left unfinished.
    """
    saved = AgreementsSaved()
    if not records:
        return saved
    changes = _Changes(run_id)
    _by_index(conn)
    ensure_agencies(conn, {r.agency_code: r.agency_name for r in records})
    county_ids = ensure_counties(conn, ((r.county_name, r.county_code) for r in records if r.county_name))
    rows = [dict(
        agreement_no=r.agreement_no, fiscal_year=r.fiscal_year, portal_id=r.portal_id, agency_code=r.agency_code,
        county_id=county_ids.get(text_key(canonical_county(r.county_name)) or "") if r.county_name else None,
        program_code=r.program_code, program_title=r.program_title, status=r.status,
        exchanged_on=r.exchanged_on, modified_at=r.modified_at, gone=False, detail_synced=False,
    ) for r in records]
    table = T(ExpenseAgreement)
    before = _select_existing(conn, table, ["agreement_no", "fiscal_year"], ((r["agreement_no"], r["fiscal_year"]) for r in rows))
    ids, new_keys, changed_keys = _merge_rows(
        conn, table, ["agreement_no", "fiscal_year"], rows, _AGREEMENT_FIELDS, frozenset({"program_title"}),
        "expense_agreement", lambda r: f"{r['agreement_no']}/{r['fiscal_year']}", changes, run_id,
    )
    # detail_synced stays as stored unless the agreement is new or its modifiedAt moved
    stale = [ids[k] for k in ids if k in new_keys or (k in changed_keys and before[k]["modified_at"] != next(
        r["modified_at"] for r in rows if (r["agreement_no"], r["fiscal_year"]) == k))]
    if stale:
        conn.execute(sa.update(table).where(table.c.id.in_(stale)).values(detail_synced=False))
    credit_rows = []
    label: dict[int, str] = {}
    for r in records:
        agreement_id = ids[(r.agreement_no, r.fiscal_year)]
        label[agreement_id] = f"{r.agreement_no}/{r.fiscal_year}"
        for c in r.credits:
            credit_rows.append(dict(agreement_id=agreement_id, chapter=c.chapter, title=c.title, approved=c.approved,
                                    notified=c.notified, allocated=c.allocated, spent=c.spent))
    _, new_c, changed_c = _merge_rows(
        conn, T(ExpenseCredit), ["agreement_id", "chapter"], credit_rows, _EXPENSE_CREDIT_FIELDS, frozenset({"title"}),
        "expense_credit", lambda r: f"{label[r['agreement_id']]}/ch{r['chapter']}", changes, run_id,
    )
    saved.new_ids = {ids[k] for k in new_keys}
    saved.changed_ids = ({ids[k] for k in changed_keys} | {k[0] for k in new_c | changed_c}) - saved.new_ids
    saved.ids = dict(ids)
    saved.changes = changes.flush(conn)
    owed = conn.execute(
        sa.select(table.c.id, table.c.portal_id).where(table.c.id.in_(list(ids.values())), table.c.detail_synced.is_(False))
    ).all()
    saved.owed = [(i, p) for i, p in owed]
    return saved


def save_agreement_details(conn: Connection, run_id: int, details: Sequence[tuple[int, AgreementDetail]]) -> tuple[int, set[int]]:
    """Store operations and performance of agreements (store id, detail) and mark them synced.

    Returns the number of logged changes and the ids of agreements whose details were new or changed.
    """
    if not details:
        return 0, set()
    changes = _Changes(run_id)
    _by_index(conn)
    agreements = T(ExpenseAgreement)
    label = {
        row.id: f"{row.agreement_no}/{row.fiscal_year}"
        for row in conn.execute(sa.select(agreements.c.id, agreements.c.agreement_no, agreements.c.fiscal_year)
                                .where(agreements.c.id.in_([i for i, _ in details])))
    }
    op_rows = []
    for agreement_id, detail in details:
        for op in detail.operations:
            q = op.quarterly_targets
            op_rows.append(dict(agreement_id=agreement_id, code=op.code, title=op.title, unit=op.unit,
                                annual_target=op.annual_target, target_q1=q[0], target_q2=q[1], target_q3=q[2],
                                target_q4=q[3], unit_cost=op.unit_cost))
    op_ids, new_o, changed_o = _merge_rows(
        conn, T(Operation), ["agreement_id", "code"], op_rows, _OPERATION_FIELDS, frozenset({"title", "unit"}),
        "operation", lambda r: f"{label[r['agreement_id']]}/{r['code']}", changes, run_id,
    )
    # performance may name an operation stored by an earlier run (its row rejected this time)
    wanted = {(a, p.operation_code) for a, d in details for p in d.performance} - set(op_ids)
    op_ids.update({k: v["id"] for k, v in _select_existing(conn, T(Operation), ["agreement_id", "code"], wanted).items()})
    op_key = {v: k for k, v in op_ids.items()}
    perf_rows = []
    for agreement_id, detail in details:
        for p in detail.performance:
            op_id = op_ids.get((agreement_id, p.operation_code))
            if op_id is None:  # the connector rejects these; never store an orphan
                continue
            perf_rows.append(dict(operation_id=op_id, quarter=p.quarter, quantity=p.quantity, spent=p.spent,
                                  reported_on=p.reported_on, comptroller_status=p.comptroller_status,
                                  decided_on=p.decided_on, remarks=p.remarks))
    _, new_p, changed_p = _merge_rows(
        conn, T(OperationPerformance), ["operation_id", "quarter"], perf_rows, _PERFORMANCE_FIELDS, frozenset({"remarks"}),
        "operation_performance",
        lambda r: f"{label[op_key[r['operation_id']][0]]}/{op_key[r['operation_id']][1]}/q{r['quarter']}", changes, run_id,
    )
    changed = {k[0] for k in new_o | changed_o} | {op_key[k[0]][0] for k in new_p | changed_p}
    conn.execute(sa.update(agreements).where(agreements.c.id.in_([i for i, _ in details])).values(detail_synced=True))
    return changes.flush(conn), changed


def stored_agreement_versions(conn: Connection, fiscal_year: int, numbers: Iterable[str]) -> dict[str, tuple[datetime | None, bool]]:
    numbers = list(numbers)
    table = T(ExpenseAgreement)
    out = {}
    for start in range(0, len(numbers), 400):
        rows = conn.execute(sa.select(table.c.agreement_no, table.c.modified_at, table.c.detail_synced).where(
            table.c.fiscal_year == fiscal_year, table.c.gone.is_(False), table.c.agreement_no.in_(numbers[start : start + 400])))
        out.update({n: (m, s) for n, m, s in rows})
    return out


def agreements_owing_detail(conn: Connection, fiscal_year: int) -> list[tuple[int, int]]:
    """(store id, portal id) of agreements whose operations/performance an earlier run did not finish."""
    table = T(ExpenseAgreement)
    return [tuple(r) for r in conn.execute(sa.select(table.c.id, table.c.portal_id).where(
        table.c.fiscal_year == fiscal_year, table.c.gone.is_(False), table.c.detail_synced.is_(False)))]


def mark_agreements_gone(conn: Connection, run_id: int, fiscal_year: int, seen_numbers: set[str]) -> int:
    table = T(ExpenseAgreement)
    rows = conn.execute(sa.select(table.c.id, table.c.agreement_no).where(
        table.c.fiscal_year == fiscal_year, table.c.gone.is_(False))).all()
    gone = [(i, f"{n}/{fiscal_year}") for i, n in rows if n not in seen_numbers]
    return _mark_gone(conn, run_id, table, "expense_agreement", gone)


def mark_agreement_gone_by_id(conn: Connection, run_id: int, agreement_id: int) -> int:
    table = T(ExpenseAgreement)
    row = conn.execute(sa.select(table.c.agreement_no, table.c.fiscal_year).where(table.c.id == agreement_id, table.c.gone.is_(False))).first()
    if not row:
        return 0
    return _mark_gone(conn, run_id, table, "expense_agreement", [(agreement_id, f"{row[0]}/{row[1]}")])


# --- rejections -------------------------------------------------------------------------------


def save_rejections(conn: Connection, run_id: int, rejections: Sequence[Rejection]) -> int:
    if rejections:
        conn.execute(sa.insert(T(RejectedRecord)), [
            dict(run_id=run_id, source=r.source, locator=r.locator, reason=r.reason, field=r.field,
                 raw=None if r.raw is None else r.raw[:500], key=r.key)
            for r in rejections
        ])
    return len(rejections)
