"""Sync runs and sync state: the bookkeeping of the sync engine, kept with the data it describes.

A run is opened before the first request and closed, whatever happened, with its counts, status
and error; what it could not read is kept with it (``rejected_record``). The state of a source and
fiscal year (high-water mark, an owed full pass) is written in the same transactions as the data
it covers (see sync.frame).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from foundation.records import Rejection
from store import locks
from store.models import RejectedRecord, SyncRun, SyncState, utcnow
from store.upsert import upsert

_runs = SyncRun.__table__
_state = SyncState.__table__


def close_abandoned_runs(engine: Engine, source: str) -> int:
    """Runs still marked running when their source's lock is free were killed: say so."""
    with engine.begin() as conn:
        return conn.execute(
            sa.update(_runs).where(_runs.c.source == source, _runs.c.status == "running")
            .values(status="interrupted", finished_at=utcnow(), error="the process ended before the run did")
        ).rowcount


def open_run(engine: Engine, source: str, mode: str, years: list[int]) -> int:
    """A new sync run. A full run owes every one of its years its full read from the moment it opens,
    each until that year closes (sync.frame): a run stopped while it read its first year leaves the
    later ones owed too, and the next run reads them whole (an operator's trial: only the years a
    stopped full run had begun were completed; the rest waited for the next week's full)."""
    with engine.begin() as conn:
        run_id = register_run(conn, source, mode, years)
        if mode == "full":
            now = utcnow()
            for year in years:
                set_state(conn, source, year, run_id, full_pending=True, full_started_at=now)
        return run_id


def register_run(conn: Connection, source: str, mode: str, years: list[int]) -> int:
    """A new sync run, marked running, in `conn`'s transaction: its id is drawn and its row committed
    under the lock a reconciliation's watermark takes (store.locks ``registering_sync_run``)."""
    locks.registering_sync_run(conn)
    return conn.execute(sa.insert(_runs).values(
        source=source, mode=mode, fiscal_years=",".join(map(str, years)), started_at=utcnow(), status="running",
    ).returning(_runs.c.id)).scalar_one()


def close_run(engine: Engine, run_id: int, *, status: str, counts: dict[str, int], error: str | None,
              stats: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(_runs).where(_runs.c.id == run_id).values(
            finished_at=utcnow(), status=status, error=error, stats=stats, **counts))


def get_state(engine: Engine, source: str, year: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(_state).where(_state.c.source == source, _state.c.fiscal_year == year)).mappings().first()
    return dict(row) if row else {"high_water_mark": None, "full_pending": False}


def set_state(conn: Connection, source: str, year: int, run_id: int, **values: Any) -> None:
    """Inside the caller's transaction: the state moves with the data it covers."""
    upsert(conn, _state, [dict(source=source, fiscal_year=year, last_run_id=run_id, **values)], ["source", "fiscal_year"])


def save_rejections(conn: Connection, run_id: int, rejections: Sequence[Rejection]) -> int:
    """What the run could not read, with where it was, why, and the raw text (cut to 500 characters)."""
    if rejections:
        conn.execute(sa.insert(RejectedRecord.__table__), [
            dict(run_id=run_id, source=r.source, locator=r.locator, reason=r.reason, field=r.field,
                 raw=None if r.raw is None else r.raw[:500], key=r.key)
            for r in rejections
        ])
    return len(rejections)
