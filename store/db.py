"""Opening the store: engines for SQLite and PostgreSQL, migrations, and the schema check.

Every command opens the store through :func:`open_store`. For a command that writes, a brand-new,
empty database is migrated on the spot (creating a store loses nothing); a command that only reads
refuses one (:class:`NoStore`) and creates nothing, not even a SQLite file: an empty database is
most often a mistyped URL, and reporting on it as on an empty store would look real. A store whose
schema is behind the code stops the command with "run budgetwatch db upgrade", because migrating
existing data is an operator's decision.
Also here: the planner's statistics after bulk writes, throwaway PostgreSQL schemas for tests and
benchmarks, and URLs safe to show. The driver-level plumbing of large runs is store/driver.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")


log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be used as it is; the message says what to do."""


class StoreUnreachable(StoreError):
    """A database server that did not answer or refused the connection: it may answer a little later
    (a server starting after this machine's reboot, a failover), which a service retries."""


class NoStore(StoreError):
    """The database holds no budgetwatch store (a SQLite file that does not exist, a PostgreSQL
    database or schema without a table) and the command only reads: it was left as it was."""


# the longest error line said or recorded (a driver's DETAIL may quote a whole row)
ERROR_LINE_LENGTH = 500


def error_line(exc: BaseException) -> str:
    """`exc` as one line for a person, a log or a run's record.

    A database error is said in the driver's own words: "database error: canceling statement due
    to statement timeout" (PostgreSQL's message, not its detail quoting the row or the statement).
    SQLAlchemy's message would add the statement, its parameters and a web link, over several
    lines. Anything else is its type and its message's first line. What was being done comes last,
    from the exception's notes (PEP 678, e.g. a rule's name): "(while reading the rows of
    expense.unit_cost_overrun)". Never raises: it says the errors of every way out."""
    try:
        said = _said(exc)
    except Exception:  # noqa: BLE001 - an exception whose str() fails: its type at least
        said = type(exc).__name__
    said = " ".join(said.split())  # one line, whatever a message or a note holds
    return said if len(said) <= ERROR_LINE_LENGTH else said[:ERROR_LINE_LENGTH - 1] + "…"


def _said(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) if isinstance(exc, sa.exc.DBAPIError) else None
    if orig is not None:
        # psycopg: the server's message alone; not its detail, which may quote the row ("Failing row
        # contains (…)": a password's hash), nor the lines quoting the statement
        primary = getattr(getattr(orig, "diag", None), "message_primary", None)
        if primary:
            words = primary
        else:
            words = "; ".join(line.strip() for line in str(orig).splitlines() if line.strip())
        said = f"database error: {words or type(orig).__name__}"
    else:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        said = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    notes = [str(note) for note in getattr(exc, "__notes__", ())]
    if notes:
        said += f" (while {'; '.join(notes)})"
    return said


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the settings budgetwatch relies on (foreign keys on SQLite, WAL, waits on locks).

    Its errors and its echo never show a statement's parameters (``hide_parameters``): they carry
    portal text and, for the console's users, a password's hash; :func:`error_line` says an error."""
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:" and not Path(database).parent.is_dir():
            # a mistyped path must not become a new, empty store: budgetwatch creates the store's
            # file, never its folders (the embedded default's data_dir is created by the config)
            raise StoreError(f"cannot open the store at {database}: its folder {Path(database).parent} does not "
                             "exist (create it, or correct database.url / BUDGETWATCH_DATABASE_URL)")
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 60}, hide_parameters=True)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = sa.create_engine(url, echo=echo, pool_pre_ping=True, hide_parameters=True)

    @sa.event.listens_for(engine, "connect")
    def _planner_costs(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute(_RANDOM_PAGE_COST_UNLESS_SET, (RANDOM_PAGE_COST,))
        cursor.close()
        dbapi_connection.commit()  # a session setting made in a transaction lasts only if it commits

    return engine


# PostgreSQL's random_page_cost, for the store's sessions, where the server keeps its built-in
# default (4, a page read from a spinning disk at random costing four read in sequence). A store's
# pages are in memory or on SSD: at 4 the planner prefers reading all of project_year (37 ms at
# 100k) to fetching 1,000 changed project years by key (4 ms), in every rule of an incremental run.
# 1.1 is the usual value for SSD; it speeds the full run too (docs/benchmarks.md, session 14). A
# value set on the server, the database or the role (ALTER … SET random_page_cost) is kept.
RANDOM_PAGE_COST = "1.1"
_RANDOM_PAGE_COST_UNLESS_SET = ("SELECT set_config('random_page_cost', %s, false) FROM pg_settings "
                                "WHERE name = 'random_page_cost' AND source = 'default'")


# Alembic is imported only where migrations are applied (`upgrade`, `_alembic_config`): opening a
# store checks its version with one SELECT against the newest migration file's name, and importing
# alembic cost every command 0.14 s of start-up (docs/benchmarks.md, "start-up").
def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


_REVISION_FILE = re.compile(r"^(\d{4})_\w+\.py$")


def head_revision() -> str:
    """The newest migration's revision. Each file of store/migrations/versions is named after its
    revision (``0008_plan_per_project_year.py`` holds revision ``'0008'``, each revising the one
    before), so the newest is the greatest number; tests/test_store.py holds this to alembic's own
    reading of the scripts."""
    numbers = [m.group(1) for f in (MIGRATIONS / "versions").iterdir() if (m := _REVISION_FILE.match(f.name))]
    if not numbers:
        raise StoreError(f"no migration in {MIGRATIONS / 'versions'}")
    return max(numbers)


def current_revision(engine: Engine) -> str | None:
    """The store's schema version as alembic recorded it (None: none recorded)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # by the catalog's index, not the inspector's reflection
            recorded = conn.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relname = 'alembic_version'"
                " AND relnamespace = current_schema()::regnamespace)").scalar()
        else:
            recorded = sa.inspect(conn).has_table("alembic_version")
        if not recorded:
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (budgetwatch db upgrade)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def _is_empty(engine: Engine) -> bool:
    """Whether the store holds no table (a new store, to be created). PostgreSQL: one query of the
    catalog for the tables of the connection's schema, as the inspector's table names would list
    them (plain and partitioned tables), without its reflection queries: 28–33 ms against 2–3 ms on
    the test server's catalog, in every command's start-up and every test's store."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return not conn.exec_driver_sql(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE relnamespace = current_schema()::regnamespace"
                " AND relkind IN ('r', 'p'))").scalar()
        return not sa.inspect(conn).get_table_names()


def check_current(engine: Engine) -> None:
    current = current_revision(engine)
    head = head_revision()
    if current is not None and current > head:  # revisions are numbers of one width ('0010')
        raise StoreError(
            f"the store's schema is at {current}, newer than this budgetwatch knows ({head}): a newer "
            "release wrote it — run that release, or restore the backup taken before its upgrade"
        )
    if current != head:
        raise StoreError(
            f"the store's schema is at {current or 'no version'} but this budgetwatch needs {head}: "
            "run `budgetwatch db upgrade`"
        )


@contextlib.contextmanager
def _creating(engine: Engine) -> Iterator[None]:
    """SQLite: one process at a time creates a new store (a file lock beside it), so that two
    commands started together on a new store do not both run the migrations, the loser meeting
    "database is locked"; the second finds the store made and goes on (to the sync lock, say)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.create-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# SQLite's answers for a file that is not a store: some other file (a text file, say) where
# database.url points, or a store's file that was damaged. They come as sqlite3.DatabaseError, not
# OperationalError; other DatabaseErrors (a constraint, a migration's own) mean something else.
_NOT_A_STORE = ("SQLITE_NOTADB", "SQLITE_CORRUPT")


# libpq's words when the server did not answer or is not ready (psycopg gives no SQLSTATE at connect)
_NO_ANSWER_YET = ("Connection refused", "timeout expired", "Connection timed out", "No route to host",
                  "Network is unreachable", "server closed the connection unexpectedly",
                  "the database system is starting up", "the database system is shutting down",
                  "the database system is in recovery mode", "the database system is not yet accepting connections",
                  "too many clients already", "remaining connection slots are reserved")


def _sqlite_access(url: str) -> str:
    """Why SQLite could not open its file, where this user's rights tell it (SQLite says only "unable
    to open database file": an operator's trial), else nothing: the file, or its folder, in which SQLite
    writes its write-ahead log beside the file."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        return ""
    path = Path(database)
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return f" ({path} may not be read and written by this user)"
    if path.parent.is_dir() and not os.access(path.parent, os.W_OK | os.X_OK):
        return f" (its folder {path.parent} may not be written by this user)"
    return ""


@contextlib.contextmanager
def reaching(url: str) -> Iterator[None]:
    """A store that cannot be reached (no server, no such database, refused) or a SQLite file that
    is not a database, as one StoreError naming it without its password, instead of the driver's
    OperationalError or DatabaseError."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        # a connection's settings the driver refuses before it connects (``?connect_timeout=abc``,
        # an unknown option: psycopg's ProgrammingError, no statement) open no store either
        refused_settings = isinstance(exc, (sa.exc.ProgrammingError, sa.exc.InterfaceError)) and exc.statement is None
        if not (isinstance(exc, sa.exc.OperationalError) or refused_settings
                or getattr(exc.orig, "sqlite_errorname", None) in _NOT_A_STORE):
            raise
        reason = "; ".join(line.strip() for line in str(exc.orig).splitlines() if line.strip())  # one line
        password = sa.engine.make_url(url).password
        if password:  # the driver may quote the settings it refused
            reason = reason.replace(str(password), "***")
        if reason == "file is not a database":
            reason += " (correct database.url or BUDGETWATCH_DATABASE_URL)"
        elif reason == "unable to open database file":
            reason += _sqlite_access(url)
        # a server that did not answer, or is starting or stopping, may answer later; a refusal of the
        # database, the user or the password will not, nor will a SQLite file that cannot be opened
        passing = isinstance(exc, sa.exc.OperationalError) and not url.startswith("sqlite") \
            and any(sign in reason for sign in _NO_ANSWER_YET)
        raise (StoreUnreachable if passing else StoreError)(f"cannot open the store at {safe_url(url)}: {reason}") from None


def open_store(url: str, *, echo: bool = False, create: bool = True) -> Engine:
    """Open the store at ``url``; refuse an out-of-date schema.

    ``create``: an empty database is made a store (the commands that write: sync, reconcile, serve,
    an import…). Without it (the commands that only read: status, export, report…) an empty database
    is refused with :class:`NoStore` and left as it was; a SQLite file that does not exist is not made."""
    engine = make_engine(url, echo=echo)  # connects to nothing yet (a missing folder is said here)
    if not create and missing_file(url):
        raise _no_store(url, "no such file")
    _closed_to_others(engine)
    with reaching(url):
        # asked first without the creating lock: an existing store (and a file that is none, which
        # fails here) leaves no lock file beside it; asked again under the lock, one process creates
        if _is_empty(engine):
            if not create:
                where = _where(engine)
                engine.dispose()
                raise _no_store(url, where)
            with _creating(engine):
                if _is_empty(engine):
                    upgrade(engine)
        check_current(engine)
    return engine


def missing_file(url: str) -> Path | None:
    """SQLite: the store's file when it does not exist (connecting would create it); else None."""
    if not url.startswith("sqlite"):
        return None
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return None if os.path.lexists(database) else Path(database)


def _where(engine: Engine) -> str:
    """What an empty database is, for :class:`NoStore`'s line: its schema on PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return "the file holds no table"
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    return f"no table in schema {schema}" if schema else "its search_path names no schema that exists"


def _no_store(url: str, why: str) -> NoStore:
    return NoStore(f"no budgetwatch store at {safe_url(url)} ({why}); nothing was created there: correct "
                   "database.url or BUDGETWATCH_DATABASE_URL, or make the store first (`budgetwatch db upgrade`, "
                   "or a sync)")


def _closed_to_others(engine: Engine) -> None:
    """SQLite: the store's file, and its -wal and -shm, closed to other users of the machine (they
    hold the console's password hashes): `budgetwatch web` run by hand under umask 022 made them 0644
    (a security review; the service's unit sets UMask=0027). A new store's file is made here, before
    SQLite opens it, without other users' bits, and SQLite gives its -wal and -shm the same mode; an
    older store's files lose those bits when this process may change them."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(OSError):  # made by another, no folder, no right to write there: said on connecting
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o660))
    for path in (database, f"{database}-wal", f"{database}-shm"):
        with contextlib.suppress(OSError):  # absent, or another user's file
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o007:
                os.chmod(path, mode & ~0o007)


# ANALYZE a table when this share of its rows changed since the last one (autovacuum's default)
STALE_SHARE = 0.1
ANALYZE_LOCK_TIMEOUT = "5s"


def checkpoint_wal(engine: Engine) -> None:
    """SQLite: copy the write-ahead log into the store file (PASSIVE: beside readers, never waiting
    for them; what a reader's older snapshot still needs stays in the log for the next checkpoint),
    after a commit that left it to be done here (store.driver.defer_checkpoint). A failure is
    logged, not raised: the commit is done, and the next commit's autocheckpoint does it. Nothing
    elsewhere."""
    if engine.dialect.name != "sqlite":
        return
    try:
        with engine.connect() as conn:
            busy, pages, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        log.debug("write-ahead log checkpointed: %s of %s pages%s", copied, pages, " (readers busy)" if busy else "")
    except sa.exc.SQLAlchemyError as exc:
        log.warning("write-ahead log not checkpointed (the next commit does it): %s",
                    str(getattr(exc, "orig", exc)).splitlines()[0])


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
        flush_stats = (conn.dialect.server_version_info or (0,)) >= (15,)
        try:
            names = {table.name: conn.dialect.identifier_preparer.format_table(table) for table in tables}
            stale = _stale(conn, list(names.values()))  # one catalogue query for all of them
            for table in tables:
                name = names[table.name]
                if name not in stale:
                    continue
                said.clear()
                try:
                    with conn.begin():
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{ANALYZE_LOCK_TIMEOUT}'")
                        conn.exec_driver_sql(f"ANALYZE {name}")
                        if flush_stats:  # the reset of n_mod_since_analyze is otherwise reported
                            # up to seconds later, and a refresh right after would find it stale
                            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
                    if not said:  # "skipping …": not analyzed
                        analyzed.append(table.name)
                except sa.exc.DBAPIError as exc:
                    log.warning("could not ANALYZE %s: %s", table.name, str(exc.orig).strip())
        finally:
            driver.remove_notice_handler(say)
    return analyzed


def _stale(conn: Connection, names: list[str]) -> set[str]:
    """Those of the tables `names` (as ``format_table`` writes them) whose statistics are missing or stale."""
    rows = conn.execute(sa.text(
        "SELECT n.name, c.reltuples, coalesce(s.n_mod_since_analyze, 0), c.relpages, "
        "pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM unnest(CAST(:names AS text[])) AS n(name) JOIN pg_class c ON c.oid = to_regclass(n.name) "
        "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
    ), {"names": names}).all()
    conn.rollback()  # the read's implicit transaction: each ANALYZE opens its own
    # reltuples -1: never analyzed. The pages tell a grown table at once (the counts of changed
    # rows reach the statistics up to seconds after a commit) and where the counts are not kept:
    # a database made from a template starts with none.
    return {name for name, tuples, changed, pages, pages_now in rows
            if tuples < 0 or changed > 50 + STALE_SHARE * tuples or pages_now > 10 + pages * (1 + 2 * STALE_SHARE)}


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
        yield with_options(database, f"-csearch_path={schema}")
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def with_options(url: str, options: str) -> str:
    """A PostgreSQL URL whose connections also get the server `options` (libpq's ``options``:
    ``-cname=value`` settings), after any the URL has already."""
    parsed = sa.engine.make_url(url)
    given = parsed.query.get("options")  # a tuple where the URL repeats the key
    given = " ".join(given) if isinstance(given, tuple) else given
    merged = f"{given} {options}" if given else options
    return parsed.update_query_dict({"options": merged}).render_as_string(hide_password=False)


# what serve adds to its URL (store.service.identified_url): not the operator's, and long in an error line
SESSION_KEYWORDS = ("application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                    "tcp_user_timeout")


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs, without what serve adds to it."""
    try:
        return sa.engine.make_url(url).difference_update_query(SESSION_KEYWORDS).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as its scheme only
        return url.split(":", 1)[0] + ":…"
