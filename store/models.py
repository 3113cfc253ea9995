"""The store's tables: what was read from the portals, how it changed, and what was judged of it.

One SQLModel class per table. Business keys are unique constraints (project code; project and fiscal
year; agreement number and fiscal year; ...), surrogate integer ids are for joins only. Values are
canonical (ASCII-digit codes, Persian display text, Decimal amounts in million rials, Gregorian
dates, UTC-aware datetimes); a ``*_key`` column holds the match key of a Persian name where two
spellings must count as one (see foundation.persian.text_key).

Reported figures are never overwritten silently: every change lands in ``ChangeLog`` with the sync
run that saw it, so "what did the agency report when we alerted?" has an answer. Nothing read from
a portal is ever deleted: an item no longer listed is marked ``gone``.

Quarter columns use 1..4; a deviation's quarter uses 0 for "no quarter" so that its identity is a
plain unique constraint on every database (NULLs are never equal in a unique index).

Why one module of ~500 lines: these are the core's tables (portals, history, runs, deviations),
declarations only, read together when writing a migration; the tables of the later parts (alerts,
console users, sign-off) live beside their queries and are imported at the bottom.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Column, Field, SQLModel



class ExactDecimal(TypeDecorator):
    """Decimal figures exactly as the portal wrote them, on both databases.

    PostgreSQL: NUMERIC(28, 10). SQLite has no decimal type and stores REAL; reading it back through
    ``repr(float)`` (the shortest text that round-trips) returns exactly the decimal that was
    written for any figure of up to 15 significant digits: 33.99994 stays 33.99994, and
    98,765,432,109.8765 million rials stays itself. (A fixed scale would either cut 33.99994, which
    the reconciliation rules must see unrounded, or invent digits in large amounts.)

    Reading is the dialect type's own result processor (:class:`_RealAsDecimal` on SQLite; psycopg
    already gives Decimals): no ``process_result_value``, whose wrapper costs two Python calls per
    figure, and a run reads millions of figures.
    """

    impl = sa.Numeric(28, 10)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_RealAsDecimal())
        return dialect.type_descriptor(sa.Numeric(28, 10))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return float(value) if dialect.name == "sqlite" else Decimal(value)


class _RealAsDecimal(sa.Float):
    """SQLite's REAL read back as the exact Decimal that was written (see ExactDecimal)."""

    cache_ok = True

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return decimal_of_real


def decimal_of_real(value: Any) -> Decimal | None:
    """A figure SQLite gives back (REAL, or an integer or text another writer left) as the exact
    Decimal that was written: ``repr`` of a float is its shortest round-tripping text."""
    if value.__class__ is float:
        return Decimal(repr(value))
    return None if value is None else Decimal(value)


AMOUNT = ExactDecimal()  # million rials
PERCENT = ExactDecimal()
QUANTITY = ExactDecimal()
UNIT_COST = ExactDecimal()


class UTCDateTime(TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend.

    SQLite has no time zone type; PostgreSQL's timestamptz returns the session's zone. Normalising to
    UTC at this one place keeps comparisons and high-water marks exact everywhere.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware datetimes only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _amount(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(AMOUNT, nullable=nullable))


def _percent() -> Any:
    return Field(default=None, sa_column=Column(PERCENT, nullable=True))


def _quantity() -> Any:
    return Field(default=None, sa_column=Column(QUANTITY, nullable=True))


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


# --- reference data ---------------------------------------------------------------------------


class Agency(SQLModel, table=True):
    """Executive agency (دستگاه اجرایی), keyed by the code both portals use."""

    code: str = Field(primary_key=True, max_length=32)
    name: str
    name_key: str = Field(index=True)


class County(SQLModel, table=True):
    """County (شهرستان). Nezarat-4 names counties, SABA also gives a code: match on the name key."""

    id: int | None = Field(default=None, primary_key=True)
    name: str
    name_key: str = Field(unique=True)
    code: str | None = Field(default=None, max_length=16)


class Plan(SQLModel, table=True):
    """Plan (طرح): the budgeting unit a project belongs to."""

    code: str = Field(primary_key=True, max_length=64)
    title: str | None = None


# --- capital projects (Nezarat-4) -------------------------------------------------------------


class Project(SQLModel, table=True):
    """A project (پروژه): the unit physical progress is reported on. Stable across fiscal years."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, max_length=64)
    portal_id: int | None = Field(default=None, index=True)  # Nezarat-4's internal id
    plan_code: str | None = Field(default=None, foreign_key="plan.code", max_length=64)


class ProjectYear(SQLModel, table=True):
    """Everything one Nezarat-4 detail page says of a project for one fiscal year.

    The identity fields (title, agency, county, cost, years) are kept per year because the portal
    shows them per year and they can change (a county split, an agency renamed).
    """

    __tablename__ = "project_year"
    __table_args__ = (sa.UniqueConstraint("project_id", "fiscal_year"),)

    id: int | None = Field(default=None, primary_key=True)
    project_id: int = Field(foreign_key="project.id", index=True)
    fiscal_year: int = Field(index=True)
    title: str
    title_key: str
    agency_code: str = Field(foreign_key="agency.code", index=True)
    county_id: int | None = Field(default=None, foreign_key="county.id", index=True)
    location: str | None = None
    start_year: int | None = None
    end_year: int | None = None
    total_cost: Decimal | None = _amount()
    progress_at_year_start: Decimal | None = _percent()
    agreement_no: str | None = Field(default=None, max_length=64, index=True)
    agreement_date: date | None = None
    agreement_status: str = Field(max_length=16)  # exchanged | awaiting | amended | cancelled
    # the plan (طرح) the portal shows the project under in this year (docs/decisions.md: the plan is
    # kept per year; project.plan_code is the latest year's)
    plan_code: str | None = Field(default=None, foreign_key="plan.code", max_length=64)
    # planned cumulative physical progress at the end of each quarter (gvTargets); None = no target
    target_q1: Decimal | None = _percent()
    target_q2: Decimal | None = _percent()
    target_q3: Decimal | None = _percent()
    target_q4: Decimal | None = _percent()
    # the gvCredits `total` row as the portal printed it (credit_inconsistency checks it too)
    total_approved: Decimal | None = _amount()
    total_notified: Decimal | None = _amount()
    total_allocated: Decimal | None = _amount()
    total_absorbed: Decimal | None = _amount()
    last_modified: datetime | None = _when()
    gone: bool = Field(default=False, index=True)  # no longer listed by the portal
    first_run_id: int | None = Field(default=None, foreign_key="sync_run.id")
    last_run_id: int | None = Field(default=None, foreign_key="sync_run.id", index=True)  # last seen in


class ProjectCredit(SQLModel, table=True):
    """One funding source row of a project's year (gvCredits), cumulative within the year."""

    __tablename__ = "project_credit"
    __table_args__ = (sa.UniqueConstraint("project_year_id", "source_key"),)

    id: int | None = Field(default=None, primary_key=True)
    project_year_id: int = Field(foreign_key="project_year.id", index=True)
    source: str  # ملی, استانی, درآمد اختصاصی, سایر, ...
    source_key: str
    approved: Decimal | None = _amount()
    notified: Decimal | None = _amount()
    allocated: Decimal | None = _amount()
    absorbed: Decimal | None = _amount()
    # the sync run that inserted / last changed the row (reconcile/changes.py: work in proportion to
    # change); no foreign key constraint, so that migration 0007 only adds columns (0003 says why)
    first_run_id: int | None = None
    last_run_id: int | None = Field(default=None, index=True)


# A report or performance item the comptroller has not approved (pending or rejected; 'approved' as
# reconcile.facts.APPROVED says it: the store does not import reconcile). A few per cent of the rows.
NOT_APPROVED = "comptroller_status != 'approved'"


def pending_index(name: str, *columns: str) -> sa.Index:
    """A partial index of the rows the comptroller has not approved, in the order of `columns`: the
    approval_overdue rules read those rows by it rather than every row (migration 0011; at 100k
    projects 20,000 of 1,000,000 performance items; docs/benchmarks.md, session 22)."""
    return sa.Index(name, *columns, sqlite_where=sa.text(NOT_APPROVED), postgresql_where=sa.text(NOT_APPROVED))


class ProgressReport(SQLModel, table=True):
    """A quarterly performance report of a project (gvPerformance row). One per quarter."""

    __tablename__ = "progress_report"
    __table_args__ = (sa.UniqueConstraint("project_year_id", "quarter"),
                      pending_index("ix_progress_report_pending", "project_year_id", "quarter"))

    id: int | None = Field(default=None, primary_key=True)
    project_year_id: int = Field(foreign_key="project_year.id", index=True)
    quarter: int
    reported_on: date | None = None
    progress: Decimal | None = _percent()  # cumulative physical progress at the quarter's end
    absorbed: Decimal | None = _amount()  # cumulative absorbed credit within the year
    comptroller_status: str = Field(max_length=16)  # approved | pending | rejected
    decided_on: date | None = None
    remarks: str | None = None
    first_run_id: int | None = Field(default=None, foreign_key="sync_run.id")
    last_run_id: int | None = Field(default=None, foreign_key="sync_run.id", index=True)  # last changed in


class FieldInspection(SQLModel, table=True):
    """A budget expert's field visit (بازدید میدانی): the observed physical progress on a day."""

    __tablename__ = "field_inspection"
    __table_args__ = (sa.UniqueConstraint("project_code", "visited_on", "inspector_key"),)

    id: int | None = Field(default=None, primary_key=True)
    project_code: str = Field(foreign_key="project.code", index=True, max_length=64)
    visited_on: date
    observed_progress: Decimal = Field(sa_column=Column(PERCENT, nullable=False))
    inspector: str
    inspector_key: str
    remarks: str | None = None
    source_file: str | None = None
    imported_at: datetime | None = _when()
    # The import that last wrote the visit, counted from 1 in the order imports commit
    # (reconcile.inspections ``import_file``): a reconciliation judges again the project years whose
    # visits were written since the last run's largest (reconcile/changes.py). None: written before
    # migration 0012, whose first run judges everything.
    revision: int | None = Field(default=None, index=True)


# --- expense agreements (SABA) ----------------------------------------------------------------


class ExpenseAgreement(SQLModel, table=True):
    """A provincial current-expense agreement (موافقتنامه هزینه‌ای) of one fiscal year."""

    __tablename__ = "expense_agreement"
    __table_args__ = (sa.UniqueConstraint("agreement_no", "fiscal_year"),)

    id: int | None = Field(default=None, primary_key=True)
    portal_id: int | None = Field(default=None, index=True)  # SABA's internal id
    agreement_no: str = Field(max_length=64)
    fiscal_year: int = Field(index=True)
    agency_code: str = Field(foreign_key="agency.code", index=True)
    county_id: int | None = Field(default=None, foreign_key="county.id", index=True)
    program_code: str = Field(max_length=64)
    program_title: str | None = None
    status: str = Field(max_length=16)  # exchanged | awaiting | amended | cancelled
    exchanged_on: date | None = None
    modified_at: datetime | None = _when()
    # operations + performance are read with two more calls; False until they landed for the
    # current modified_at, so an interrupted sync knows which details it still owes
    detail_synced: bool = Field(default=False)
    gone: bool = Field(default=False, index=True)
    first_run_id: int | None = Field(default=None, foreign_key="sync_run.id")
    last_run_id: int | None = Field(default=None, foreign_key="sync_run.id", index=True)


class ExpenseCredit(SQLModel, table=True):
    """One expense chapter (فصل هزینه) of an agreement, cumulative within the year."""

    __tablename__ = "expense_credit"
    __table_args__ = (sa.UniqueConstraint("agreement_id", "chapter"),)

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="expense_agreement.id", index=True)
    chapter: int
    title: str | None = None
    approved: Decimal | None = _amount()
    notified: Decimal | None = _amount()
    allocated: Decimal | None = _amount()
    spent: Decimal | None = _amount()
    # the sync run that inserted / last changed the row (reconcile/changes.py: work in proportion to
    # change); no foreign key constraint, so that migration 0007 only adds columns (0003 says why)
    first_run_id: int | None = None
    last_run_id: int | None = Field(default=None, index=True)


class Operation(SQLModel, table=True):
    """An operation (فعالیت) of an agreement with its per-quarter quantity targets."""

    __table_args__ = (sa.UniqueConstraint("agreement_id", "code"),)

    id: int | None = Field(default=None, primary_key=True)
    agreement_id: int = Field(foreign_key="expense_agreement.id", index=True)
    code: str = Field(max_length=64)
    title: str | None = None
    unit: str | None = None
    annual_target: Decimal | None = _quantity()
    # planned quantity OF each quarter (not cumulative), as SABA gives them
    target_q1: Decimal | None = _quantity()
    target_q2: Decimal | None = _quantity()
    target_q3: Decimal | None = _quantity()
    target_q4: Decimal | None = _quantity()
    unit_cost: Decimal | None = Field(default=None, sa_column=Column(UNIT_COST, nullable=True))
    # the sync run that inserted / last changed the row (reconcile/changes.py: work in proportion to
    # change); no foreign key constraint, so that migration 0007 only adds columns (0003 says why)
    first_run_id: int | None = None
    last_run_id: int | None = Field(default=None, index=True)


class OperationPerformance(SQLModel, table=True):
    """What was delivered and spent on an operation in one quarter (per quarter, not cumulative)."""

    __tablename__ = "operation_performance"
    __table_args__ = (sa.UniqueConstraint("operation_id", "quarter"),
                      pending_index("ix_operation_performance_pending", "operation_id", "quarter"))

    id: int | None = Field(default=None, primary_key=True)
    operation_id: int = Field(foreign_key="operation.id", index=True)
    quarter: int
    quantity: Decimal | None = _quantity()
    spent: Decimal | None = _amount()
    reported_on: date | None = None
    comptroller_status: str = Field(max_length=16)
    decided_on: date | None = None
    remarks: str | None = None
    first_run_id: int | None = Field(default=None, foreign_key="sync_run.id")
    last_run_id: int | None = Field(default=None, foreign_key="sync_run.id", index=True)


# --- sync bookkeeping -------------------------------------------------------------------------


class SyncRun(SQLModel, table=True):
    """One sync of one source: what was asked, read, stored and why it ended as it did."""

    __tablename__ = "sync_run"

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16, index=True)
    mode: str = Field(max_length=16)  # full | incremental
    fiscal_years: str  # "1404,1405"
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = _when()
    # running | success | incomplete | failed | interrupted (found running by a later run)
    status: str = Field(max_length=16, index=True)
    announced: int = 0  # items the portal said there were (lblCount / totalCount)
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    rejected: int = 0
    requests: int = 0
    error: str | None = None  # the one-line reason it stopped, if it did
    stats: dict[str, Any] | None = Field(default=None, sa_column=Column(sa.JSON, nullable=True))


class RejectedRecord(SQLModel, table=True):
    """A row or item a run could not read: raw value, field and why."""

    __tablename__ = "rejected_record"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="sync_run.id", index=True)
    source: str = Field(max_length=16)
    locator: str
    reason: str
    field: str | None = None
    raw: str | None = None
    key: str | None = None


class SyncState(SQLModel, table=True):
    """Per source and fiscal year: the high-water mark and whether a full pass is owed.

    The mark is written in the same transaction as the last data it covers, never before.
    """

    __tablename__ = "sync_state"

    source: str = Field(primary_key=True, max_length=16)
    fiscal_year: int = Field(primary_key=True)
    high_water_mark: datetime | None = _when()
    full_pending: bool = False  # a --full run was interrupted: the next run completes it
    full_started_at: datetime | None = _when()
    last_run_id: int | None = Field(default=None, foreign_key="sync_run.id")


class ChangeLog(SQLModel, table=True):
    """History of reported figures: what a field was, what it became, and which run saw it."""

    __tablename__ = "change_log"
    __table_args__ = (sa.Index("ix_change_log_entity", "entity", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="sync_run.id", index=True)
    entity: str = Field(max_length=32)  # table name
    entity_id: int
    business_key: str  # "1305012007-003/1405/q2", "1405-032-11002/1405/11002-03/q1", ...
    field: str = Field(max_length=64)
    old_value: str | None = None  # canonical text of the value (Decimal/ISO date), None = absent
    new_value: str | None = None
    changed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


# --- reconciliation ---------------------------------------------------------------------------


class ReconcileRun(SQLModel, table=True):
    """One reconciliation run: as of which day, over which years, and how often each rule fired."""

    __tablename__ = "reconcile_run"

    id: int | None = Field(default=None, primary_key=True)
    as_of: date
    fiscal_years: str
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = _when()
    status: str = Field(max_length=16)
    stats: dict[str, Any] | None = Field(default=None, sa_column=Column(sa.JSON, nullable=True))


class Deviation(SQLModel, table=True):
    """A finding of a rule, identified as the catalogue says: (rule, subject, fiscal year, quarter).

    ``kind`` (capital | expense) joins the identity because three rule ids exist in both families.
    ``quarter`` is 0 when the rule records no quarter.
    """

    __table_args__ = (sa.UniqueConstraint("kind", "rule", "subject", "fiscal_year", "quarter"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # capital | expense
    # Indexes: the identity, subject (one project's or agreement's deviations) and agency (an
    # expert's agencies). Rule, year and status are few values each: a scan is as fast, and every
    # index slows the first run, which opens hundreds of thousands of deviations.
    rule: str = Field(max_length=64)
    subject: str = Field(max_length=160, index=True)  # project code | agreement no | agreement_no/op
    fiscal_year: int
    quarter: int = 0
    severity: str = Field(max_length=16)  # minor | major | critical
    # open | resolved | acknowledged | dismissed
    status: str = Field(max_length=16)
    # what alerting still owes: new | escalated | none (set to none once queued in the outbox)
    alert_state: str = Field(default="new", max_length=16)
    planned: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal(), nullable=True))
    actual: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal(), nullable=True))
    measure: Decimal | None = Field(default=None, sa_column=Column(ExactDecimal(), nullable=True))
    numbers: dict[str, Any] | None = Field(default=None, sa_column=Column(sa.JSON, nullable=True))
    message: str  # the Persian sentence a budget expert reads
    # Finding.fingerprint of the content above and the evidence below: a re-run compares digests
    fingerprint: str | None = Field(default=None, max_length=32)
    agency_code: str | None = Field(default=None, max_length=32, index=True)
    # county_id, reconcile_run_id, sync_run_id refer to county / reconcile_run / sync_run without a
    # foreign key constraint: migration 0003 says why (per-row checks on a run's 100,000s of inserts)
    county_id: int | None = None
    first_found_on: date
    last_found_on: date
    resolved_on: date | None = None
    reconcile_run_id: int | None = None  # the run that last changed it
    sync_run_id: int | None = None  # the sync run that last changed its evidence
    evidence_table: str | None = Field(default=None, max_length=32)  # progress_report, ...
    evidence_id: int | None = None
    acted_by: str | None = None  # who acknowledged / dismissed
    acted_reason: str | None = None
    acted_at: datetime | None = _when()
    updated_at: datetime | None = _when()


class DeviationFound(SQLModel, table=True):
    """The day the latest recorded reconciliation run found the active deviations of a rule and
    fiscal year again: each of them, found anew or carried, was found on ``found_on``.

    A recording run leaves every active deviation of its years and rules found or resolved
    (reconcile/lifecycle.py), so their "last found" day is the run's: one row here a rule and year,
    instead of rewriting ``last_found_on`` on every such deviation each day (a nightly run at 100k
    rewrote the whole deviation table, 200 MB, for one date; docs/benchmarks.md, session 21). A
    deviation's own ``last_found_on`` is exact when it was written (opened, changed, resolved,
    dismissed) and may be older while it stays active: read it through :func:`last_found`.
    """

    __tablename__ = "deviation_found"

    kind: str = Field(primary_key=True, max_length=16)
    rule: str = Field(primary_key=True, max_length=64)
    fiscal_year: int = Field(primary_key=True)
    found_on: date
    reconcile_run_id: int | None = None  # the run that found them (no foreign key: migration 0003)


def agreement_numbers_in(subject: str) -> list[str]:
    """The agreement numbers an expense deviation's subject may name, longest first: the subject
    itself (an agreement's rule) and each part before a '/' (an operation's: ``agreement_no/op``).
    An agreement number may hold '/' itself (``1405/032/11002``), so the part before the first '/'
    is not it; the caller takes the one the store holds."""
    parts = subject.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 0, -1)]


ACTIVE_STATUSES = ("open", "acknowledged")  # a deviation someone still has to deal with


def last_found(d: sa.Table | Any, found: sa.Table | None = None) -> sa.ColumnElement[date]:
    """A deviation's last day found (`d`: the deviation table or an alias of it): its own
    ``last_found_on``, or, while it is active, the day a later run found its rule and year again
    (:class:`DeviationFound`). Label it where a row is read by name. `found`: the DeviationFound
    table, joined by the caller on :func:`found_again_of` (a sort of every row: a join, not a
    subquery per row); else a correlated subquery.

    In SQL: ``CASE WHEN status IN ('open', 'acknowledged') THEN COALESCE((SELECT found_on FROM
    deviation_found f WHERE f.kind = d.kind AND f.rule = d.rule AND f.fiscal_year = d.fiscal_year
    AND f.found_on > d.last_found_on), d.last_found_on) ELSE d.last_found_on END``."""
    if found is not None:
        later = sa.case((found.c.found_on > d.c.last_found_on, found.c.found_on), else_=d.c.last_found_on)
        return sa.case((d.c.status.in_(ACTIVE_STATUSES), later), else_=d.c.last_found_on)
    table = DeviationFound.__table__
    day = (sa.select(table.c.found_on).where(found_again_of(d, table), table.c.found_on > d.c.last_found_on)
           .scalar_subquery())
    return sa.case((d.c.status.in_(ACTIVE_STATUSES), sa.func.coalesce(day, d.c.last_found_on)),
                   else_=d.c.last_found_on)


def found_again_of(d: sa.Table | Any, found: sa.Table | None = None) -> sa.ColumnElement[bool]:
    """The :class:`DeviationFound` row of a deviation's rule and year (a join's condition)."""
    found = DeviationFound.__table__ if found is None else found
    return sa.and_(found.c.kind == d.c.kind, found.c.rule == d.c.rule, found.c.fiscal_year == d.c.fiscal_year)


def deviation_as_read(d: sa.Table | Any = None) -> list[sa.ColumnElement[Any]]:
    """Every column of a deviation (`d`: the table, or an alias of it), ``last_found_on`` as
    :func:`last_found` reads it: ``select(*deviation_as_read())`` instead of ``select(deviation)``."""
    d = Deviation.__table__ if d is None else d
    return [last_found(d).label("last_found_on") if c.name == "last_found_on" else c for c in d.c]


class DeviationEvent(SQLModel, table=True):
    """The life of a deviation, one row per step: opened, escalated, resolved, reopened, acked..."""

    __tablename__ = "deviation_event"

    id: int | None = Field(default=None, primary_key=True)
    deviation_id: int = Field(foreign_key="deviation.id", index=True)
    event: str = Field(max_length=16)
    severity: str | None = Field(default=None, max_length=16)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    reconcile_run_id: int | None = None  # no foreign key constraint: migration 0003
    by: str | None = None
    reason: str | None = None


METADATA = SQLModel.metadata

# Tables of the parts that tell people live beside their queries, one module each; importing them
# here registers them in METADATA (migrations and the schema test compare against it).
from store import alerts, reviews, users  # noqa: E402,F401
