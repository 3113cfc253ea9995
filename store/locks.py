"""One sync per source at a time, on SQLite and PostgreSQL alike.

PostgreSQL: a session-level advisory lock held on a dedicated connection for the run; SQLite: an
exclusive ``flock`` on a file beside the database. Advisory locks are shared by a whole database,
so their key includes the store's schema: two stores in one database (one per schema) never
block each other. Both vanish with the process that holds them, so
a killed sync never leaves a stale lock behind, and the next run can start at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.db import StoreError, error_line
from store.driver import write_lock_first


class LockHeld(Exception):
    """Another process holds the lock; the message says which."""


def lock_key(conn: sa.Connection, name: str) -> int:
    """The advisory lock key of `name` in the store `conn` works on (its current schema)."""
    schema = conn.execute(sa.select(sa.func.current_schema())).scalar()
    # advisory locks take a signed 64-bit key; a hash of the name keeps names readable in code
    return int.from_bytes(hashlib.sha256(f"budgetwatch:{schema}:{name}".encode()).digest()[:8], "big", signed=True)


def hold_for_transaction(conn: sa.Connection, name: str) -> None:
    """PostgreSQL: wait for the lock `name` and hold it until `conn`'s transaction ends (SQLite
    needs none: its writers are serialised by the database itself)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key(conn, name))))


class LockWaitedFor(StoreError):
    """Another writer held the lock longer than the caller would wait; the caller says what waited."""

    exit_code = 1


def one_writer_at_a_time(conn: sa.Connection, name: str, *, within: int | None = None) -> None:
    """Call first in a transaction that reads, then writes what it read decides, one such writer at
    a time: SQLite BEGIN IMMEDIATE, the write lock taken before the first read (a deferred transaction
    would read, then fail to write once another writer committed; it waits the engine's busy
    timeout); PostgreSQL the advisory lock `name`, held until the transaction ends, waited for up to
    `within` seconds (then :class:`LockWaitedFor`, the transaction to be rolled back), else as long as
    it takes."""
    if conn.dialect.name == "sqlite":
        write_lock_first(conn)
        return
    if within is not None:
        conn.execute(sa.text(f"SET LOCAL lock_timeout = '{int(within)}s'"))  # this transaction only
    try:
        hold_for_transaction(conn, name)
    except sa.exc.OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        raise LockWaitedFor(f"the lock {name!r} was held by another writer for over {within} s") from None


# An import of field visits draws its revision (the largest stored plus one) and writes its visits
# under this lock (reconcile.inspections ``import_file``): revisions then grow in the order imports commit.
VISIT_IMPORTS = "field-visit-imports"


# A sync run draws its id and commits its row under this lock, shared; a reconciliation takes it
# alone for the moment its reader's snapshot is taken (reconcile.changes ``watermark``).
SYNC_RUNS = "sync-runs"


def registering_sync_run(conn: sa.Connection) -> None:
    """PostgreSQL: hold :data:`SYNC_RUNS` shared until `conn`'s transaction, which draws a sync run's
    id and inserts its row, commits. Sync runs do not wait for one another; they wait only while a
    reconciliation takes its snapshot (:func:`sync_runs_settled`), a few milliseconds."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(lock_key(conn, SYNC_RUNS))))


# how long a reconciliation waits for a sync run to commit its registration: one INSERT, so a wait
# this long is a process stuck between drawing its id and committing (every sync's registration
# waits behind the reconciliation meanwhile)
SETTLE_SECONDS = 30


class SyncRunsUnsettled(StoreError):
    """A sync run stayed half-registered for :data:`SETTLE_SECONDS`: said in one line."""

    exit_code = 1


@contextmanager
def sync_runs_settled(engine: Engine) -> Iterator[None]:
    """PostgreSQL: while the block runs, no sync run is between drawing its id and committing its
    row. A sequence gives ids in the order they are drawn, not committed: a sync run that drew id 10
    and has not committed is invisible to a snapshot that sees run 11, and a reconciliation's
    watermark ("every sync run up to 11, and those running") would pass over what run 10 writes for
    ever. Taken on a connection of its own (a session lock, let go at the block's end whatever
    happens in it), before the reader's first statement; waited for up to :data:`SETTLE_SECONDS`,
    then :class:`SyncRunsUnsettled`. SQLite: nothing; its writers commit one at a time, ids in the
    order of their commits.

    It relies on the ``sync_run`` id sequence handing out ids in increasing order across sessions:
    PostgreSQL's default, ``CACHE 1``. With a cache, a session would hand out ids it reserved
    earlier after larger ids that other sessions had drawn and committed, below a watermark already
    taken. A test checks the store's sequence."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        key = lock_key(conn, SYNC_RUNS)
        conn.commit()
        held = False
        try:
            conn.execute(sa.text(f"SET LOCAL lock_timeout = '{SETTLE_SECONDS}s'"))  # this transaction only
            try:
                conn.execute(sa.select(sa.func.pg_advisory_lock(key)))
            except sa.exc.OperationalError as exc:
                if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                    raise
                raise SyncRunsUnsettled(
                    f"a sync run on this store has been registering for over {SETTLE_SECONDS} s (a process stopped "
                    "between drawing its run's id and committing it); the reconciliation did not start: run it "
                    "again once that sync has ended or been stopped") from None
            held = True
            conn.commit()  # the session lock outlives the transaction
            yield
        finally:
            try:
                conn.rollback()
                if held:
                    conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                    conn.commit()
            except BaseException:  # a session lock must not go back to the pool held
                conn.invalidate()
                raise


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock ``name`` (e.g. 'sync:nezarat4') for the block, or raise LockHeld at once."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            key = lock_key(conn, name)
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key))).scalar()
            conn.commit()
            if not got:
                raise LockHeld(f"another budgetwatch process is running {name} on this store")
            try:
                yield
            finally:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a private in-memory store has no other process to exclude
        return
    path = Path(f"{database}.{name.replace(':', '-')}.lock")
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise LockHeld(f"another budgetwatch process (pid {holder}) is running {name} on this store") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def advisory_lock_in_pg_locks(key: int) -> tuple[str, dict[str, int]]:
    """The condition (and its parameters) that picks the session advisory lock `key` in pg_locks,
    which shows a bigint key as two oids."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    where = ("l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
             "AND l.classid::bigint = :hi AND l.objid::bigint = :lo")
    return where, {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}


class HeldLock:
    """The lock ``name`` of :func:`exclusive`, held for as long as a process runs (serve's), which
    can tell whether it still holds it and take it again after a loss.

    PostgreSQL: a session advisory lock lives as long as its session. A server restart, a failover,
    a network cut or ``pg_terminate_backend`` (an idle-session killer) ends the session, and the
    lock with it, without a word to the holder: another process may take it at once.
    :meth:`still_held` asks on the lock's own connection (one query of pg_locks: the session lives
    and holds the key); after a loss :meth:`take` takes it on a new connection.

    SQLite: an exclusive ``flock`` on a file beside the database, held while this process keeps the
    file open: no connection to lose. Only the file removed or replaced (a cleaner of the folder)
    would let another process lock a new file of the same name: :meth:`still_held` checks that the
    path is still the file locked (a stat), and :meth:`take` locks the file now there. An in-memory
    store has no other process to exclude: always held.

    The methods are called from more than one thread (serve's watch, its main thread): one at a time."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.lost_why = ""  # why :meth:`still_held` last found the lock lost, for the log
        self.backend: int | None = None  # PostgreSQL: the server process of the session that held it last
        self._conn: sa.Connection | None = None
        self._key: int | None = None
        self._handle = None
        self._mutex = threading.Lock()
        self.let_go = False  # released for good: not taken again (a watch's late retake after it; a review)
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._path = Path(f"{database}.{name.replace(':', '-')}.lock") \
            if database and database != ":memory:" else None

    def take(self) -> None:
        """Take the lock (letting go what is left of a lost one first), or raise LockHeld at once."""
        with self._mutex:
            if self.let_go:  # the process is done with it: a check that was under way must not retake it
                return
            self._let_go()
            if self.engine.dialect.name == "postgresql":
                self._take_session_lock()
            elif self._path is not None:
                self._take_file_lock(self._path)

    def _take_session_lock(self) -> None:
        conn = self.engine.connect()
        try:
            key = lock_key(conn, self.name)
            got, backend = conn.execute(sa.select(sa.func.pg_try_advisory_lock(key), sa.func.pg_backend_pid())).one()
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            raise LockHeld(f"another budgetwatch process is running {self.name} on this store")
        self._conn, self._key, self.backend = conn, key, backend

    def _take_file_lock(self, path: Path) -> None:
        handle = open(path, "a+")  # noqa: SIM115 - open while the lock is held
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise LockHeld(f"another budgetwatch process (pid {holder}) is running {self.name} on this store") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def still_held(self) -> bool:
        """Whether this process still holds the lock; if not, :attr:`lost_why` says why. Cheap: one
        query on the lock's connection (PostgreSQL) or two stats (SQLite)."""
        with self._mutex:
            if self._conn is not None:
                where, params = advisory_lock_in_pg_locks(self._key)
                try:
                    held = self._conn.execute(sa.text(
                        f"SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = pg_backend_pid() AND {where})"),
                        params).scalar()
                    self._conn.commit()
                except sa.exc.SQLAlchemyError as exc:
                    self.lost_why = f"its database session ended: {error_line(exc)}"
                    return False
                if not held:
                    self.lost_why = "its database session no longer holds it"
                return bool(held)
            if self._handle is not None:
                try:
                    locked, there = os.fstat(self._handle.fileno()), os.stat(self._path)
                except FileNotFoundError:
                    self.lost_why = f"its lock file {self._path} was removed"
                    return False
                if (locked.st_dev, locked.st_ino) != (there.st_dev, there.st_ino):
                    self.lost_why = f"its lock file {self._path} was replaced"
                    return False
            return True

    def release(self, *, wait: float = 5.0) -> None:
        """Let the lock go (nothing to do for one lost). Waits at most `wait` seconds for a check
        under way on another thread; then leaves it to the process's end, which lets it go too."""
        self.let_go = True  # set before the wait: a take waiting for the mutex then takes nothing
        if not self._mutex.acquire(timeout=wait):
            return
        try:
            self._let_go()
        finally:
            self._mutex.release()

    def _let_go(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(self._key)))
                conn.commit()
            except sa.exc.SQLAlchemyError:  # the session ended, and its locks with it
                conn.invalidate()
            finally:
                conn.close()
        handle, self._handle = self._handle, None
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
