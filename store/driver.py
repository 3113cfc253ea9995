"""Driver-level plumbing of large runs: what goes past SQLAlchemy's row and parameter machinery.

A reconciliation reads millions of values and writes hundreds of thousands of rows in one
transaction; SQLAlchemy's per-row objects and per-value processors would cost more than the
database's own work. Here, and only here, the store is reached through the driver: plain-tuple
reads (:func:`driver_rows`, with :func:`day_reader` and :func:`figure_reader` to read dates and
figures as the column types would), bulk inserts (:func:`bulk_insert`: COPY on PostgreSQL, one
prepared executemany on SQLite), one snapshot shared with worker processes
(:func:`export_snapshot`, :func:`snapshot_reader`), a reader's last statements planned without
parallel workers (:func:`serial_plans`), whether a second SQLite connection reads as a locked
writer does and how to interrupt its statement (:func:`reads_alike_beside`, :func:`interrupter`),
a larger SQLite page cache while a run writes
(:func:`large_page_cache`) and a connection's writes run by a thread behind the caller
(:class:`WriteBehind`). Statements are still built with SQLAlchemy and compiled for the
connection's dialect.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import queue
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from store.db import StoreError

# --- reading -----------------------------------------------------------------------------------


def figure_reader(conn: Connection):
    """Figures from `driver_rows` as exact Decimals, read as the store's own column type reads them.

    SQLite keeps the store's figures as REAL: ``repr`` gives the shortest text that round-trips,
    i.e. exactly the decimal written (store/models.py, ExactDecimal). psycopg already gives Decimals.
    """
    if conn.dialect.name != "sqlite":
        return lambda value: value
    from store.models import decimal_of_real  # here: store.models imports store.alerts, which imports this module

    return decimal_of_real


def driver_rows(conn: Connection, statement: sa.Select) -> list[tuple]:
    """The rows of `statement` as plain tuples, straight from the driver, in the run's transaction.

    The bulk queries of a run return millions of values; SQLAlchemy's Row objects and per-value
    processors cost three times the fetch itself. The statement is still built with SQLAlchemy and
    compiled for the connection's dialect; its only parameters are integers (ids, years), inlined.
    Dates come as the driver gives them: read them with :func:`day_reader`.
    """
    sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return rows


class Streamed:
    """Rows streamed from a statement: iterate them (named tuples or SQLAlchemy rows: by position or
    by column name), ``keys()`` names the columns. Close it (or read it to the end) before the
    connection runs anything else: psycopg holds the connection while a stream is open."""

    def __init__(self, keys: Sequence[str], rows: Iterator[Any]) -> None:
        self._keys, self._rows = tuple(keys), rows

    def keys(self) -> tuple[str, ...]:
        return self._keys

    def __iter__(self) -> Iterator[Any]:
        return self._rows

    def close(self) -> None:
        """Finish the stream (the rest is drained): the connection is free again."""
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


def stream_rows(conn: Connection, statement: sa.Select, *, batch: int = 2000) -> Streamed:
    """The rows of `statement` as they come, in `conn`'s transaction, never held whole in memory.

    PostgreSQL: psycopg's chunked streaming of an ordinary query, when psycopg's values are already
    what SQLAlchemy would return (:func:`_as_psycopg_gives`: integers, text, dates, exact decimals)
    and the parameters need no SQLAlchemy processing (plain values). SQLAlchemy streams through a
    server-side cursor, whose query runs without parallel workers and answers batch by batch:
    242,741 sorted deviations took 2.4 s that way, 0.85 s streamed (docs/benchmarks.md).
    Elsewhere, and for other columns, SQLAlchemy's own streaming (``yield_per``).

    Until the stream is read to its end or closed (:meth:`Streamed.close`), nothing else may run on
    `conn`: psycopg holds the connection's lock meanwhile, and another statement (a rollback
    included) would wait for it forever. A stream left early is drained, not cancelled: a
    cancelled query aborts the transaction."""
    if conn.dialect.name == "postgresql" and all(_as_psycopg_gives(c.type, conn.dialect)
                                                 for c in statement.selected_columns):
        compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        if all(_plain(value) for value in compiled.params.values()):
            keys = tuple(statement.selected_columns.keys())
            row = named_row_type(keys)
            cursor = conn.connection.driver_connection.cursor()

            def rows() -> Iterator[Any]:
                stream = cursor.stream(str(compiled), compiled.params, size=batch)
                try:
                    yield from map(row._make, stream)
                finally:
                    for _ in stream:  # drained: psycopg would cancel the query, which aborts the transaction
                        pass
                    cursor.close()

            return Streamed(keys, rows())
    result = conn.execute(statement.execution_options(yield_per=batch))
    return Streamed(result.keys(), iter(result))


def _as_psycopg_gives(type_: Any, dialect: Any) -> bool:
    """Whether psycopg's value of a column of `type_` is already what SQLAlchemy would return
    (integers, text, dates, exact decimals such as the store's figures; no TypeDecorator reading)."""
    if isinstance(type_, sa.types.TypeDecorator):
        if type(type_).process_result_value is not sa.types.TypeDecorator.process_result_value:
            return False
        type_ = type_.load_dialect_impl(dialect)
    if isinstance(type_, sa.Enum):
        return False
    if isinstance(type_, sa.Numeric):
        return bool(type_.asdecimal) and not isinstance(type_, sa.Float)
    return isinstance(type_, (sa.Integer, sa.String, sa.Date, sa.Boolean, sa.types.NullType))


def _plain(value: Any) -> bool:
    """A parameter psycopg takes as SQLAlchemy would send it (no bind processing: not a datetime,
    whose time zone the store's column type checks)."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return value is None or (isinstance(value, (str, int, Decimal, date)) and not isinstance(value, datetime))


@functools.lru_cache(maxsize=64)
def named_row_type(keys: tuple[str, ...]) -> type:
    """A named tuple type for rows of these columns (read by position or by name, quickly)."""
    return collections.namedtuple("Row", keys)


def day_reader(conn: Connection):
    """Dates from `driver_rows`: SQLite keeps them as ISO text, PostgreSQL's driver gives dates."""
    if conn.dialect.name != "sqlite":
        return lambda value: value

    def read(value: str | None) -> date | None:
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError as exc:  # written by something other than budgetwatch: say what
            raise ValueError(f"the store holds an unreadable day {value!r} ({exc})") from None

    return read


def serial_plans(conn: Connection) -> None:
    """PostgreSQL: plan the rest of this transaction's statements without parallel workers.

    For a reader's counts at the end of a run (reconcile.judge ``Answers``). At 100k the count of the
    operations with an item is a parallel hash semi-join whose workers' tables spill to disk (298–305
    ms alone), or one process's merge semi-join over the items' index (177 ms). In a nightly run the
    count took 0.29–0.51 s in parallel and 0.15–0.18 s in one process, and the writing thread beside
    it, with the helper on the other core, ran quicker too (docs/benchmarks.md, session 29). A
    streamed select (a server-side cursor) is planned without workers anyway. ``SET LOCAL`` ends with
    the transaction: the connection goes back to its pool as it came.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")


# --- snapshots shared between processes ---------------------------------------------------


def export_snapshot(conn: Connection) -> str | None:
    """PostgreSQL: the id of `conn`'s current snapshot, for other sessions to read the very same moment
    of the store (:func:`snapshot_reader`) while `conn`'s transaction stays open. None elsewhere."""
    if conn.dialect.name != "postgresql":
        return None
    snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
    if not re.fullmatch(r"[0-9A-Fa-f-]+", snapshot):  # it is spliced into SET TRANSACTION SNAPSHOT
        raise StoreError(f"unexpected snapshot id from PostgreSQL: {snapshot!r}")
    return snapshot


@contextlib.contextmanager
def snapshot_reader(engine: Engine, snapshot: str | None = None) -> Iterator[Connection]:
    """A read transaction that sees one moment of the store throughout.

    PostgreSQL: REPEATABLE READ, in `snapshot` (from :func:`export_snapshot`) when given. SQLite: a
    plain transaction, which in WAL mode keeps the snapshot of its first read.
    """
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            if snapshot is not None:
                conn.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            yield conn


# --- writing -----------------------------------------------------------------------------------


def reads_alike_beside(engine: Engine, conn: Connection) -> bool:
    """SQLite: whether another connection to `engine` reads the store as `conn` does while `conn`
    holds the write lock (store.driver ``write_lock_first``): a store in a file in write-ahead-log
    mode, where readers see the last commit and none can come before `conn`'s. Not in memory, where
    another connection is another database; not with a rollback journal, where a writer that spills
    its pages to the file locks readers out. False elsewhere (PostgreSQL: exported snapshots)."""
    if engine.dialect.name != "sqlite":
        return False
    url = engine.url
    if ":memory:" in (url.database or ":memory:") or url.query.get("mode") == "memory":
        return False
    return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() == "wal"


def interrupter(conn: Connection) -> Callable[[], None]:
    """What stops the statement running on `conn` from another thread (SQLite's interrupt: the
    statement fails with "interrupted"; one that comes before its first step is forgotten, so call
    it until the statement has ended). Elsewhere nothing: a statement there is left to end."""
    if conn.dialect.name == "sqlite":
        return conn.connection.driver_connection.interrupt
    return lambda: None


@contextlib.contextmanager
def large_page_cache(conn: Connection, megabytes: int = 64) -> Iterator[None]:
    """SQLite: a page cache of `megabytes` for `conn` while a transaction writes hundreds of thousands
    of rows (the default 2 MB makes each index insert fetch and spill pages; 64 MB cuts a 100k-project
    reconciliation's first run by about two seconds). The memory is taken only as pages are
    used and given back after. Nothing elsewhere."""
    if conn.dialect.name != "sqlite":
        yield
        return
    driver = conn.connection.driver_connection
    before = driver.execute("PRAGMA cache_size").fetchone()[0]
    driver.execute(f"PRAGMA cache_size={-1024 * int(megabytes)}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA cache_size={int(before)}")


def defer_checkpoint(conn: Connection) -> Callable[[], None] | None:
    """SQLite: let the commit of `conn`'s large transaction leave its write-ahead log as it is, for
    :func:`store.db.checkpoint_wal` to copy into the store beside what the caller does next
    (with the default ``wal_autocheckpoint`` the commit copies it itself while the caller waits:
    most of a 100k first run's 1.8 s commit, docs/benchmarks.md session 20). Returns what gives the
    connection its setting back — call it once committed, or failed; None elsewhere (nothing done)."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.connection.driver_connection  # the pool's connection: its setting outlives `conn`
    before = int(driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
    driver.execute("PRAGMA wal_autocheckpoint=0")
    return lambda: driver.execute(f"PRAGMA wal_autocheckpoint={before}").close()


# rows of a temporary table from which its planner statistics pay for themselves (a small run's
# ANALYZE costs more than the join it would plan)
ANALYZE_FROM = 5000
TEMPORARY_STATISTICS_TARGET = 10


def analyze_if_large(conn: Connection, table: sa.Table, rows: int, columns: Sequence[str] = ()) -> None:
    """PostgreSQL: ANALYZE the temporary `table` just filled with `rows` rows, when it is large enough
    for the planner to need it (temporary tables are never analyzed by autovacuum); only `columns`,
    when given (the row count comes with any; a wide table's sentences cost most of its ANALYZE and
    no plan reads them). Nothing elsewhere.

    A sample of 3,000 rows (statistics target 10, where the default 100 samples 30,000) is enough for
    what these statistics decide — how many rows, how many distinct keys, which join — and costs a
    fifth: 10 ms instead of 41–55 ms for 25,000 findings (docs/benchmarks.md, session 14). The
    transaction's own target is set back after."""
    if conn.dialect.name == "postgresql" and rows > ANALYZE_FROM:
        before = conn.execute(sa.text("SELECT current_setting('default_statistics_target')")).scalar_one()
        # local to the transaction (true): a rollback undoes it too; every caller is inside one
        conn.execute(sa.text("SELECT set_config('default_statistics_target', :target, true)"),
                     {"target": str(TEMPORARY_STATISTICS_TARGET)})
        try:
            conn.execute(sa.text(f"ANALYZE {table.name}" + (f" ({', '.join(columns)})" if columns else "")))
        finally:
            conn.execute(sa.text("SELECT set_config('default_statistics_target', :target, true)"),
                         {"target": before})


def analyze_changed(conn: Connection, table: sa.Table) -> None:
    """PostgreSQL: ANALYZE the temporary `table` of an incremental plan's changed subjects, just
    filled, however few its rows. Knowing nothing of a temporary table, PostgreSQL estimates its
    rows from its pages (2,550 ids a page), and for the agreements of a 1 % change read every
    performance item four times over (hash joins) to reach their operations' few quarters: the
    year-to-date pivot took 65 ms at 10k projects, 5 ms planned on the table's real count
    (docs/benchmarks.md, session 31). A table of ids analyzes in about a millisecond. Nothing
    elsewhere: SQLite searches by each id of an IN over the table."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ANALYZE {table.name}"))


def analyze_small_temporary(conn: Connection, table: sa.Table) -> None:
    """SQLite: ANALYZE the temporary `table`, just filled with few rows. Knowing nothing of a
    temporary table, SQLite plans it as large and reaches its rows from the other side of a join
    (every agreement read to reach a few changed operations). Its statistics stay with the
    connection until the next ANALYZE: a later run on the same connection that fills the table
    with many rows plans it as small, which is the right side to start a join from anyway.
    Nothing elsewhere (PostgreSQL: :func:`analyze_if_large`)."""
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text(f"ANALYZE temp.{table.name}"))


def write_lock_first(conn: Connection) -> None:
    """SQLite: begin `conn`'s transaction holding the write lock (BEGIN IMMEDIATE), before its first
    read. A deferred transaction that reads and then writes fails with "database is locked" once
    another connection committed meanwhile; this one makes the others wait instead (busy timeout).
    Call before anything else runs in `conn`. Nothing elsewhere (PostgreSQL locks rows as it writes)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def bulk_insert(conn: Connection, table: sa.Table, columns: Sequence[str], rows: list[Sequence[Any]], *,
                ready: frozenset[str] = frozenset()) -> None:
    """Insert many rows (sequences of values in `columns` order) in the connection's transaction,
    straight through the driver: COPY on PostgreSQL, one prepared executemany on SQLite.

    psycopg's executemany sends one INSERT per row, and SQLAlchemy's own executemany spends more
    time building each row's parameters than the database spends storing it; opening a hundred
    thousand deviations is the difference between seconds and a minute. Values go through each
    column type's bind processing (JSON, dates, the store's decimals), as SQLAlchemy would do,
    except in the `ready` columns, whose values are already what the driver takes (JSON as text).
    """
    if not rows:
        return
    names = ", ".join(f'"{name}"' for name in columns)
    driver = conn.connection.driver_connection
    if conn.dialect.name == "postgresql":
        json_columns = [i for i, c in enumerate(columns)
                        if c not in ready and isinstance(table.c[c].type, sa.JSON)]
        with driver.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                if json_columns:
                    row = list(row)
                    for i in json_columns:
                        if row[i] is not None:
                            row[i] = json.dumps(row[i], ensure_ascii=False)
                copy.write_row(row)
        return
    values = sqlite_values(conn.dialect, table, columns, rows, ready=ready)
    cursor = driver.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})',
                           values)
    finally:
        cursor.close()


def sqlite_values(dialect: sa.Dialect, table: sa.Table, columns: Sequence[str], rows: list[Sequence[Any]], *,
                  ready: frozenset[str] = frozenset()) -> list[tuple]:
    """`rows` as SQLite's driver takes them for `table`'s `columns`: each column type's bind
    processing applied (JSON, dates, the store's decimals), except in the `ready` columns (what
    :func:`bulk_insert` inserts; a helper process sends a run such rows, reconcile/helper.py)."""
    by_column = [list(values) for values in zip(*rows)]  # column by column: one processor call per value
    for i, name in enumerate(columns):
        values = by_column[i]
        if name in _TEXTS:
            # sqlite3 keeps a bound str's UTF-8 form inside the str for its lifetime: long texts
            # are bound as copies, so the findings a run returns carry no second, encoded copy
            by_column[i] = [value if value is None else (" " + value)[1:] for value in values]
            continue
        # _cached_bind_processor: the dialect's processor for the column type, as SQLAlchemy applies it
        process = None if name in ready else table.c[name].type._cached_bind_processor(dialect)
        if process is None:
            continue
        first = values[0]
        if values.count(first) == len(values) and all(type(value) is type(first) for value in values):
            by_column[i] = [process(first)] * len(values)  # one value for the whole batch (a day, a clock)
        else:
            by_column[i] = [process(value) for value in values]
    return list(zip(*by_column))


_TEXTS = frozenset({"message", "reason"})  # plain text columns that can be long: see bulk_insert


# --- writing behind ------------------------------------------------------------------------------


def written_behind(error: BaseException) -> bool:
    """Whether `error` was raised by a write a :class:`WriteBehind` ran (it reaches the caller at a
    later submit or wait, while the caller is doing something else: not that thing's error)."""
    return getattr(error, "written_behind", False) is True


class WriteBehind:
    """A connection's writes run in order by a thread of their own, behind the caller.

    PostgreSQL executes a statement in a server process while the client waits: a run that stages
    findings and opens deviations (reconcile/lifecycle.py) would wait for each, with its Python idle.
    Handed here, the writes run one after another in this thread while the caller goes on making the
    next ones; the driver lets go of the interpreter while it waits for the server, so the server's
    work and the caller's overlap. At most `depth` writes wait their turn (a caller faster than the
    server waits, and holds no more than that many batches in memory).

    While a WriteBehind is open the connection is its thread's: the caller touches it again only
    after :meth:`wait` (everything done; the first error raised) or :meth:`close`. After an error the
    thread runs nothing more and the error is raised to the caller at its next :meth:`submit` or
    :meth:`wait`; :meth:`close` (always call it, on any way out) waits for the write in hand and
    stops the thread, so that the caller may roll back a connection nobody else uses.
    """

    def __init__(self, name: str, depth: int = 4) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._ended = threading.Event()  # the thread has returned
        self._thread: threading.Thread | None = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], None]) -> None:
        """Queue `write` behind the ones before it (waits while `depth` are queued)."""
        self._raise()
        if self._thread is None:
            raise RuntimeError("WriteBehind is closed")
        self._queue.put(write)

    def wait(self) -> None:
        """Until every submitted write has run; the first error, if one failed."""
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Stop the thread once the write in hand is done; the queued ones are not run. Raises nothing
        but a KeyboardInterrupt that came while it waited, once the thread has ended."""
        if self._thread is None:
            return
        self._error = self._error or _Closed()  # the thread skips what is still queued
        interrupted: BaseException | None = None
        # Not left before the thread ends, even at a second Ctrl-C: the caller rolls the connection
        # back next, and must not while the thread still runs a statement on it.
        # Its own event, not Thread.join/is_alive: on Python 3.11 a join interrupted by Ctrl-C may
        # mark a thread that still runs as stopped (CPython gh-90882).
        while True:
            try:
                while not self._ended.is_set():
                    with contextlib.suppress(queue.Full):  # full: the thread empties it, skipping, meanwhile
                        self._queue.put_nowait(None)
                    self._ended.wait(0.05)
                self._thread.join()  # past its last write: only its return is left
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
        self._thread = None
        if interrupted is not None:
            raise interrupted

    def _raise(self) -> None:
        if self._error is not None and not isinstance(self._error, _Closed):
            error, self._error = self._error, _Closed()
            try:
                error.written_behind = True  # type: ignore[attr-defined] - see written_behind()
            except AttributeError:  # pragma: no cover - an exception type without a __dict__
                pass
            raise error

    def _work(self) -> None:
        try:
            while True:
                write = self._queue.get()
                try:
                    if write is None:
                        return
                    if self._error is None:
                        write()
                except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                    self._error = exc
                finally:
                    self._queue.task_done()
        finally:
            self._ended.set()


class _Closed(Exception):
    """A WriteBehind that failed (its error handed over) or was closed: it runs nothing more."""
