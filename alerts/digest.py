"""One expert's digest: the deviations that are news for them, grouped by county and agency.

News, per expert (store.alerts.news_for): an open deviation in their scope (alerts.recipients), at
or above ``alerts.min_severity``, that they were never told of (*new*), told of at a lower severity
(*escalated*), or told was resolved (*reopened*). Acknowledged and dismissed deviations are not
open, so they are never news; an acknowledged deviation that escalates is open again and is.
A severity lowered and raised back to what the expert was told is not news: they know it.

Deviations they were told of as open and that are resolved now close the digest in a short
section; they are told only in a digest that has news (no news, no mail). The worst
``alerts.max_per_digest`` deviations go in one digest; the rest stay news for the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from alerts.recipients import scope_of
from alerts.settings import AlertsConfig, Expert
from foundation import present
from foundation.vocabulary import SEVERITIES, SEVERITY_RANK
from reconcile.settings import RoutingConfig
from store import alerts as store_alerts

NEW, ESCALATED, REOPENED = "new", "escalated", "reopened"
NO_COUNTY = present.NO_COUNTY  # shown as "شهرستان نامشخص"
NO_AGENCY = "دستگاه نامشخص"


@dataclass(frozen=True)
class Item:
    """One deviation as a digest shows it; `title`, `agency` and `county` are portal text (untrusted)."""

    deviation_id: int
    kind: str
    rule: str
    severity: str
    subject: str
    title: str
    fiscal_year: int
    quarter: int | None
    planned: Decimal | None
    actual: Decimal | None
    measure: Decimal | None
    message: str
    agency_code: str | None
    agency: str
    county: str
    change: str  # new | escalated | reopened; 'resolved' in the closing section
    told_severity: str | None
    resolved_on: date | None
    threshold: str | None = None  # the condition the rule flagged it by, with its limit (present.threshold)
    unit: str | None = None  # an operation's unit of measure, for its quantities (portal text)
    bounds: tuple[Decimal, ...] = ()  # the limits it was judged against (present.bounds_of): figures shown apart


@dataclass(frozen=True)
class AgencyPart:
    code: str | None
    name: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class CountyPart:
    name: str
    agencies: tuple[AgencyPart, ...]


@dataclass(frozen=True)
class Digest:
    expert: Expert
    made_at: datetime
    counties: tuple[CountyPart, ...]
    items: tuple[Item, ...]  # the news, worst first, as the counties list them
    resolved: tuple[Item, ...]
    held_back: int  # news left for the next digest (beyond max_per_digest)
    first: bool = False  # the expert was never told anything: no "since your last e-mail" to speak of

    def counts(self) -> dict[str, int]:
        """News by severity, worst first, severities with none left out."""
        counts = {s: sum(1 for i in self.items if i.severity == s) for s in reversed(SEVERITIES)}
        return {s: n for s, n in counts.items() if n}

    def told(self) -> list[tuple[int, str, str]]:
        """(deviation id, severity, status) this digest tells its expert."""
        return ([(i.deviation_id, i.severity, "open") for i in self.items]
                + [(i.deviation_id, i.severity, "resolved") for i in self.resolved])


def _change(row: Any) -> str:
    if row.told_status is None:
        return NEW
    if row.told_status != "open":
        return REOPENED
    return ESCALATED


def _item(row: Any, names: store_alerts.Names, change: str) -> Item:
    return Item(
        deviation_id=row.id, kind=row.kind, rule=row.rule, severity=row.severity, subject=row.subject,
        title=names.titles.get((row.kind, row.subject, row.fiscal_year), ""), fiscal_year=row.fiscal_year,
        quarter=row.quarter or None, planned=row.planned, actual=row.actual, measure=row.measure,
        message=row.message, agency_code=row.agency_code,
        agency=names.agencies.get(row.agency_code or "", row.agency_code or NO_AGENCY),
        county=names.counties.get(row.county_id, NO_COUNTY) if row.county_id is not None else NO_COUNTY,
        change=change, told_severity=row.told_severity, resolved_on=row.resolved_on,
        threshold=present.threshold(row.rule, row.numbers, row.severity),
        unit=present.measure_of(row.numbers),
        bounds=present.bounds_of(row.numbers),
    )


def _worst_first(item: Item) -> tuple:
    return (-SEVERITY_RANK[item.severity], item.rule, item.subject, item.fiscal_year, item.quarter or 0)


def _grouped(items: list[Item]) -> tuple[CountyPart, ...]:
    """Counties, and agencies within them, with the worst (then the most) deviations first."""
    def weight(group: list[Item], name: str) -> tuple:
        return (-max(SEVERITY_RANK[i.severity] for i in group), -len(group), name == NO_COUNTY, name)

    by_county: dict[str, dict[tuple[str | None, str], list[Item]]] = {}
    for item in items:
        by_county.setdefault(item.county, {}).setdefault((item.agency_code, item.agency), []).append(item)
    counties = []
    for county, agencies in by_county.items():
        parts = [AgencyPart(code, name, tuple(sorted(group, key=_worst_first)))
                 for (code, name), group in agencies.items()]
        parts.sort(key=lambda p: weight(list(p.items), p.name))
        counties.append(CountyPart(county, tuple(parts)))
    counties.sort(key=lambda c: weight([i for a in c.agencies for i in a.items], c.name))
    return tuple(counties)


def build_digest(conn: Connection, expert: Expert, alerts: AlertsConfig, routing: RoutingConfig,
                 now: datetime) -> Digest | None:
    """What `expert`'s next digest holds, read in `conn`'s transaction; None when there is no news."""
    news = store_alerts.news_for(conn, expert.address, scope_of(expert, routing), alerts.min_severity)
    if not news:
        return None
    news = sorted(news, key=lambda r: (-SEVERITY_RANK[r.severity], r.rule, r.subject, r.fiscal_year, r.quarter))
    held_back = max(0, len(news) - alerts.max_per_digest)
    news = news[:alerts.max_per_digest]
    resolved_rows = store_alerts.resolved_for(conn, expert.address)
    names = store_alerts.names_of(conn, [*news, *resolved_rows])
    items = [_item(row, names, _change(row)) for row in news]
    counties = _grouped(items)
    shown = tuple(i for county in counties for agency in county.agencies for i in agency.items)
    resolved = tuple(sorted((_item(row, names, "resolved") for row in resolved_rows), key=_worst_first))
    return Digest(expert, now, counties, shown, resolved, held_back,
                  first=not store_alerts.told_before(conn, expert.address))
