"""Reconciliation runs: the record of each run, kept with the deviations it changed.

A run is opened (status ``running``) before it reads anything, in a transaction of its own, so
that its id can mark every deviation it touches. It is closed as ``success`` inside the run's
writing transaction, together with the deviations (one commit: a run recorded as done did its
writing), or as ``failed`` in a transaction of its own after that one was rolled back. A run whose
process died (kill -9, out of memory, power loss) has no one to close it: the next run on the same
host records it ``interrupted`` (:func:`close_abandoned`), as a sync closes its source's.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from foundation.files import running
from store.db import error_line
from store.models import ReconcileRun, utcnow

_runs = ReconcileRun.__table__
ERROR_LENGTH = 500  # characters of a failed run's error kept in its stats


def open_run(engine: Engine, as_of: date, years: Sequence[int]) -> int:
    """A new run as of `as_of` over `years`, marked running, with the process that runs it (its
    host and pid, in its stats until it is closed: :func:`close_abandoned`); its id."""
    with engine.begin() as conn:
        return conn.execute(sa.insert(_runs).returning(_runs.c.id).values(
            as_of=as_of, fiscal_years=",".join(map(str, years)), started_at=utcnow(), status="running",
            stats={"process": {"host": socket.gethostname(), "pid": os.getpid()}},
        )).scalar_one()


ABANDONED = "the process ended before the run did"


def close_abandoned(engine: Engine) -> int:
    """Runs still marked running whose process, on this host, is gone: recorded ``interrupted``
    (the console and `status` showed a run killed with -9 as running for ever). A run of another
    host, or of a process that still lives (it may wait for the reconciliation's lock), is left as
    it is; how many were closed."""
    with engine.begin() as conn:
        marked = conn.execute(sa.select(_runs.c.id, _runs.c.stats).where(_runs.c.status == "running")).all()
        dead = [row.id for row in marked if _gone(row.stats)]
        if dead:
            conn.execute(sa.update(_runs).where(_runs.c.id.in_(dead), _runs.c.status == "running").values(
                status="interrupted", finished_at=utcnow(), stats={"error": ABANDONED}))
    return len(dead)


def _gone(stats: Any) -> bool:
    """Whether the process a running run's stats name (:func:`open_run`) is known to be gone."""
    process = stats.get("process") if isinstance(stats, dict) else None
    if not isinstance(process, dict) or process.get("host") != socket.gethostname():
        return False  # written by an older budgetwatch, or another host's: not known
    pid = process.get("pid")
    # this process's own pid is a run of its own (serve and the console run them in threads); a
    # killed command whose pid came round again (a container) is closed by another process's run
    return isinstance(pid, int) and pid > 0 and pid != os.getpid() and not running(pid)


def close_run(conn: Connection, run_id: int, stats: dict[str, Any]) -> None:
    """Inside the run's writing transaction: the run succeeded, with its statistics."""
    conn.execute(sa.update(_runs).where(_runs.c.id == run_id).values(
        status="success", finished_at=utcnow(), stats=stats))


def fail_run(engine: Engine, run_id: int, error: BaseException) -> None:
    """The run failed with `error` (its writing transaction already rolled back)."""
    with engine.begin() as conn:
        conn.execute(sa.update(_runs).where(_runs.c.id == run_id).values(
            status="failed", finished_at=utcnow(),
            stats={"error": error_line(error)[:ERROR_LENGTH]}))


def last_recorded(conn: Connection) -> Any:
    """The latest successful run (id, as_of, stats), or None: the run a new one follows."""
    return conn.execute(sa.select(_runs.c.id, _runs.c.as_of, _runs.c.stats).where(_runs.c.status == "success")
                        .order_by(_runs.c.id.desc()).limit(1)).first()
