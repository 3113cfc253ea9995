"""Work in proportion to change: which subjects a run must judge again.

A recorded run keeps, in its statistics, the **basis** of its verdicts (years, rules, thresholds,
deadlines, which quarters were closed, the wording's version: reconcile/engine.py) and a
**watermark** of the sync runs it could see: the largest sync run id and the sync runs still running
when it read the store. Every row a sync writes carries the run that last inserted or changed it
(``last_run_id``, also on the credit rows and operations since migration 0008; indexed since 0009). So the facts that may have
changed since a recorded run are those written by a sync run after its largest id, or by one that
was still running then (it may have committed more after the run read the store). On PostgreSQL
the watermark is read once no sync run is between drawing its id and committing its row
(store.locks ``sync_runs_settled``): ids come from a sequence in the order they are drawn, and an
uncommitted earlier run would be neither below-and-seen nor running.

Field visits arrive by import, not by a sync: an import numbers itself (``field_inspection.revision``,
the largest plus one, drawn under a lock imports take one at a time, so revisions grow in the order
imports commit: reconcile/inspections.py), and the watermark keeps the largest revision the run saw.
A visit counts from its day on, so the visits dated between the last run's day and this one's are
changes too.

The next run judges **incrementally** when the last recorded run succeeded with the same basis: the
rules that are not time-driven judge only the project years and agreements touched by those sync
runs (their own row, a report, a credit row, an operation or a performance item) or by those visits,
and may resolve only those subjects' deviations; the time-driven rules (reports and approvals now
late, projects now overdue, a year's credits once it has begun) judge every subject whose
finding is not recorded yet when their clock moved, and otherwise only the changed ones. Anything
else — no earlier run, another basis, a renamed agency or county (their names are in every
sentence), an old run without a watermark (of sync runs, or of visits: before migration 0012), or
``--full`` — judges everything.
Both ways give the same deviations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.lifecycle import VERDICT, among_rules, dev, identities_of
from reconcile.scope import Only
from store.driver import analyze_changed, analyze_if_large, bulk_insert
from store.models import (
    ChangeLog,
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

_runs = SyncRun.__table__
_log = ChangeLog.__table__
py, pj, pr, pc = ProjectYear.__table__, Project.__table__, ProgressReport.__table__, ProjectCredit.__table__
ea, ec, op, perf = (ExpenseAgreement.__table__, ExpenseCredit.__table__, Operation.__table__,
                    OperationPerformance.__table__)
fi = FieldInspection.__table__
_NAMES = ("agency", "county")  # entities whose change rewords many subjects' sentences


def watermark(conn: Connection) -> dict[str, Any]:
    """The sync runs a run reading `conn` now can see (the largest id and those still running) and
    the largest revision of the field visits it can see (the imports written up to it)."""
    top = conn.execute(sa.select(sa.func.max(_runs.c.id))).scalar() or 0
    running = conn.execute(sa.select(_runs.c.id).where(_runs.c.status == "running")).scalars().all()
    visits = conn.execute(sa.select(sa.func.max(fi.c.revision))).scalar() or 0
    return {"max": int(top), "running": sorted(int(i) for i in running), "visits": int(visits)}


_meta = sa.MetaData()
CHANGED_YEARS = sa.Table("bw_changed_project_year", _meta, sa.Column("id", sa.Integer, primary_key=True),
                         prefixes=["TEMPORARY"])
CHANGED_AGREEMENTS = sa.Table("bw_changed_agreement", _meta, sa.Column("id", sa.Integer, primary_key=True),
                              prefixes=["TEMPORARY"])
# on the writing connection (PostgreSQL: another session): the subjects judged, by name (subject
# first in its key: a search by subject alone, as on_judged's IN makes, uses it)
JUDGED = sa.Table("bw_judged_subject", _meta, sa.Column("subject", sa.String(160), primary_key=True),
                  sa.Column("kind", sa.String(16), primary_key=True),
                  sa.Column("fiscal_year", sa.Integer, primary_key=True), prefixes=["TEMPORARY"])


@dataclass
class Plan:
    """What a run judges: everything (`only` None) or the changed subjects."""

    kind: str  # full | incremental
    reason: str
    only: Only | None = None
    judged: int = 0  # subjects judged by the rules that are not time-driven (incremental; name_judged)

    def resolvable(self, years: sa.ColumnElement[bool], rules: Sequence[tuple[str, str]],
                   partial_rules: Sequence[tuple[str, str]]) -> list[sa.ColumnElement[bool]]:
        """Which stored deviations a run may resolve when it does not find them again, as disjoint
        branches, each asked on its own (reconcile.lifecycle): in a full run, all of `years` and
        `rules`; in an incremental run, the deviations of the rules judged whole (by the identity
        index's leading kind and rule) and those of `partial_rules` on the subjects judged (by the
        subject index, from :data:`JUDGED`). Not one condition with an OR: that is a scan of every
        stored deviation with a subquery per row (0.3 s at 100k, most of a small run's own work)."""
        if self.only is None:
            return [sa.and_(years, identities_of(rules))]
        whole = [pair for pair in rules if pair not in partial_rules]
        branches = [sa.and_(years, identities_of(whole))] if whole else []
        if partial_rules and self.judged:
            branches.append(sa.and_(years, among_rules(partial_rules), on_judged()))
        return branches

    def carried(self, conn: Connection, partial_rules: Sequence[tuple[str, str]], run_id: int | None = None
                ) -> sa.ColumnElement[bool] | None:
        """The deviations an incremental run finds again without judging them anew (rules not judged
        whole, on subjects whose facts did not change); None in a full run. For the output
        (reconcile.lifecycle ``Found.rows``); the run counts them without it (``Found.apply``).

        Not what the run finds itself: a time-driven rule whose clock moved judges every subject,
        and what it finds on a subject whose facts did not change is new or reopened (counted as
        carried too, and shown twice, until session 12). Those it paired with a stored deviation
        are in the verdicts; those it inserts carry its `run_id` (a what-if inserts none). Each
        exclusion a top-level NOT, which PostgreSQL plans as an anti-join."""
        if self.only is None or not partial_rules:
            return None
        if conn.dialect.name == "postgresql":  # an anti-join (a NOT IN may become a subplan per row)
            paired = sa.exists().where(VERDICT.c.dev_id == dev.c.id)
        else:  # SQLite: the paired ids as an IN list (measured so before bw_verdict had its dev_id index)
            paired = dev.c.id.in_(sa.select(VERDICT.c.dev_id))
        carried = sa.and_(among_rules(partial_rules), ~sa.exists().where(_judged_exactly()), ~paired)
        if run_id is not None:
            carried = sa.and_(carried, sa.or_(dev.c.reconcile_run_id.is_(None), dev.c.reconcile_run_id != run_id))
        return carried


def _judged_exactly() -> sa.ColumnElement[bool]:
    return sa.and_(JUDGED.c.kind == dev.c.kind, JUDGED.c.subject == dev.c.subject,
                   JUDGED.c.fiscal_year == dev.c.fiscal_year)


def on_judged() -> sa.ColumnElement[bool]:
    """The deviations on a subject an incremental run judged: its subject among :data:`JUDGED`'s
    (what the subject index searches), then kind and year too."""
    return sa.and_(dev.c.subject.in_(sa.select(JUDGED.c.subject)), sa.exists().where(_judged_exactly()))


def plan(reader: Connection, writer: Connection, *, last: Any, basis: str, full: bool, as_of: date) -> Plan:
    """The plan of a run as of `as_of` reading `reader` and writing on `writer`, after the `last`
    recorded run."""
    stats = (last.stats or {}) if last is not None else {}
    if full:
        return Plan("full", "asked")
    if last is None:
        return Plan("full", "no earlier recorded run")
    if stats.get("basis") != basis:
        return Plan("full", "years, rules, thresholds, deadlines or closed quarters differ from the last run")
    mark = stats.get("watermark")
    if not mark:
        return Plan("full", "the last run kept no watermark")
    if "visits" not in mark:
        return Plan("full", "the last run kept no watermark of field visits (before migration 0012)")
    in_runs = _written_since(int(mark["max"]), [int(i) for i in mark.get("running", [])])
    renamed = reader.execute(sa.select(sa.func.count()).select_from(_log)
                             .where(in_runs(_log.c.run_id), _log.c.entity.in_(_NAMES))).scalar()
    if renamed:
        return Plan("full", "an agency or county was renamed")
    # A field visit is a fact of its project's years: written by an import since the last run, or
    # dated between the last run's day and this one's (a visit counts from its day on), each year of
    # its project is judged again (inspection_mismatch reads the visits of the year they fall in).
    then, now = sorted((last.as_of, as_of))
    visited = sa.or_(fi.c.revision > int(mark["visits"]), sa.and_(fi.c.visited_on > then, fi.c.visited_on <= now))
    years = sa.union(
        sa.select(py.c.id).where(in_runs(py.c.last_run_id)),
        sa.select(pr.c.project_year_id).where(in_runs(pr.c.last_run_id)),
        sa.select(pc.c.project_year_id).where(in_runs(pc.c.last_run_id)),
        sa.select(py.c.id).join(pj, pj.c.id == py.c.project_id).join(fi, fi.c.project_code == pj.c.code)
        .where(visited),
    )
    agreements = sa.union(
        sa.select(ea.c.id).where(in_runs(ea.c.last_run_id)),
        sa.select(ec.c.agreement_id).where(in_runs(ec.c.last_run_id)),
        sa.select(op.c.agreement_id).where(in_runs(op.c.last_run_id)),
        sa.select(op.c.agreement_id).join(perf, perf.c.operation_id == op.c.id).where(in_runs(perf.c.last_run_id)),
    )
    for table, query in ((CHANGED_YEARS, years), (CHANGED_AGREEMENTS, agreements)):
        table.drop(reader, checkfirst=True)
        table.create(reader)
        reader.execute(sa.insert(table).from_select(["id"], query))
        analyze_changed(reader, table)
    return Plan("incremental", f"the subjects changed since run {last.id}",
                Only(project_years=CHANGED_YEARS, agreements=CHANGED_AGREEMENTS))


def name_judged(plan: Plan, reader: Connection, writer: Connection) -> None:
    """An incremental plan's changed subjects by name on the writing connection (:data:`JUDGED`;
    PostgreSQL: another session), for resolving after the run has judged (``Plan.resolvable``,
    ``Plan.carried``), each as a deviation names it: a project's code, an agreement's number, and
    the 'number/code' of each of the agreement's operations (the store deletes no operation, so these
    are all the subjects a rule can have found on the agreement; store/upsert.py). Asked after the
    run's helper has started (reconcile/engine.py): judging needs none of it, and the helper is the
    longer of the two in an incremental run on PostgreSQL (docs/benchmarks.md, session 25). Nothing
    for a full plan."""
    if plan.only is None:
        return
    changed_agreements = ea.c.id.in_(sa.select(CHANGED_AGREEMENTS.c.id))
    subjects = reader.execute(sa.union_all(
        sa.select(sa.literal("capital"), pj.c.code, py.c.fiscal_year).join(pj, pj.c.id == py.c.project_id)
        .where(py.c.id.in_(sa.select(CHANGED_YEARS.c.id))),
        sa.select(sa.literal("expense"), ea.c.agreement_no, ea.c.fiscal_year).where(changed_agreements))).all()
    operations = reader.execute(sa.select(sa.literal("expense"), ea.c.agreement_no + "/" + op.c.code, ea.c.fiscal_year)
                                .join(op, op.c.agreement_id == ea.c.id).where(changed_agreements)).all()
    JUDGED.drop(writer, checkfirst=True)
    JUDGED.create(writer)
    for rows in (subjects, operations):
        if rows:
            bulk_insert(writer, JUDGED, ["kind", "subject", "fiscal_year"], rows)
    analyze_if_large(writer, JUDGED, len(subjects) + len(operations))
    plan.judged = len(subjects)


def _written_since(after: int, running: list[int]) -> Any:
    """A condition on a run id column: written by a sync run after `after` (ids only grow) or by one
    of `running`. A range on the indexed column rather than ``IN (SELECT id FROM sync_run …)``: once
    SQLite's ANALYZE (the service's ``PRAGMA optimize``) has counted a few run ids over a million
    rows, its planner scans the table for the IN but searches the index for the range (1 s of an
    unchanged re-run at 100k; docs/benchmarks.md, session 11)."""

    def condition(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.or_(column > after, column.in_(running)) if running else column > after

    return condition


def changed_subjects(kind: str) -> sa.Select:
    """SELECT the ids of an incremental plan's changed project years ('capital') or agreements
    ('expense'), on the reading connection."""
    return sa.select((CHANGED_YEARS if kind == "capital" else CHANGED_AGREEMENTS).c.id)


def changed_ids(reader: Connection) -> dict[str, list[int]]:
    """The ids of an incremental plan's changed project years and agreements (a helper process
    judges the same subjects: reconcile/helper.py)."""
    return {name: list(reader.execute(sa.select(table.c.id).order_by(table.c.id)).scalars())
            for name, table in (("project_years", CHANGED_YEARS), ("agreements", CHANGED_AGREEMENTS))}


def changed_tables(conn: Connection, ids: dict[str, list[int]]) -> Only:
    """The changed subjects `ids` (:func:`changed_ids`) as the temporary tables of a plan, on
    `conn`: what a helper process judges in an incremental run."""
    for name, table in (("project_years", CHANGED_YEARS), ("agreements", CHANGED_AGREEMENTS)):
        table.drop(conn, checkfirst=True)
        table.create(conn)
        if ids[name]:
            bulk_insert(conn, table, ["id"], [(i,) for i in ids[name]])
        analyze_changed(conn, table)
    return Only(project_years=CHANGED_YEARS, agreements=CHANGED_AGREEMENTS)


def operations_changed(reader: Connection) -> int:
    """How many operations the changed agreements of an incremental plan have: the subjects of the
    year-to-date rules in the run (reconcile/helper.py ``worth_helping``)."""
    return int(reader.execute(sa.select(sa.func.count()).select_from(op)
                              .where(op.c.agreement_id.in_(sa.select(CHANGED_AGREEMENTS.c.id)))).scalar_one())


def clean(reader: Connection) -> None:
    """Drop the run's temporary tables of changed subjects on the reading connection."""
    for table in (CHANGED_YEARS, CHANGED_AGREEMENTS):
        table.drop(reader, checkfirst=True)


def clean_judged(writer: Connection) -> None:
    """Drop the judged subjects' table on the writing connection (once the run has resolved)."""
    JUDGED.drop(writer, checkfirst=True)
