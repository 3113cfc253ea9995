"""The one model of the monitoring report (گزارش نظارتی): rows and totals built from the store.

Excel (reports/excel.py), HTML (reports/html.py) and the archive's figures (reports/archive.py) are
all rendered from a :class:`Report`, so their figures cannot differ. The model holds raw figures
(Decimals, dates, codes); how they are shown is the renderers' business (foundation.present).

A report covers one fiscal year up to one quarter, as of a day, optionally narrowed to counties,
agencies or expert groups. It holds: totals by county, agency and group (counts, the four credit
stages and absorption, planned against reported progress weighted by notified credit, reporting
discipline, standing deviations by severity); one row per capital project and quarter with its
completion forecast; one row per expense operation; the standing deviations; and the monitoring
cycle per agency and quarter. It also says what its filters matched, by the store's names (the
cover's scope), and the thresholds the rules compare its figures with (reports/precision.py shows a
figure near one with the places that tell which side of it it is on).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Connection

from foundation.jalali import quarter_end, report_due
from foundation import present
from foundation.persian import sort_key
from foundation.present import group as group_name
from foundation.vocabulary import GROUPS, SEVERITIES
from reconcile.deviations import DeviationError, county_ids, group_of
from reconcile.settings import RoutingConfig, RulesConfig
from reports.cycle import SERVICE_DAYS, CycleRow, Submission, cycle_rows
from reports.forecast import Forecast, Point, forecast
from store import reporting
from store.console import fiscal_years
from store.reporting import Credits

ZERO = Decimal(0)
IN_SCOPE = ("exchanged", "amended")  # what the catalogue checks for reports (cancelled/awaiting: credits only)
NO_COUNTY = present.NO_COUNTY


class ReportError(Exception):
    """The report cannot be made as asked (an unknown county or agency, ...); the message says why."""


@dataclass(frozen=True)
class Selection:
    year: int
    quarter: int  # the report runs through this quarter
    as_of: date
    counties: tuple[str, ...] = ()  # names (any spelling) or codes
    agencies: tuple[str, ...] = ()  # codes
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Matched:
    """What the selection's filters matched, as the store names it (the cover's scope): `--county 06
    --county ايذه` matched اهواز and ایذه; agencies keep their codes beside their names."""

    counties: tuple[str, ...] = ()
    agencies: tuple[tuple[str, str], ...] = ()  # (code, name)
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    """The thresholds the rules compare the report's figures with (``reconcile.rules`` in config.yaml):
    an operation's achievement (operation_shortfall), its actual against its approved unit cost
    (unit_cost_overrun), as ratios; a project's gap from its target (progress_lag), in points; how far
    a credit stage may exceed the one before it (credit_inconsistency's tolerance), in million rials.
    The console's credit tables take the last from here too, so they show a row as the report does."""

    achievement: tuple[Decimal, ...] = ()
    cost_ratio: tuple[Decimal, ...] = ()
    gap: tuple[Decimal, ...] = ()
    credit: tuple[Decimal, ...] = ()

    @classmethod
    def of(cls, rules: RulesConfig | None = None) -> Limits:
        """The limits of ``rules`` (default: the catalogue's)."""
        rules = rules or RulesConfig()

        def exact(*values: float) -> tuple[Decimal, ...]:
            return tuple(Decimal(str(v)) for v in values)

        shortfall, overrun, lag = rules.operation_shortfall, rules.unit_cost_overrun, rules.progress_lag
        return cls(exact(shortfall.threshold, shortfall.minor, shortfall.major), exact(overrun.minor, overrun.major),
                   exact(lag.minor, lag.major, lag.critical), exact(rules.credit_inconsistency.tolerance))


@dataclass
class Totals:
    """One summary row: a county, an agency, an expert group, or everything selected."""

    key: str
    name: str
    projects: int = 0
    agreements: int = 0
    approved: Decimal = ZERO
    notified: Decimal = ZERO
    allocated: Decimal = ZERO
    absorbed: Decimal = ZERO
    # progress of the report's quarter, weighted by notified credit, over projects with both figures
    weight: Decimal = ZERO
    planned_weighted: Decimal = ZERO
    reported_weighted: Decimal = ZERO
    reports_due: int = 0
    reports_entered: int = 0
    reports_approved: int = 0
    reports_overdue: int = 0
    deviations: Counter = field(default_factory=Counter)  # severity -> standing deviations

    @property
    def absorption(self) -> Decimal | None:
        return self.absorbed / self.allocated if self.allocated else None

    @property
    def planned_progress(self) -> Decimal | None:
        return self.planned_weighted / self.weight if self.weight else None

    @property
    def reported_progress(self) -> Decimal | None:
        return self.reported_weighted / self.weight if self.weight else None

    def add_credits(self, credits: Credits) -> None:
        self.approved += credits.approved
        self.notified += credits.notified
        self.allocated += credits.allocated
        self.absorbed += credits.absorbed


@dataclass(frozen=True)
class ProjectRow:
    code: str
    title: str
    agency_code: str
    agency_name: str
    county: str
    group: str
    quarter: int
    target: Decimal | None
    reported: Decimal | None
    comptroller: str | None  # approved | pending | rejected; None: no report
    reported_on: date | None  # as the portal gave it: None for no report, or a report without its day
    visited_on: date | None  # the latest field visit up to the quarter's end
    observed: Decimal | None
    forecast: Forecast

    @property
    def gap(self) -> Decimal | None:
        return self.target - self.reported if self.target is not None and self.reported is not None else None


@dataclass(frozen=True)
class OperationRow:
    agreement_no: str
    program: str
    code: str
    title: str
    unit: str
    agency_code: str
    agency_name: str
    county: str
    group: str
    planned: Decimal  # cumulative through the report's quarter
    delivered: Decimal
    spent: Decimal
    unit_cost: Decimal | None  # the agreement's unit cost

    @property
    def achievement(self) -> Decimal | None:
        return self.delivered / self.planned if self.planned else None

    @property
    def actual_unit_cost(self) -> Decimal | None:
        return self.spent / self.delivered if self.delivered else None

    @property
    def cost_ratio(self) -> Decimal | None:
        actual = self.actual_unit_cost
        return actual / self.unit_cost if actual is not None and self.unit_cost else None


@dataclass(frozen=True)
class DeviationRow:
    id: int  # the store's: what people act on (`budgetwatch deviations ack ID`, the console's /deviations/ID)
    kind: str
    rule: str
    severity: str
    status: str
    subject: str
    quarter: int | None
    agency_code: str
    agency_name: str
    county: str
    group: str
    planned: Decimal | None
    actual: Decimal | None
    message: str
    threshold: str | None = None  # the condition its rule flagged it by, with its limit (present.threshold)
    unit: str | None = None  # an operation's unit of measure, for its quantities (portal text)
    bounds: tuple[Decimal, ...] = ()  # the limits it was judged against (present.bounds_of): figures shown apart


@dataclass(frozen=True)
class CurveYear:
    """One fiscal year of a project's S-curve: planned and reported cumulative progress (percent) at
    the year's start (0) and at each quarter's end (1-4); None where there is no figure. The console's
    project page (web/pages/subjects.py) and ``budgetwatch report project CODE`` (reports/html.py)
    both draw these points, so one project's curve reads the same on a page and on paper."""

    fiscal_year: int
    planned: dict[int, Decimal | None]
    reported: dict[int, Decimal | None]


def curve_year(fiscal_year: int, start: Decimal | None, targets: Sequence[Decimal | None],
               reported: Mapping[int, Decimal | None]) -> CurveYear:
    """A year's S-curve from its agreement's ``start`` (the progress at the start of the year, the
    catalogue's ``start``), its quarterly ``targets`` (cumulative, Q1 to Q4) and its ``reported``
    progress by quarter."""
    # Both lines begin at the year's start, at `start`, rather than at the first quarter's end: the
    # rules measure a year from it (progress_regression compares the first report of a year with
    # `start`, spend_progress_gap counts the planned and physical gain over it, completion_overdue
    # falls back on it), so a curve that began at Q1 hid a first quarter's regression the rule flags
    # and the gain the year's plan asks for. A target for quarter 0 is no agreement's figure: the
    # planned line starts where the project stood, as the reported one does.
    planned = {0: start, **{q: targets[q - 1] for q in range(1, 5)}}
    actual = {0: start, **{q: v for q, v in sorted(reported.items()) if 1 <= q <= 4}}
    return CurveYear(fiscal_year, planned, actual)


@dataclass(frozen=True)
class Report:
    selection: Selection
    generated_at: datetime
    service_days: int
    total: Totals
    counties: list[Totals]
    agencies: list[Totals]
    groups: list[Totals]
    projects: list[ProjectRow]
    operations: list[OperationRow]
    rule_counts: list[tuple[str, str, Counter]]  # (kind, rule, severity -> count)
    deviations: list[DeviationRow]
    cycle: list[CycleRow]
    reviewed_on: date | None = None  # the period's sign-off day, if approved
    matched: Matched = field(default_factory=Matched)
    limits: Limits = field(default_factory=Limits)


class _Scope:
    """Which agencies and counties the selection admits, and each one's summary rows."""

    def __init__(self, conn: Connection, selection: Selection, routing: RoutingConfig,
                 known_at: datetime | None = None) -> None:
        self.known_at = known_at
        self.names = reporting.agencies(conn)
        unknown = [code for code in selection.agencies if code not in self.names]
        if unknown:
            raise ReportError(f"unknown agency {unknown[0]!r}: no agency of that code in the store")
        self.county_set, counties = _counties(conn, selection.counties) if selection.counties else (None, ())
        self.matched = Matched(counties, tuple((code, self.names[code]) for code in dict.fromkeys(selection.agencies)),
                               tuple(dict.fromkeys(selection.groups)))
        self.selection, self.routing = selection, routing
        self.total = Totals("total", "جمع")
        self.by_county: dict[str, Totals] = {}
        self.by_agency: dict[str, Totals] = {}
        self.by_group: dict[str, Totals] = {}

    def group(self, agency_code: str | None) -> str:
        return group_of(agency_code, self.routing)

    def known(self, day: date, read_at: datetime | None) -> date:
        """The day an entry or an approval dated `day` counts from in the cycle and the discipline. One
        dated the as-of day that the store first read in a sync begun after the report's moment
        (``known_at``: a sign-off, and `review diff` rebuilding it) was made after that moment: it
        counts from the next day. Days are all the portals give: a report entered on the sign-off day
        after the sign-off was listed by `review diff` as a change of its discipline (a trial)."""
        as_of = self.selection.as_of
        if self.known_at is not None and read_at is not None and day >= as_of and read_at > self.known_at:
            return as_of + timedelta(days=1)
        return day

    def admits(self, agency_code: str, county_id: int | None) -> bool:
        s = self.selection
        return ((not s.agencies or agency_code in s.agencies)
                and (self.county_set is None or county_id in self.county_set)
                and (not s.groups or self.group(agency_code) in s.groups))

    def rows(self, agency_code: str, county: str | None) -> list[Totals]:
        """The summary rows an item of this agency and county counts in."""
        county = county or NO_COUNTY
        group = self.group(agency_code)
        return [self.total,
                self.by_county.setdefault(county, Totals(county, county)),
                self.by_agency.setdefault(agency_code, Totals(agency_code, self.names.get(agency_code, agency_code))),
                self.by_group.setdefault(group, Totals(group, group_name(group)))]


def _counties(conn: Connection, wanted: tuple[str, ...]) -> tuple[set[int], tuple[str, ...]]:
    """The ids of the counties `wanted` names or codes (reconcile.deviations matches them, as for the
    deviations' lists), and their names as the store holds them, in the order asked."""
    rows = reporting.counties(conn)
    known = {row.id: (row.name, row.code) for row in sorted(rows, key=lambda r: (r.code or "", r.name))}
    ids: set[int] = set()
    names: dict[str, None] = {}
    for raw in wanted:
        try:
            found = county_ids(conn, [raw])
        except DeviationError:
            raise ReportError(_unknown_county(raw, known)) from None
        ids |= found
        names.update(dict.fromkeys(sorted(known[i][0] for i in found)))
    return ids, tuple(names)


def _unknown_county(raw: str, known: dict[int, tuple[str, str | None]]) -> str:
    """Which values --county takes, said when one matches none: a county's id (the county_id that
    `reconcile --format json` prints) is not one of them, since `6` could as well mean the code 06."""
    accepted = ", ".join(f"{name} ({code})" if code else name for name, code in known.values())
    text = raw.strip()
    hint = ""
    if text.isdigit() and int(text) in known:
        name, code = known[int(text)]
        hint = (f" ({text} is the store's id of {name}, as `reconcile --format json` prints county_id; "
                f"its code is {code})" if code else f" ({text} is the store's id of {name}, not a code)")
    return (f"unknown county {raw!r}: use a county's name (any spelling) or code{hint}; "
            f"the store's counties: {accepted or 'none'}")


def _count(rows: list[Totals], attribute: str, add: bool = True) -> None:
    if add:
        for row in rows:
            setattr(row, attribute, getattr(row, attribute) + 1)


def _targets(row) -> list[Decimal | None]:
    return [row.target_q1, row.target_q2, row.target_q3, row.target_q4]


def _capital(conn: Connection, scope: _Scope, due_days: int, submissions: list[Submission]) -> list[ProjectRow]:
    s = scope.selection
    years = [r for r in reporting.project_years(conn, s.year) if scope.admits(r.agency_code, r.county_id)]
    credits = reporting.project_credits(conn, s.year)
    history: dict[int, list] = defaultdict(list)
    wanted = {r.project_id for r in years}
    for h in reporting.progress_history(conn, s.year):
        if h.project_id in wanted:
            history[h.project_id].append(h)
    visits = reporting.latest_visits(conn, quarter_end(s.year, s.quarter))
    out = []
    for r in years:
        totals = scope.rows(r.agency_code, r.county_name)
        _count(totals, "projects")
        money = credits.get(r.id, Credits())
        for t in totals:
            t.add_credits(money)
        targets = _targets(r)
        in_scope = r.agreement_status in IN_SCOPE and any(t is not None for t in targets)
        reports = {(h.fiscal_year, h.quarter): h for h in history[r.project_id] if h.quarter}
        points = [Point(h.fiscal_year, h.quarter, h.progress) for h in history[r.project_id] if h.progress is not None]
        visit = visits.get(r.code)
        for q in range(1, s.quarter + 1):
            report = reports.get((s.year, q))
            # an entry day the portal left empty counts as the quarter's last day (the catalogue), but is
            # shown empty: the projects sheet showed «۱۴۰۵/۰۶/۳۱» as if the portal had said it (a trial)
            entered_on = scope.known((report.reported_on or quarter_end(s.year, q)), report.first_read_at) \
                if report else None
            if in_scope:
                approved_on = (scope.known(report.decided_on or entered_on, report.last_read_at)
                               if report and report.comptroller_status == "approved" else None)
                submission = Submission(r.agency_code, q, entered_on, approved_on)
                submissions.append(submission)
                if q == s.quarter:
                    _discipline(totals, submission, s, due_days)
            seen_points = [p for p in points if p.index <= s.year * 4 + q]
            visit_now = visit if visit and visit.visited_on <= quarter_end(s.year, q) else None
            out.append(ProjectRow(
                r.code, r.title, r.agency_code, r.agency_name, r.county_name or NO_COUNTY, scope.group(r.agency_code),
                q, targets[q - 1], report.progress if report else None, report.comptroller_status if report else None,
                report.reported_on if report else None, visit_now.visited_on if visit_now else None,
                visit_now.observed_progress if visit_now else None, forecast(seen_points, r.end_year)))
        report = reports.get((s.year, s.quarter))
        target = targets[s.quarter - 1]
        if report is not None and report.progress is not None and target is not None and money.notified > 0:
            for t in totals:
                t.weight += money.notified
                t.planned_weighted += target * money.notified
                t.reported_weighted += report.progress * money.notified
    return out


def _discipline(totals, submission: Submission, s: Selection, due_days: int) -> None:
    """The reporting discipline of the selected quarter's `submission`: what was done by the as-of day."""
    seen = submission.seen_on(s.as_of)
    _count(totals, "reports_due")
    _count(totals, "reports_entered", seen.entered_on is not None)
    _count(totals, "reports_approved", seen.approved_on is not None)
    _count(totals, "reports_overdue", seen.entered_on is None and s.as_of > report_due(s.year, s.quarter, due_days))


def _expense(conn: Connection, scope: _Scope, due_days: int, submissions: list[Submission]) -> list[OperationRow]:
    s = scope.selection
    agreements = [a for a in reporting.agreements(conn, s.year) if scope.admits(a.agency_code, a.county_id)]
    credits = reporting.agreement_credits(conn, s.year)
    ops: dict[int, list] = defaultdict(list)
    for o in reporting.operations(conn, s.year):
        ops[o.agreement_id].append(o)
    items: dict[int, dict[int, object]] = defaultdict(dict)
    for p in reporting.performance(conn, s.year):
        items[p.operation_id][p.quarter] = p
    out = []
    for a in agreements:
        totals = scope.rows(a.agency_code, a.county_name)
        _count(totals, "agreements")
        for t in totals:
            t.add_credits(credits.get(a.id, Credits()))
        for q in range(1, s.quarter + 1):
            due = a.status in IN_SCOPE and any((_targets(o)[q - 1] or ZERO) > 0 for o in ops[a.id])
            of_q = [items[o.id][q] for o in ops[a.id] if q in items[o.id]]
            # entered with its first performance item of the quarter, as missing_report judges it ("no
            # performance item for q at all"): counted by its last, one operation reported after the
            # due day made the agreement overdue, while leaving that operation unreported did not (a trial)
            entered_on = min(scope.known(i.reported_on or quarter_end(s.year, q), i.first_read_at)
                             for i in of_q) if of_q else None
            approved = bool(of_q) and all(i.comptroller_status == "approved" for i in of_q)
            approved_on = max(scope.known(i.decided_on or i.reported_on or quarter_end(s.year, q), i.last_read_at)
                              for i in of_q) if approved else None
            if due:
                submission = Submission(a.agency_code, q, entered_on, approved_on)
                submissions.append(submission)
                if q == s.quarter:
                    _discipline(totals, submission, s, due_days)
        for o in ops[a.id]:
            done = [items[o.id][q] for q in range(1, s.quarter + 1) if q in items[o.id]]
            out.append(OperationRow(
                a.agreement_no, a.program_title or "", o.code, o.title or "", o.unit or "", a.agency_code,
                a.agency_name, a.county_name or NO_COUNTY, scope.group(a.agency_code),
                sum((t or ZERO for t in _targets(o)[:s.quarter]), ZERO),
                sum((i.quantity or ZERO for i in done), ZERO), sum((i.spent or ZERO for i in done), ZERO),
                o.unit_cost))
    return out


def _deviations(conn: Connection, scope: _Scope) -> tuple[list[DeviationRow], list[tuple[str, str, Counter]]]:
    s = scope.selection
    rows, by_rule = [], defaultdict(Counter)
    for d in reporting.standing_deviations(conn, s.year, s.quarter):
        agency = d.agency_code or ""
        if not scope.admits(agency, d.county_id):
            continue
        for t in scope.rows(agency, d.county_name):
            t.deviations[d.severity] += 1
        by_rule[(d.kind, d.rule)][d.severity] += 1
        rows.append(DeviationRow(d.id, d.kind, d.rule, d.severity, d.status, d.subject, d.quarter or None,
                                 agency, scope.names.get(agency, agency), d.county_name or NO_COUNTY,
                                 scope.group(agency), d.planned, d.actual, d.message,
                                 present.threshold(d.rule, d.numbers, d.severity),
                                 present.measure_of(d.numbers), present.bounds_of(d.numbers)))
    # by kind, then in the Persian alphabet's order of the rules' names, as the console lists rules
    # (not the English ids' order: approval_overdue, completion_overdue, credit_inconsistency, …)
    ordered = sorted(by_rule.items(), key=lambda item: (sort_key(present.kind(item[0][0])),
                                                        sort_key(present.rule(item[0][1]))))
    return rows, [(kind, rule, counts) for (kind, rule), counts in ordered]


def _sorted(rows: dict[str, Totals], *, by_name: bool = False) -> list[Totals]:
    """The rows by key (an agency's code), or ``by_name`` in the Persian alphabet's order (a county:
    code points put دزفول before دزپارت and اندیمشک before اندیکا)."""
    if by_name:
        return sorted(rows.values(), key=lambda t: sort_key(t.name))
    return [rows[key] for key in sorted(rows)]


def build(conn: Connection, selection: Selection, *, routing: RoutingConfig, report_due_days: int = 15,
          service_days: int = SERVICE_DAYS, reviews: Mapping[int, date] | None = None,
          generated_at: datetime | None = None, rules: RulesConfig | None = None) -> Report:
    """The report of ``selection`` from the store. ``reviews`` maps the year's approved quarters to
    their sign-off day (the cycle's last step; one after the as-of day is not made yet: the report
    sees the cycle as it stood that day); ``generated_at`` is printed on it (a sign-off fixes it, so
    the archive can be made again byte for byte), and an entry or approval of the as-of day the store
    first read after it does not count that day (``_Scope.known``); ``rules`` are the thresholds of config.yaml's
    ``reconcile.rules`` (default: the catalogue's)."""
    if not 1 <= selection.quarter <= 4:
        raise ReportError(f"quarter {selection.quarter}: use 1, 2, 3 or 4")
    held = fiscal_years(conn)
    if selection.year not in held:  # a report of zeros would pass for a real one (an empty store's too)
        raise ReportError(f"the store holds no project or agreement of {selection.year} "
                          f"({'it holds ' + ', '.join(map(str, sorted(held))) if held else 'it is empty: sync first'})")
    reviewed = {q: day for q, day in (reviews or {}).items() if day <= selection.as_of}
    scope = _Scope(conn, selection, routing, known_at=generated_at)
    submissions: list[Submission] = []
    projects = _capital(conn, scope, report_due_days, submissions)
    operations = _expense(conn, scope, report_due_days, submissions)
    deviations, rule_counts = _deviations(conn, scope)
    cycle = cycle_rows(selection.year, submissions, agency_names=scope.names, group_of=scope.group,
                       reviewed_on=reviewed, as_of=selection.as_of,
                       service_days=service_days)
    groups = [scope.by_group[g] for g in GROUPS if g in scope.by_group]
    return Report(selection, generated_at or datetime.now().astimezone(), service_days, scope.total,
                  _sorted(scope.by_county, by_name=True), _sorted(scope.by_agency), groups, projects, operations, rule_counts,
                  deviations, cycle, reviewed.get(selection.quarter), scope.matched,
                  Limits.of(rules))


__all__ = ["SEVERITIES", "CurveYear", "DeviationRow", "Limits", "Matched", "OperationRow", "ProjectRow", "Report",
           "ReportError", "Selection", "Totals", "build", "curve_year"]
