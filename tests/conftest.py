"""Shared fixtures: a fresh store on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL.

Each PostgreSQL test gets a schema of its own (search_path), so tests never see each other's rows
and the shared `test` database is left as it was.

On SQLite a test that asks for `engine` (a migrated store) gets a copy of a store file migrated
once per test process (~0.1 s of migrations saved in each of ~150 tests). On PostgreSQL each
still runs the migrations in its own schema: copying a template database (`CREATE DATABASE …
TEMPLATE`) measured 45 ms on an idle machine but 0.2–0.4 s under the suite's load, no better than
the ~0.35 s of migrations, and reusing one schema would carry statistics and schema changes from
test to test. The migrations themselves are also tested from empty stores (`store_url` without
`engine`, `pg_store_url`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from store.db import open_store, scratch_schema

PG_ENV = "TEST_DATABASE_URL"
PG_SKIP_REASON = f"{PG_ENV} is not set: PostgreSQL store tests skipped (CI sets it to the local server)"


def _pg_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if url and url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of a store, once per backend: empty; on SQLite already migrated when the test asks
    for `engine` (the same store, copied from a migrated template: see the module docstring)."""
    migrated = "engine" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        yield request.getfixturevalue("_migrated").sqlite_copy(path) if migrated else f"sqlite:///{path}"
        return
    yield from _pg_schema_url()


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
