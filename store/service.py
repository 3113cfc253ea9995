"""What the unattended service asks of the store: its lock, its status queries, its housekeeping.

- :func:`serve_lock` — only one ``budgetwatch serve`` per store: store.locks' lock ``serve``
  (PostgreSQL: a session advisory lock per schema; SQLite: a ``flock`` on a file beside the
  database holding the pid), which vanishes with the process (kill -9 leaves nothing). A second
  serve names the holder: on PostgreSQL the locking session's ``application_name`` carries the
  host and pid (:func:`identified_url`). A session can end under a running serve (a server
  restart): :class:`ServeLock` lets serve check it and take it again.
- status queries: the last run and last success of each source, the last reconciliation, open
  deviations by severity and agency (the service maps agencies to expert groups; routing is
  reconcile's), and the next run of each scheduled job (APScheduler's own table, if there is one),
  and the runs it records as started and not ended (:func:`unfinished_runs`).
- :func:`housekeeping` — what a long-running store needs now and then.
"""

from __future__ import annotations

import fcntl
import io
import os
import pickle
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from store.db import refresh_statistics
from store.locks import HeldLock, LockHeld, advisory_lock_in_pg_locks, lock_key
from store.models import METADATA, Deviation, ReconcileRun, SyncRun

JOBS_TABLE = "apscheduler_jobs"  # APScheduler's SQLAlchemy job store, in the store's database
# the keywords of a job in that table that record a run of it (service.jobs ``STARTED``): the slot of
# a run started and not ended, and when it was handed over (:func:`run_record`); the slot of a run a
# serve that died left, not run again yet
RUN_STARTED, RUN_CUT_OFF = "started", "cut_off"
_LOCK_NAME = "serve"
_APPLICATION = "budgetwatch serve, "
_sync = SyncRun.__table__
_reconcile = ReconcileRun.__table__
_deviation = Deviation.__table__


def holder_identity() -> str:
    return f"host {socket.gethostname()} pid {os.getpid()}"


# serve's sessions tell a dead network from a quiet one within about a minute (libpq's keywords, unless
# the URL sets them): a cut that sends no reset left the serve lock's check waiting ~15 min (a review)
_KEEPALIVES = {"keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10", "keepalives_count": "3",
               "tcp_user_timeout": "60000"}


def identified_url(url: str) -> str:
    """PostgreSQL: the URL with an ``application_name`` naming this host and pid, so that the
    session holding the serve lock says who it is (pg_stat_activity), and TCP keepalives
    (:data:`_KEEPALIVES`, where the URL sets none); other URLs as they are."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    name = f"{_APPLICATION}{holder_identity()}"[:63]  # PostgreSQL keeps 63 bytes of it
    added = {k: v for k, v in _KEEPALIVES.items() if k not in parsed.query} | {"application_name": name}
    return parsed.update_query_dict(added).render_as_string(hide_password=False)


class ServeLock:
    """The serve lock a running serve holds (:func:`serve_lock`), watched while it runs.

    On PostgreSQL it lives as long as its session: a server restart, a failover, a network cut or an
    idle-session killer ends it silently, and a second serve could then start beside this one.
    :meth:`still_held` checks it (one query on its own connection; on SQLite, where nothing of the
    kind can end a flock, a stat of its file); :meth:`take_again` takes it on a new connection after
    a loss (store.locks ``HeldLock``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = HeldLock(engine, _LOCK_NAME)

    @property
    def lost_why(self) -> str:
        return self._lock.lost_why

    def take(self) -> None:
        """Take the lock, or raise LockHeld naming the serve that holds it."""
        try:
            self._lock.take()
        except LockHeld:
            raise LockHeld(f"another budgetwatch serve ({serve_holder(self.engine) or 'unknown'}) runs on this "
                           "store") from None

    def still_held(self) -> bool:
        return self._lock.still_held()

    def take_again(self) -> bool:
        """After a loss: take the lock on a new connection (True); False when the session that held it
        has not ended yet on the server (it still holds it: try again later) or the lock was let go
        meanwhile; LockHeld naming another serve that holds it now. A database that cannot be reached
        raises its error."""
        lost = self._lock.backend
        try:
            self._lock.take()
        except LockHeld:
            holder = _holder(self.engine)
            if holder is None or (holder[1] is not None and holder[1] == lost):
                return False
            raise LockHeld(f"another budgetwatch serve ({holder[0]}) runs on this store") from None
        return not self._lock.let_go  # released meanwhile (serve stopping): nothing was taken

    def release(self) -> None:
        self._lock.release()


@contextmanager
def serve_lock(engine: Engine) -> Iterator[ServeLock]:
    """Hold the store's serve lock (store.locks) for the block, or raise LockHeld naming the host
    and pid holding it. Open the engine with :func:`identified_url` for PostgreSQL to be named."""
    lock = ServeLock(engine)
    lock.take()
    try:
        yield lock
    finally:
        lock.release()


def serve_holder(engine: Engine) -> str | None:
    """Who runs ``serve`` on this store ("host H pid P"), or None; takes no lock a serve could trip on
    (SQLite: a shared lock tried for an instant; PostgreSQL: a look at pg_locks)."""
    holder = _holder(engine)
    return holder[0] if holder else None


def _holder(engine: Engine) -> tuple[str, int | None] | None:
    """Who holds the serve lock, and on PostgreSQL the server process of its session."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            where, params = advisory_lock_in_pg_locks(lock_key(conn, _LOCK_NAME))
            row = conn.execute(sa.text(
                "SELECT a.application_name, a.client_addr, l.pid FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_database d ON d.oid = l.database "
                f"WHERE d.datname = current_database() AND {where}"
            ), params).first()
        if row is None:
            return None
        name, client, backend = row
        said = name.removeprefix(_APPLICATION) if name and name.startswith(_APPLICATION) \
            else f"client {client}, server backend {backend}"
        return said, backend
    path = _lock_file(engine)
    if path is None or not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            # store.locks writes the holder's pid; a file lock is held on this host (SQLite is not
            # for network file systems)
            return f"host {socket.gethostname()} pid {handle.read().strip() or 'unknown'}", None
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _lock_file(engine: Engine) -> Path | None:
    """The file store.locks flocks for the serve lock of a SQLite store."""
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(f"{database}.{_LOCK_NAME}.lock")


# --- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncRunInfo:
    run_id: int
    source: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    inserted: int
    updated: int
    gone: int
    rejected: int
    error: str | None


@dataclass(frozen=True)
class SourceRuns:
    source: str
    last: SyncRunInfo | None
    last_success: SyncRunInfo | None


@dataclass(frozen=True)
class ReconcileRunInfo:
    run_id: int
    as_of: object  # date
    status: str
    started_at: datetime
    finished_at: datetime | None


def source_runs(conn: Connection, sources: Sequence[str]) -> list[SourceRuns]:
    """Per source: its latest run (whatever its status) and its latest successful one."""
    found = []
    for source in sources:
        latest = _sync_run(conn, _sync.c.source == source)
        success = _sync_run(conn, _sync.c.source == source, _sync.c.status == "success")
        found.append(SourceRuns(source, latest, success))
    return found


def _sync_run(conn: Connection, *where: sa.ColumnElement[bool]) -> SyncRunInfo | None:
    c = _sync.c
    row = conn.execute(sa.select(c.id, c.source, c.mode, c.status, c.started_at, c.finished_at, c.inserted,
                                 c.updated, c.gone, c.rejected, c.error)
                       .where(*where).order_by(c.id.desc()).limit(1)).first()
    return SyncRunInfo(*row) if row else None


def reconcile_runs(conn: Connection) -> tuple[ReconcileRunInfo | None, ReconcileRunInfo | None]:
    """The latest reconciliation run and the latest successful one."""
    c = _reconcile.c
    query = sa.select(c.id, c.as_of, c.status, c.started_at, c.finished_at).order_by(c.id.desc()).limit(1)
    latest = conn.execute(query).first()
    success = conn.execute(query.where(c.status == "success")).first()
    return (ReconcileRunInfo(*latest) if latest else None), (ReconcileRunInfo(*success) if success else None)


def open_deviations_by_agency(conn: Connection) -> list[tuple[str, str | None, int]]:
    """(severity, agency code, count) of the open deviations."""
    c = _deviation.c
    rows = conn.execute(sa.select(c.severity, c.agency_code, sa.func.count())
                        .where(c.status == "open").group_by(c.severity, c.agency_code)).all()
    return [(severity, agency, int(count)) for severity, agency, count in rows]


def next_runs(conn: Connection) -> dict[str, datetime | None]:
    """Each scheduled job's next run (UTC) as the running service recorded it; {} before the first serve."""
    if not sa.inspect(conn).has_table(JOBS_TABLE):
        return {}
    jobs = sa.table(JOBS_TABLE, sa.column("id"), sa.column("next_run_time"))
    return {job_id: (datetime.fromtimestamp(when, UTC) if when is not None else None)
            for job_id, when in conn.execute(sa.select(jobs.c.id, jobs.c.next_run_time)).all()}


def run_record(due: datetime, handed_over: datetime) -> str:
    """A run's record in its job's ``started`` keyword: its slot and the moment serve handed it over,
    as ISO 8601 writes an interval (``slot/handed-over``). They differ by up to
    ``schedule.misfire_grace_seconds`` after downtime (a missed slot run at the start): how long a run
    has run counts from the second, what the run was due for is the first."""
    return f"{due.isoformat()}/{handed_over.isoformat()}"


def read_run_record(value: str) -> tuple[datetime, datetime]:
    """(slot, handed over) of a run's record; a record of the slot alone (written before the moment
    was recorded, or by a start: ``cut_off``) was handed over at its slot."""
    slot, _, handed_over = value.partition("/")
    due = datetime.fromisoformat(slot)
    return due, (datetime.fromisoformat(handed_over) if handed_over else due)


def slot_of(value: str) -> str:
    """The slot of a run's record, as written (ISO 8601)."""
    return value.partition("/")[0]


@dataclass(frozen=True)
class UnfinishedRun:
    job: str
    due: datetime  # the slot it was started for
    cut_off: bool  # a start found it left by a serve that died, and it has not run again yet
    started_at: datetime  # when serve handed it over (its slot, for a run recorded by the slot alone)


def unfinished_runs(conn: Connection) -> list[UnfinishedRun]:
    """The runs the job store records as started and not ended (service.jobs ``STARTED``): with serve
    running, the jobs running now (since ``started_at``), and any run a dead serve left that the start
    has not made up yet (``cut_off``); with no serve running, runs the last serve never ended (it died
    during them)."""
    if not sa.inspect(conn).has_table(JOBS_TABLE):
        return []
    jobs = sa.table(JOBS_TABLE, sa.column("id"), sa.column("job_state"))
    found = []
    for job_id, state in conn.execute(sa.select(jobs.c.id, jobs.c.job_state).order_by(jobs.c.id)).all():
        try:  # APScheduler's pickled job state: a dict (its Job.__getstate__), read as APScheduler reads it
            kwargs = _JobState(io.BytesIO(state)).load().get("kwargs") or {}
        except Exception:  # noqa: BLE001 - a job APScheduler could not restore either: not ours to judge
            continue
        for key, cut_off in ((RUN_CUT_OFF, True), (RUN_STARTED, False)):
            if kwargs.get(key):
                due, started_at = read_run_record(kwargs[key])
                found.append(UnfinishedRun(job_id, due, cut_off, started_at))
                break
    return found


class _JobState(pickle.Unpickler):
    """A job's pickled state, restored with only what APScheduler's jobs are made of (its triggers,
    dates, time zones, plain containers): `status` runs where monitoring runs, often under another
    account than serve, and a row written into the job table by someone else must not run code there."""

    _MODULES = ("apscheduler.", "datetime", "zoneinfo", "_zoneinfo", "pytz", "tzlocal", "collections")
    _BUILTINS = frozenset({"object", "set", "frozenset", "tuple", "list", "dict", "int", "float", "str", "bytes",
                           "bool", "slice", "range", "complex"})

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name == "getattr":  # a time zone is restored by its class's _unpickle
            return _unpickling_attribute
        if (module == "builtins" and name in self._BUILTINS) or (module, name) in (
                ("copyreg", "_reconstructor"), ("_codecs", "encode")) or module.startswith(self._MODULES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a scheduled job")


def _unpickling_attribute(owner: Any, name: str) -> Any:
    """getattr as a job's pickle uses it (ZoneInfo._unpickle), and nothing else (a way to any module)."""
    if name != "_unpickle" or not isinstance(owner, type):
        raise pickle.UnpicklingError(f"getattr(…, {name!r}) is not part of a scheduled job")
    return getattr(owner, name)


# --- housekeeping -----------------------------------------------------------------------------


def housekeeping(engine: Engine) -> list[str]:
    """Keep a store that is written every day in shape; returns what was done, for the log.

    SQLite: fold the write-ahead log back into the database (it only grows while readers keep it
    open) and let SQLite refresh the statistics its planner needs. PostgreSQL: ANALYZE the tables
    whose statistics are missing or stale (autovacuum may be off or behind); vacuuming is the
    server's, not ours.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            busy, log_pages, moved = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
            conn.exec_driver_sql("PRAGMA optimize")
            conn.commit()
        state = "the database was busy: partly" if busy else "fully"
        return [f"write-ahead log checkpointed {state} ({moved} of {log_pages} pages)", "PRAGMA optimize"]
    analyzed = refresh_statistics(engine, list(METADATA.sorted_tables))
    return [f"ANALYZE {', '.join(analyzed)}" if analyzed else "planner statistics are fresh"]
