"""The alerts' tables and queries: what each expert was told, and the outbox of digests owed to them.

``alert_told`` keeps, per recipient and deviation, the severity and status that recipient was last
told: a deviation is news for an expert when it is open and they were never told of it, told of a
lower severity, or told it was resolved. ``alert_outbox`` holds each digest fully rendered (subject,
text, HTML and the RFC 5322 message with its ``Message-ID``), recorded in the same transaction as
the ``alert_told`` rows it covers; a resend sends the stored bytes, never a re-rendering.

Dispatchers claim one message at a time: ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, one
atomic ``UPDATE … WHERE claimed_by IS NULL`` on SQLite. A claim is a lease: a dispatcher killed
between sending and marking leaves its claim behind, and once the lease is over the next dispatcher
sends the same stored message again (same ``Message-ID``). A dispatcher names the messages it has
tried already (``claim_next(..., skip=)``): one dispatch claims a message once, however soon its
wait ends.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from foundation.vocabulary import SEVERITIES, SEVERITY_RANK
from store import locks
from store.models import (
    Agency,
    Column,
    County,
    Deviation,
    ExpenseAgreement,
    Operation,
    Project,
    ProjectYear,
    UTCDateTime,
    _when,
    agreement_numbers_in,
)

PENDING, SENT, FAILED = "pending", "sent", "failed"
OUTBOX_STATUSES = (PENDING, SENT, FAILED)


class AlertOutbox(SQLModel, table=True):
    """One digest owed to one expert, rendered once; sent (or given up) later by a dispatcher."""

    __tablename__ = "alert_outbox"
    __table_args__ = (sa.Index("ix_alert_outbox_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    recipient: str = Field(max_length=320, index=True)  # lower-cased address
    expert_name: str
    sender: str = Field(max_length=320)
    message_id: str = Field(max_length=255, unique=True)  # '<…@…>', also inside `raw`
    subject: str
    body_text: str = Field(sa_column=Column(sa.Text, nullable=False))
    body_html: str = Field(sa_column=Column(sa.Text, nullable=False))
    raw: str = Field(sa_column=Column(sa.Text, nullable=False))  # the message as sent, ASCII (MIME-encoded)
    deviations: int = 0  # new or escalated deviations in the digest
    resolved: int = 0  # deviations in its closing "resolved" section
    status: str = Field(default=PENDING, max_length=16)  # pending | sent | failed
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    next_attempt_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    attempts: int = 0
    last_error: str | None = None  # the last failure; for `failed`, the server's answer or why it gave up
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = _when()
    sent_at: datetime | None = _when()
    failed_at: datetime | None = _when()


class AlertTold(SQLModel, table=True):
    """What one recipient was last told of one deviation (the digest that told it: outbox_id)."""

    __tablename__ = "alert_told"

    recipient: str = Field(primary_key=True, max_length=320)
    deviation_id: int = Field(primary_key=True, foreign_key="deviation.id", index=True)
    severity: str = Field(max_length=16)
    status: str = Field(max_length=16)  # open | resolved
    outbox_id: int = Field(foreign_key="alert_outbox.id")
    told_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


outbox = AlertOutbox.__table__
told = AlertTold.__table__
dev = Deviation.__table__


# --- which deviations are news for a recipient ------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The deviations a recipient is responsible for, by agency code.

    ``agencies``: codes routed to the recipient's groups; ``default``: whether the recipient's groups
    include the default group, i.e. every agency not in ``routed`` (and deviations without an agency);
    ``every_critical``: every critical deviation of every agency besides (consolidation).
    """

    agencies: frozenset[str]
    routed: frozenset[str]
    default: bool
    every_critical: bool


def _rank(column: Any) -> Any:
    return sa.case({name: rank for name, rank in SEVERITY_RANK.items()}, value=column, else_=-1)


def _in_scope(scope: Scope) -> Any:
    condition = dev.c.agency_code.in_(sorted(scope.agencies))
    if scope.default:
        condition = sa.or_(condition, dev.c.agency_code.is_(None), dev.c.agency_code.not_in(sorted(scope.routed)))
    if scope.every_critical:
        condition = sa.or_(condition, dev.c.severity == "critical")
    return condition


_SHOWN = (dev.c.id, dev.c.kind, dev.c.rule, dev.c.severity, dev.c.status, dev.c.subject, dev.c.fiscal_year,
          dev.c.quarter, dev.c.planned, dev.c.actual, dev.c.measure, dev.c.message, dev.c.agency_code,
          dev.c.county_id, dev.c.first_found_on, dev.c.resolved_on, dev.c.numbers)


def news_for(conn: Connection, recipient: str, scope: Scope, min_severity: str) -> list[Any]:
    """Open deviations in `scope`, at or above `min_severity`, that `recipient` was not told of at their
    present severity; each row also carries ``told_severity`` and ``told_status`` (None: never told)."""
    wanted = [s for s in SEVERITIES if SEVERITY_RANK[s] >= SEVERITY_RANK[min_severity]]
    joined = dev.outerjoin(told, sa.and_(told.c.deviation_id == dev.c.id, told.c.recipient == recipient))
    query = (sa.select(*_SHOWN, told.c.severity.label("told_severity"), told.c.status.label("told_status"))
             .select_from(joined)
             .where(dev.c.status == "open", dev.c.severity.in_(wanted), _in_scope(scope),
                    sa.or_(told.c.deviation_id.is_(None), told.c.status != "open",
                           _rank(dev.c.severity) > _rank(told.c.severity))))
    return conn.execute(query).all()


def told_before(conn: Connection, recipient: str) -> bool:
    """Whether `recipient` was ever told of a deviation (their first digest speaks of no earlier one)."""
    return conn.execute(sa.select(sa.exists().where(told.c.recipient == recipient))).scalar_one()


def resolved_for(conn: Connection, recipient: str) -> list[Any]:
    """Deviations `recipient` was told of as open that are resolved now."""
    query = (sa.select(*_SHOWN, told.c.severity.label("told_severity"), told.c.status.label("told_status"))
             .select_from(dev.join(told, told.c.deviation_id == dev.c.id))
             .where(told.c.recipient == recipient, told.c.status == "open", dev.c.status == "resolved"))
    return conn.execute(query).all()


@dataclass(frozen=True)
class Names:
    """What people call the agencies, counties and subjects of some deviations."""

    agencies: dict[str, str]
    counties: dict[int, str]
    titles: dict[tuple[str, str, int], str]  # (kind, subject, fiscal year) -> title as the portal wrote it


def names_of(conn: Connection, rows: Sequence[Any]) -> Names:
    """Agency and county names and subject titles for `rows` (deviation rows with their identity)."""
    agency_codes = sorted({r.agency_code for r in rows if r.agency_code})
    county_ids = sorted({r.county_id for r in rows if r.county_id is not None})
    agencies, counties = Agency.__table__, County.__table__
    agency_names = dict(conn.execute(sa.select(agencies.c.code, agencies.c.name)
                                     .where(agencies.c.code.in_(agency_codes))).all()) if agency_codes else {}
    county_names = dict(conn.execute(sa.select(counties.c.id, counties.c.name)
                                     .where(counties.c.id.in_(county_ids))).all()) if county_ids else {}
    titles: dict[tuple[str, str, int], str] = {}
    codes = sorted({r.subject for r in rows if r.kind == "capital"})
    if codes:
        py, project = ProjectYear.__table__, Project.__table__
        for code, year, title in conn.execute(
                sa.select(project.c.code, py.c.fiscal_year, py.c.title)
                .select_from(py.join(project, project.c.id == py.c.project_id)).where(project.c.code.in_(codes))):
            titles[("capital", code, year)] = title
    # every number an expense subject may name (an agreement number may hold '/'): those stored answer
    numbers = sorted({number for r in rows if r.kind == "expense" for number in agreement_numbers_in(r.subject)})
    if numbers:
        agreement, operation = ExpenseAgreement.__table__, Operation.__table__
        for number, year, title in conn.execute(
                sa.select(agreement.c.agreement_no, agreement.c.fiscal_year, agreement.c.program_title)
                .where(agreement.c.agreement_no.in_(numbers))):
            titles[("expense", number, year)] = title or ""
        operations = sorted({r.subject for r in rows if r.kind == "expense" and "/" in r.subject})
        if operations:
            for number, year, code, title in conn.execute(
                    sa.select(agreement.c.agreement_no, agreement.c.fiscal_year, operation.c.code, operation.c.title)
                    .select_from(operation.join(agreement, agreement.c.id == operation.c.agreement_id))
                    .where(agreement.c.agreement_no.in_(numbers))):
                program = titles.get(("expense", number, year), "")
                titles[("expense", f"{number}/{code}", year)] = " — ".join(t for t in (program, title) if t)
    return Names(agency_names, county_names, titles)


# --- recording a digest -----------------------------------------------------------------------


def lock_for_queuing(conn: Connection) -> None:
    """Call first in a queuing transaction: one queuer at a time, so two never tell one expert twice.

    SQLite: BEGIN IMMEDIATE takes the write lock before the first read (a deferred transaction would
    read, then fail to write once another queuer committed); PostgreSQL: an advisory lock."""
    locks.one_writer_at_a_time(conn, "alerts:queue")


def record_digest(conn: Connection, message: dict[str, Any], told_now: Iterable[tuple[int, str, str]]) -> int:
    """Insert the outbox row `message` and record (deviation id, severity, status) as told to its
    recipient, in `conn`'s transaction. Returns the outbox id."""
    outbox_id = conn.execute(sa.insert(outbox).values(**message).returning(outbox.c.id)).scalar_one()
    rows = [{"recipient": message["recipient"], "deviation_id": deviation_id, "severity": severity,
             "status": status, "outbox_id": outbox_id, "told_at": message["created_at"]}
            for deviation_id, severity, status in told_now]
    if rows:
        insert = (postgresql.insert(told) if conn.dialect.name == "postgresql" else sqlite.insert(told))
        conn.execute(insert.on_conflict_do_update(
            index_elements=[told.c.recipient, told.c.deviation_id],
            set_={name: insert.excluded[name] for name in ("severity", "status", "outbox_id", "told_at")}), rows)
    return outbox_id


# --- dispatching ------------------------------------------------------------------------------


def _claimable(now: datetime, stale_before: datetime) -> Any:
    return sa.and_(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now,
                   sa.or_(outbox.c.claimed_by.is_(None), outbox.c.claimed_at < stale_before))


def claim_next(conn: Connection, worker: str, now: datetime, stale_before: datetime,
               skip: Collection[int] = (), last: int | None = None) -> Any | None:
    """Claim the oldest due pending message for `worker` and return its row, or None.

    ``skip``: the ids of messages the calling dispatch has tried already, never claimed again by it.
    A message it deferred is due again once its wait (its backoff) ends — 20 s after a third try by
    default — and a pass over a large outbox, or a slow server, takes longer: without ``skip`` one
    dispatch came back to it, tried it 2 × attempts_per_run times and gave it up as if refused in two
    sends (a kill/fault trial), or never ended while its messages were younger than give_up_after.
    A pass claims in the order of ids, so the messages after the last one tried are looked for first,
    with no list in the statement; only when none is due are the earlier ones not tried looked for
    (one became due meanwhile), the tried ids then written into the statement. Each claim of a pass
    over 20,000 messages rendered them all (23 ms a claim, a review). ``last``: the largest id of
    ``skip``, if the caller keeps it (else it is looked for in ``skip``, a pass over it a claim).

    Commit right after: the claim must be visible to other dispatchers before sending begins."""
    claimable = _claimable(now, stale_before)
    if not skip:
        return _claim(conn, worker, now, claimable)
    last = max(skip) if last is None else last
    found = _claim(conn, worker, now, sa.and_(claimable, outbox.c.id > last))
    if found is not None:
        return found
    # the ids written into the statement (they are the store's integers): an outbox grown over a
    # long outage must not meet a driver's limit on bound parameters
    tried = sa.bindparam("tried", sorted(skip), expanding=True, literal_execute=True)
    return _claim(conn, worker, now, sa.and_(claimable, outbox.c.id < last, outbox.c.id.not_in(tried)))


def _claim(conn: Connection, worker: str, now: datetime, claimable: Any) -> Any | None:
    """The oldest message `claimable` selects, claimed for `worker`: its row, or None."""
    if conn.dialect.name == "postgresql":
        found = conn.execute(sa.select(outbox.c.id).where(claimable)
                             .order_by(outbox.c.id).limit(1).with_for_update(skip_locked=True)).scalar()
        if found is None:
            return None
        conn.execute(sa.update(outbox).where(outbox.c.id == found).values(claimed_by=worker, claimed_at=now))
    else:
        # one statement: SQLite runs it under its write lock, so two dispatchers never claim one row
        oldest = sa.select(outbox.c.id).where(claimable).order_by(outbox.c.id).limit(1)
        result = conn.execute(sa.update(outbox).where(outbox.c.id == oldest.scalar_subquery(), claimable)
                              .values(claimed_by=worker, claimed_at=now).returning(outbox.c.id))
        found = result.scalar()
        if found is None:
            return None
    return conn.execute(sa.select(outbox).where(outbox.c.id == found)).one()


def _mine(outbox_id: int, worker: str) -> Any:
    return sa.and_(outbox.c.id == outbox_id, outbox.c.claimed_by == worker)


def mark_sent(conn: Connection, outbox_id: int, worker: str, now: datetime, attempts: int) -> bool:
    result = conn.execute(sa.update(outbox).where(_mine(outbox_id, worker)).values(
        status=SENT, sent_at=now, attempts=attempts, claimed_by=None, claimed_at=None))
    return result.rowcount == 1


def mark_deferred(conn: Connection, outbox_id: int, worker: str, *, attempts: int, error: str,
                  next_attempt_at: datetime) -> None:
    conn.execute(sa.update(outbox).where(_mine(outbox_id, worker)).values(
        attempts=attempts, last_error=error, next_attempt_at=next_attempt_at, claimed_by=None, claimed_at=None))


def mark_failed(conn: Connection, outbox_id: int, worker: str, *, attempts: int, error: str, now: datetime) -> None:
    conn.execute(sa.update(outbox).where(_mine(outbox_id, worker)).values(
        status=FAILED, attempts=attempts, last_error=error, failed_at=now, claimed_by=None, claimed_at=None))


def requeue_failed(conn: Connection, outbox_id: int, now: datetime) -> bool:
    """A failed message back to pending, due now, its give-up clock restarted (created_at = now);
    the stored bytes and Message-ID stay. False when `outbox_id` is not a failed message."""
    result = conn.execute(sa.update(outbox).where(outbox.c.id == outbox_id, outbox.c.status == FAILED).values(
        status=PENDING, next_attempt_at=now, created_at=now, attempts=0, failed_at=None))
    return result.rowcount == 1


def make_due(conn: Connection, outbox_id: int, now: datetime, stale_before: datetime) -> bool:
    """A pending message no live dispatcher holds (none, or its claim older than `stale_before`): due
    now, its tries and give-up clock restarted and a stale claim cleared, as :func:`requeue_failed`
    does for a failed one. False when `outbox_id` is no such message."""
    unclaimed = sa.or_(outbox.c.claimed_by.is_(None), outbox.c.claimed_at < stale_before)
    waiting = sa.and_(outbox.c.id == outbox_id, outbox.c.status == PENDING, unclaimed)
    result = conn.execute(sa.update(outbox).where(waiting).values(
        next_attempt_at=now, created_at=now, attempts=0, claimed_by=None, claimed_at=None))
    return result.rowcount == 1


def status_of(conn: Connection, outbox_id: int) -> str | None:
    """A message's status (pending | sent | failed), None for an unknown id."""
    return conn.execute(sa.select(outbox.c.status).where(outbox.c.id == outbox_id)).scalar()


# --- reading the outbox -----------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxSummary:
    pending: int
    failed: int
    oldest_pending_at: datetime | None
    last_sent_at: datetime | None


def outbox_summary(conn: Connection) -> OutboxSummary:
    """How the outbox stands: messages owed, messages given up, the oldest owed, the last sent."""
    counts = dict(conn.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)).all())
    oldest = conn.execute(sa.select(sa.func.min(outbox.c.created_at)).where(outbox.c.status == PENDING)).scalar()
    last = conn.execute(sa.select(sa.func.max(outbox.c.sent_at))).scalar()
    # aggregates bypass the column type: bring them back to aware UTC like every stored datetime
    kind = UTCDateTime()
    return OutboxSummary(counts.get(PENDING, 0), counts.get(FAILED, 0),
                         kind.process_result_value(_as_datetime(oldest), conn.dialect),
                         kind.process_result_value(_as_datetime(last), conn.dialect))


def held_count(conn: Connection) -> int:
    """Pending messages a dispatcher holds (claimed, maybe by one that died: the claim is a lease)."""
    return conn.execute(sa.select(sa.func.count()).select_from(outbox).where(
        outbox.c.status == PENDING, outbox.c.claimed_by.is_not(None))).scalar_one()


def _as_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))  # SQLite returns an aggregate of a DATETIME as text


def list_outbox(conn: Connection, status: str | None = None, limit: int = 200) -> list[Any]:
    """Outbox rows, newest first, without their bodies."""
    columns = [c for c in outbox.c if c.name not in ("body_text", "body_html", "raw")]
    query = sa.select(*columns).order_by(outbox.c.id.desc()).limit(limit)
    if status:
        query = query.where(outbox.c.status == status)
    return conn.execute(query).all()


def pending_messages(conn: Connection) -> list[Any]:
    """Every pending message with its stored bytes, oldest first (for a dry run)."""
    return conn.execute(sa.select(outbox).where(outbox.c.status == PENDING).order_by(outbox.c.id)).all()
