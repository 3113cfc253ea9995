"""Shared fixtures: a fresh store on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL.

Each PostgreSQL test gets a schema of its own (search_path), so tests never see each other's rows
and the shared `test` database is left as it was.

A test that asks for `engine` (a migrated store) does not pay for the migrations itself:
- on SQLite it gets a copy of a store file migrated once per test process;
- on PostgreSQL it gets a schema migrated once and emptied after each test that used it
  (`_PgSchemas`): the tables it wrote truncated, the sequences it drew from restarted, the
  tables' statistics and counters deleted, so the next test sees what a new store holds. A
  schema whose shape a test changed is dropped, not reused; so is one that cannot be emptied
  (deleting statistics needs a superuser, as the local `postgres` is). The migrations cost
  ~0.35 s of server DDL per store on an idle machine and ~0.9 s under the suite's load; the
  emptying 0.03–0.22 s (docs/benchmarks.md, "The test suite"). A template database
  (`CREATE DATABASE … TEMPLATE`) was measured too: 45 ms idle, 0.2–0.4 s under load.
The migrations themselves are still tested from empty stores (`store_url` without `engine`,
`pg_store_url`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

# Bytecode is kept for the suite even where PYTHONDONTWRITEBYTECODE is set (as it is on this
# project's machines): each of the three pytest workers otherwise rewrote the asserts of all ~200
# test modules again (~5 s of CPU each, most of a worker's collection), and every command, service
# and worker the tests start compiled the project's modules again. Set before the workers start
# (xdist starts them with this process's environment) and before the project is imported; the files
# go in the __pycache__ folders Python uses by default, which git ignores.
if sys.dont_write_bytecode:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False

from store.db import make_engine, open_store, scratch_schema, with_options  # noqa: E402 - after the switch above

PG_ENV = "TEST_DATABASE_URL"
PG_SKIP_REASON = f"{PG_ENV} is not set: PostgreSQL store tests skipped (CI sets it to the local server)"


def _pg_url() -> str | None:
    """The PostgreSQL the tests use, its commits not waiting for the disk (``synchronous_commit
    off``): a commit is seen by every other connection at once all the same, and only a crash of
    the server itself, which no test makes, could lose the last ones. PostgreSQL-heavy tests ~9 %
    quicker (tests/reconcile, back to back; docs/benchmarks.md, "The test suite")."""
    url = os.environ.get(PG_ENV)
    if not url:
        return None
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return with_options(url, "-csynchronous_commit=off")


class _MigratedTemplates:
    """Stores migrated once per test process, copied for each test that asks for `engine`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._sqlite: Path | None = None

    def sqlite_copy(self, path: Path) -> str:
        if self._sqlite is None:
            template = self.folder / "template.db"
            open_store(f"sqlite:///{template}").dispose()  # the last connection's close folds the WAL in
            self._sqlite = template
        shutil.copyfile(self._sqlite, path)
        return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_MigratedTemplates]:
    yield _MigratedTemplates(tmp_path_factory.mktemp("templates"))


# What makes two schemas the same store: relations, columns, indexes, constraints, the version.
# Nothing that names the schema or an object's oid: every schema of the pool must read the same
# (index definitions name their schema; the foreign keys' internal triggers are named by oid and
# are covered by the constraints).
_SHAPE = """
SELECT md5(string_agg(item, '|' ORDER BY item)) FROM (
  SELECT 'r ' || relname || ' ' || relkind::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'a ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' ' || a.attnotnull::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'i ' || replace(indexdef, ' ' || current_schema() || '.', ' ') FROM pg_indexes
  WHERE schemaname = current_schema()
  UNION ALL
  SELECT 'k ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 't ' || c.relname || ' ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
  UNION ALL
  SELECT 'f ' || proname FROM pg_proc WHERE pronamespace = current_schema()::regnamespace
  UNION ALL
  SELECT 'v ' || version_num FROM alembic_version
) shape(item)
"""

# Back to a new store's state: no rows, sequences restarted, no statistics, no counters. Only the
# tables a test wrote or analyzed are truncated (a truncation makes new files for the table and its
# indexes); the sequences of the others are restarted if a test drew from them.
_EMPTY = """
DO $$
DECLARE
  t record;
  used boolean;
  tables text := '';
BEGIN
  FOR t IN SELECT c.oid, c.relname, c.reltuples FROM pg_class c
           WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
             AND c.relname <> 'alembic_version' LOOP
    EXECUTE 'SELECT EXISTS (SELECT 1 FROM ' || quote_ident(t.relname) || ')' INTO used;
    IF used OR t.reltuples >= 0 THEN
      tables := tables || CASE WHEN tables = '' THEN '' ELSE ', ' END || quote_ident(t.relname);
    END IF;
  END LOOP;
  IF tables <> '' THEN
    EXECUTE 'TRUNCATE ' || tables || ' RESTART IDENTITY CASCADE';
  END IF;
  FOR t IN SELECT s.schemaname, s.sequencename FROM pg_sequences s
           WHERE s.schemaname = current_schema() AND s.last_value IS NOT NULL LOOP
    EXECUTE 'ALTER SEQUENCE ' || quote_ident(t.sequencename) || ' RESTART';
  END LOOP;
END $$;
DELETE FROM pg_statistic WHERE starelid IN
  (SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace);
SELECT pg_stat_reset_single_table_counters(oid) FROM pg_class
WHERE relnamespace = current_schema()::regnamespace;
"""


class _PgSchemas:
    """Migrated PostgreSQL schemas of this test process, emptied after a test and used again.

    A schema goes back only when its shape is the migrated one and it could be emptied within
    the lock timeout (a test's process still holding a table makes it wait); otherwise it is
    dropped and a new one migrated for the next test. Everything is dropped at the session's end.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self._free: list[str] = []
        self._all: list[contextlib.AbstractContextManager[str]] = []
        self._shape: str | None = None
        # one engine a schema, its connection kept between the tests that use the schema: a new
        # connection is a server process started and SQLAlchemy's first-connect queries
        self._admins: dict[str, Engine] = {}

    def take(self) -> str:
        if self._free:
            return self._free.pop()
        schema = scratch_schema(self.database, "bw")
        url = schema.__enter__()
        self._all.append(schema)
        open_store(url).dispose()
        if self._shape is None:
            self._shape = self._read_shape(url)
        return url

    def give_back(self, url: str) -> None:
        if url not in self._admins:
            self._admins[url] = make_engine(url)
        try:
            with self._admins[url].begin() as conn:  # the shape read and the emptying: one transaction
                conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'")  # the shape reads alembic_version too
                reusable = conn.exec_driver_sql(_SHAPE).scalar_one() == self._shape
                if reusable:
                    conn.exec_driver_sql(_EMPTY)
        except sa.exc.DBAPIError:
            reusable = False
        if reusable:
            self._free.append(url)
        else:  # not reused: dropped with the others at the end
            self._admins.pop(url).dispose()

    def _read_shape(self, url: str) -> str:
        eng = make_engine(url)
        try:
            with eng.connect() as conn:
                return conn.exec_driver_sql(_SHAPE).scalar_one()
        finally:
            eng.dispose()

    def close(self) -> None:
        for admin in self._admins.values():
            admin.dispose()
        for schema in self._all:
            schema.__exit__(None, None, None)


# A catalog table of the test database larger than this is compacted before a run (a new database's
# largest, pg_proc, is 1.2 MB; one run of the suite left pg_attribute at 13 MB).
_CATALOG_BYTES = 4 * 2**20


def pytest_sessionstart(session: pytest.Session) -> None:
    """The test database's system catalog compacted before the run (in the controller, before any
    worker starts): every PostgreSQL store the suite makes is a schema created and dropped, and the
    machine's server runs no autovacuum, so each run left ~1 million dead rows in `pg_attribute`,
    `pg_class`, `pg_depend`… that every later run's catalog lookups waded through. In session 41 four
    fresh-clone runs of the same suite took 287, 307, 340 and 339 s; after `VACUUM FULL` of the
    catalog (213 MB of `pg_attribute` to 0.8 MB, 1.3 s), 298 s (docs/benchmarks.md, "The test suite").
    Needs the right to vacuum the catalog (a superuser, as the local `postgres` is); without it the
    run goes on as before."""
    url = _pg_url()
    if url is None or hasattr(session.config, "workerinput"):  # no PostgreSQL, or an xdist worker
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            bloated = conn.execute(sa.text(
                "SELECT relname FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace AND relkind = 'r' "
                "AND pg_total_relation_size(oid) > :size ORDER BY relname"), {"size": _CATALOG_BYTES}).scalars().all()
            if bloated:  # not waiting on anyone else's use of the database: then not compacted
                conn.execute(sa.text("SET lock_timeout = '5s'"))
                conn.execute(sa.text("VACUUM FULL " + ", ".join(f"pg_catalog.{name}" for name in bloated)))
    except sa.exc.DBAPIError:  # not ours to vacuum, or the server away: the tests say so themselves
        pass
    finally:
        engine.dispose()


@pytest.hookimpl(tryfirst=True)  # before pytest's own selection by -m, which then sees the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``slow_on_postgresql`` is ``slow`` in its PostgreSQL variant: the default run
    keeps its SQLite variant, `-m slow` runs the other (README, "Tests")."""
    for item in items:
        spec = getattr(item, "callspec", None)
        if item.get_closest_marker("slow_on_postgresql") and spec and "postgresql" in spec.params.values():
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def _pg_schemas() -> Iterator[_PgSchemas]:
    pool = _PgSchemas(_pg_url() or "")
    yield pool
    pool.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of a store, once per backend: empty; on SQLite already migrated when the test asks
    for `engine` (the same store, copied from a migrated template: see the module docstring)."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        yield request.getfixturevalue("_migrated").sqlite_copy(path) if migrated else f"sqlite:///{path}"
        return
    if not migrated:
        yield from _pg_schema_url()
        return
    if not _pg_url():
        pytest.skip(PG_SKIP_REASON)
    pool = request.getfixturevalue("_pg_schemas")
    url = pool.take()
    yield url
    pool.give_back(url)


def _pg_schema_url() -> Iterator[str]:
    base = _pg_url()
    if not base:
        pytest.skip(PG_SKIP_REASON)
    with scratch_schema(base, "bw") as url:
        yield url


@pytest.fixture
def pg_store_url() -> Iterator[str]:
    """An empty PostgreSQL store only (for tests of PostgreSQL-specific behaviour)."""
    yield from _pg_schema_url()


@pytest.fixture
def other_pg_store_url() -> Iterator[str]:
    """A second empty PostgreSQL store in the same database (another schema)."""
    yield from _pg_schema_url()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """An open, migrated store on each backend."""
    eng = open_store(store_url)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _tests_live_before_their_days(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' calendar is fixed (autumn 1405) and some of their runs are dated in days still to
    come on the machine's clock; a run dated after today would be a what-if (reconcile/engine.py),
    so in-process runs see a "today" far ahead. Mocked because the machine's day is not the tests'
    world; tests/reconcile/test_incremental.py and tests/web/test_visits_and_reconcile.py set it
    back to check the rule itself."""
    monkeypatch.setattr("reconcile.engine._today", lambda: date(2099, 3, 20))
