"""Opening the store: engines for SQLite and PostgreSQL, migrations, and the schema check.

Every command opens the store through :func:`open_store`. A brand-new, empty database is migrated
on the spot (creating a store loses nothing); a store whose schema is behind the code stops the
command with "run budgetwatch db upgrade", because migrating existing data is an operator's decision.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")


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


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as its scheme only
        return url.split(":", 1)[0] + ":…"
