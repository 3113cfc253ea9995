"""A deviation's life in the store: a run's findings compared with the stored deviations, in the database.

Identity is (kind, rule, subject, fiscal year, quarter; 0 = no quarter). A run writes its findings to
a temporary table on its writing connection (:class:`Found`, with each finding's fingerprint), then
:meth:`Found.apply` compares them with the deviations set-wise, a handful of statements whatever the
number of deviations (reconciliation-rules.md, "A deviation's identity and life"); a recording run on
PostgreSQL, and a SQLite run beside its helper, opens each rule's new deviations as it goes
(:meth:`Found.open_through`, after :meth:`Found.hold`), the rest at the end:

==========================  =========================================================================
found, no deviation yet     inserted **open**, alert_state ``new`` — event ``opened``
found, open/acknowledged    higher severity: **open**, alert_state ``escalated`` (``new`` while the
                            first alert is still owed) — event ``escalated``; lower severity: severity
                            lowered quietly (no alert) — event ``lowered``; same severity but other
                            figures, message or evidence: updated — event ``updated``; nothing
                            different: nothing is written to it; its last day found moves with
                            the run's (store.models.DeviationFound, ``last_found``)
found, resolved             **open** again, alert_state ``new`` — event ``reopened``
found, dismissed            nothing changes, ever
not found, open/acked       **resolved** with resolved_on = the as-of day, alert_state ``none`` —
                            event ``resolved`` (reason ``not found``, or ``gone`` when the portal no
                            longer lists the subject); only for the years and rules the run judged,
                            and in an incremental run only where it judged (reconcile/changes.py)
==========================  =========================================================================

Whether a deviation's figures, sentence or evidence changed is told by its fingerprint
(Finding.fingerprint), never by reading the figures back; an unchanged deviation costs one row of
the temporary table and no Python work. Acknowledging and dismissing are a person's acts
(reconcile/deviations.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.findings import Finding
from store import locks
from store.driver import Streamed, WriteBehind, analyze_if_large, bulk_insert, sqlite_values, stream_rows
from store.models import (ACTIVE_STATUSES, AMOUNT, County, Deviation, DeviationEvent, DeviationFound,
                          ExpenseAgreement, Project, ProjectYear, last_found)

dev = Deviation.__table__
_found = DeviationFound.__table__
event_table = DeviationEvent.__table__
_py, _pj, _ea = ProjectYear.__table__, Project.__table__, ExpenseAgreement.__table__
_counties = County.__table__

ACTIVE = ACTIVE_STATUSES
_BATCH = 5000
_CHANGES = ("opened", "reopened", "escalated", "lowered", "updated", "unchanged", "dismissed_found")


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


_meta = sa.MetaData()
# A staged finding's place in the order of production, which new deviations get their ids in: the
# rule's position in the run's list of rules, then the finding's number within the rule (SEQ_RULE
# bits), so that a rule judged elsewhere (reconcile/helper.py) keeps its place. 64 bits; on SQLite
# exactly INTEGER, the rowid, which is 64 bits already and orders the table for free.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SEQ_RULE = 32


def first_seq(rule_index: int) -> int:
    """The seq of the first finding of the run's rule number `rule_index` (0-based)."""
    return rule_index << SEQ_RULE


FOUND = sa.Table(
    "bw_found", _meta,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(160), nullable=False),
    sa.Column("fiscal_year", sa.Integer, nullable=False),
    sa.Column("quarter", sa.Integer, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("planned", AMOUNT), sa.Column("actual", AMOUNT), sa.Column("measure", AMOUNT),
    sa.Column("numbers", sa.Text),  # JSON text, as the deviation keeps it
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("agency_code", sa.String(32)), sa.Column("county_id", sa.Integer), sa.Column("county", sa.Text),
    sa.Column("sync_run_id", sa.Integer), sa.Column("evidence_table", sa.String(32)),
    sa.Column("evidence_id", sa.Integer), sa.Column("fingerprint", sa.String(32), nullable=False),
    prefixes=["TEMPORARY"],
)

# The comparison's verdicts (Found.compare): for each staged finding whose identity has a stored
# deviation, that deviation and what the run does to it. A staged finding without a verdict is new
# ("opened"). A narrow table of its own, filled by one INSERT ... SELECT: writing the verdicts into
# the staged rows rewrote every wide row (sentence, figures) of a run that found them again
# (PostgreSQL, 100k, --full: 7.5 s of UPDATE; docs/benchmarks.md, session 12).
VERDICT = sa.Table(
    "bw_verdict", _meta,
    sa.Column("seq", SEQ, primary_key=True, autoincrement=False),  # the staged finding's
    sa.Column("dev_id", sa.Integer, nullable=False),
    # the deviation's status at the comparison: a person's act since then wins (Found.apply)
    sa.Column("old_status", sa.String(16), nullable=False),
    sa.Column("change", sa.String(16), nullable=False),
    # the deviations the run found are those a verdict names: the deviations it did not find are
    # searched by their ids here (_missing), not by identity among the staged findings
    sa.Index("bw_verdict_deviation", "dev_id"),
    prefixes=["TEMPORARY"],
)
# The identity index is built once the findings are staged (compare), not kept while they are
# inserted: maintaining it row by row costs twice the insert (SQLite, 242,741 findings: 1.4 s
# against 0.5 s + 0.3 s to build it afterwards); dropping and building it again costs a small run
# two catalogue statements (a few milliseconds). Plain DDL: the same text on both databases. A run
# that opened every rule as it judged (Found.open_through) has paired every finding already and
# builds none: 0.04-0.075 s of a PostgreSQL nightly run at 100k, more in a --full one
# (docs/benchmarks.md, session 29).
_INDEX = "bw_found_identity"
_CREATE_INDEX = sa.text(f"CREATE INDEX IF NOT EXISTS {_INDEX} ON bw_found (kind, rule, subject, fiscal_year, quarter)")


def _drop_index(conn: Connection) -> None:
    """Drop the staging table's index, named in the connection's own temporary schema."""
    schema = "pg_temp" if conn.dialect.name == "postgresql" else "temp"
    conn.execute(sa.text(f"DROP INDEX IF EXISTS {schema}.{_INDEX}"))


# the ids of the deviations a run resolves (Found._resolve)
MISSING = sa.Table("bw_missing", _meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   prefixes=["TEMPORARY"])
_STAGED = ("seq", "kind", "rule", "subject", "fiscal_year", "quarter", "severity", "planned", "actual", "measure",
           "numbers", "message", "agency_code", "county_id", "county", "sync_run_id", "evidence_table",
           "evidence_id", "fingerprint")
_NUMBERS = frozenset({"numbers"})  # staged as the JSON text the deviation keeps
_CONTENT = ("severity", "planned", "actual", "measure", "numbers", "message", "agency_code", "county_id",
            "sync_run_id", "evidence_table", "evidence_id", "fingerprint")


def _rank(column: Any) -> sa.ColumnElement[int]:
    return sa.case((column == "critical", 3), (column == "major", 2), else_=1)


def shown_order(c: Any, dialect: str) -> list[sa.ColumnElement[Any]]:
    """The order people read deviations in, as SQL on columns `c` (severity, rule, subject,
    fiscal_year, quarter, kind): most severe first, then by rule, subject, year and quarter (0: none),
    then kind (a rule id of both families), codes in code order as Python sorts them
    (reconcile.deviations.sort_key), not the locale's."""
    order = [c.rule, c.subject]
    if dialect == "postgresql":
        order = [column.collate("C") for column in order]
    return [_rank(c.severity).desc(), *order, c.fiscal_year, c.quarter, c.kind]


def _same_identity(a: sa.Table, b: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(a.c.kind == b.c.kind, a.c.rule == b.c.rule, a.c.subject == b.c.subject,
                   a.c.fiscal_year == b.c.fiscal_year, a.c.quarter == b.c.quarter)


def stage(insert: Callable[[list[tuple]], None], findings: Iterable[Finding], seq: int) -> int:
    """Hand `findings`, numbered from `seq`, each with its fingerprint, to `insert` in batches of
    :data:`_STAGED` rows as they come (Found.add: into :data:`FOUND`; a helper process: as the
    driver rows of :func:`driver_rows`, into its file); how many."""
    added, batch = 0, []
    for f in findings:
        fingerprint, numbers = f.digests()
        batch.append((seq + added, f.kind, f.rule, f.subject, f.fiscal_year, f.quarter or 0, f.severity,
                      f.planned, f.actual, f.measure, numbers, f.message, f.agency_code, f.county_id,
                      f.county, f.sync_run_id, f.evidence_table, f.evidence_id, fingerprint))
        added += 1
        if len(batch) >= _BATCH:
            insert(batch)
            batch = []
    if batch:
        insert(batch)
    return added


_STAGED_FIGURES = slice(_STAGED.index("planned"), _STAGED.index("measure") + 1)  # planned, actual, measure


def driver_rows(dialect: sa.Dialect, batch: list[tuple]) -> list[tuple]:
    """A batch of :func:`stage` as a helper process sends it (:meth:`Found.take` inserts it): on
    SQLite as its driver takes it into :data:`FOUND`; on PostgreSQL as COPY takes it, the figures as
    their exact text (COPY's text format is text anyway; a Decimal costs pickle ~4 µs more to write
    and ~1 µs more to read than its text: a tenth of what a finding costs the helper)."""
    if dialect.name != "sqlite":
        start, stop = _STAGED_FIGURES.start, _STAGED_FIGURES.stop
        return [(*row[:start], *(None if v is None else str(v) for v in row[start:stop]), *row[stop:])
                for row in batch]
    return sqlite_values(dialect, FOUND, _STAGED, batch, ready=_NUMBERS)


class Found:
    """A run's findings in a temporary table of the writing connection `conn`.

    `rules` (the run's (kind, rule) pairs, in its order) lets a recording run open each rule's new
    deviations as soon as the rules before it are staged (:meth:`open_through`), rather than all at
    the end; `behind` writes on `conn` in a thread of its own (store.driver.WriteBehind: PostgreSQL,
    whose server then stages and opens while the run words the next rule). While it is open the
    connection is the thread's: call :meth:`written` before anything else uses it, and
    :meth:`close_writer` on any way out.
    """

    def __init__(self, conn: Connection, rules: Sequence[tuple[str, str]] = (), *, behind: bool = False) -> None:
        self.conn = conn
        self.count = 0
        self.rules = list(rules)
        self._streams: list[Streamed] = []  # handed out by rows(): closed by close_streams()
        # the temporary table stays with its connection between runs: emptied, not re-created
        # (catalogue writes cost a PostgreSQL round trip or two each, in every small run)
        FOUND.create(conn, checkfirst=True)
        VERDICT.create(conn, checkfirst=True)
        self.drop()
        self._opened_below = 0  # staged findings below this seq are compared and the new ones opened
        self._before: int | None = None  # the largest deviation id before the run opened any
        self._behind = behind
        self._writer: WriteBehind | None = None  # started by the first write (behind)

    def _write(self, write: Callable[[], None]) -> None:
        if not self._behind:
            write()
            return
        if self._writer is None:
            self._writer = WriteBehind("reconcile-writer")
        self._writer.submit(write)

    def written(self) -> None:
        """Wait for the writes handed to the thread (``behind``) and raise the first that failed;
        then the connection is the caller's again."""
        self._behind = False
        if self._writer is not None:
            try:
                self._writer.wait()
            finally:
                self._writer.close()
                self._writer = None

    def close_writer(self) -> None:
        """Stop the writing thread, if any, without raising (on the way out of a failed run)."""
        self._behind = False
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def add(self, findings: Iterable[Finding], rule_index: int = 0) -> int:
        """Stage `findings` of the run's rule number `rule_index` (batched as they come); how many
        were added."""
        def insert(batch: list[tuple]) -> None:
            self._write(functools.partial(bulk_insert, self.conn, FOUND, _STAGED, batch, ready=_NUMBERS))

        if self._opened_below > first_seq(rule_index):  # they would never be paired: see _missing
            raise RuntimeError(f"rule {rule_index}'s findings staged after its deviations were opened")
        added = stage(insert, findings, first_seq(rule_index))
        self.count += added
        return added

    def take(self, batches: Iterable[list[tuple]]) -> int:
        """Stage the findings a helper judged (reconcile/helper.py): batches of :func:`driver_rows`,
        their seqs in their rules' places; how many."""
        ready = frozenset(_STAGED) if self.conn.dialect.name == "sqlite" else _NUMBERS
        added = 0
        for batch in batches:
            self._write(functools.partial(bulk_insert, self.conn, FOUND, _STAGED, batch, ready=ready))
            added += len(batch)
        self.count += added
        return added

    def open_through(self, rule_index: int, *, run_id: int, as_of: date, now: datetime) -> None:
        """Compare the findings of the rules up to number `rule_index` (all of them staged: a rule
        judged elsewhere must have been taken) with the stored deviations, and open the new ones:
        what :meth:`compare` and :meth:`apply` do for them, done now, in the rules' order, so that
        their ids are those :meth:`apply` would give. A first run's 240,000 inserts are then made
        while the run judges the next rules (PostgreSQL, ``behind``; SQLite: beside its helper,
        between the run's rules and while it waits for the helper). Takes the reconciliation's lock
        first: no other run inserts deviations meanwhile."""
        if not self.rules:
            raise ValueError("open_through needs the run's rules (Found(conn, rules))")
        end = first_seq(rule_index + 1)
        if end <= self._opened_below:
            return
        low, self._opened_below = self._opened_below, end
        rules = self.rules[low >> SEQ_RULE:rule_index + 1]
        self._write(functools.partial(self._open_range, low, end, rules, run_id, as_of, now))

    def hold(self) -> None:
        """Take the reconciliation's lock (one reconciliation writes deviations at a time) and note
        the largest deviation id stored before the run. A run that opens as it judges calls it before
        it judges, in its own thread: waiting there for another run, it is stopped by Ctrl-C at once
        (psycopg cancels a wait only in the main thread; in the writing thread the run could not
        leave before the other run let go)."""
        if self._before is not None:
            return
        locks.hold_for_transaction(self.conn, "reconcile")
        self._before = self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(dev.c.id), 0))).scalar_one()

    def _open_range(self, low: int, end: int, rules: list[tuple[str, str]], run_id: int, as_of: date,
                    now: datetime) -> None:
        conn = self.conn
        self.hold()  # taken before the run judged, where it opens as it judges (engine)
        in_range = sa.and_(FOUND.c.seq >= low, FOUND.c.seq < end)
        self._first_stands(in_range)
        # a first run stores no deviation of these rules: nothing to pair them with
        if stores_any(conn, rules):
            self._pair(in_range, identities_of(rules))
        self._open(in_range, run_id=run_id, as_of=as_of, now=now)

    def drop(self) -> None:
        """Empty the table (it is kept for the connection's next run), without its index until the
        next run has staged its findings."""
        _drop_index(self.conn)
        self.conn.execute(sa.delete(FOUND))
        self.conn.execute(sa.delete(VERDICT))

    # --- the comparison ---------------------------------------------------------------------

    def compare(self) -> None:
        """Pair each staged finding with its stored deviation and decide what the run does to it:
        one row of :data:`VERDICT` per pair; a finding left without one is new (those of the rules
        :meth:`open_through` opened were paired then).

        A finding whose identity was staged twice keeps its first (the first stands).
        """
        conn, f = self.conn, FOUND
        rest = f.c.seq >= self._opened_below if self._opened_below else None
        identity = (f.c.kind, f.c.rule, f.c.subject, f.c.fiscal_year, f.c.quarter)
        if self._before == 0:
            # the store held no deviation when the run took the reconciliation's lock (hold):
            # nothing to pair the rest with and nothing to resolve, so no index on the staged
            # findings either (a first run: PostgreSQL 100k, 0.5 s); their
            # statistics still plan what the caller is shown
            analyze_if_large(conn, f, self.count, [c.name for c in (f.c.seq, *identity)])
            self._first_stands(rest)
            return
        if self.rules and self._opened_below >= first_seq(len(self.rules)):
            # every rule opened as it was judged (open_through): every finding is paired already,
            # and nothing below needs the identity index; statistics for what the caller is shown
            analyze_if_large(conn, f, self.count, [c.name for c in (f.c.seq, *identity)])
            analyze_if_large(conn, VERDICT, self.count)
            return
        conn.execute(_CREATE_INDEX)
        analyze_if_large(conn, f, self.count, [c.name for c in (f.c.seq, *identity)])
        self._first_stands(rest)
        self._pair(rest)
        analyze_if_large(conn, VERDICT, self.count)

    def _first_stands(self, staged: sa.ColumnElement[bool] | None) -> None:
        """Of the staged findings `staged` selects (None: all), those whose identity was staged
        before are deleted (rare: checked first). A rule's findings lie in one range: its duplicates too."""
        conn, f = self.conn, FOUND
        identity = (f.c.kind, f.c.rule, f.c.subject, f.c.fiscal_year, f.c.quarter)
        twice = sa.select(*identity).where(*_given(staged)).group_by(*identity).having(sa.func.count() > 1).subquery()
        if conn.execute(sa.select(sa.func.count()).select_from(twice)).scalar_one():
            first = sa.select(sa.func.min(f.c.seq)).where(*_given(staged)).group_by(*identity)
            conn.execute(sa.delete(f).where(*_given(staged), f.c.seq.not_in(first.scalar_subquery())))

    def _pair(self, staged: sa.ColumnElement[bool] | None, stored: sa.ColumnElement[bool] | None = None) -> None:
        """Verdicts for the staged findings `staged` selects (None: all), paired with the stored
        deviations `stored` selects (None: any)."""
        conn, f, d = self.conn, FOUND, dev
        change = sa.case(
            (d.c.status == "dismissed", "dismissed_found"),
            (d.c.status == "resolved", "reopened"),
            (_rank(f.c.severity) > _rank(d.c.severity), "escalated"),
            (_rank(f.c.severity) < _rank(d.c.severity), "lowered"),
            (sa.or_(d.c.fingerprint.is_(None), d.c.fingerprint != f.c.fingerprint), "updated"),
            else_="unchanged")
        conn.execute(sa.insert(VERDICT).from_select(
            ["seq", "dev_id", "old_status", "change"], sa.select(f.c.seq, d.c.id, d.c.status, change)
            .where(_same_identity(f, d), *_given(staged), *_given(stored))))

    def counts(self) -> LifeCounts:
        """How many staged findings each change of the comparison applies to (new ones: ``opened``)."""
        counts = LifeCounts()
        staged = self.conn.execute(sa.select(sa.func.count()).select_from(FOUND)).scalar_one()
        v = VERDICT
        for change, n in self.conn.execute(sa.select(v.c.change, sa.func.count()).group_by(v.c.change)):
            setattr(counts, change, n)
            staged -= n
        counts.opened = staged
        return counts

    def apply(self, *, run_id: int, as_of: date, now: datetime, resolvable: Sequence[sa.ColumnElement[bool]],
              years: Sequence[int], rules: Sequence[tuple[str, str]],
              kept: sa.ColumnElement[bool] | None = None, active_before: int | None = None) -> LifeCounts:
        """Write the run's verdicts: open the new, change the changed, resolve the deviations the
        branches of `resolvable` select (the run's years and rules, where it judged;
        reconcile.changes ``Plan.resolvable``) that it did not find, and record that every active
        deviation of `years` and `rules` (the (kind, rule) pairs judged) was found on `as_of`
        (store.models.DeviationFound: their last day found, without rewriting each row). `kept` (an
        incremental run: its years and rules) selects the deviations that stay active: those it did
        not judge anew are carried, found again without judging; they count as unchanged.
        `active_before`: how many of the deviations `kept` selects were active when the run took its
        lock, where no one else could change one since (SQLite: the run holds the write lock), counted
        beside the run (reconcile.helper ``active_deviations``): the carried are then counted without
        a scan of the deviations. Call :meth:`compare` first."""
        conn, f, d, v = self.conn, FOUND, dev, VERDICT
        locks.hold_for_transaction(conn, "reconcile")  # one reconciliation writes deviations at a time
        counts = self.counts()
        # first the stored deviations the run did not find, among those stored before the run (a
        # first run: nothing; after a 1 % change: 2,000 deviations, not 24,000): resolved before
        # the rest of the new ones are inserted, and never among those open_through inserted.
        # Disjoint from everything below: what it resolves has no verdict, and what the run found
        # is never among it.
        counts.resolved = self._resolve(run_id=run_id, as_of=as_of, now=now, resolvable=resolvable)
        # new deviations of the rules not opened while the run judged (open_through): all of them
        # unless the run opened as it went
        self._open(f.c.seq >= self._opened_below if self._opened_below else None, run_id=run_id, as_of=as_of,
                   now=now)
        events = ["deviation_id", "event", "severity", "at", "reconcile_run_id"]
        # changed deviations: their events first (they name the severity found), then the rows. A
        # person's act since compare() (PostgreSQL: acknowledging and dismissing do not wait for a
        # run) wins: such a deviation is left as the person left it, and the next run judges it
        # again. Locked first, so that no act slips in between the events and the update.
        changed = ("reopened", "escalated", "lowered", "updated")
        pending = sa.and_(d.c.id == v.c.dev_id, v.c.change.in_(changed), d.c.status == v.c.old_status,
                          f.c.seq == v.c.seq)
        _lock_rows(conn, sa.and_(d.c.id == v.c.dev_id, v.c.change.in_(changed)))
        conn.execute(sa.insert(event_table).from_select(events, sa.select(
            v.c.dev_id, v.c.change, f.c.severity, _at(now), sa.literal(run_id))
            .where(pending).order_by(v.c.seq)))
        status = sa.case((v.c.change.in_(("reopened", "escalated")), "open"), else_=d.c.status)
        alert = sa.case((v.c.change == "reopened", "new"),
                        (v.c.change == "escalated",
                         sa.case((sa.and_(d.c.status == "open", d.c.alert_state == "new"), "new"),
                                 else_="escalated")),
                        else_=d.c.alert_state)
        last = sa.case((d.c.last_found_on > sa.literal(as_of, sa.Date), d.c.last_found_on),
                       else_=sa.literal(as_of, sa.Date))
        conn.execute(sa.update(d).where(pending).values(
            status=status, alert_state=alert, resolved_on=None, last_found_on=last, reconcile_run_id=run_id,
            updated_at=_at(now), **{name: f.c[name] if name != "numbers" else _json(conn, f.c.numbers)
                                     for name in _CONTENT}))
        # the unchanged (and, in an incremental run, the carried) are found on `as_of` too: said once
        # for the run's rules and years (_found_again), not written into each of them
        if kept is not None:
            counts.unchanged += (self._carry(kept, counts.opened) if active_before is None
                                 else self._carried(active_before, counts.resolved))
        self._found_again(years, rules, as_of=as_of, run_id=run_id)
        return counts

    def _open(self, staged: sa.ColumnElement[bool] | None, *, run_id: int, as_of: date, now: datetime) -> None:
        """Insert the staged findings `staged` selects (None: all) that have no verdict as open
        deviations, ids drawn by the database in the order the findings were produced, above the
        largest id before them (only a reconciliation inserts deviations, under its lock), each
        with its event ``opened``."""
        conn, f, d, v = self.conn, FOUND, dev, VERDICT
        content = [f.c[name] if name != "numbers" else _json(conn, f.c.numbers) for name in _CONTENT]
        new = sa.insert(d).from_select(
            ["kind", "rule", "subject", "fiscal_year", "quarter", "status", "alert_state", "first_found_on",
             "last_found_on", "reconcile_run_id", "updated_at", *_CONTENT],
            sa.select(f.c.kind, f.c.rule, f.c.subject, f.c.fiscal_year, f.c.quarter, sa.literal("open"),
                      sa.literal("new"), sa.literal(as_of, sa.Date), sa.literal(as_of, sa.Date),
                      sa.literal(run_id), _at(now), *content)
            .where(~sa.exists().where(v.c.seq == f.c.seq), *_given(staged)).order_by(f.c.seq))
        events = ["deviation_id", "event", "severity", "at", "reconcile_run_id"]
        if conn.dialect.name == "postgresql":
            # their events made of what the insert returns, in the same statement, rather than read
            # back from the new rows (docs/benchmarks.md, session 27)
            opened = new.returning(d.c.id, d.c.severity).cte("opened")
            conn.execute(sa.insert(event_table).from_select(events, sa.select(
                opened.c.id, sa.literal("opened"), opened.c.severity, _at(now), sa.literal(run_id))
                .order_by(opened.c.id)))
            return
        before = conn.execute(sa.select(sa.func.coalesce(sa.func.max(d.c.id), 0))).scalar_one()
        if self._before is None:
            self._before = before
        if conn.execute(new).rowcount:  # until apply's updates, this run's deviations above `before` are exactly these
            conn.execute(sa.insert(event_table).from_select(events, sa.select(
                d.c.id, sa.literal("opened"), d.c.severity, _at(now), sa.literal(run_id))
                .where(d.c.id > before, d.c.reconcile_run_id == run_id).order_by(d.c.id)))

    def _carry(self, kept: sa.ColumnElement[bool], opened: int) -> int:
        """Count the carried deviations. Once the run has written and resolved, the active
        deviations of its years and rules are exactly what it opened, what it paired (still active)
        and what it carried: one plain scan counts them all, without a condition per row, and the
        carried are the difference."""
        conn, d, v = self.conn, dev, VERDICT
        total = active_count(conn, kept)
        paired = conn.execute(sa.select(sa.func.count()).select_from(v.join(d, d.c.id == v.c.dev_id))
                              .where(d.c.status.in_(ACTIVE))).scalar_one()
        return total - opened - paired

    def _carried(self, active_before: int, resolved: int) -> int:
        """:meth:`_carry`'s count from the active deviations before the run: each was either paired
        with a finding (a verdict whose old status is active), resolved, or carried (the rest). Exact
        only where nothing but the run can change a deviation while it runs (SQLite, whose run holds
        the write lock): on PostgreSQL a person's act between :meth:`compare` and :meth:`apply`
        would be counted wrong."""
        paired = self.conn.execute(sa.select(sa.func.count()).select_from(VERDICT)
                                   .where(VERDICT.c.old_status.in_(ACTIVE))).scalar_one()
        return active_before - paired - resolved

    def _found_again(self, years: Sequence[int], rules: Sequence[tuple[str, str]], *, as_of: date,
                     run_id: int) -> None:
        """Record that the run found every active deviation of `years` and `rules` on `as_of`:
        what it opened or paired, and what it carried; the rest it resolved (the invariant
        :meth:`_carry` counts by). One row a rule and year (store.models.DeviationFound), the
        latest recording run's day: a deviation whose own day is later (written by a run an older
        budgetwatch recorded for a later day) keeps it (store.models.last_found)."""
        conn, found = self.conn, _found
        keys = [(kind, rule, year) for year in years for kind, rule in rules]
        if not keys:
            return
        known = {(r.kind, r.rule, r.fiscal_year): r.found_on for r in conn.execute(
            sa.select(found.c.kind, found.c.rule, found.c.fiscal_year, found.c.found_on)
            .where(found.c.fiscal_year.in_(sorted(set(years)))))}
        other = [key for key in keys if key in known and known[key] != as_of]
        if other:
            conn.execute(sa.update(found).where(
                found.c.kind == sa.bindparam("k"), found.c.rule == sa.bindparam("r"),
                found.c.fiscal_year == sa.bindparam("y")).values(found_on=as_of, reconcile_run_id=run_id),
                [{"k": k, "r": r, "y": y} for k, r, y in other])
        new = [{"kind": k, "rule": r, "fiscal_year": y, "found_on": as_of, "reconcile_run_id": run_id}
               for k, r, y in keys if (k, r, y) not in known]
        if new:
            conn.execute(sa.insert(found), new)

    def unfound(self, resolvable: Sequence[sa.ColumnElement[bool]]) -> int:
        """How many deviations a recorded run would resolve (for a what-if; call :meth:`compare`
        first). Asked by identity among the staged findings, whose index a what-if's compare builds
        (it opens nothing as it judges): a what-if holds no lock, and a deviation another run
        commits meanwhile for one of its findings has no verdict, but is found."""
        return sum(self.conn.execute(sa.select(sa.func.count()).select_from(dev)
                                     .where(_missing(branch, by_identity=True))).scalar_one()
                   for branch in resolvable)

    def _resolve(self, *, run_id: int, as_of: date, now: datetime, resolvable: Sequence[sa.ColumnElement[bool]]
                 ) -> int:
        """Resolve the active deviations the branches of `resolvable` select that the run did not
        find. The deviations are searched once, into a temporary table of the ids to resolve; the
        event and the update then read those ids (a re-run that resolves nothing searched twice for
        nothing)."""
        conn, d = self.conn, dev
        MISSING.create(conn, checkfirst=True)
        conn.execute(sa.delete(MISSING))
        found = 0
        # stored before the run: not the deviations open_through inserted meanwhile (all found)
        stored = () if self._before is None else (d.c.id <= self._before,)
        for branch in resolvable:  # disjoint branches
            found += conn.execute(sa.insert(MISSING).from_select(
                ["id"], sa.select(d.c.id).where(_missing(branch), *stored))).rowcount
        if not found:
            return 0
        # still active: a person may have dismissed or acknowledged one since (PostgreSQL, READ COMMITTED)
        missing = sa.and_(d.c.id.in_(sa.select(MISSING.c.id)), d.c.status.in_(ACTIVE))
        _lock_rows(conn, d.c.id.in_(sa.select(MISSING.c.id)))  # no act between the events and the update
        gone = sa.or_(
            sa.exists().where(_pj.c.code == d.c.subject, _py.c.project_id == _pj.c.id,
                              _py.c.fiscal_year == d.c.fiscal_year, _py.c.gone.is_(True), d.c.kind == "capital"),
            sa.exists().where(_ea.c.agreement_no == d.c.subject, _ea.c.fiscal_year == d.c.fiscal_year,
                              _ea.c.gone.is_(True), d.c.kind == "expense"))
        conn.execute(sa.insert(event_table).from_select(
            ["deviation_id", "event", "severity", "at", "reconcile_run_id", "reason"],
            sa.select(d.c.id, sa.literal("resolved"), d.c.severity, _at(now), sa.literal(run_id),
                      sa.case((gone, "gone"), else_="not found")).where(missing).order_by(d.c.id)))
        resolved = conn.execute(sa.update(d).where(missing).values(  # its last day found kept in the row
            status="resolved", alert_state="none", resolved_on=as_of, reconcile_run_id=run_id,
            updated_at=now, last_found_on=last_found(d))).rowcount
        conn.execute(sa.delete(MISSING))
        return resolved

    # --- reading back ---------------------------------------------------------------------------

    def rows(self, carried: sa.ColumnElement[bool] | None = None, *,
             where: Callable[[Any], sa.ColumnElement[bool]] | None = None, raw_figures: bool = False,
             numbers: bool = False) -> Streamed:
        """What the run found, most severe first, then by rule, subject, year and quarter, each with
        the id and status of its deviation (after the run; for a what-if, before it: no id for a
        finding not recorded yet, and status 'open'). `carried` adds the deviations an incremental
        run found again without judging them anew (see :meth:`apply`). `where` keeps the rows a view
        shows (reconcile.deviations.view_condition, given the columns); `raw_figures` returns planned,
        actual and measure as the driver reads them (SQLite: float; PostgreSQL: Decimal), for output
        that needs no Decimal (the JSON of reconcile.deviations.json_objects). Columns: :data:`ROW_COLUMNS`,
        and with `numbers` the finding's named figures last, as JSON text (the limits a terminal's
        table shows its figures apart from, as the console and the e-mails do: present.bounds_of)."""
        f, d = FOUND, dev
        shown = _SHOWN
        named = [f.c.numbers] if numbers else []
        query = (sa.select(*(f.c[name] for name in shown), f.c.county, d.c.id.label("deviation_id"),
                           sa.func.coalesce(d.c.status, "open").label("status"), *named)
                 .select_from(f.outerjoin(d, _same_identity(f, d))))
        if carried is not None:
            named = [sa.cast(d.c.numbers, sa.Text).label("numbers")] if numbers else []
            query = sa.union_all(query, sa.select(
                *(d.c[name] for name in shown), _counties.c.name.label("county"), d.c.id.label("deviation_id"),
                d.c.status, *named).select_from(d.outerjoin(_counties, _counties.c.id == d.c.county_id))
                .where(d.c.status.in_(ACTIVE), carried))
        found = query.subquery("found")
        columns = [sa.type_coerce(c, sa.types.NullType()).label(c.name) if raw_figures and c.name in _FIGURES else c
                   for c in found.c]
        query = sa.select(*columns).order_by(*shown_order(found.c, self.conn.dialect.name))
        if where is not None:
            query = query.where(where(found.c))
        stream = stream_rows(self.conn, query)
        self._streams.append(stream)
        return stream

    def close_streams(self) -> None:
        """Close what :meth:`rows` handed out (a reader that failed half-way leaves its stream open,
        and on PostgreSQL an open stream holds the connection: store.driver.stream_rows)."""
        for stream in self._streams:
            stream.close()
        self._streams.clear()


_FIGURES = frozenset({"planned", "actual", "measure"})
# the columns of Found.rows, in its order (reconcile.deviations.json_objects unpacks them by position)
_SHOWN = ("kind", "rule", "severity", "subject", "fiscal_year", "quarter", "planned", "actual", "measure", "message",
          "agency_code", "county_id")
ROW_COLUMNS = (*_SHOWN, "county", "deviation_id", "status")


def _given(condition: sa.ColumnElement[bool] | None) -> tuple[sa.ColumnElement[bool], ...]:
    return () if condition is None else (condition,)


def _missing(resolvable: sa.ColumnElement[bool], *, by_identity: bool = False) -> sa.ColumnElement[bool]:
    """Active deviations `resolvable` selects that the run did not find: those no verdict names.
    Every staged finding whose identity has a stored deviation is paired with it before the search
    (Found.compare, Found.open_through), so a found deviation always has its verdict; searched by
    identity among the staged findings instead, without an index on them, PostgreSQL planned a
    nested loop over them (6.5 s at 100k; docs/benchmarks.md, session 29). `by_identity`: searched
    by identity all the same, where that index is built (Found.unfound)."""
    found = _same_identity(FOUND, dev) if by_identity else VERDICT.c.dev_id == dev.c.id
    return sa.and_(dev.c.status.in_(ACTIVE), resolvable, ~sa.exists().where(found))


def _lock_rows(conn: sa.Connection, which: sa.ColumnElement[bool]) -> None:
    """PostgreSQL: lock the deviations `which` selects until the transaction ends, so that a
    person's act (reconcile.deviations, which locks the row too) commits before the run reads them
    or waits for it. SQLite: the run holds the database's write lock already."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(dev.c.id).where(which).with_for_update(of=dev)).close()


def _at(now: datetime) -> Any:
    return sa.literal(now, Deviation.__table__.c.updated_at.type)


def _json(conn: Connection, column: Any) -> Any:
    """JSON text as the deviation's JSON column takes it (PostgreSQL: json; SQLite: the text itself)."""
    return sa.cast(column, sa.JSON) if conn.dialect.name == "postgresql" else column


def stores_any(conn: Connection, rules: Sequence[tuple[str, str]]) -> bool:
    """Whether the store holds a deviation of any of the (kind, rule) pairs (:func:`stored_probe`)."""
    return bool(rules) and bool(conn.execute(stored_probe(rules)).scalar())


def stored_probe(rules: Sequence[tuple[str, str]]) -> sa.Select:
    """SELECT whether the store holds a deviation of any of the (kind, rule) pairs, as a probe of the
    identity index each: the least subject of the pair, which both databases read as the first
    entry of the index under (kind, rule) (PostgreSQL: a LIMIT 1 of an index-only scan). Not
    EXISTS: PostgreSQL planned it as a scan of the table until the first matching row, taking the
    pair's rows for spread evenly through it, where they lie after every other rule's when the rule
    is judged late (28 ms in a 1 % run at 100k, 163 ms from a cold cache, against ~1 ms;
    docs/benchmarks.md, session 26). Nor one condition ORing the pairs with a LIMIT 1: a scan too,
    of the whole table where no pair is stored (session 25)."""
    return sa.select(sa.or_(*(sa.select(sa.func.min(dev.c.subject)).where(dev.c.kind == kind, dev.c.rule == rule)
                              .scalar_subquery().is_not(None) for kind, rule in rules)))


def identities_of(rules: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """The deviations of the (kind, rule) pairs a run judged."""
    return sa.or_(*(sa.and_(dev.c.kind == kind, dev.c.rule == rule) for kind, rule in rules)) if rules else sa.false()


def load_years(years: Sequence[int]) -> sa.ColumnElement[bool]:
    """The deviations of `years`."""
    return dev.c.fiscal_year.in_(years) if years else sa.false()


def kept_of(years: Sequence[int], rules: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """The deviations of a run's `years` and (kind, rule) pairs: those an incremental run keeps
    active unless it resolves them (:meth:`Found.apply`'s `kept`)."""
    return sa.and_(load_years(years), among_rules(rules))


def active_count(conn: Connection, which: sa.ColumnElement[bool]) -> int:
    """How many of the deviations `which` selects are active (open or acknowledged)."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(dev)
                            .where(dev.c.status.in_(ACTIVE), which)).scalar_one())


def among_rules(rules: Sequence[tuple[str, str]]) -> sa.ColumnElement[bool]:
    """The deviations of the (kind, rule) pairs, as one expression that no index answers: for a
    condition that keeps most deviations, read in one scan. :func:`identities_of`'s OR of pairs
    makes SQLite search the identity index once per pair and fetch every row by its id (2–3× the
    scan), and keeps it from the subject index when a condition also names subjects."""
    return (dev.c.kind + ":" + dev.c.rule).in_([f"{kind}:{rule}" for kind, rule in rules]) if rules else sa.false()
