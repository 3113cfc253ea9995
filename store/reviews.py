"""The consolidation group's sign-off of monitoring periods (بررسی نهایی گروه تلفیق): table and queries.

One row per approved period (fiscal year and quarter): who approved it, when, their note, the day
the frozen report was judged as of, where its archive lies and the SHA-256 digest of the archive's
manifest. A period is approved once; the unique key makes a second approval fail in the database
even when two people press at the same moment. The archive itself is written by reports/archive.py.

The row is inserted first, as the period's claim (:func:`claim`), and committed once the archive is
in place: a second approval of the period waits on it, but not for ever. PostgreSQL: up to
:data:`CLAIM_WAIT_SECONDS`, a lock timeout of the claim's transaction alone (the first approval
holds the claim only while it writes its files, well under a second: a longer wait is a session
frozen mid-approval, a stopped backend or a hung client, which would otherwise hold the second one
for good). SQLite: the store's busy timeout (60 s, store/db.py), as every writer waits there: its
write lock is the whole store's, held for a whole run by a recording reconciliation. Either way
:class:`ClaimWaitedFor`, nothing recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from store.db import StoreError
from store.models import Column, UTCDateTime

# PostgreSQL: how long an approval waits for another approval of the same period to commit or roll back
CLAIM_WAIT_SECONDS = 10.0


class ReviewSignoff(SQLModel, table=True):
    """An approved monitoring period: frozen, its archive never rewritten."""

    __tablename__ = "review_signoff"
    __table_args__ = (sa.UniqueConstraint("fiscal_year", "quarter"),)

    id: int | None = Field(default=None, primary_key=True)
    fiscal_year: int
    quarter: int  # 1..4
    approved_by: str
    approved_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    note: str | None = None
    as_of: date  # the day the archived report was judged as of
    archive_path: str  # the archive folder, as written on the machine that approved
    manifest_sha256: str = Field(max_length=64)


signoffs = ReviewSignoff.__table__


@dataclass(frozen=True)
class Signoff:
    fiscal_year: int
    quarter: int
    approved_by: str
    approved_at: datetime
    note: str | None
    as_of: date
    archive_path: str
    manifest_sha256: str


def _signoff(row: sa.Row) -> Signoff:
    return Signoff(row.fiscal_year, row.quarter, row.approved_by, row.approved_at, row.note, row.as_of,
                   row.archive_path, row.manifest_sha256)


def signoff(conn: Connection, fiscal_year: int, quarter: int) -> Signoff | None:
    """The sign-off of one period, or None while it is open."""
    row = conn.execute(sa.select(signoffs).where(signoffs.c.fiscal_year == fiscal_year,
                                                 signoffs.c.quarter == quarter)).first()
    return _signoff(row) if row is not None else None


def all_signoffs(conn: Connection) -> list[Signoff]:
    rows = conn.execute(sa.select(signoffs).order_by(signoffs.c.fiscal_year, signoffs.c.quarter)).all()
    return [_signoff(row) for row in rows]


def record_signoff(conn: Connection, entry: Signoff) -> None:
    """Insert the sign-off; an already approved period raises sqlalchemy's IntegrityError."""
    conn.execute(sa.insert(signoffs).values(
        fiscal_year=entry.fiscal_year, quarter=entry.quarter, approved_by=entry.approved_by,
        approved_at=entry.approved_at, note=entry.note, as_of=entry.as_of, archive_path=entry.archive_path,
        manifest_sha256=entry.manifest_sha256))


class ClaimWaitedFor(StoreError):
    """Another transaction held the period's claim (PostgreSQL; SQLite: the store's write lock) longer
    than an approval waits; ``seconds``: how long it waited. Nothing was recorded."""

    exit_code = 1

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


def claim(conn: Connection, entry: Signoff) -> None:
    """Insert the sign-off as its period's claim (:func:`record_signoff`), waiting for another
    transaction that holds it at most :data:`CLAIM_WAIT_SECONDS` on PostgreSQL, the store's busy
    timeout on SQLite: then :class:`ClaimWaitedFor`, the transaction to be rolled back. An approved
    period raises sqlalchemy's IntegrityError, as before."""
    postgresql = conn.dialect.name == "postgresql"
    if postgresql:
        within = CLAIM_WAIT_SECONDS
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{max(int(within * 1000), 1)}ms'")  # this transaction only
    else:
        within = conn.exec_driver_sql("PRAGMA busy_timeout").scalar() / 1000
    try:
        record_signoff(conn, entry)
    except sa.exc.OperationalError as exc:
        waited = (getattr(exc.orig, "sqlstate", None) == "55P03" if postgresql  # lock_not_available
                  else (getattr(exc.orig, "sqlite_errorname", None) or "").startswith("SQLITE_BUSY"))
        if not waited:
            raise
        raise ClaimWaitedFor(f"the claim of {entry.fiscal_year} Q{entry.quarter} was held by another transaction "
                             f"for over {within:g} s", within) from None
