"""Shared fixtures: a fresh store on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL.

Each PostgreSQL test gets a schema of its own (search_path), so tests never see each other's rows
and the shared `test` database is left as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The URL of an empty store, once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
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
