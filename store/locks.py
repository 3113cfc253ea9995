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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine


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
