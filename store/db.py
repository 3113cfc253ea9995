"""Opening the store: engines for SQLite and PostgreSQL, migrations, and the schema check.

Every command opens the store through :func:`open_store`. A brand-new, empty database is migrated
on the spot (creating a store loses nothing); a store whose schema is behind the code stops the
command with "run budgetwatch db upgrade", because migrating existing data is an operator's decision.
Also here: the connection-level plumbing of large runs (snapshots shared with worker processes,
a larger SQLite page cache, bulk inserts straight through the driver).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")


log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be used as it is; the message says what to do."""


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the settings budgetwatch relies on (foreign keys on SQLite, WAL, waits on locks)."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


def _alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://")))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (budgetwatch db upgrade)."""
    command.upgrade(_alembic_config(engine), revision)


def _is_empty(engine: Engine) -> bool:
    return not sa.inspect(engine).get_table_names()


def check_current(engine: Engine) -> None:
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise StoreError(
            f"the store's schema is at {current or 'no version'} but this budgetwatch needs {head}: "
            "run `budgetwatch db upgrade`"
        )


def open_store(url: str, *, echo: bool = False) -> Engine:
    """Open the store at ``url``; create it when empty; refuse an out-of-date schema."""
    engine = make_engine(url, echo=echo)
    try:
        if _is_empty(engine):
            upgrade(engine)
        check_current(engine)
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot open the store at {safe_url(url)}: {exc.orig}") from None
    return engine


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


# ANALYZE a table when this share of its rows changed since the last one (autovacuum's default)
STALE_SHARE = 0.1
ANALYZE_LOCK_TIMEOUT = "5s"


def refresh_statistics(engine: Engine, tables: Sequence[sa.Table]) -> list[str]:
    """PostgreSQL: ANALYZE those of ``tables`` whose statistics are missing or stale; returns their names.

    The planner estimates every later query from these statistics. Without column statistics it
    assumes each value of ``col IN (…)`` matches 0.5 % of the table, so a lookup of a few hundred
    keys looks like a large share of it and is planned as a sequential scan (the reconciliation's
    per-chunk queries, a deviation list). Autovacuum refreshes them a minute or more after a bulk
    write, and not at all where it is off (the test server). A table counts as stale when it was
    never analyzed or more than ``STALE_SHARE`` of its rows changed since (an incremental sync that
    changed a few rows analyzes nothing). Each table is analyzed in a transaction of its own with a
    lock timeout: ANALYZE waits behind a VACUUM or a schema change, never for long, and one table
    that cannot be analyzed leaves the others' fresh statistics. What the server says instead of
    analyzing (a table the user does not own: "skipping …") is logged as a warning. SQLite's
    planner needs no statistics: nothing is done there.
    """
    if engine.dialect.name != "postgresql" or not tables:
        return []
    analyzed = []
    with engine.connect() as conn:
        driver = conn.connection.driver_connection
        said: list[str] = []

        def say(diagnostic: Any) -> None:  # psycopg drops the server's warnings unless handled
            said.append(diagnostic.message_primary)
            log.warning("ANALYZE: %s", diagnostic.message_primary)

        driver.add_notice_handler(say)
        try:
            for table in tables:
                name = conn.dialect.identifier_preparer.format_table(table)
                if not _stale(conn, name):
                    continue
                said.clear()
                try:
                    with conn.begin():
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'")
                        conn.exec_driver_sql(f"ANALYZE {name}")
                    if not said:  # "skipping …": not analyzed
                        analyzed.append(table.name)
                except sa.exc.DBAPIError as exc:
                    log.warning("could not ANALYZE %s: %s", table.name, str(exc.orig).strip())
        finally:
            driver.remove_notice_handler(say)
    return analyzed


def _stale(conn: Connection, name: str) -> bool:
    row = conn.execute(sa.text(
        "SELECT c.reltuples, coalesce(s.n_mod_since_analyze, 0) FROM pg_class c "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(:name)"
    ), {"name": name}).first()
    conn.rollback()  # the read's implicit transaction: each ANALYZE opens its own
    if row is None:
        return False
    tuples, changed = row
    return tuples < 0 or changed > 50 + STALE_SHARE * tuples  # reltuples -1: never analyzed


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
    by_column = [list(values) for values in zip(*rows)]  # column by column: one processor call per value
    for i, name in enumerate(columns):
        values = by_column[i]
        if name in _TEXTS:
            # sqlite3 keeps a bound str's UTF-8 form inside the str for its lifetime: long texts
            # are bound as copies, so the findings a run returns carry no second, encoded copy
            by_column[i] = [value if value is None else (" " + value)[1:] for value in values]
            continue
        # _cached_bind_processor: the dialect's processor for the column type, as SQLAlchemy applies it
        process = None if name in ready else table.c[name].type._cached_bind_processor(conn.dialect)
        if process is None:
            continue
        first = values[0]
        if values.count(first) == len(values) and all(type(value) is type(first) for value in values):
            by_column[i] = [process(first)] * len(values)  # one value for the whole batch (a day, a clock)
        else:
            by_column[i] = [process(value) for value in values]
    cursor = driver.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})',
                           list(zip(*by_column)))
    finally:
        cursor.close()


_TEXTS = frozenset({"message", "reason"})  # plain text columns that can be long: see bulk_insert


@contextlib.contextmanager
def scratch_schema(database: str, prefix: str = "scratch") -> Iterator[str]:
    """PostgreSQL: the URL of a new, empty schema in ``database`` (reached through the connection's
    search_path); the schema and all in it are dropped afterwards.

    For tests and benchmarks pointed at a shared database (the machine's ``test``, which CI uses
    too): each gets a store of its own, and nothing is left behind in the public schema.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(database)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as its scheme only
        return url.split(":", 1)[0] + ":…"
