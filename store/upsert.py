"""The history-keeping upsert every mapping of a portal's records to rows is built on.

A batch of rows is written by :func:`merge_rows`: it loads the rows that already exist with one
query per table (:func:`select_existing`), compares field by field, writes new and changed rows
with one ``INSERT … ON CONFLICT DO UPDATE`` (:func:`upsert`), and logs each change in
``change_log`` with the run that saw it (:class:`Changes`). Persian text is compared by its match
key, so a portal that spells a name with a space today and a ZWNJ tomorrow does not produce a
change. Rows are never deleted: :func:`mark_gone` flags what a portal no longer lists.

What a portal's records become is not here but in its mapping (``store.nezarat4_rows``,
``store.saba_rows``, with the shared reference data in ``store.reference_rows``).

Everything here runs inside the caller's transaction (a ``Connection`` from ``engine.begin()``):
the caller decides what commits together. On PostgreSQL :func:`by_index` turns sequential scans
off for the rest of that transaction: the mappings' ``save_*`` functions call it, so give them a
transaction of their own, not one that goes on to read whole tables (``mark_*_gone`` runs in
another).
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

from foundation.persian import text_key
from store.models import ChangeLog, utcnow

T = lambda model: model.__table__  # noqa: E731 - the Core table of a SQLModel class


@dataclass
class WriteCounts:
    """What one batch did to the items it was given (a project-year counts once)."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    changes: int = 0  # fields logged in change_log


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


def select_existing(conn: Connection, table: sa.Table, keys: Sequence[str], values: Iterable[tuple]) -> dict[tuple, dict]:
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


def by_index(conn: Connection) -> None:
    """PostgreSQL: plan this transaction's statements without sequential scans.

    A batch looks rows up by key (a few hundred values at most), which an index answers in
    microseconds. PostgreSQL's planner picks by statistics: on a table without column statistics
    (never analyzed: a first sync; autovacuum late, or off as on the test server) it assumes each
    value of ``col IN (…)`` matches 0.5 % of the table, so a lookup of 25–400 keys looks like a
    large share of it and is planned as a sequential scan, and each batch costs as much as the store
    is large (docs/benchmarks.md, session 4 and the figures behind the comments).
    ``SET LOCAL`` lasts until the caller's transaction ends (see the module docstring); a statement
    no index can answer is still run, by a scan.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")


class Changes:
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


def merge_rows(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: list[dict],
    fields: Sequence[str],
    text_fields: frozenset[str],
    entity: str,
    business_key: Callable[[dict], str],
    changes: Changes,
    run_id: int,
) -> tuple[dict[tuple, int], set[tuple], set[tuple]]:
    """Upsert ``rows`` keyed by ``keys``; log changed fields. Returns (ids by key, new keys, changed keys)."""
    existing = select_existing(conn, table, keys, (tuple(r[k] for k in keys) for r in rows))
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
        ids.update({k: v["id"] for k, v in select_existing(conn, table, keys, new_keys).items()})
    return ids, new_keys, changed_keys



GONE_PAGE = 5000  # rows a full sync reads and marks gone at a time


def mark_unseen_gone(conn: Connection, run_id: int, table: sa.Table, entity: str, stored: sa.Select,
                     seen: set[str], key_of: Callable[[str], str]) -> int:
    """Mark gone the rows `stored` selects (``table.c.id`` and the portal's key) whose key a full sync
    did not see; the change log names them by ``key_of(key)``. A page of GONE_PAGE rows at a time,
    in the caller's transaction: a store synced against a portal that dropped a whole year (100k
    project years) held every row, its change-log entry and its parameters at once (+110 MB)."""
    marked, after = 0, 0
    while True:
        page = conn.execute(stored.where(table.c.id > after).order_by(table.c.id).limit(GONE_PAGE)).all()
        if not page:
            return marked
        after = page[-1][0]
        marked += mark_gone(conn, run_id, table, entity, [(i, key_of(key)) for i, key in page if key not in seen])


def mark_gone(conn: Connection, run_id: int, table: sa.Table, entity: str, items: list[tuple[int, str]]) -> int:
    if not items:
        return 0
    changes = Changes(run_id)
    for row_id, key in items:
        changes.log(entity, row_id, key, {"gone": (False, True)})
    ids = [i for i, _ in items]
    for start in range(0, len(ids), 400):
        conn.execute(sa.update(table).where(table.c.id.in_(ids[start : start + 400])).values(gone=True, last_run_id=run_id))
    changes.flush(conn)
    return len(items)

