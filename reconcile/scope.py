"""What one run judges, said in SQL: its years, the as-of day's calendar, the subjects in scope, and
the shared year-to-date figures of expense operations, built once per run.

Rules (reconcile/rules/) state their conditions set-wise against a :class:`Scope`: the database
returns only the subjects that may break a rule, with the figures its finding needs, and Python
judges those rows exactly and words them. Everything that depends on the as-of day and the
Jalali calendar (which quarters are closed or late, a quarter's last day, the approval cut-off) is
computed here in Python and enters the SQL as constants, so one rule text runs on SQLite and
PostgreSQL alike.

**Exactness.** The catalogue's arithmetic is decimal, rounded to 4 places half away from zero
before a threshold is compared. PostgreSQL computes on NUMERIC; SQLite stores figures as REAL, whose
sums and differences can be off in the last binary digit. SQL conditions therefore only *select*:
they compare with a threshold loosened by :data:`MARGIN` (:func:`at_least`, :func:`below`), which
admits every row the exact arithmetic could flag and a few more; the rule's ``finding`` (or
``findings``) recomputes each admitted row's figures as Decimals from the stored values and decides
(the year-to-date rules judge an admitted operation at each closed quarter of its year, whichever
quarter admitted it). Sums over quarters are
returned as the quarters' own values, never summed in SQL for the verdict.

**Incremental runs.** ``only`` restricts the subjects (project years, agreements) to those whose
facts changed since the last recorded run (reconcile/changes.py); time-driven rules ignore it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from reconcile.facts import INACTIVE_AGREEMENT, AsOf
from store.driver import analyze_if_large, analyze_small_temporary
from store.models import (
    AMOUNT,
    QUANTITY,
    Agency,
    County,
    ExpenseAgreement,
    ExpenseCredit,
    FieldInspection,
    Operation,
    OperationPerformance,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
)

py = ProjectYear.__table__
pj = Project.__table__
ag = Agency.__table__
ct = County.__table__
pr = ProgressReport.__table__
pc = ProjectCredit.__table__
fi = FieldInspection.__table__
ea = ExpenseAgreement.__table__
ec = ExpenseCredit.__table__
op = Operation.__table__
perf = OperationPerformance.__table__

# How far a SQL condition is loosened around a threshold: 4-place rounding moves a value by at most
# 0.00005, and REAL arithmetic on store figures (≤ 15 significant digits) by far less.
MARGIN = Decimal("0.0001")
_INACTIVE = tuple(sorted(INACTIVE_AGREEMENT))


def at_least(value: Any, limit: Decimal) -> sa.ColumnElement[bool]:
    """`value ≥ limit` as a selecting condition: admits every value that rounds to at least `limit`."""
    return value >= sa.literal(limit - MARGIN, sa.Numeric(28, 10))


def below(value: Any, limit: Decimal) -> sa.ColumnElement[bool]:
    """`value < limit` as a selecting condition: admits every value that rounds to below `limit`."""
    return value < sa.literal(limit + MARGIN, sa.Numeric(28, 10))


def zero(value: Any) -> Any:
    """An empty figure counts as 0 (the catalogue's rule for sums and comparisons)."""
    return sa.func.coalesce(value, 0)


@dataclass
class Only:
    """The subjects an incremental run judges: ids of project years and of expense agreements."""

    project_years: sa.FromClause | None = None  # a selectable with one column `id`
    agreements: sa.FromClause | None = None


@dataclass
class Scope:
    """One run's years, as-of day and subjects, and its shared per-run tables (on `conn`)."""

    conn: Connection
    as_of: AsOf
    years: tuple[int, ...]
    only: Only | None = None
    _operation_quarters: sa.Table | None = field(default=None, repr=False)
    _quarter_tables: dict[str, sa.Subquery] = field(default_factory=dict, repr=False)

    def every(self) -> Scope:
        """This scope over every subject (for the time-driven rules of an incremental run)."""
        if self.only is None:
            return self
        whole = Scope(self.conn, self.as_of, self.years)
        whole._operation_quarters = None
        return whole

    def close(self) -> None:
        """Drop the run's temporary tables."""
        if self._operation_quarters is not None:
            self.conn.execute(sa.delete(_OPERATION_QUARTERS))

    # --- the calendar, as constants ---------------------------------------------------------

    def closed(self, year: int) -> tuple[int, ...]:
        """The closed quarters of `year` on the as-of day."""
        return self.as_of.closed_quarters(year)

    def late(self, year: int) -> tuple[int, ...]:
        """The closed quarters of `year` whose report is past its due day."""
        return tuple(self.as_of.late_quarters(year))

    def is_closed(self, year_column: Any, quarter_column: Any) -> sa.ColumnElement[bool]:
        """The row's (year, quarter) is closed on the as-of day."""
        return _pairs(year_column, quarter_column, {y: self.closed(y) for y in self.years})

    def quarter_end(self, year_column: Any, quarter_column: Any) -> sa.ColumnElement:
        """The last day of the row's (year, quarter), as a SQL CASE over the run's years."""
        whens = [(sa.and_(year_column == y, quarter_column == q), sa.literal(self.as_of.quarter_end(y, q), sa.Date))
                 for y in self.years for q in (1, 2, 3, 4)]
        return sa.case(*whens, else_=sa.null()) if whens else sa.null()

    def late_quarters(self) -> sa.Subquery:
        """A small table (fiscal_year, quarter) of the quarters whose report is past due (one object
        per scope, so that a query and its subqueries name the same table)."""
        if "late" not in self._quarter_tables:
            self._quarter_tables["late"] = _quarter_table([(y, q) for y in self.years for q in self.late(y)],
                                                          "late_quarter")
        return self._quarter_tables["late"]

    def closed_quarters(self) -> sa.Subquery:
        """A small table (fiscal_year, quarter) of the closed quarters of the run's years (one object per scope)."""
        if "closed" not in self._quarter_tables:
            self._quarter_tables["closed"] = _quarter_table([(y, q) for y in self.years for q in self.closed(y)],
                                                            "closed_quarter")
        return self._quarter_tables["closed"]

    @property
    def approval_cutoff(self) -> date:
        """An entry made before this day and not approved is overdue (approval_due_days)."""
        return self.as_of.day - timedelta(days=self.as_of.approval_due_days)

    def begun_years(self) -> tuple[int, ...]:
        return tuple(y for y in self.years if self.as_of.year_begun(y))

    # --- subjects ------------------------------------------------------------------------------

    def project_years(self, *, every: bool = False) -> sa.ColumnElement[bool]:
        """Project years of the run's years, still listed; only the changed ones in an incremental
        run unless `every` (time-driven rules)."""
        where = sa.and_(py.c.fiscal_year.in_(self.years), py.c.gone.is_(False))
        if not every and self.only is not None and self.only.project_years is not None:
            where = sa.and_(where, py.c.id.in_(sa.select(self.only.project_years.c.id)))
        return where

    def agreements(self, *, every: bool = False) -> sa.ColumnElement[bool]:
        """Expense agreements of the run's years, still listed (only the changed ones, as above)."""
        where = sa.and_(ea.c.fiscal_year.in_(self.years), ea.c.gone.is_(False))
        if not every and self.only is not None and self.only.agreements is not None:
            where = sa.and_(where, ea.c.id.in_(sa.select(self.only.agreements.c.id)))
        return where

    @staticmethod
    def active_project_year() -> sa.ColumnElement[bool]:
        """Exchanged (or amended) with at least one target: judged by every capital rule."""
        return sa.and_(py.c.agreement_status.not_in(_INACTIVE),
                       sa.or_(py.c.target_q1.is_not(None), py.c.target_q2.is_not(None),
                              py.c.target_q3.is_not(None), py.c.target_q4.is_not(None)))

    @staticmethod
    def active_agreement() -> sa.ColumnElement[bool]:
        return ea.c.status.not_in(_INACTIVE)

    def capital_subjects(self, *, every: bool = False) -> sa.Select:
        """Project years in scope with what names them in a finding (see :func:`place_of`)."""
        return (sa.select(py.c.id, pj.c.code.label("project_code"), py.c.fiscal_year, py.c.title,
                          py.c.agency_code, ag.c.name.label("agency_name"), py.c.county_id,
                          ct.c.name.label("county_name"), py.c.last_run_id)
                .select_from(py)
                .join(pj, pj.c.id == py.c.project_id)
                .join(ag, ag.c.code == py.c.agency_code)
                .outerjoin(ct, ct.c.id == py.c.county_id)
                .where(self.project_years(every=every)))

    def expense_subjects(self, *, every: bool = False) -> sa.Select:
        """Expense agreements in scope with what names them in a finding."""
        return (sa.select(ea.c.id, ea.c.agreement_no, ea.c.fiscal_year, ea.c.program_title,
                          ea.c.agency_code, ag.c.name.label("agency_name"), ea.c.county_id,
                          ct.c.name.label("county_name"), ea.c.last_run_id)
                .select_from(ea)
                .join(ag, ag.c.code == ea.c.agency_code)
                .outerjoin(ct, ct.c.id == ea.c.county_id)
                .where(self.agreements(every=every)))

    # --- shared per-run figures --------------------------------------------------------------

    def operation_quarters(self) -> sa.Table:
        """Each operation of an active agreement in scope with its four quarters side by side.

        Columns: operation_id, agreement_id, n1..n4 (quantity of each quarter), s1..s4 (spent),
        i1..i4 (the performance item's id, NULL: no item), r1..r4 (the item's last sync run). Built
        once per run, as a temporary table, for the rules that sum the year to date
        (operation_shortfall, unit_cost_overrun); the values keep the store's exact types.
        """
        if self._operation_quarters is None:
            self._operation_quarters = _build_operation_quarters(self)
        return self._operation_quarters

    @staticmethod
    def through(columns: Sequence[Any], quarter: int) -> sa.ColumnElement:
        """Σ columns[0..quarter-1] with empty values as 0 (SQL): a year to date through `quarter`."""
        total = zero(columns[0])
        for column in columns[1:quarter]:
            total = total + zero(column)
        return total


def place_columns() -> tuple[str, ...]:
    return ("agency_code", "agency_name", "county_id", "county_name")


def _pairs(year_column: Any, quarter_column: Any, by_year: dict[int, tuple[int, ...]]) -> sa.ColumnElement[bool]:
    terms = [sa.and_(year_column == y, quarter_column.in_(qs)) for y, qs in by_year.items() if qs]
    return sa.or_(*terms) if terms else sa.false()


def _quarter_table(pairs: list[tuple[int, int]], name: str) -> sa.Subquery:
    """(fiscal_year, quarter) rows as a subquery: a UNION ALL of constants (empty: no row)."""
    if not pairs:
        return (sa.select(sa.literal(0).label("fiscal_year"), sa.literal(0).label("quarter"))
                .where(sa.false()).subquery(name))
    selects = [sa.select(sa.literal(y).label("fiscal_year"), sa.literal(q).label("quarter")) for y, q in pairs]
    union = selects[0] if len(selects) == 1 else sa.union_all(*selects)
    return union.subquery(name)


_temp_metadata = sa.MetaData()
_OPERATION_QUARTERS = sa.Table(
    "bw_operation_quarters", _temp_metadata,
    sa.Column("operation_id", sa.Integer, primary_key=True),
    sa.Column("agreement_id", sa.Integer, nullable=False, index=True),
    *(sa.Column(f"n{k}", QUANTITY) for k in (1, 2, 3, 4)),
    *(sa.Column(f"s{k}", AMOUNT) for k in (1, 2, 3, 4)),
    *(sa.Column(f"i{k}", sa.Integer) for k in (1, 2, 3, 4)),
    *(sa.Column(f"r{k}", sa.Integer) for k in (1, 2, 3, 4)),
    prefixes=["TEMPORARY"],
)


def _build_operation_quarters(scope: Scope) -> sa.Table:
    conn, table = scope.conn, _OPERATION_QUARTERS
    table.create(conn, checkfirst=True)  # kept with its connection between runs, emptied (see Found)
    conn.execute(sa.delete(table))

    # each quarter's item joined on its own (at most one: unique per operation and quarter), rather
    # than every item grouped by operation with sixteen max(CASE …): SQLite at 100k 1.8–2.1 s →
    # 0.8–0.95 s, PostgreSQL 1.9 → 1.2 s (docs/benchmarks.md, session 22)
    items = {k: perf.alias(f"item_q{k}") for k in (1, 2, 3, 4)}
    source = op.join(ea, ea.c.id == op.c.agreement_id)
    for k, item in items.items():
        source = source.outerjoin(item, sa.and_(item.c.operation_id == op.c.id, item.c.quarter == k))
    pivot = (sa.select(op.c.id, op.c.agreement_id,
                       *(items[k].c.quantity for k in (1, 2, 3, 4)),
                       *(items[k].c.spent for k in (1, 2, 3, 4)),
                       *(items[k].c.id for k in (1, 2, 3, 4)),
                       *(items[k].c.last_run_id for k in (1, 2, 3, 4)))
             .select_from(source)
             .where(scope.agreements(), Scope.active_agreement()))
    filled = conn.execute(sa.insert(table).from_select([c.name for c in table.c], pivot)).rowcount
    analyze_if_large(conn, table, filled)
    if scope.only is not None:  # a few changed agreements' operations (the rules' counts of what they checked)
        analyze_small_temporary(conn, table)
    return table
