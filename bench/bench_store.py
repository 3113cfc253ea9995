"""A PostgreSQL store for one benchmark: a schema of its own, dropped afterwards.

The benchmarks are pointed at a shared database (the machine's ``test``, which the test suite and
CI use too): a store written into its public schema would stay there, and a second run would
find the first one's rows. Each run gets ``bench_<random>`` instead, through the connection's
search_path, the way the tests isolate theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from store.db import make_engine


@contextmanager
def pg_schema(database: str) -> Iterator[str]:
    """Yield the URL of an empty schema in ``database``; drop the schema and all in it after."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(database)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database}{'&' if '?' in database else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
