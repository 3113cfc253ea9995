"""Judging a run's chunks in worker processes, while the run's own process writes the deviations.

Reading facts and judging them is pure Python work on millions of values (decimals, dates,
sentences): on one core a 100,000-project store takes longer than the 30 s the issue allows. The
chunks are independent (a subject lies in exactly one), so a large run hands them to ``workers``
processes and keeps for itself what must stay in one transaction: applying the findings to the
deviations (reconcile/lifecycle.py), chunk by chunk *in plan order*, so that the store ends exactly
as an in-process run leaves it (the same deviation ids too).

* Each worker opens its own connection and reads each chunk in a read-only transaction of its own.
  On PostgreSQL every chunk reads the one snapshot the run exported when it began
  (``pg_export_snapshot``), so the whole run sees one moment of the store, as in-process.
  SQLite cannot share a snapshot between connections: there each chunk is one consistent moment,
  and a sync committing during the run may be seen by later chunks (never half a subject).
* A worker returns its chunk's findings, their digests (reconcile/findings.py: the fingerprint and
  ``numbers`` as JSON text; hashing and serialising are work too) and per-rule counts; an error in a worker fails the run
  (every deviation change rolled back) with that error.
* Each chunk is read and judged by :func:`reconcile.judge.judge_chunk`, as in the run's own process.
* Workers come from the forkserver of :mod:`foundation.workers` (safe while the parent runs
  threads); they cost about a second to start, so small runs (fewer than :data:`MIN_SUBJECTS`
  subjects) are judged in-process.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from foundation.workers import process_context
from reconcile.findings import Finding
from reconcile.judge import Assignment, Chunk, Counts, judge_chunk
from store.driver import export_snapshot, snapshot_reader

PRELOAD = ("reconcile.judge", "reconcile.load", "store.db", "store.driver")
MIN_SUBJECTS = 20_000  # below this, starting the workers costs more than they save
MAX_AUTO_WORKERS = 4

Judged = tuple[list[Finding], list[tuple[str, str]] | None, Counts]  # findings, their digests, counts


def worker_count(configured: int | None, subjects: int) -> int:
    """How many worker processes a run of `subjects` uses: 0 = judge in the run's own process."""
    if configured is not None:
        return configured
    cpus = os.cpu_count() or 1
    if subjects < MIN_SUBJECTS or cpus == 1:
        return 0
    return min(cpus, MAX_AUTO_WORKERS)


@contextlib.contextmanager
def judging_in_workers(engine: Engine, conn: sa.Connection, plan: Sequence[Chunk], assignment: Assignment,
                       workers: int) -> Iterator[Iterator[Judged]]:
    """Start the workers on every chunk of `plan` now; yields the results (findings, their
    digests, counts) in plan order, as they come.

    `conn` is the run's own transaction: on PostgreSQL its snapshot is exported for the workers.
    The workers start at once, so that their start-up overlaps with the run's own preparations.
    """
    snapshot = export_snapshot(conn)
    url = engine.url.render_as_string(hide_password=False)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=process_context(PRELOAD), initializer=_start,
                               initargs=(url, snapshot, assignment))
    try:
        yield pool.map(_judge, plan)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failed run does not wait for the rest


# --- in a worker ------------------------------------------------------------------------------------

_state: dict[str, Any] = {}


def _start(url: str, snapshot: str | None, assignment: Assignment) -> None:
    from store.db import make_engine

    # millions of short-lived objects and no reference cycles: see reconcile/engine.py
    gc.disable()
    _state.update(engine=make_engine(url), snapshot=snapshot, assignment=assignment)


def _judge(chunk: Chunk) -> Judged:
    with snapshot_reader(_state["engine"], _state["snapshot"]) as conn:
        found, counts = judge_chunk(conn, chunk, _state["assignment"])
    return found, [f.digests() for f in found], counts
