"""Facts described in memory (reconcile_builders) judged the way a run judges them: through a store.

Rules are stated set-wise (reconcile/scope.py): they read the store, not objects. So that a rule
test can still say "this project, these reports, as of this day → these flags", :func:`check`
writes the facts into a store — keeping every id they carry, so evidence ids stay what the test
says — and asks the rule's query, exactly as a run does. The store is an in-memory SQLite
database made once per test session; each check runs in a transaction rolled back at its end.
``engine=`` runs the same check on another store (a test's PostgreSQL schema).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from foundation.persian import text_key, to_ascii_digits
from reconcile.facts import AgreementFacts, AsOf, OperationInAgreement, ProjectYearFacts
from reconcile.findings import Finding
from reconcile.judge import RuleStats, judge_setwise, rule_stats
from reconcile.rules.capital import TOTAL_ROW
from reconcile.scope import Scope
from store import models as m

_T = {name: model.__table__ for name, model in (
    ("agency", m.Agency), ("county", m.County), ("project", m.Project), ("project_year", m.ProjectYear),
    ("project_credit", m.ProjectCredit), ("progress_report", m.ProgressReport),
    ("field_inspection", m.FieldInspection), ("expense_agreement", m.ExpenseAgreement),
    ("expense_credit", m.ExpenseCredit), ("operation", m.Operation),
    ("operation_performance", m.OperationPerformance), ("sync_run", m.SyncRun))}
_STARTED = datetime(2026, 1, 1, tzinfo=timezone.utc)
_shared: Engine | None = None


def _memory_store() -> Engine:
    global _shared
    if _shared is None:
        _shared = sa.create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
        m.METADATA.create_all(_shared)
    return _shared


@contextlib.contextmanager
def stored(project_years: Iterable[ProjectYearFacts] = (), agreements: Iterable[AgreementFacts] = (),
           engine: Engine | None = None) -> Iterator[Connection]:
    """A connection to a store holding these facts, inside a transaction rolled back afterwards."""
    with (engine or _memory_store()).connect() as conn:
        transaction = conn.begin()
        try:
            store_facts(conn, project_years=project_years, agreements=agreements)
            yield conn
        finally:
            transaction.rollback()


def store_facts(conn: Connection, project_years: Iterable[ProjectYearFacts] = (),
                agreements: Iterable[AgreementFacts] = ()) -> None:
    """Write facts as the store keeps them, with their own ids."""
    project_years, agreements = _distinct(project_years), list(agreements)
    places = {f.place for f in (*project_years, *agreements)}
    runs = {f.run_id for f in project_years} | {f.run_id for f in agreements}
    runs |= {r.run_id for p in project_years for r in p.reports.values()}
    runs |= {i.run_id for a in agreements for o in a.operations for i in o.performance.values()}
    _insert(conn, "sync_run", [{"id": run, "source": "nezarat4", "mode": "full", "fiscal_years": "1405",
                                "started_at": _STARTED, "status": "success"} for run in sorted(runs - {None})])
    agencies = {p.agency_code: p.agency_name for p in places}
    _insert(conn, "agency", [{"code": code, "name": name or "", "name_key": text_key(name or code)}
                             for code, name in agencies.items()])
    counties = {p.county_id: p.county_name for p in places if p.county_id is not None}
    _insert(conn, "county", [{"id": i, "name": name or f"شهرستان {i}", "name_key": text_key(name or f"c{i}")}
                             for i, name in counties.items()])
    codes = sorted({p.project_code for p in project_years})
    project_ids = {code: n for n, code in enumerate(codes, 1)}
    _insert(conn, "project", [{"id": project_ids[code], "code": code} for code in codes])
    for p in project_years:
        _project_year(conn, p, project_ids[p.project_code])
    visits = {(p.project_code, v) for p in project_years for v in p.inspections}
    _insert(conn, "field_inspection", [
        {"id": v.id, "project_code": code, "visited_on": v.visited_on, "observed_progress": v.observed_progress,
         "inspector": v.inspector, "inspector_key": f"{text_key(v.inspector)}-{v.id}"}
        for code, v in sorted(visits, key=lambda cv: cv[1].id)])
    for a in agreements:
        _agreement(conn, a)


def _distinct(project_years: Iterable[ProjectYearFacts]) -> list[ProjectYearFacts]:
    """The store holds a project's year once: a test's repeats of the default project get codes of their own."""
    seen: set[tuple[str, int]] = set()
    out = []
    for n, p in enumerate(project_years):
        if (p.project_code, p.fiscal_year) in seen:
            p = dataclasses.replace(p, project_code=f"{p.project_code}-{n}")
        seen.add((p.project_code, p.fiscal_year))
        out.append(p)
    return out


def _project_year(conn: Connection, p: ProjectYearFacts, project_id: int) -> None:
    total = next((c for c in p.credits if c.label == TOTAL_ROW and c.evidence_table == "project_year"), None)
    t = p.targets
    [year] = _insert(conn, "project_year", [{
        "id": p.id, "project_id": project_id, "fiscal_year": p.fiscal_year, "title": p.title,
        "title_key": text_key(p.title), "agency_code": p.place.agency_code, "county_id": p.place.county_id,
        "start_year": p.start_year, "end_year": p.end_year, "progress_at_year_start": p.progress_at_year_start,
        "agreement_status": p.agreement_status, "target_q1": t[0], "target_q2": t[1], "target_q3": t[2],
        "target_q4": t[3], "total_approved": total.approved if total else None,
        # total_notified: the facts' own (spend_progress_gap reads it), else the total row's
        "total_notified": p.total_notified if p.total_notified is not None else (total.notified if total else None),
        "total_allocated": total.allocated if total else None, "total_absorbed": total.used if total else None,
        "gone": False, "first_run_id": p.run_id, "last_run_id": p.run_id}])
    year_id = year["id"]
    rows = [c for c in p.credits if c is not total]
    _insert(conn, "project_credit", [
        {"id": row_id, "project_year_id": year_id, "source": c.label, "source_key": f"{c.label}-{n}",
         "approved": c.approved, "notified": c.notified, "allocated": c.allocated, "absorbed": c.used}
        for n, (c, row_id) in enumerate(zip(rows, _credit_ids(rows)))])
    _insert(conn, "progress_report", [
        {"id": r.id, "project_year_id": year_id, "quarter": r.quarter, "reported_on": r.reported_on,
         "progress": r.progress, "absorbed": r.absorbed, "comptroller_status": r.comptroller_status,
         "first_run_id": r.run_id, "last_run_id": r.run_id} for r in p.reports.values()])


def _agreement(conn: Connection, a: AgreementFacts) -> None:
    [row] = _insert(conn, "expense_agreement", [{
        "id": a.id, "agreement_no": a.agreement_no, "fiscal_year": a.fiscal_year, "agency_code": a.place.agency_code,
        "county_id": a.place.county_id, "program_code": "0", "program_title": a.program_title, "status": a.status,
        "detail_synced": True, "gone": False, "first_run_id": a.run_id, "last_run_id": a.run_id}])
    agreement_id = row["id"]
    _insert(conn, "expense_credit", [
        {"id": row_id, "agreement_id": agreement_id, "chapter": int(to_ascii_digits(c.label.split()[-1])),
         "approved": c.approved, "notified": c.notified, "allocated": c.allocated, "spent": c.used}
        for c, row_id in zip(a.credits, _credit_ids(list(a.credits)))])
    for o in a.operations:
        _operation(conn, agreement_id, o)


def _operation(conn: Connection, agreement_id: int, o: Any) -> None:
    [row] = _insert(conn, "operation", [
        {"id": o.id, "agreement_id": agreement_id, "code": o.code, "title": o.title, "unit": o.unit,
         "target_q1": o.targets[0], "target_q2": o.targets[1], "target_q3": o.targets[2], "target_q4": o.targets[3],
         "unit_cost": o.unit_cost}])
    _insert(conn, "operation_performance", [
        {"id": i.id, "operation_id": row["id"], "quarter": i.quarter, "quantity": i.quantity, "spent": i.spent,
         "reported_on": i.reported_on, "comptroller_status": i.comptroller_status, "first_run_id": i.run_id,
         "last_run_id": i.run_id} for i in o.performance.values()])


def _credit_ids(rows: list[Any]) -> list[int]:
    """Each credit row's own id; builders give several rows the default id, so a repeat gets another."""
    ids, seen = [], set()
    for n, row in enumerate(rows):
        wanted = row.evidence_id if row.evidence_id is not None else 1
        ids.append(wanted if wanted not in seen else wanted * 1000 + n)
        seen.add(ids[-1])
    return ids


def _insert(conn: Connection, table: str, rows: list[dict], ids: dict[str, set[int]] | None = None) -> list[dict]:
    """Insert `rows`; builders give every subject of a kind the same default ids, so a row whose id
    this store already holds gets a fresh one (only a test with several subjects meets that)."""
    if rows and "id" in rows[0] and table not in ("sync_run", "county"):
        held = set(conn.execute(sa.select(_T[table].c.id)).scalars())
        for row in rows:
            if row["id"] is None or row["id"] in held:
                row["id"] = max(held | {0}) + 1000
            held.add(row["id"])
    if rows:
        conn.execute(sa.insert(_T[table]), rows)
    return rows


def _split(facts: Any) -> tuple[list[ProjectYearFacts], list[AgreementFacts]]:
    if isinstance(facts, ProjectYearFacts):
        return [facts], []
    if isinstance(facts, OperationInAgreement):
        return [], [facts.agreement]
    return [], [facts]


def check(rule: Any, facts: Any, as_of: AsOf, limits: Any = None, *, engine: Engine | None = None
          ) -> list[Finding] | None:
    """What `rule` finds in `facts` as of `as_of`, judged in a store: None when it judged nothing
    (the subject is not one it checks), else its findings in the order the rule makes them."""
    project_years, agreements = _split(facts)
    with stored(project_years, agreements, engine) as conn:
        scope = Scope(conn, as_of, (facts.agreement.fiscal_year if isinstance(facts, OperationInAgreement)
                                    else facts.fiscal_year,))
        found, checked = judge_setwise(scope, rule, limits if limits is not None else rule.Limits())
    return None if checked == 0 else found


def evaluate(project_years: Iterable[ProjectYearFacts], agreements: Iterable[AgreementFacts], as_of: AsOf,
             rules: list[tuple[Any, Any]], *, engine: Engine | None = None
             ) -> tuple[list[Finding], dict[str, RuleStats]]:
    """Every rule of `rules` on these facts, judged in a store: findings and per-rule counts."""
    project_years, agreements = list(project_years), list(agreements)
    stats = rule_stats(rules)
    years = tuple(sorted({f.fiscal_year for f in itertools.chain(project_years, agreements)}))
    found: list[Finding] = []
    with stored(project_years, agreements, engine) as conn:
        scope = Scope(conn, as_of, years)
        for rule, limits in rules:
            made, checked = judge_setwise(scope, rule, limits)
            counts = stats[rule.name]
            counts.checked, counts.findings = checked, len(made)
            counts.flagged = len({(f.subject, f.fiscal_year) for f in made})
            found.extend(made)
    return found, stats
