"""A deviation's life in the store: what a run's findings do to the deviations already there.

Identity is (kind, rule, subject, fiscal year, quarter; 0 = no quarter). Within one transaction a
run feeds its findings chunk by chunk to :class:`Life`, then calls :meth:`Life.finish`
(reconciliation-rules.md, "A deviation's identity and life"):

==========================  =========================================================================
found, no deviation yet     inserted **open**, alert_state ``new`` — event ``opened``
found, open/acknowledged    higher severity: **open**, alert_state ``escalated`` (``new`` while the
                            first alert is still owed) — event ``escalated``; lower severity: severity
                            lowered quietly (no alert) — event ``lowered``; same severity but other
                            figures, message or evidence: updated — event ``updated``; nothing
                            different: only ``last_found_on`` moves forward (no event, no updated_at)
found, resolved             **open** again, alert_state ``new`` — event ``reopened``
found, dismissed            nothing changes, ever
not found, open/acked       **resolved** with resolved_on = the as-of day, alert_state ``none`` —
                            event ``resolved`` (reason ``not found``, or ``gone`` when the portal no
                            longer lists the subject); only for the years and rules the run judged
==========================  =========================================================================

Memory stays bounded: only a small index of the existing deviations (identity, id, status,
severity, fingerprint) is held for the run. Whether a deviation's figures, sentence or evidence
changed is told by its fingerprint (Finding.fingerprint), never by reading the figures back.
Acknowledging and dismissing are a person's acts (reconcile/deviations.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.findings import SEVERITY_RANK, Finding
from store import locks
from store.driver import bulk_insert, day_reader, driver_rows
from store.models import Deviation, DeviationEvent

dev = Deviation.__table__
event_table = DeviationEvent.__table__

ACTIVE = ("open", "acknowledged")
_BATCH = 2000
_IDENTITY = (dev.c.kind, dev.c.rule, dev.c.subject, dev.c.fiscal_year, dev.c.quarter)


@dataclass
class LifeCounts:
    opened: int = 0
    reopened: int = 0
    escalated: int = 0
    lowered: int = 0
    updated: int = 0
    unchanged: int = 0
    resolved: int = 0
    dismissed_found: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Known(NamedTuple):
    """What the run keeps of an existing deviation: enough to decide, not its figures."""

    id: int
    status: str
    severity: str
    alert_state: str
    last_found_on: date | None
    fingerprint: str | None


def _content(f: Finding, fingerprint: str) -> dict[str, Any]:
    return {
        "severity": f.severity, "planned": f.planned, "actual": f.actual, "measure": f.measure,
        "numbers": f.numbers, "message": f.message, "agency_code": f.agency_code, "county_id": f.county_id,
        "sync_run_id": f.sync_run_id, "evidence_table": f.evidence_table, "evidence_id": f.evidence_id,
        "fingerprint": fingerprint,
    }


def _batches(items: list, size: int = _BATCH) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Life:
    """Applies one run's findings to the deviations of the years it judged, in one transaction."""

    def __init__(self, conn: Connection, *, run_id: int, as_of: date, years: Iterable[int],
                 rules: set[tuple[str, str]], gone: set[tuple[str, int]], now: datetime) -> None:
        self.conn, self.run_id, self.as_of, self.now = conn, run_id, as_of, now
        self.rules, self.gone = rules, gone
        self.years = sorted(set(years))
        self.counts = LifeCounts()
        self.deviations: dict[tuple, tuple[int, str]] = {}  # identity -> (id, status after the run)
        locks.hold_for_transaction(conn, "reconcile")  # one reconciliation writes deviations at a time
        self.known: dict[tuple, Known] = {}
        if self.years:
            day = day_reader(conn)
            for *key, dev_id, status, severity, alert_state, last_found_on, fingerprint in driver_rows(conn, (
                    sa.select(*_IDENTITY, dev.c.id, dev.c.status, dev.c.severity, dev.c.alert_state,
                              dev.c.last_found_on, dev.c.fingerprint).where(dev.c.fiscal_year.in_(self.years)))):
                self.known[tuple(key)] = Known(dev_id, status, severity, alert_state, day(last_found_on), fingerprint)

    def apply(self, findings: list[Finding], digests: list[tuple[str, str]] | None = None) -> None:
        """One chunk of findings: insert what is new, update what changed, remember what was seen.

        ``digests`` are the findings' own (Finding.digests), when a worker process made them already.
        """
        conn, run_id, as_of, now = self.conn, self.run_id, self.as_of, self.now
        if digests is None:
            digests = [f.digests() for f in findings]
        new: list[tuple[Finding, str, str]] = []
        updates: list[dict[str, Any]] = []
        events: list[tuple] = []
        still_there: list[int] = []
        for f, (fingerprint, numbers) in zip(findings, digests):
            key = (f.kind, f.rule, f.subject, f.fiscal_year, f.quarter or 0)  # Finding.key, inlined: hot
            if key in self.deviations:  # one identity reported twice in a run: the first stands
                continue
            known = self.known.pop(key, None)  # what is left in `known` at the end was not found
            if known is None:
                new.append((f, fingerprint, numbers))
                self.deviations[key] = (0, "open")  # its id is drawn in _insert
                continue
            self.deviations[key] = (known.id, known.status)
            if known.status == "dismissed":
                self.counts.dismissed_found += 1
                continue
            status, alert_state, event = known.status, known.alert_state, None
            if known.status == "resolved":
                status, alert_state, event = "open", "new", "reopened"
            elif SEVERITY_RANK[f.severity] > SEVERITY_RANK[known.severity]:
                status, event = "open", "escalated"
                alert_state = "new" if known.status == "open" and known.alert_state == "new" else "escalated"
            elif SEVERITY_RANK[f.severity] < SEVERITY_RANK[known.severity]:
                event = "lowered"
            elif fingerprint != known.fingerprint:
                event = "updated"
            if event is None:
                self.counts.unchanged += 1
                if known.last_found_on is None or known.last_found_on < as_of:
                    still_there.append(known.id)
                continue
            self.deviations[key] = (known.id, status)
            setattr(self.counts, event, getattr(self.counts, event) + 1)
            updates.append({
                "b_id": known.id, "status": status, "alert_state": alert_state, "resolved_on": None,
                "last_found_on": max(as_of, known.last_found_on or as_of), "reconcile_run_id": run_id,
                "updated_at": now, **_content(f, fingerprint),
            })
            events.append(self._event(known.id, event, f.severity))
        events.extend(self._insert(new))
        self._update(updates)
        for part in _batches(still_there):
            conn.execute(sa.update(dev).where(dev.c.id.in_(part)).values(last_found_on=as_of))
        self._events(events)

    def finish(self) -> LifeCounts:
        """Resolve what this run's years and rules no longer find."""
        updates, events = [], []
        for key, known in self.known.items():
            if known.status not in ACTIVE or key[:2] not in self.rules:
                continue
            self.counts.resolved += 1
            reason = "gone" if (key[2], key[3]) in self.gone else "not found"
            updates.append({"b_id": known.id, "status": "resolved", "alert_state": "none", "resolved_on": self.as_of,
                            "reconcile_run_id": self.run_id, "updated_at": self.now})
            events.append(self._event(known.id, "resolved", known.severity, reason))
        self._update(updates)
        self._events(events)
        return self.counts

    # --- store access -------------------------------------------------------------------------

    def _event(self, deviation_id: int, event: str, severity: str, reason: str | None = None) -> tuple:
        return (deviation_id, event, severity, self.now, self.run_id, None, reason)  # _EVENT_COLUMNS

    def _insert(self, new: list[tuple[Finding, str, str]]) -> list[tuple]:
        """Insert new deviations (finding, fingerprint, numbers as JSON text) with ids drawn beforehand
        (no read-back); return their events."""
        if not new:
            return []
        self.counts.opened += len(new)
        run_id, day, now = self.run_id, self.as_of, self.now
        rows, events = [], []
        for new_id, (f, fingerprint, numbers) in zip(self._new_ids(len(new)), new):
            quarter = f.quarter or 0
            self.deviations[(f.kind, f.rule, f.subject, f.fiscal_year, quarter)] = (new_id, "open")
            rows.append((new_id, f.kind, f.rule, f.subject, f.fiscal_year, quarter, "open", "new", day, day,
                         run_id, now, f.severity, f.planned, f.actual, f.measure, numbers, f.message,
                         f.agency_code, f.county_id, f.sync_run_id, f.evidence_table, f.evidence_id, fingerprint))
            events.append(self._event(new_id, "opened", f.severity))
        bulk_insert(self.conn, dev, _NEW_COLUMNS, rows, ready=frozenset({"numbers"}))
        return events

    def _new_ids(self, count: int) -> list[int]:
        """`count` fresh deviation ids: from the id sequence on PostgreSQL; after the largest id on
        SQLite, where this transaction is the only writer once it has written (a concurrent writer
        would make the insert fail on the primary key, never mix rows up)."""
        if self.conn.dialect.name == "postgresql":
            return list(self.conn.execute(
                sa.text("SELECT nextval(pg_get_serial_sequence('deviation', 'id')) FROM generate_series(1, :n)"),
                {"n": count}).scalars())
        start = (self.conn.execute(sa.select(sa.func.max(dev.c.id))).scalar() or 0) + 1
        return list(range(start, start + count))

    def _update(self, rows: list[dict[str, Any]]) -> None:
        statement = sa.update(dev).where(dev.c.id == sa.bindparam("b_id"))
        for part in _batches(rows):
            self.conn.execute(statement, part)

    def _events(self, rows: list[tuple]) -> None:
        bulk_insert(self.conn, event_table, _EVENT_COLUMNS, rows)


# the rows Life inserts, as tuples in these orders
_NEW_COLUMNS = ("id", "kind", "rule", "subject", "fiscal_year", "quarter", "status", "alert_state",
                "first_found_on", "last_found_on", "reconcile_run_id", "updated_at", "severity", "planned",
                "actual", "measure", "numbers", "message", "agency_code", "county_id", "sync_run_id",
                "evidence_table", "evidence_id", "fingerprint")
_EVENT_COLUMNS = ("deviation_id", "event", "severity", "at", "reconcile_run_id", "by", "reason")
