"""Reading and acting on deviations: the views the CLI shows, acknowledging and dismissing.

A view is a filter on what is shown (county, agency, expert group, rule, minimum severity, status);
it never changes what a run judges. Acknowledging and dismissing are a person's acts, recorded with
who, why and when, each as a DeviationEvent:

- acknowledge: an **open** deviation becomes **acknowledged**; no further alerts unless it escalates;
- dismiss: an open, acknowledged or resolved deviation becomes **dismissed** (a false positive): it
  never changes again, is never alerted, and is left out of views unless they ask for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from foundation import present
from foundation.counties import canonical_county
from foundation.persian import has_visible, text_key, to_ascii_digits
from foundation.vocabulary import GROUPS, SEVERITY_RANK
from reconcile.lifecycle import ROW_COLUMNS, shown_order
from reconcile.settings import RoutingConfig
from store.driver import Streamed, stream_rows
from store.models import (Agency, County, Deviation, DeviationEvent, DeviationFound, deviation_as_read, found_again_of,
                          last_found)

dev = Deviation.__table__
events = DeviationEvent.__table__
counties = County.__table__

# the expert groups (defined once, in foundation.vocabulary) go with group_of: the routing of agencies
__all__ = ["GROUPS", "DeviationChanged", "DeviationError", "Shown", "View", "acknowledge", "check_agencies",
           "county_ids", "dismiss", "get", "group_of",
           "json_figure", "json_number", "json_objects", "list_deviations", "listed_json_objects", "shown_of",
           "shown_rows", "sort_key", "stream_deviations", "view_condition"]


class DeviationError(Exception):
    """A deviation cannot be found or cannot take the asked step; the message says why."""


class DeviationChanged(DeviationError):
    """The deviation is no longer in the status the person acting saw (``seen``): someone acted
    on it, or a run resolved or reopened it, since the page was shown. ``status``/``acted_by``: now."""

    def __init__(self, message: str, status: str, acted_by: str | None) -> None:
        super().__init__(message)
        self.status, self.acted_by = status, acted_by


@dataclass(frozen=True)
class View:
    """What to show. Empty tuples mean 'any'."""

    years: tuple[int, ...] = ()
    counties: tuple[str, ...] = ()  # county names (any spelling) or codes
    agencies: tuple[str, ...] = ()  # agency codes
    groups: tuple[str, ...] = ()  # social | infrastructure | production | consolidation
    rules: tuple[str, ...] = ()  # rule ids
    kinds: tuple[str, ...] = ()  # capital | expense
    min_severity: str | None = None
    statuses: tuple[str, ...] = ()  # default: every status but dismissed
    include_dismissed: bool = False


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~3x, and a run streams 100,000s of these
class Shown:
    """One deviation as views show it."""

    id: int | None
    kind: str
    rule: str
    severity: str
    subject: str
    fiscal_year: int
    quarter: int | None
    planned: Decimal | None
    actual: Decimal | None
    measure: Decimal | None
    status: str
    message: str
    agency_code: str | None
    county_id: int | None
    group: str
    county: str | None = None  # the county's Persian name, where the row carries it
    # the first and last day a run found it (store.models.last_found), where the row is a stored one:
    # when, not which deviation or what it says (left out of equality, as a run's rows carry none)
    first_found_on: date | None = field(default=None, compare=False)
    last_found_on: date | None = field(default=None, compare=False)
    # the limits it was judged against (present.bounds_of its ``numbers``), where the row carries them:
    # a terminal's table shows its figures apart from them, as the console and the e-mails do
    bounds: tuple[Decimal, ...] = field(default=(), compare=False)

    def as_json(self) -> dict[str, Any]:
        """The keys of `budgetwatch reconcile --format json`, numbers as JSON numbers; ``id`` is what
        `deviations show|ack|dismiss` take (null in a what-if, for a finding not recorded yet)."""
        return {"id": self.id, "kind": self.kind, "rule": self.rule, "severity": self.severity,
                "subject": self.subject, "fiscal_year": self.fiscal_year, "quarter": self.quarter,
                "planned": json_number(self.planned), "actual": json_number(self.actual),
                "measure": json_number(self.measure), "status": self.status, "message": self.message,
                "agency_code": self.agency_code, "county_id": self.county_id, "county": self.county}


def json_number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    value = Decimal(value)
    return int(value) if value == value.to_integral_value() else float(value)


def group_of(agency_code: str | None, routing: RoutingConfig) -> str:
    return routing.agencies.get(agency_code or "", routing.default)


def county_ids(conn: Connection, wanted: Sequence[str]) -> set[int]:
    """The ids of the counties named (any spelling) or coded in `wanted`; unknown ones are an error."""
    rows = conn.execute(sa.select(counties.c.id, counties.c.name_key, counties.c.code)).all()
    found: set[int] = set()
    for raw in wanted:
        # any spelling: the match key folds letters and spaces, the alias table the other names
        # (هفتگل for هفتکل, سیدون for صیدون: domain.md §11), as a sync stores them
        key, code = text_key(canonical_county(raw)), to_ascii_digits(raw).strip()
        ids = {row.id for row in rows if row.name_key == key or (row.code and row.code == code)}
        if not ids:
            raise DeviationError(f"unknown county {raw!r}: no county of that name or code in the store")
        found |= ids
    return found


def sort_key(shown: Shown) -> tuple:
    """Most severe first, then by rule, subject, year, quarter, kind (reconcile.lifecycle.shown_order)."""
    return (-SEVERITY_RANK[shown.severity], shown.rule, shown.subject, shown.fiscal_year, shown.quarter or 0,
            shown.kind)


def view_condition(view: View, routing: RoutingConfig, county_set: set[int] | None
                   ) -> Callable[[Any], sa.ColumnElement[bool]]:
    """The view as a SQL condition on a query's columns (kind, rule, severity, fiscal_year, status,
    agency_code, county_id), so that the database leaves out what is not shown (reconcile output,
    deviation lists). Empty fields of the view admit anything; statuses default to every status but
    dismissed; a group is that of :func:`group_of` (tests/reconcile/test_view_sql.py states the same
    filter row by row in Python and compares them on random views)."""

    def condition(c: Any) -> sa.ColumnElement[bool]:
        parts: list[sa.ColumnElement[bool]] = []
        if view.years:
            parts.append(c.fiscal_year.in_(view.years))
        if county_set is not None:
            parts.append(c.county_id.in_(sorted(county_set)))
        if view.agencies:
            parts.append(c.agency_code.in_(view.agencies))
        if view.groups:  # group_of: an agency routed to a group, the default group for the rest
            routed = [code for code, group in routing.agencies.items() if group in view.groups]
            unrouted = c.agency_code.not_in(list(routing.agencies)) if routing.default in view.groups else sa.false()
            no_code = sa.true() if group_of(None, routing) in view.groups else sa.false()
            parts.append(sa.or_(c.agency_code.in_(routed), unrouted, sa.and_(c.agency_code.is_(None), no_code)))
        if view.rules:
            parts.append(c.rule.in_(view.rules))
        if view.kinds:
            parts.append(c.kind.in_(view.kinds))
        if view.min_severity:
            floor = SEVERITY_RANK[view.min_severity]
            parts.append(c.severity.in_([s for s, rank in SEVERITY_RANK.items() if rank >= floor]))
        if view.statuses:
            parts.append(c.status.in_(view.statuses))
        elif not view.include_dismissed:
            parts.append(c.status != "dismissed")
        return sa.and_(sa.true(), *parts)

    return condition


def shown_rows(rows: Iterable[Any], routing: RoutingConfig) -> Iterator[Shown]:
    """A run's findings as they stream from the database (reconcile.run's ``show``: already in the
    order people read them and filtered by :func:`view_condition`)."""
    for r in rows:
        yield Shown(r.deviation_id, r.kind, r.rule, r.severity, r.subject, r.fiscal_year, r.quarter or None,
                    r.planned, r.actual, r.measure, r.status, r.message, r.agency_code, r.county_id,
                    group_of(r.agency_code, routing), r.county, bounds=_bounds(r))


def _bounds(row: Any) -> tuple[Decimal, ...]:
    """The limits of a row read with its ``numbers`` (JSON text or a dict); () for a row without."""
    numbers = getattr(row, "numbers", None)
    if isinstance(numbers, str):
        numbers = json.loads(numbers)
    return present.bounds_of(numbers) if isinstance(numbers, dict) else ()


def json_figure(value: float | Decimal | None) -> int | float | None:
    """A figure as the database driver returns it, as :meth:`Shown.as_json` writes it: the same
    number as ``json_number`` of the stored Decimal. SQLite returns the REAL it keeps (ExactDecimal
    reads it back as ``Decimal(repr(value))``, whose float is the value itself); PostgreSQL a Decimal."""
    if value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return value
        # a whole float beyond 2**53 is not its shortest decimal: 1.23456789012345e17 is ...344992
        return int(value) if abs(value) < _EXACT_INTEGERS else json_number(Decimal(repr(value)))
    return json_number(value)


_EXACT_INTEGERS = 2.0 ** 53  # every whole float below this is an integer exactly


def json_objects(rows: Any) -> Iterator[dict[str, Any]]:
    """A run's findings streamed with raw figures (``Found.rows(raw_figures=True)``) as the objects
    of ``reconcile --format json``: the keys of :meth:`Shown.as_json`, without building a Shown (a
    row unpacked by position: reading 15 attributes by name cost most of the output's time)."""
    if tuple(rows.keys()) != ROW_COLUMNS:  # unpacked by position below
        raise ValueError(f"Found.rows gave columns {tuple(rows.keys())}, not {ROW_COLUMNS}")
    for (kind, rule, severity, subject, fiscal_year, quarter, planned, actual, measure, message, agency_code,
         county_id, county, deviation_id, status) in rows:
        yield {"id": deviation_id, "kind": kind, "rule": rule, "severity": severity, "subject": subject,
               "fiscal_year": fiscal_year, "quarter": quarter or None, "planned": json_figure(planned),
               "actual": json_figure(actual), "measure": json_figure(measure), "status": status,
               "message": message, "agency_code": agency_code, "county_id": county_id, "county": county}


def check_agencies(conn: Connection, codes: Sequence[str]) -> None:
    """An agency code that the store does not know is an error (a typo would list nothing, silently)."""
    agencies = Agency.__table__
    for code in codes:
        known = conn.execute(sa.select(sa.literal(1)).where(sa.or_(
            sa.exists().where(agencies.c.code == code), sa.exists().where(dev.c.agency_code == code)))).first()
        if known is None:
            raise DeviationError(f"unknown agency {code!r}: no agency of that code in the store")


def list_deviations(conn: Connection, view: View, routing: RoutingConfig) -> list[Shown]:
    """Deviations in the store as the view shows them (sorted), held in a list: for a few (tests,
    small tools). `deviations list` streams them instead (:func:`stream_deviations`)."""
    check_agencies(conn, view.agencies)
    county_set = county_ids(conn, view.counties) if view.counties else None
    rows = stream_deviations(conn, view, routing, county_set)
    try:
        return list(shown_of(rows, routing))
    finally:
        rows.close()


def stream_deviations(conn: Connection, view: View, routing: RoutingConfig, county_set: set[int] | None, *,
                      raw_figures: bool = False, numbers: bool = False) -> Streamed:
    """Deviations in the store as the view shows them, sorted by the database as people read them
    (:func:`sort_key`), streamed: never held whole in memory. At 100k projects (242,741 deviations)
    the list held and sorted in Python took 1.8 GB and 12.6 s as JSON, 3.8 GB and 7.7 minutes as a
    table (docs/benchmarks.md, session 36). Check the view's agencies first (:func:`check_agencies`).
    Until the stream is read to its end or closed, nothing else may run on `conn`. `raw_figures`:
    planned, actual and measure as the driver reads them, for :func:`listed_json_objects`; `numbers`:
    the deviation's named figures last (for the limits of :attr:`Shown.bounds`)."""
    found = DeviationFound.__table__
    figures = [dev.c.planned, dev.c.actual, dev.c.measure]
    if raw_figures:
        figures = [sa.type_coerce(c, sa.types.NullType()).label(c.name) for c in figures]
    query = (sa.select(dev.c.id, dev.c.kind, dev.c.rule, dev.c.severity, dev.c.subject, dev.c.fiscal_year,
                       dev.c.quarter, *figures, dev.c.status, dev.c.message,
                       dev.c.agency_code, dev.c.county_id, counties.c.name.label("county"), dev.c.first_found_on,
                       last_found(dev, found).label("last_found_on"), *([dev.c.numbers] if numbers else []))
             .select_from(dev.outerjoin(counties, counties.c.id == dev.c.county_id)
                          .outerjoin(found, found_again_of(dev, found)))
             .where(view_condition(view, routing, county_set)(dev.c))
             .order_by(*shown_order(dev.c, conn.dialect.name)))
    return stream_rows(conn, query)


def listed_json_objects(rows: Any) -> Iterator[dict[str, Any]]:
    """The rows of :func:`stream_deviations` read with `raw_figures` as the objects of `deviations
    list --format json`: the keys of :meth:`Shown.as_json` (as :func:`json_objects` writes a run's),
    and the first and last day a run found the deviation, ISO."""
    if tuple(rows.keys()) != _LISTED:  # unpacked by position below
        raise ValueError(f"stream_deviations gave columns {tuple(rows.keys())}, not {_LISTED}")
    for (deviation_id, kind, rule, severity, subject, fiscal_year, quarter, planned, actual, measure, status,
         message, agency_code, county_id, county, first_found_on, last_found_on) in rows:
        yield {"id": deviation_id, "kind": kind, "rule": rule, "severity": severity, "subject": subject,
               "fiscal_year": fiscal_year, "quarter": quarter or None, "planned": json_figure(planned),
               "actual": json_figure(actual), "measure": json_figure(measure), "status": status,
               "message": message, "agency_code": agency_code, "county_id": county_id, "county": county,
               "first_found_on": _iso(first_found_on), "last_found_on": _iso(last_found_on)}


# the columns of stream_deviations, in its order
_LISTED = ("id", "kind", "rule", "severity", "subject", "fiscal_year", "quarter", "planned", "actual", "measure",
           "status", "message", "agency_code", "county_id", "county", "first_found_on", "last_found_on")


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def shown_of(rows: Iterable[Any], routing: RoutingConfig) -> Iterator[Shown]:
    """The rows of :func:`stream_deviations` as views show them, one at a time."""
    for r in rows:
        yield Shown(r.id, r.kind, r.rule, r.severity, r.subject, r.fiscal_year, r.quarter or None, r.planned,
                    r.actual, r.measure, r.status, r.message, r.agency_code, r.county_id,
                    group_of(r.agency_code, routing), r.county, r.first_found_on, r.last_found_on, _bounds(r))


def get(conn: Connection, deviation_id: int) -> tuple[Any, list[Any]]:
    """A deviation's row and its events, oldest first."""
    row = conn.execute(sa.select(*deviation_as_read()).where(dev.c.id == deviation_id)).first()
    if row is None:
        raise DeviationError(f"no deviation with id {deviation_id}")
    history = conn.execute(sa.select(events).where(events.c.deviation_id == deviation_id)
                           .order_by(events.c.id)).all()
    return row, history


REASON_MAX = 1000  # characters: a reason is a sentence or a paragraph, shown on pages and in e-mails
# characters of who acted (`--by`; the console gives a user name): 100,000 were stored, and the
# terminal's line saying so took minutes to print (a trial)
BY_MAX = 100


def _act(engine: Engine, deviation_id: int, by: str, reason: str, *, to: str, allowed: tuple[str, ...],
         now: datetime | None, also: Callable[[Connection], None] | None = None, seen: str | None = None) -> Any:
    by, reason = (by or "").strip(), (reason or "").strip()
    if not has_visible(by):
        raise DeviationError("say who you are (--by NAME)")
    if len(by) > BY_MAX:
        raise DeviationError(f"--by: a name of at most {BY_MAX} characters, please (this one has {len(by)})")
    if not has_visible(reason):  # a reason of ZWNJ or bidi marks alone looked recorded and said nothing
        raise DeviationError("say why (--reason TEXT)")
    if len(reason) > REASON_MAX:
        raise DeviationError(f"a reason of at most {REASON_MAX} characters, please (this one has {len(reason)})")
    now = now or datetime.now(timezone.utc)
    with engine.begin() as conn:
        row = conn.execute(sa.select(dev).where(dev.c.id == deviation_id).with_for_update()).first()
        if row is None:
            raise DeviationError(f"no deviation with id {deviation_id}")
        who = f" by {row.acted_by}" if row.acted_by and row.status in ("acknowledged", "dismissed") else ""
        if seen is not None and row.status != seen:  # a page shown before another's act or a run
            raise DeviationChanged(f"deviation {deviation_id} is {row.status}{who} now, not {seen} as shown: "
                                   f"it was not {to}", row.status, row.acted_by)
        if row.status not in allowed:
            raise DeviationError(f"deviation {deviation_id} is {row.status}{who}: it cannot be {to}")
        # only from the status read: FOR UPDATE locks nothing on SQLite, whose read above is outside
        # the write transaction, and two people acknowledging at once were both told it was done
        acted = conn.execute(sa.update(dev).where(dev.c.id == deviation_id, dev.c.status == row.status).values(
            status=to, alert_state="none", acted_by=by, acted_reason=reason, acted_at=now, updated_at=now,
            last_found_on=last_found(dev)))  # its last day found kept in the row
        if acted.rowcount != 1:
            now_row = conn.execute(sa.select(dev.c.status, dev.c.acted_by).where(dev.c.id == deviation_id)).one()
            who = f" by {now_row.acted_by}" if now_row.acted_by else ""
            raise DeviationChanged(f"deviation {deviation_id} became {now_row.status}{who} meanwhile: "
                                   f"it was not {to}", now_row.status, now_row.acted_by)
        conn.execute(sa.insert(events).values(deviation_id=deviation_id, event=to, severity=row.severity, at=now,
                                              by=by, reason=reason))
        if also is not None:  # in the act's transaction: both are stored or neither
            also(conn)
        return conn.execute(sa.select(*deviation_as_read()).where(dev.c.id == deviation_id)).one()


def acknowledge(engine: Engine, deviation_id: int, *, by: str, reason: str, now: datetime | None = None,
                also: Callable[[Connection], None] | None = None, seen: str | None = None) -> Any:
    """An open deviation is acknowledged by `by` for `reason`: no further alerts unless it escalates.
    `also` writes more in the same transaction (the console's log of acts); `seen`, the status the
    person was shown: another status now is :class:`DeviationChanged`, not acted on."""
    return _act(engine, deviation_id, by, reason, to="acknowledged", allowed=("open",), now=now, also=also,
                seen=seen)


def dismiss(engine: Engine, deviation_id: int, *, by: str, reason: str, now: datetime | None = None,
            also: Callable[[Connection], None] | None = None, seen: str | None = None) -> Any:
    """A deviation is dismissed as a false positive: never changed or alerted again. `also` and
    `seen` as for :func:`acknowledge` (a stale page's dismissal overwrote another's acknowledgement)."""
    return _act(engine, deviation_id, by, reason, to="dismissed", allowed=("open", "acknowledged", "resolved"),
                now=now, also=also, seen=seen)

