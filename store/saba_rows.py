"""SABA's records as rows: an agreement with its credits, then its operations and performance.

The mapping of ``foundation.records.ExpenseAgreementRecord`` (a listing item) onto
``expense_agreement`` and ``expense_credit``, and of ``AgreementDetail`` (two calls per agreement)
onto ``operation`` and ``operation_performance``, written through the history-keeping upsert of
``store.upsert``; with the look-ups and ``gone`` marks a SABA sync needs. An agreement whose
details are still to be read is ``detail_synced = false``, so a run that was stopped owes them to
the next. Runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from foundation.records import AgreementDetail, ExpenseAgreementRecord
from store.models import (
    Agency,
    ChangeLog,
    County,
    ExpenseAgreement,
    ExpenseCredit,
    Operation,
    OperationPerformance,
    RejectedRecord,
)
from store.reference_rows import county_id, ensure_counties, start_batch
from store.upsert import T, mark_gone, mark_unseen_gone, merge_rows, select_existing

# What a sync of SABA writes (store.db.refresh_statistics is given these after a run)
TABLES_WRITTEN: tuple[sa.Table, ...] = tuple(
    T(m) for m in (Agency, County, ExpenseAgreement, ExpenseCredit, Operation, OperationPerformance, ChangeLog,
                   RejectedRecord)
)

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
    changes = start_batch(conn, run_id, {r.agency_code: r.agency_name for r in records})
    county_ids = ensure_counties(conn, ((r.county_name, r.county_code) for r in records if r.county_name))
    rows = [dict(
        agreement_no=r.agreement_no, fiscal_year=r.fiscal_year, portal_id=r.portal_id, agency_code=r.agency_code,
        county_id=county_id(county_ids, r.county_name),
        program_code=r.program_code, program_title=r.program_title, status=r.status,
        exchanged_on=r.exchanged_on, modified_at=r.modified_at, gone=False, detail_synced=False,
    ) for r in records]
    table = T(ExpenseAgreement)
    before = select_existing(conn, table, ["agreement_no", "fiscal_year"], ((r["agreement_no"], r["fiscal_year"]) for r in rows))
    ids, new_keys, changed_keys = merge_rows(
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
    _, new_c, changed_c = merge_rows(
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
    changes = start_batch(conn, run_id, {})  # the agreements, and their agencies, are stored
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
    op_ids, new_o, changed_o = merge_rows(
        conn, T(Operation), ["agreement_id", "code"], op_rows, _OPERATION_FIELDS, frozenset({"title", "unit"}),
        "operation", lambda r: f"{label[r['agreement_id']]}/{r['code']}", changes, run_id,
    )
    # performance may name an operation stored by an earlier run (its row rejected this time)
    wanted = {(a, p.operation_code) for a, d in details for p in d.performance} - set(op_ids)
    op_ids.update({k: v["id"] for k, v in select_existing(conn, T(Operation), ["agreement_id", "code"], wanted).items()})
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
    _, new_p, changed_p = merge_rows(
        conn, T(OperationPerformance), ["operation_id", "quarter"], perf_rows, _PERFORMANCE_FIELDS, frozenset({"remarks"}),
        "operation_performance",
        lambda r: f"{label[op_key[r['operation_id']][0]]}/{op_key[r['operation_id']][1]}/q{r['quarter']}", changes, run_id,
    )
    changed = {k[0] for k in new_o | changed_o} | {op_key[k[0]][0] for k in new_p | changed_p}
    conn.execute(sa.update(agreements).where(agreements.c.id.in_([i for i, _ in details])).values(detail_synced=True))
    return changes.flush(conn), changed



def agreements_owing_detail(conn: Connection, fiscal_year: int) -> list[tuple[int, int]]:
    """(store id, portal id) of agreements whose operations/performance an earlier run did not finish."""
    table = T(ExpenseAgreement)
    return [tuple(r) for r in conn.execute(sa.select(table.c.id, table.c.portal_id).where(
        table.c.fiscal_year == fiscal_year, table.c.gone.is_(False), table.c.detail_synced.is_(False)))]


def mark_agreements_gone(conn: Connection, run_id: int, fiscal_year: int, seen_numbers: set[str]) -> int:
    table = T(ExpenseAgreement)
    stored = sa.select(table.c.id, table.c.agreement_no).where(table.c.fiscal_year == fiscal_year,
                                                                table.c.gone.is_(False))
    return mark_unseen_gone(conn, run_id, table, "expense_agreement", stored, seen_numbers,
                            lambda n: f"{n}/{fiscal_year}")


def mark_agreement_gone_by_id(conn: Connection, run_id: int, agreement_id: int) -> int:
    table = T(ExpenseAgreement)
    row = conn.execute(sa.select(table.c.agreement_no, table.c.fiscal_year).where(table.c.id == agreement_id, table.c.gone.is_(False))).first()
    if not row:
        return 0
    return mark_gone(conn, run_id, table, "expense_agreement", [(agreement_id, f"{row[0]}/{row[1]}")])

