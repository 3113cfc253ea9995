"""store.driver.stream_rows: rows streamed as SQLAlchemy would give them, on both databases.

On PostgreSQL the rows come from psycopg's own streaming when no column needs SQLAlchemy's reading;
the values must be the same as SQLAlchemy's, and a reader that stops early must leave the
connection's transaction usable (psycopg would cancel the query, which aborts the transaction).
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.driver import stream_rows
from store.models import Deviation

dev = Deviation.__table__
NOW = datetime(2026, 12, 4, 8, 30, tzinfo=timezone.utc)


def _fill(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(dev), [
            {"kind": "capital", "rule": "progress_lag", "subject": f"{1300000000 + i}-001", "fiscal_year": 1405,
             "quarter": 1 + i % 4, "status": "open" if i % 3 else "acknowledged", "alert_state": "new",
             "severity": "minor", "planned": Decimal("33.99994") + i, "actual": None if i % 5 == 0 else Decimal(i),
             "measure": Decimal("0.0001"), "message": f"پیام «{i}»", "first_found_on": date(2026, 12, 1),
             "last_found_on": date(2026, 12, 4), "updated_at": NOW, "fingerprint": "f" * 32}
            for i in range(n)])


def test_streamed_rows_are_sqlalchemys_rows(engine: Engine) -> None:
    _fill(engine, 2500)  # more than one batch
    query = (sa.select(dev.c.id, dev.c.subject, dev.c.quarter, dev.c.planned, dev.c.actual, dev.c.message,
                       dev.c.first_found_on, dev.c.status.label("state"))
             .where(dev.c.status.in_(["open", "acknowledged"])).order_by(dev.c.subject.desc()))
    with engine.connect() as conn:
        expected = [tuple(row) for row in conn.execute(query)]
        streamed = stream_rows(conn, query, batch=1000)
        assert streamed.keys() == ("id", "subject", "quarter", "planned", "actual", "message", "first_found_on",
                                   "state")
        rows = list(streamed)
    assert [tuple(row) for row in rows] == expected
    assert len(rows) == 2500
    first = rows[0]
    assert (first.subject, first.state) == (expected[0][1], expected[0][7])  # by name as well as by position
    assert isinstance(first.planned, Decimal) and first.planned == Decimal("33.99994") + 2499


def test_a_reader_that_stops_early_leaves_the_transaction_usable(engine: Engine) -> None:
    _fill(engine, 3000)
    with engine.connect() as conn:
        with conn.begin():
            other = dev.alias("other")  # 300,000 rows: the server is still sending when the reader stops
            streamed = stream_rows(conn, sa.select(dev.c.id, other.c.planned).join(other, other.c.id <= 100))
            for number, _row in enumerate(streamed):
                if number == 10:
                    break
            del streamed, _row  # the reader is gone: the rest of the stream is drained
            conn.execute(sa.update(dev).where(dev.c.id == 1).values(status="dismissed"))
        assert conn.execute(sa.select(dev.c.status).where(dev.c.id == 1)).scalar_one() == "dismissed"


def test_columns_that_need_reading_go_through_sqlalchemy(engine: Engine) -> None:
    _fill(engine, 3)
    with engine.connect() as conn:
        rows = list(stream_rows(conn, sa.select(dev.c.id, dev.c.updated_at).order_by(dev.c.id)))
    assert [row.updated_at for row in rows] == [NOW] * 3  # aware UTC, as the column type reads it


def test_closing_a_stream_a_failed_reader_kept_frees_the_connection(engine: Engine) -> None:
    """A reader that failed half-way may still hold the stream (a traceback keeps it alive): closing
    it must free the connection (on PostgreSQL an open stream holds it, and a rollback would wait
    forever; the suite's timeout catches that)."""
    _fill(engine, 3000)
    other = dev.alias("other")
    with engine.connect() as conn:
        streamed = stream_rows(conn, sa.select(dev.c.id, other.c.planned).join(other, other.c.id <= 100))
        kept = iter(streamed)
        next(kept)
        streamed.close()
        assert conn.execute(sa.select(sa.func.count()).select_from(dev)).scalar_one() == 3000
        conn.rollback()
