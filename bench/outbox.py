"""One dispatch's claims over a large outbox (a script, not a test).

    .venv/bin/python bench/outbox.py                                  # SQLite, 1,000 and 5,000 messages
    .venv/bin/python bench/outbox.py --sizes 20000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test

A send after a long outage meets an outbox of many due messages; one dispatch claims them one by one
(store.alerts.claim_next), never the same one twice (``skip``: what it tried). This claims every
message of an outbox of N pending ones as a dispatch does, without sending: each claimed message is
then left as a send leaves it, ``sent`` (the usual case) or ``pending`` and due again (a deferral
whose wait has ended, the case ``skip`` exists for). Printed per size and case: the claims' seconds
and milliseconds a claim, beside a reference of what a claim costs at least — the same transaction
claiming ``WHERE id = (SELECT min(id) …)`` with no list of ids (plain SQLAlchemy Core).

SQLite in a temporary file; on PostgreSQL in a database of its own created beside the URL's and
dropped after (the right to create databases is needed; the machine's server has it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.alerts import AlertOutbox, PENDING, SENT, claim_next  # noqa: E402
from store.db import open_store  # noqa: E402

outbox = AlertOutbox.__table__
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
HELD = timedelta(minutes=7)


@contextlib.contextmanager
def store_at(database: str | None) -> Iterator[str]:
    """A new, empty store's URL: a temporary SQLite file, or a PostgreSQL database of its own."""
    if database is None:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'outbox.db'}"
        return
    url = sa.engine.make_url(database)
    name = f"bw_bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def fill(engine: sa.Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(outbox.delete())
        conn.execute(outbox.insert(), [dict(recipient=f"e{i}@x", expert_name="x", sender="s@x",
                                            message_id=f"<{i}@bench>", subject="s", body_text="", body_html="",
                                            raw="", status=PENDING, created_at=NOW, next_attempt_at=NOW)
                                       for i in range(n)])


def claims(engine: sa.Engine, left_as: str) -> tuple[int, float]:
    """Every message claimed as one dispatch claims them, each then left `left_as`."""
    tried: set[int] = set()
    started = time.perf_counter()
    while True:
        with engine.begin() as conn:
            row = claim_next(conn, "bench:1:a", NOW, NOW - HELD, skip=tried)
            if row is None:
                break
            conn.execute(sa.update(outbox).where(outbox.c.id == row.id).values(claimed_by=None, status=left_as))
        tried.add(row.id)
    return len(tried), time.perf_counter() - started


def reference(engine: sa.Engine) -> tuple[int, float]:
    """The least a claim costs: the oldest pending message claimed and sent, no list of ids."""
    count, started = 0, time.perf_counter()
    while True:
        with engine.begin() as conn:
            oldest = sa.select(sa.func.min(outbox.c.id)).where(outbox.c.status == PENDING).scalar_subquery()
            found = conn.execute(sa.update(outbox).where(outbox.c.id == oldest)
                                 .values(claimed_by="bench:1:a", claimed_at=NOW).returning(outbox.c.id)).scalar()
            if found is None:
                break
            conn.execute(sa.update(outbox).where(outbox.c.id == found).values(claimed_by=None, status=SENT))
        count += 1
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--database", help="a PostgreSQL URL to create the bench's database beside (default: SQLite)")
    args = parser.parse_args()
    with store_at(args.database) as url:
        store = open_store(url)
        engine = store.engine
        for n in args.sizes:
            for case, left_as in (("each sent", SENT), ("each deferred, due again", PENDING)):
                fill(engine, n)
                done, seconds = claims(engine, left_as)
                print(f"{engine.dialect.name:10} {n:>7,} messages, {case:24}: {done:,} claims in {seconds:6.2f} s, "
                      f"{seconds / done * 1000:5.2f} ms a claim")
            fill(engine, n)
            done, seconds = reference(engine)
            print(f"{engine.dialect.name:10} {n:>7,} messages, {'reference (no list)':24}: {done:,} claims in "
                  f"{seconds:6.2f} s, {seconds / done * 1000:5.2f} ms a claim")
        store.dispose()


if __name__ == "__main__":
    main()
