"""The store, on SQLite and PostgreSQL: schema, business keys, bulk writes with history, gone items,
exact numbers, aware datetimes, the one-sync-at-a-time lock and the export.

Every test takes the ``engine`` fixture (tests/conftest.py), so it runs once per backend; each
PostgreSQL run has a schema of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from foundation.jalali import TEHRAN
from foundation.records import (
    AgreementDetail,
    CreditRow,
    ExpenseAgreementRecord,
    ExpenseCredit,
    OperationPerformanceRecord,
    OperationRecord,
    ProgressReportRecord,
    ProjectDetail,
)
from store import nezarat4_rows, saba_rows
from store import upsert as upsert_module
from store.db import head_revision, make_engine, open_store, refresh_statistics
from store.driver import analyze_if_large
from store.export import export_agreements, export_projects
from store.locks import LockHeld, exclusive
from store.models import (
    METADATA,
    Agency,
    ChangeLog,
    County,
    Deviation,
    ExpenseAgreement,
    Operation,
    OperationPerformance,
    Plan,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
    SyncRun,
    utcnow,
)
from store.models import ExpenseCredit as ExpenseCreditRow
from store.upsert import WriteCounts

ROOT = Path(__file__).resolve().parents[1]
T = lambda model: model.__table__  # noqa: E731

MODIFIED = datetime(2026, 10, 20, 9, 30, tzinfo=TEHRAN)
TITLE = "احداث مدرسه‌ی روستایی ۱۲ کلاسه"  # with a ZWNJ, Persian yeh
TITLE_RESPELT = "احداث مدرسه ی روستايي ۱۲  کلاسه"  # space for the ZWNJ, Arabic yeh, double space


# --- builders ---------------------------------------------------------------------------------


def new_run(engine: Engine, source: str = "nezarat4") -> int:
    with engine.begin() as conn:
        result = conn.execute(sa.insert(T(SyncRun)).values(
            source=source, mode="full", fiscal_years="1405", started_at=utcnow(), status="running"))
        return result.inserted_primary_key[0]


def project(code: str = "1305012007-003", **changes: object) -> ProjectDetail:
    detail = ProjectDetail(
        portal_id=48213, fiscal_year=1405, project_code=code, title=TITLE,
        plan_code="1305012007", plan_title="توسعه فضاهای آموزشی", agency_code="305",
        agency_name="اداره کل آموزش و پرورش", county="اهواز", location="روستای ام‌الطمیر",
        start_year=1402, end_year=1406, total_cost=Decimal("123456789.1234"),
        progress_at_year_start=Decimal("0.85"), agreement_no="1405-0117", agreement_date=date(2026, 5, 2),
        agreement_status="exchanged", last_modified=MODIFIED,
        credits=[
            CreditRow("ملی", Decimal("31250.5"), Decimal("20000"), Decimal("15000"), Decimal("12000.25")),
            CreditRow("استانی", Decimal("8000"), Decimal("6000"), Decimal("4000"), Decimal("3000")),
        ],
        credit_total=CreditRow("جمع", Decimal("39250.5"), Decimal("26000"), Decimal("19000"), Decimal("15000.25")),
        targets={1: Decimal("10"), 2: Decimal("25"), 3: Decimal("45.5"), 4: Decimal("70")},
        reports=[
            ProgressReportRecord(1, date(2026, 7, 8), Decimal("9.5"), Decimal("5000"), "approved", date(2026, 7, 20), None),
            ProgressReportRecord(2, date(2026, 10, 5), Decimal("22.75"), Decimal("12000.25"), "pending", None, "با تأخیر"),
        ],
    )
    return dataclasses.replace(detail, **changes)


def agreement(number: str = "1405-032-11002", **changes: object) -> ExpenseAgreementRecord:
    record = ExpenseAgreementRecord(
        portal_id=7001, agreement_no=number, fiscal_year=1405, agency_code="118", agency_name="جهاد کشاورزی",
        county_code="0607", county_name="دزفول", program_code="11002", program_title="ترویج کشاورزی",
        status="exchanged", exchanged_on=date(2026, 5, 10), modified_at=MODIFIED,
        credits=[
            ExpenseCredit(1, "جبران خدمت کارکنان", Decimal("5000"), Decimal("4000"), Decimal("3000"), Decimal("2500.5")),
            ExpenseCredit(2, "استفاده از کالا و خدمات", Decimal("1200"), None, None, None),
        ],
    )
    return dataclasses.replace(record, **changes)


def agreement_detail(quantity: str = "40") -> AgreementDetail:
    return AgreementDetail(
        portal_id=7001,
        operations=[OperationRecord("11002-03", "آموزش بهره‌برداران", "نفر-روز", Decimal("400"),
                                    (Decimal("100"), Decimal("100"), Decimal("100"), Decimal("100")),
                                    Decimal("1234.567891"))],
        performance=[OperationPerformanceRecord(1, "11002-03", Decimal(quantity), Decimal("45.5"), date(2026, 7, 1),
                                                "approved", date(2026, 7, 15), None)],
    )


def save_projects(engine: Engine, run_id: int, *details: ProjectDetail) -> WriteCounts:
    with engine.begin() as conn:
        return nezarat4_rows.save_project_details(conn, run_id, list(details))


def save_agreements(engine: Engine, run_id: int, *records: ExpenseAgreementRecord) -> saba_rows.AgreementsSaved:
    with engine.begin() as conn:
        return saba_rows.save_agreements(conn, run_id, list(records))


def count(conn: Connection, model: type) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(T(model))).scalar_one()


def counts(engine: Engine) -> dict[str, int]:
    models = (Agency, Plan, County, Project, ProjectYear, ProjectCredit, ProgressReport, ExpenseAgreement,
              ExpenseCreditRow, Operation, OperationPerformance, ChangeLog)
    with engine.connect() as conn:
        return {m.__name__: count(conn, m) for m in models}


def change_log(engine: Engine) -> list[tuple]:
    c = T(ChangeLog).c
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(c.entity, c.business_key, c.field, c.old_value, c.new_value, c.run_id).order_by(c.id))]


def one(engine: Engine, query: sa.Select) -> sa.Row:
    with engine.connect() as conn:
        return conn.execute(query).one()


def report_row(engine: Engine, quarter: int) -> sa.Row:
    return one(engine, sa.select(T(ProgressReport)).where(T(ProgressReport).c.quarter == quarter))


def year_row(engine: Engine, code: str = "1305012007-003") -> sa.Row:
    py, p = T(ProjectYear), T(Project)
    return one(engine, sa.select(py).join(p, p.c.id == py.c.project_id).where(p.c.code == code))


# --- schema -----------------------------------------------------------------------------------


def test_migrations_create_every_model_table(engine: Engine) -> None:
    tables = set(sa.inspect(engine).get_table_names())
    assert set(METADATA.tables) <= tables
    assert tables - set(METADATA.tables) == {"alembic_version"}


def test_migrations_match_the_models_exactly(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, METADATA) == []
        assert ctx.get_current_revision() == head_revision()


def test_the_head_read_from_file_names_is_alembics_head() -> None:
    """Opening a store compares its version with head_revision, which reads the migrations' file
    names instead of importing alembic; alembic's own reading of the scripts must agree."""
    from alembic.script import ScriptDirectory

    from store.db import MIGRATIONS, _alembic_config

    script = ScriptDirectory.from_config(_alembic_config(sa.create_engine("sqlite://")))
    assert head_revision() == script.get_current_head()
    for revision in script.walk_revisions():  # each file is named after the revision it holds
        assert Path(revision.path).name.startswith(f"{revision.revision}_")
        assert Path(revision.path).parent == MIGRATIONS / "versions"


def test_migration_0009_indexes_last_run_id_and_goes_down(store_url: str) -> None:
    """An incremental reconciliation asks these tables what a sync wrote since the last run, by
    last_run_id (reconcile/changes.py): each has its index after the upgrade, none after a downgrade."""
    from alembic import command

    from store.db import _alembic_config, upgrade

    tables = {t.name for t in METADATA.tables.values()  # the models' indexes, which 0009 must create
              if "last_run_id" in t.c and any(list(ix.columns) == [t.c.last_run_id] for ix in t.indexes)}
    assert {"project_year", "progress_report", "operation_performance"} <= tables

    def indexed() -> set[str]:
        inspector = sa.inspect(engine)
        return {t for t in tables for ix in inspector.get_indexes(t) if ix["column_names"] == ["last_run_id"]}

    engine = make_engine(store_url)
    try:
        upgrade(engine, "0008")
        assert indexed() == set()
        upgrade(engine)
        assert indexed() == set(tables)
        command.downgrade(_alembic_config(engine), "0008")
        assert indexed() == set()
    finally:
        engine.dispose()


def test_migration_0012_numbers_field_visits_and_goes_down(store_url: str) -> None:
    """Field visits carry the revision of the import that last wrote them (reconcile/changes.py),
    indexed; a visit stored before the upgrade keeps its figures and has none; a downgrade to 0011
    removes the column and its index."""
    from alembic import command

    from store.db import _alembic_config, upgrade

    engine = make_engine(store_url)

    def visits() -> tuple[list[str], list[str]]:
        inspector = sa.inspect(engine)
        return ([c["name"] for c in inspector.get_columns("field_inspection")],
                [ix["name"] for ix in inspector.get_indexes("field_inspection")])

    try:
        upgrade(engine, "0011")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO project (code) VALUES ('p')"))
            conn.execute(sa.text("INSERT INTO field_inspection (project_code, visited_on, observed_progress, "
                                 "inspector, inspector_key) VALUES ('p', '2026-11-01', 40, 'x', 'x')"))
        assert "revision" not in visits()[0]
        upgrade(engine)
        columns, indexes = visits()
        assert "revision" in columns and "ix_field_inspection_revision" in indexes
        with engine.connect() as conn:
            kept = conn.execute(sa.text("SELECT observed_progress, revision FROM field_inspection")).one()
        assert (float(kept[0]), kept[1]) == (40.0, None)
        command.downgrade(_alembic_config(engine), "0011")
        columns, indexes = visits()
        assert "revision" not in columns and "ix_field_inspection_revision" not in indexes
    finally:
        engine.dispose()


def test_migration_0013_gives_console_users_a_session_epoch_and_goes_down(store_url: str) -> None:
    """Console users get a session epoch (web/app.py: signing out, a new password and disabling end
    their sessions): a user stored before the upgrade has 0, and the column takes no NULL; a
    downgrade to 0012 removes it and keeps the user."""
    from alembic import command

    from store.db import _alembic_config, upgrade

    engine = make_engine(store_url)

    def columns() -> dict[str, dict]:
        return {c["name"]: c for c in sa.inspect(engine).get_columns("console_user")}

    try:
        upgrade(engine, "0012")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO console_user (username, display_name, role, groups, password_hash, "
                                 "disabled, created_at) VALUES ('ali', 'علی', 'expert', 'social', '$argon2id$x', "
                                 ":no, :at)"), {"no": False, "at": datetime(2026, 12, 1, tzinfo=timezone.utc)})
        assert "session_epoch" not in columns()
        upgrade(engine)
        assert columns()["session_epoch"]["nullable"] is False
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT session_epoch FROM console_user")).scalar_one() == 0
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(sa.text("UPDATE console_user SET session_epoch = NULL"))
        command.downgrade(_alembic_config(engine), "0012")
        assert "session_epoch" not in columns()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT username FROM console_user")).scalar_one() == "ali"
    finally:
        engine.dispose()


def test_migration_0011_indexes_the_pending_rows_and_goes_down(store_url: str) -> None:
    """The approval_overdue rules read the reports and performance items the comptroller has not
    approved by partial indexes (reconcile/rules/): after the upgrade each exists and holds only
    those rows; after a downgrade to 0010 neither does."""
    from alembic import command

    from store.db import _alembic_config, upgrade

    names = {"progress_report": "ix_progress_report_pending",
             "operation_performance": "ix_operation_performance_pending"}

    def indexed() -> dict[str, list[str]]:
        inspector = sa.inspect(engine)
        return {t: ix["column_names"] for t, name in names.items() for ix in inspector.get_indexes(t)
                if ix["name"] == name}

    engine = make_engine(store_url)
    try:
        upgrade(engine, "0010")
        assert indexed() == {}
        upgrade(engine)
        assert indexed() == {"progress_report": ["project_year_id", "quarter"],
                             "operation_performance": ["operation_id", "quarter"]}
        with engine.connect() as conn:  # partial: the rows not approved only
            if engine.dialect.name == "postgresql":
                definitions = conn.execute(sa.text("SELECT indexdef FROM pg_indexes WHERE indexname IN :n "
                                           "AND schemaname = current_schema()")
                                           .bindparams(sa.bindparam("n", expanding=True)),
                                           {"n": list(names.values())}).scalars().all()
            else:
                definitions = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE name IN :n")
                                           .bindparams(sa.bindparam("n", expanding=True)),
                                           {"n": list(names.values())}).scalars().all()
        assert len(definitions) == 2
        # SQLite keeps the statement as written; PostgreSQL its own form: ((comptroller_status)::text <> 'approved'::text)
        assert all("comptroller_status != 'approved'" in d if engine.dialect.name == "sqlite" else
                   "comptroller_status)::text <> 'approved'" in d for d in definitions), definitions
        command.downgrade(_alembic_config(engine), "0010")
        assert indexed() == {}
    finally:
        engine.dispose()


def _insert_project(conn: Connection) -> None:
    conn.execute(sa.insert(T(Project)).values(code="1305012007-003"))


def _insert_year(conn: Connection) -> None:
    project_id = conn.execute(sa.select(T(Project).c.id)).scalar_one()
    conn.execute(sa.insert(T(ProjectYear)).values(
        project_id=project_id, fiscal_year=1405, title="t", title_key="t", agency_code="305",
        agreement_status="exchanged", gone=False))


def _insert_agreement(conn: Connection) -> None:
    conn.execute(sa.insert(T(ExpenseAgreement)).values(
        agreement_no="1405-032-11002", fiscal_year=1405, agency_code="305", program_code="11002",
        status="exchanged", detail_synced=False, gone=False))


def _insert_deviation(conn: Connection) -> None:
    conn.execute(sa.insert(T(Deviation)).values(
        kind="capital", rule="progress_lag", subject="1305012007-003", fiscal_year=1405, quarter=2,
        severity="major", status="open", alert_state="new", message="عقب‌ماندگی",
        first_found_on=date(2026, 11, 1), last_found_on=date(2026, 11, 1)))


BUSINESS_KEYS = {
    "project code": _insert_project,
    "project + fiscal year": _insert_year,
    "agreement no + fiscal year": _insert_agreement,
    "deviation identity": _insert_deviation,
}


@pytest.mark.postgres
def test_every_postgresql_schema_of_the_pool_is_used_again(_pg_schemas) -> None:
    """Not only the first: two schemas out at once (each migrated on its own, with its own name and
    oids) both go back and are both taken again, so the suite migrates once per parallel test."""
    if not _pg_schemas.database:
        pytest.skip("TEST_DATABASE_URL is not set")
    first, second = _pg_schemas.take(), _pg_schemas.take()
    _pg_schemas.give_back(first)
    _pg_schemas.give_back(second)
    assert {_pg_schemas.take(), _pg_schemas.take()} == {first, second}
    _pg_schemas.give_back(first)
    _pg_schemas.give_back(second)


@pytest.mark.postgres
def test_a_postgresql_store_emptied_for_the_next_test_is_as_new(_pg_schemas) -> None:
    """tests/conftest.py gives a test that asks for `engine` on PostgreSQL a schema another test
    used and emptied: no rows, identities restarted, no statistics, no counters, as a new store."""
    if not _pg_schemas.database:
        pytest.skip("TEST_DATABASE_URL is not set")
    url = _pg_schemas.take()
    eng = open_store(url)
    first_run = new_run(eng)
    save_projects(eng, first_run, project())
    refresh_statistics(eng, list(METADATA.sorted_tables))
    eng.dispose()
    _pg_schemas.give_back(url)
    again = _pg_schemas.take()
    assert again == url  # used again, not migrated anew
    eng = open_store(again)
    try:
        assert set(counts(eng).values()) == {0}
        with eng.connect() as conn:
            namespace = "(SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace)"
            assert conn.exec_driver_sql(f"SELECT count(*) FROM pg_statistic WHERE starelid IN {namespace}").scalar() == 0
            assert conn.exec_driver_sql("SELECT max(reltuples) FROM pg_class WHERE relkind = 'r' "
                                        "AND relnamespace = current_schema()::regnamespace").scalar() == -1
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() "
                                        "AND last_analyze IS NOT NULL").scalar() == 0
        assert new_run(eng) == first_run  # identities restarted
        with eng.begin() as conn:  # a test that drew an id and left its table empty
            conn.execute(sa.delete(T(SyncRun)))
    finally:
        eng.dispose()
    _pg_schemas.give_back(again)
    assert _pg_schemas.take() == again
    eng = open_store(again)
    assert new_run(eng) == first_run  # that identity restarted too
    with eng.begin() as conn:  # a test that changes the store's shape: its schema is not used again
        conn.exec_driver_sql("ALTER TABLE agency ADD COLUMN extra integer")
    eng.dispose()
    _pg_schemas.give_back(again)
    assert _pg_schemas.take() != again


@pytest.mark.parametrize("business_key", list(BUSINESS_KEYS))
def test_business_key_is_unique(engine: Engine, business_key: str) -> None:
    insert = BUSINESS_KEYS[business_key]
    with engine.begin() as conn:
        conn.execute(sa.insert(T(Agency)).values(code="305", name="آموزش و پرورش", name_key="اموزشوپرورش"))
        if business_key != "project code":
            _insert_project(conn)
        insert(conn)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert(conn)


def test_same_agreement_number_in_another_year_is_another_agreement(engine: Engine) -> None:
    run = new_run(engine, "saba")
    saved = save_agreements(engine, run, agreement(), agreement(fiscal_year=1404))
    assert len(saved.new_ids) == 2
    assert counts(engine)["ExpenseAgreement"] == 2


# --- Nezarat-4 projects -----------------------------------------------------------------------


def test_first_save_inserts_project_year_credits_reports_and_reference_data(engine: Engine) -> None:
    run = new_run(engine)
    result = save_projects(engine, run, project())
    assert (result.inserted, result.updated, result.unchanged, result.changes) == (1, 0, 0, 0)
    assert counts(engine) == dict(Agency=1, Plan=1, County=1, Project=1, ProjectYear=1, ProjectCredit=2,
                                  ProgressReport=2, ExpenseAgreement=0, ExpenseCredit=0, Operation=0,
                                  OperationPerformance=0, ChangeLog=0)
    row = year_row(engine)
    assert (row.title, row.agency_code, row.fiscal_year, row.first_run_id, row.last_run_id) == (TITLE, "305", 1405, run, run)
    assert (row.target_q3, row.total_approved, row.gone) == (Decimal("45.5"), Decimal("39250.5"), False)
    assert report_row(engine, 2).remarks == "با تأخیر"


def test_saving_the_same_again_changes_nothing(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    before = counts(engine)
    run2 = new_run(engine)
    result = save_projects(engine, run2, project())
    assert (result.inserted, result.updated, result.unchanged, result.changes) == (0, 0, 1, 0)
    assert counts(engine) == before
    assert change_log(engine) == []


def test_changed_progress_and_credit_are_logged_with_old_new_and_run(engine: Engine) -> None:
    run1 = new_run(engine)
    save_projects(engine, run1, project())
    base = project()
    changed = project(
        reports=[base.reports[0], dataclasses.replace(base.reports[1], progress=Decimal("31.25"))],
        credits=[dataclasses.replace(base.credits[0], absorbed=Decimal("13000")), base.credits[1]],
    )
    run2 = new_run(engine)
    result = save_projects(engine, run2, changed)
    assert (result.inserted, result.updated, result.unchanged, result.changes) == (0, 1, 0, 2)
    assert sorted(change_log(engine)) == sorted([
        ("progress_report", "1305012007-003/1405/q2", "progress", "22.75", "31.25", run2),
        ("project_credit", "1305012007-003/1405/ملی", "absorbed", "12000.25", "13000", run2),
    ])
    q2 = report_row(engine, 2)
    assert (q2.progress, q2.first_run_id, q2.last_run_id) == (Decimal("31.25"), run1, run2)
    assert report_row(engine, 1).last_run_id == run1


def test_changed_year_field_is_logged_on_the_project_year(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    run2 = new_run(engine)
    save_projects(engine, run2, project(end_year=1407, agreement_status="amended"))
    assert sorted(change_log(engine)) == [
        ("project_year", "1305012007-003/1405", "agreement_status", "exchanged", "amended", run2),
        ("project_year", "1305012007-003/1405", "end_year", "1406", "1407", run2),
    ]
    assert year_row(engine).last_run_id == run2


def test_title_respelt_with_space_and_arabic_letters_is_not_a_change(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    result = save_projects(engine, new_run(engine), project(title=TITLE_RESPELT))
    assert result.changes == 0 and result.unchanged == 1
    assert change_log(engine) == []
    assert year_row(engine).title == TITLE


def test_respelt_title_keeps_the_first_spelling_when_another_field_changes(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    run2 = new_run(engine)
    save_projects(engine, run2, project(title=TITLE_RESPELT, total_cost=Decimal("130000000")))
    assert change_log(engine) == [
        ("project_year", "1305012007-003/1405", "total_cost", "123456789.1234", "130000000", run2)]
    row = year_row(engine)
    assert (row.title, row.total_cost) == (TITLE, Decimal("130000000"))


def test_credit_source_respelt_is_the_same_credit(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    base = project()
    respelt = dataclasses.replace(base.credits[1], source="استاني")  # Arabic yeh
    save_projects(engine, new_run(engine), project(credits=[base.credits[0], respelt]))
    assert counts(engine)["ProjectCredit"] == 2
    assert change_log(engine) == []


def test_report_missing_from_a_later_save_is_kept(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    base = project()
    result = save_projects(engine, new_run(engine), project(reports=[base.reports[0]]))
    assert result.changes == 0
    assert counts(engine)["ProgressReport"] == 2
    q2 = report_row(engine, 2)
    assert (q2.progress, q2.comptroller_status) == (Decimal("22.75"), "pending")
    assert change_log(engine) == []


def test_new_report_in_a_later_save_is_inserted_not_logged(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    base = project()
    q3 = ProgressReportRecord(3, date(2027, 1, 5), Decimal("40"), Decimal("14000"), "pending", None, None)
    run2 = new_run(engine)
    result = save_projects(engine, run2, project(reports=[*base.reports, q3]))
    assert (result.updated, result.changes) == (1, 0)
    assert report_row(engine, 3).first_run_id == run2
    assert change_log(engine) == []


def test_a_batch_of_many_projects_is_stored_at_once(engine: Engine) -> None:
    details = [project(f"1305012007-{n:03d}", portal_id=48000 + n, county=("اهواز" if n % 2 else "دزفول"))
               for n in range(1, 41)]
    result = save_projects(engine, new_run(engine), *details)
    assert result.inserted == 40
    stored = counts(engine)
    assert (stored["Project"], stored["ProjectYear"], stored["ProgressReport"], stored["County"]) == (40, 40, 80, 2)


def test_saving_a_batch_reads_the_store_through_indexes_only(tmp_path: Path) -> None:
    """A sync saves thousands of batches; a statement that reads a whole table makes each batch
    cost as much as the store is large (row-value IN did, on SQLite). SQLite's planner follows the
    schema; PostgreSQL's follows statistics, and its own test is the next one."""
    engine = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    statements: list[tuple[str, object]] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            statements.append((statement, parameters))

    for run in (new_run(engine), new_run(engine)):  # the first save inserts, the second compares
        save_projects(engine, run, project(), project("1305012007-004", portal_id=2, county="دزفول"))
        saved = save_agreements(engine, run, agreement(), agreement("A-2", portal_id=7002))
        for agreement_id, _ in saved.owed or [(i, 0) for i in saved.ids.values()]:
            save_details(engine, run, agreement_id, agreement_detail())
    sa.event.remove(engine, "before_cursor_execute", record)

    assert len(statements) > 20
    scans = set()
    with engine.connect() as conn:
        for statement, parameters in statements:
            for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters):
                detail = row[-1]
                if detail.startswith("SCAN ") and "CONSTANT ROW" not in detail:
                    scans.add(f"{detail}  <-  {statement.split(chr(10))[-1][:120]}")
    assert scans == set()


@pytest.mark.postgres
def test_on_postgresql_a_batch_reads_through_indexes_whatever_the_statistics(pg_store_url: str) -> None:
    """PostgreSQL plans by statistics; without column statistics (never analyzed: a first sync,
    autovacuum late or off) it takes each value of an IN list for 0.5 % of the table and scans the
    whole table for every lookup. Each statement is explained inside the batch's own transaction,
    as it was planned there."""
    engine = open_store(pg_store_url)
    run = new_run(engine)
    save_projects(engine, run, *[project(f"1305{n:06d}-001", portal_id=n) for n in range(200)])
    saved = save_agreements(engine, run, *[agreement(f"A-{n}", portal_id=n) for n in range(40)])
    for agreement_id, _ in saved.owed:
        save_details(engine, run, agreement_id, agreement_detail())
    plans: list[tuple[str, list[str]]] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            with cursor.connection.cursor() as c:
                c.execute("EXPLAIN " + statement, parameters)
                plans.append((statement, [r[0] for r in c.fetchall()]))

    run2 = new_run(engine)
    save_projects(engine, run2, *[project(f"1305{n:06d}-001", portal_id=n) for n in range(180, 205)])
    again = save_agreements(engine, run2, *[agreement(f"A-{n}", portal_id=n, status="amended") for n in range(30, 45)])
    with engine.begin() as conn:
        saba_rows.save_agreement_details(conn, run2, [(i, agreement_detail("41")) for i in again.ids.values()])
    sa.event.remove(engine, "after_cursor_execute", explain)

    assert len(plans) > 15
    scans = {f"{line.strip()}  <-  {' '.join(statement.split())[-120:]}"
             for statement, lines in plans for line in lines if "Seq Scan" in line}
    assert scans == set()


@pytest.mark.postgres
def test_statistics_are_refreshed_where_stale_table_by_table(pg_store_url: str, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """A table ANALYZE cannot lock in time is left for the next run and does not cost the others
    their statistics; a table whose statistics are fresh is not analyzed again."""
    engine = open_store(pg_store_url)
    save_projects(engine, new_run(engine), *[project(f"1305{n:06d}-001", portal_id=n) for n in range(100)])
    tables = nezarat4_rows.TABLES_WRITTEN
    # The writers' row counts reach pg_stat_user_tables seconds later (each backend flushes its
    # statistics on its own time); a flush landing after an ANALYZE would make the table look stale
    # again. Wait until the server has counted the inserts, as it will have by the next run.
    engine.dispose()  # a backend that ends flushes what it counted
    deadline = time.monotonic() + 20
    while True:
        with engine.connect() as conn:
            counted = conn.execute(sa.text(
                "SELECT coalesce(min(n_mod_since_analyze), 0) FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema() AND relname IN ('project', 'project_year')")).scalar()
        if counted >= 100 or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling the server's statistics view: there is nothing to await
    monkeypatch.setattr("store.db.ANALYZE_LOCK_TIMEOUT", "200ms")
    with engine.connect() as blocker:  # a VACUUM, say: ANALYZE waits for it
        blocker.exec_driver_sql("LOCK TABLE progress_report IN SHARE UPDATE EXCLUSIVE MODE")
        with caplog.at_level(logging.WARNING, logger="store.db"):
            analyzed = refresh_statistics(engine, tables)
        blocker.rollback()
    assert "progress_report" not in analyzed and {"project", "project_year", "project_credit"} <= set(analyzed)
    assert "could not ANALYZE progress_report" in caplog.text
    with engine.connect() as conn:
        estimated = dict(conn.execute(sa.text(
            "SELECT relname, reltuples FROM pg_class WHERE relnamespace = current_schema()::regnamespace")).all())
    assert (estimated["project_year"], estimated["progress_report"]) == (100, -1)
    assert refresh_statistics(engine, tables) == ["progress_report"]
    assert refresh_statistics(engine, tables) == []
    save_projects(engine, new_run(engine), project("1305000001-001", portal_id=1, title="عنوان تازه"))
    assert refresh_statistics(engine, tables) == []  # one row of a hundred changed: still fresh


@pytest.mark.postgres
def test_tables_the_user_may_not_analyze_are_reported_not_counted(pg_store_url: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL skips a table the user does not own with a warning that psycopg would drop."""
    engine = open_store(pg_store_url)
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    role = f"bw_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    stranger = make_engine(sa.engine.make_url(pg_store_url).set(username=role).render_as_string(hide_password=False))
    try:
        with caplog.at_level(logging.WARNING, logger="store.db"):
            assert refresh_statistics(stranger, saba_rows.TABLES_WRITTEN) == []
        assert 'skipping "expense_agreement"' in caplog.text
    finally:
        stranger.dispose()
        with engine.begin() as conn:
            conn.exec_driver_sql(f'REVOKE USAGE ON SCHEMA "{schema}" FROM "{role}"')
            conn.exec_driver_sql(f'DROP ROLE "{role}"')


def test_projects_not_listed_by_a_full_sync_are_marked_gone_not_deleted(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project("1305012007-001"), project("1305012007-002", portal_id=2))
    run2 = new_run(engine)
    with engine.begin() as conn:
        assert nezarat4_rows.mark_projects_gone(conn, run2, 1405, {"1305012007-001"}) == 1
    assert counts(engine)["ProjectYear"] == 2
    assert counts(engine)["ProgressReport"] == 4
    assert (year_row(engine, "1305012007-001").gone, year_row(engine, "1305012007-002").gone) == (False, True)
    assert year_row(engine, "1305012007-002").last_run_id == run2
    assert change_log(engine) == [("project_year", "1305012007-002/1405", "gone", "False", "True", run2)]
    with engine.begin() as conn:  # marking again finds nothing more
        assert nezarat4_rows.mark_projects_gone(conn, new_run(engine), 1405, {"1305012007-001"}) == 0


def test_marking_gone_goes_page_by_page_and_misses_none(engine: Engine, monkeypatch) -> None:
    """A full sync that no longer sees most of a large year marks them a page at a time (memory
    stays flat): across pages, exactly the unseen rows are marked and logged, the seen ones kept."""
    monkeypatch.setattr(upsert_module, "GONE_PAGE", 2)
    codes = [f"1305012007-{n:03d}" for n in range(7)]
    save_projects(engine, new_run(engine), *(project(code, portal_id=n + 1) for n, code in enumerate(codes)))
    seen = {codes[1], codes[4], codes[5]}  # kept on the first, third and fourth pages
    run2 = new_run(engine)
    with engine.begin() as conn:
        assert nezarat4_rows.mark_projects_gone(conn, run2, 1405, seen) == 4
    assert {code for code in codes if year_row(engine, code).gone} == set(codes) - seen
    assert sorted(entry[1] for entry in change_log(engine)) == sorted(f"{c}/1405" for c in set(codes) - seen)


def test_gone_project_seen_again_is_no_longer_gone(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    with engine.begin() as conn:
        nezarat4_rows.mark_project_gone(conn, new_run(engine), 1405, "1305012007-003")
    assert year_row(engine).gone is True
    run3 = new_run(engine)
    result = save_projects(engine, run3, project())
    assert result.updated == 1
    assert year_row(engine).gone is False
    assert change_log(engine)[-1] == ("project_year", "1305012007-003/1405", "gone", "True", "False", run3)


# --- SABA agreements --------------------------------------------------------------------------


def agreement_row(engine: Engine, number: str = "1405-032-11002") -> sa.Row:
    t = T(ExpenseAgreement)
    return one(engine, sa.select(t).where(t.c.agreement_no == number, t.c.fiscal_year == 1405))


def save_details(engine: Engine, run_id: int, agreement_id: int, detail: AgreementDetail) -> tuple[int, set[int]]:
    with engine.begin() as conn:
        return saba_rows.save_agreement_details(conn, run_id, [(agreement_id, detail)])


def test_new_agreement_is_stored_and_owes_its_details(engine: Engine) -> None:
    run = new_run(engine, "saba")
    saved = save_agreements(engine, run, agreement())
    row = agreement_row(engine)
    assert saved.new_ids == {row.id} and saved.changed_ids == set()
    assert saved.ids == {("1405-032-11002", 1405): row.id}
    assert saved.owed == [(row.id, 7001)]
    assert (row.detail_synced, row.gone, row.first_run_id) == (False, False, run)
    stored = counts(engine)
    assert (stored["ExpenseCredit"], stored["Agency"], stored["County"], stored["ChangeLog"]) == (2, 1, 1, 0)
    with engine.connect() as conn:
        assert conn.execute(sa.select(T(County).c.code)).scalar_one() == "0607"


def test_saved_details_mark_the_agreement_synced_and_nothing_is_owed(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    [(agreement_id, _)] = saved.owed
    changes, changed = save_details(engine, new_run(engine, "saba"), agreement_id, agreement_detail())
    assert (changes, changed) == (0, {agreement_id})
    assert agreement_row(engine).detail_synced is True
    again = save_agreements(engine, new_run(engine, "saba"), agreement())
    assert (again.owed, again.new_ids, again.changed_ids, again.changes) == ([], set(), set(), 0)
    assert change_log(engine) == []


def test_moved_modified_at_resets_detail_synced_and_logs_the_change(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    save_details(engine, new_run(engine, "saba"), saved.owed[0][0], agreement_detail())
    later = MODIFIED + timedelta(days=3)
    base = agreement()
    run3 = new_run(engine, "saba")
    again = save_agreements(engine, run3, agreement(
        modified_at=later, credits=[dataclasses.replace(base.credits[0], spent=Decimal("2900")), base.credits[1]]))
    row = agreement_row(engine)
    assert again.owed == [(row.id, 7001)]
    assert again.changed_ids == {row.id}
    assert row.detail_synced is False
    assert row.modified_at == later
    logged = sorted(change_log(engine))
    assert logged[1] == ("expense_credit", "1405-032-11002/1405/ch1", "spent", "2500.5", "2900", run3)
    entity, key, field, old, new, run = logged[0]
    assert (entity, key, field, run) == ("expense_agreement", "1405-032-11002/1405", "modified_at", run3)
    assert (datetime.fromisoformat(old), datetime.fromisoformat(new)) == (MODIFIED, later)


def test_changed_datetime_is_logged_in_one_canonical_zone(engine: Engine) -> None:
    save_agreements(engine, new_run(engine, "saba"), agreement())
    later = MODIFIED + timedelta(days=3)
    save_agreements(engine, new_run(engine, "saba"), agreement(modified_at=later))
    [(_, _, field, old, new, _)] = change_log(engine)
    assert field == "modified_at"
    assert (old, new) == ("2026-10-20T06:00:00+00:00", "2026-10-23T06:00:00+00:00")


def test_change_without_a_moved_modified_at_keeps_detail_synced(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    save_details(engine, new_run(engine, "saba"), saved.owed[0][0], agreement_detail())
    run3 = new_run(engine, "saba")
    again = save_agreements(engine, run3, agreement(status="amended"))
    assert again.owed == []
    assert agreement_row(engine).detail_synced is True
    assert change_log(engine) == [("expense_agreement", "1405-032-11002/1405", "status", "exchanged", "amended", run3)]


def test_same_modified_at_in_another_zone_is_not_a_change(engine: Engine) -> None:
    save_agreements(engine, new_run(engine, "saba"), agreement())
    again = save_agreements(engine, new_run(engine, "saba"), agreement(modified_at=MODIFIED.astimezone(timezone.utc)))
    assert again.changes == 0 and again.changed_ids == set()


def test_interrupted_details_stay_owed_on_the_next_save(engine: Engine) -> None:
    save_agreements(engine, new_run(engine, "saba"), agreement())
    again = save_agreements(engine, new_run(engine, "saba"), agreement())  # details never saved
    assert again.owed == [(agreement_row(engine).id, 7001)]
    with engine.connect() as conn:
        assert saba_rows.agreements_owing_detail(conn, 1405) == [(agreement_row(engine).id, 7001)]


def test_program_title_respelt_is_not_a_change(engine: Engine) -> None:
    save_agreements(engine, new_run(engine, "saba"), agreement(program_title="ترویج‌کشاورزی"))
    again = save_agreements(engine, new_run(engine, "saba"), agreement(program_title="ترويج کشاورزي"))
    assert again.changes == 0
    assert agreement_row(engine).program_title == "ترویج‌کشاورزی"


def test_changed_performance_is_logged_with_its_operation_and_quarter(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    agreement_id = saved.owed[0][0]
    save_details(engine, new_run(engine, "saba"), agreement_id, agreement_detail("40"))
    run3 = new_run(engine, "saba")
    changes, changed = save_details(engine, run3, agreement_id, agreement_detail("55.5"))
    assert (changes, changed) == (1, {agreement_id})
    assert change_log(engine) == [
        ("operation_performance", "1405-032-11002/1405/11002-03/q1", "quantity", "40", "55.5", run3)]
    with engine.connect() as conn:
        assert conn.execute(sa.select(T(OperationPerformance).c.quantity)).scalar_one() == Decimal("55.5")


def test_same_details_again_change_nothing(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    agreement_id = saved.owed[0][0]
    save_details(engine, new_run(engine, "saba"), agreement_id, agreement_detail())
    before = counts(engine)
    assert save_details(engine, new_run(engine, "saba"), agreement_id, agreement_detail()) == (0, set())
    assert counts(engine) == before


def test_performance_of_an_unknown_operation_is_not_stored(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    detail = agreement_detail()
    orphan = dataclasses.replace(detail.performance[0], operation_code="99999-01")
    save_details(engine, new_run(engine, "saba"), saved.owed[0][0],
                 dataclasses.replace(detail, performance=[*detail.performance, orphan]))
    assert counts(engine)["OperationPerformance"] == 1


def test_agreements_not_listed_are_marked_gone_and_come_back(engine: Engine) -> None:
    save_agreements(engine, new_run(engine, "saba"), agreement("A-1"), agreement("A-2", portal_id=7002))
    run2 = new_run(engine, "saba")
    with engine.begin() as conn:
        assert saba_rows.mark_agreements_gone(conn, run2, 1405, {"A-1"}) == 1
    assert counts(engine)["ExpenseAgreement"] == 2
    assert (agreement_row(engine, "A-1").gone, agreement_row(engine, "A-2").gone) == (False, True)
    assert change_log(engine) == [("expense_agreement", "A-2/1405", "gone", "False", "True", run2)]
    run3 = new_run(engine, "saba")
    again = save_agreements(engine, run3, agreement("A-2", portal_id=7002))
    assert agreement_row(engine, "A-2").gone is False
    assert agreement_row(engine, "A-2").id in again.changed_ids
    assert change_log(engine)[-1] == ("expense_agreement", "A-2/1405", "gone", "True", "False", run3)


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["31250.5", "0.85", "123456789.1234", "98765432109.8765", "0.0001"])
def test_decimal_amounts_round_trip_exactly(engine: Engine, amount: str) -> None:
    value = Decimal(amount)
    save_projects(engine, new_run(engine), project(total_cost=value, progress_at_year_start=Decimal("0.85")))
    row = year_row(engine)
    assert row.total_cost == value
    assert format(row.total_cost.normalize(), "f") == format(value.normalize(), "f")
    assert row.progress_at_year_start == Decimal("0.85")


def test_unit_cost_keeps_six_decimals(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    save_details(engine, new_run(engine, "saba"), saved.owed[0][0], agreement_detail())
    with engine.connect() as conn:
        assert conn.execute(sa.select(T(Operation).c.unit_cost)).scalar_one() == Decimal("1234.567891")


def test_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), engine.begin() as conn:
        conn.execute(sa.insert(T(SyncRun)).values(source="saba", mode="full", fiscal_years="1405",
                                                  started_at=datetime(2026, 11, 1, 8, 0), status="running"))


def test_aware_datetime_comes_back_as_the_same_instant_in_utc(engine: Engine) -> None:
    tehran = datetime(2026, 11, 1, 8, 15, 30, 123456, tzinfo=TEHRAN)
    with engine.begin() as conn:
        run_id = conn.execute(sa.insert(T(SyncRun)).values(
            source="saba", mode="full", fiscal_years="1405", started_at=tehran, status="running")).inserted_primary_key[0]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(T(SyncRun).c.started_at).where(T(SyncRun).c.id == run_id)).scalar_one()
    assert stored == tehran
    assert stored.utcoffset() == timedelta(0)
    assert stored.replace(tzinfo=None) == datetime(2026, 11, 1, 4, 45, 30, 123456)


# --- locks ------------------------------------------------------------------------------------

_HOLDER = """
import sys, time
from store.db import make_engine
from store.locks import exclusive
with exclusive(make_engine(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture
def lock_name() -> str:
    # advisory locks are per PostgreSQL database, not per schema: a unique name keeps parallel tests apart
    return f"test-sync:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def holder(engine: Engine, lock_name: str) -> Iterator[subprocess.Popen]:
    """Another process holding ``lock_name`` on the same store."""
    url = engine.url.render_as_string(hide_password=False)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, url, lock_name], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "held", proc.stderr.read() if proc.poll() is not None else line
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()


def _acquire_within(engine: Engine, name: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with exclusive(engine, name):
                return True
        except LockHeld:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)


def test_lock_held_by_another_process_raises_lock_held(engine: Engine, holder: subprocess.Popen, lock_name: str) -> None:
    with pytest.raises(LockHeld, match=lock_name):
        with exclusive(engine, lock_name):
            pass
    if engine.dialect.name == "sqlite":
        with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
            with exclusive(engine, lock_name):
                pass


def test_other_lock_names_do_not_conflict(engine: Engine, holder: subprocess.Popen, lock_name: str) -> None:
    with exclusive(engine, lock_name + "-other"), exclusive(engine, lock_name + "-third"):
        pass


def test_lock_is_released_when_its_holder_is_killed(engine: Engine, holder: subprocess.Popen, lock_name: str) -> None:
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    assert _acquire_within(engine, lock_name, 5.0)


def test_second_holder_in_the_same_process_raises_and_release_frees_it(engine: Engine, lock_name: str) -> None:
    with exclusive(engine, lock_name):
        with pytest.raises(LockHeld):
            with exclusive(engine, lock_name):
                pass
    with exclusive(engine, lock_name):  # released at the end of the block
        pass


def test_stores_in_two_schemas_of_one_postgresql_database_do_not_share_locks(
        pg_store_url: str, other_pg_store_url: str, lock_name: str) -> None:
    # advisory locks belong to the whole database: two stores (schemas) must not block each other
    other = open_store(other_pg_store_url)
    mine = open_store(pg_store_url)
    try:
        with exclusive(mine, lock_name), exclusive(other, lock_name):
            with pytest.raises(LockHeld):  # while the same store still refuses a second holder
                with exclusive(mine, lock_name):
                    pass
    finally:
        other.dispose()
        mine.dispose()


# --- export -----------------------------------------------------------------------------------

PROJECT_KEYS = {"project_code", "title", "plan_code", "plan_title", "agency_code", "agency_name", "county",
                "start_year", "end_year", "total_cost", "fiscal_year", "progress_at_year_start", "agreement_no",
                "agreement_status", "credits", "targets", "reports", "gone"}
AGREEMENT_KEYS = {"agreement_no", "fiscal_year", "agency_code", "agency_name", "county", "program_code",
                  "program_title", "status", "credits", "operations", "gone"}


def test_export_projects_gives_what_was_saved(engine: Engine) -> None:
    save_projects(engine, new_run(engine), project())
    with engine.connect() as conn:
        [row] = list(export_projects(conn, 1405))
        assert list(export_projects(conn, 1404)) == []
    assert set(row) == PROJECT_KEYS
    assert (row["project_code"], row["title"], row["agency_name"], row["county"]) == (
        "1305012007-003", TITLE, "اداره کل آموزش و پرورش", "اهواز")
    assert str(row["total_cost"]) == "123456789.1234"
    assert row["progress_at_year_start"] == Decimal("0.85")
    assert row["targets"] == {"1": Decimal("10"), "2": Decimal("25"), "3": Decimal("45.5"), "4": Decimal("70")}
    assert [str(t) for t in row["targets"].values()] == ["10", "25", "45.5", "70"]
    assert [c["source"] for c in row["credits"]] == sorted(["ملی", "استانی"])
    assert {c["source"]: str(c["approved"]) for c in row["credits"]} == {"ملی": "31250.5", "استانی": "8000"}
    assert set(row["credits"][0]) == {"source", "approved", "notified", "allocated", "absorbed"}
    assert [r["quarter"] for r in row["reports"]] == [1, 2]
    assert set(row["reports"][0]) == {"quarter", "reported_on", "progress", "absorbed", "comptroller_status",
                                      "decided_on", "remarks"}
    assert (row["reports"][0]["reported_on"], row["reports"][0]["decided_on"]) == ("2026-07-08", "2026-07-20")
    assert str(row["reports"][1]["progress"]) == "22.75"
    assert row["gone"] is False


def test_export_agreements_gives_what_was_saved(engine: Engine) -> None:
    saved = save_agreements(engine, new_run(engine, "saba"), agreement())
    save_details(engine, new_run(engine, "saba"), saved.owed[0][0], agreement_detail())
    with engine.connect() as conn:
        [row] = list(export_agreements(conn))
    assert set(row) == AGREEMENT_KEYS
    assert (row["agreement_no"], row["fiscal_year"], row["agency_name"], row["county"]) == (
        "1405-032-11002", 1405, "جهاد کشاورزی", "دزفول")
    assert [c["chapter"] for c in row["credits"]] == [1, 2]
    assert str(row["credits"][0]["spent"]) == "2500.5"
    assert row["credits"][1]["notified"] is None
    [op] = row["operations"]
    assert set(op) == {"code", "title", "unit", "quarterly_targets", "unit_cost", "performance"}
    assert [str(q) for q in op["quarterly_targets"]] == ["100", "100", "100", "100"]
    assert str(op["unit_cost"]) == "1234.567891"
    [perf] = op["performance"]
    assert set(perf) == {"quarter", "quantity", "spent", "reported_on", "comptroller_status", "decided_on", "remarks"}
    assert (perf["quarter"], str(perf["quantity"]), str(perf["spent"]), perf["reported_on"]) == (1, "40", "45.5", "2026-07-01")
    assert row["gone"] is False


# --- the plan per project year (issue 12, item 2) ----------------------------------------------


def test_each_year_keeps_its_own_plan_and_an_older_year_never_overwrites_the_newer(engine):
    from store.models import ChangeLog, Project

    later = project(plan_code="1305012007", plan_title="توسعه فضاهای آموزشی")
    older = project(fiscal_year=1404, plan_code="1305019999", plan_title="طرح پیشین")
    with engine.begin() as conn:
        nezarat4_rows.save_project_details(conn, new_run(engine), [later])
    with engine.begin() as conn:
        counts = nezarat4_rows.save_project_details(conn, new_run(engine), [older])  # e.g. sync --full --year 1404
    assert counts.inserted == 1
    with engine.connect() as conn:
        plans = dict(conn.execute(sa.select(T(ProjectYear).c.fiscal_year, T(ProjectYear).c.plan_code)).all())
        assert plans == {1405: "1305012007", 1404: "1305019999"}
        assert conn.execute(sa.select(T(Project).c.plan_code)).scalar_one() == "1305012007"  # the latest year's
        exported = {r["fiscal_year"]: (r["plan_code"], r["plan_title"]) for r in export_projects(conn)}
    assert exported == {1405: ("1305012007", "توسعه فضاهای آموزشی"), 1404: ("1305019999", "طرح پیشین")}
    with engine.begin() as conn:  # the portal moves the 1405 year to another plan: a change, counted and kept
        run = new_run(engine)
        counts = nezarat4_rows.save_project_details(conn, run, [project(plan_code="1305018888", plan_title="طرح تازه")])
    assert counts.updated == 1
    with engine.connect() as conn:
        log = conn.execute(sa.select(T(ChangeLog).c.field, T(ChangeLog).c.old_value, T(ChangeLog).c.new_value)
                           .where(T(ChangeLog).c.run_id == run)).all()
        assert ("plan_code", "1305012007", "1305018888") in [tuple(r) for r in log]
        assert conn.execute(sa.select(T(Project).c.plan_code)).scalar_one() == "1305018888"


@pytest.mark.postgres
def test_postgresql_sessions_plan_for_pages_in_memory_unless_the_store_is_told_otherwise(pg_store_url: str) -> None:
    """The server's built-in random_page_cost (4) makes the planner read all of project_year to reach
    a thousand changed ids (store/db.py); the store's sessions use 1.1 unless the server, the
    database, the role or the connection sets a value, which is kept."""
    engine = open_store(pg_store_url)
    told = make_engine(pg_store_url.replace("options=", "options=-crandom_page_cost%3D3%20"))
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW random_page_cost").scalar() == "1.1"
            conn.rollback()  # a session setting, not one of a transaction that is rolled back
            assert conn.exec_driver_sql("SHOW random_page_cost").scalar() == "1.1"
        with told.connect() as conn:
            assert conn.exec_driver_sql("SHOW random_page_cost").scalar() == "3"
    finally:
        engine.dispose()
        told.dispose()


@pytest.mark.postgres
def test_a_large_temporary_table_is_analyzed_on_a_small_sample_and_the_target_restored(pg_store_url: str) -> None:
    """store.driver.analyze_if_large: the planner learns the table's size and keys from a 3,000-row
    sample (statistics target 10: at most 11 histogram bounds), and the transaction's own target
    is what it was before; the session's own, after the transaction (the lower target never outlives it)."""
    engine = open_store(pg_store_url)
    table = sa.Table("bw_test_sample", sa.MetaData(), sa.Column("k", sa.Integer, primary_key=True),
                     prefixes=["TEMPORARY"])
    try:
        with engine.connect() as conn:
            session = conn.exec_driver_sql("SHOW default_statistics_target").scalar()
            conn.rollback()
            with conn.begin():
                conn.exec_driver_sql("SET LOCAL default_statistics_target = 57")
                table.create(conn)
                conn.exec_driver_sql("INSERT INTO bw_test_sample SELECT generate_series(1, 8000)")
                analyze_if_large(conn, table, 8000)
                assert conn.exec_driver_sql("SHOW default_statistics_target").scalar() == "57"
                assert conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE oid = 'bw_test_sample'::regclass"
                                            ).scalar() == 8000
                bounds = conn.exec_driver_sql("SELECT array_length(histogram_bounds::text::int[], 1) FROM pg_stats "
                                              "WHERE tablename = 'bw_test_sample' AND attname = 'k'").scalar()
                assert bounds is not None and bounds <= 11
            assert conn.exec_driver_sql("SHOW default_statistics_target").scalar() == session != "57"
    finally:
        engine.dispose()


def test_server_options_are_added_after_a_urls_own_and_leave_the_rest_of_it_alone() -> None:
    """store.db.with_options (tests/conftest.py's synchronous_commit, scratch_schema's search_path):
    a URL's own options kept first, even repeated; its password and other parameters untouched."""
    from store.db import with_options

    url = "postgresql+psycopg://bw:p%40ss%3Aw%2Fo+rd%26%3D@db.example:5433/store?sslmode=require"
    merged = sa.engine.make_url(with_options(with_options(url, "-ca=1"), "-csearch_path=s_1"))
    assert merged.password == "p@ss:w/o+rd&=" and merged.host == "db.example" and merged.port == 5433
    assert merged.query == {"sslmode": "require", "options": "-ca=1 -csearch_path=s_1"}
    repeated = sa.engine.make_url(with_options(url + "&options=-cb%3D2&options=-cc%3D3", "-cd=4"))
    assert repeated.query["options"] == "-cb=2 -cc=3 -cd=4"


@pytest.mark.postgres
def test_on_postgresql_a_schema_holding_other_tables_and_no_version_is_refused_not_migrated(pg_store_url: str) -> None:
    """store.db asks PostgreSQL's catalog, not the inspector, whether a schema is empty and has a
    version (start-up: 48 → 22 ms): a schema with someone's table and no alembic_version is not a new
    store to create, and nothing is added to it; once empty it is created at head."""
    from store.db import StoreError, head_revision, make_engine, open_store

    admin = make_engine(pg_store_url)
    with admin.begin() as conn:
        conn.execute(sa.text("CREATE TABLE legacy_notes (id INTEGER PRIMARY KEY)"))
    with pytest.raises(StoreError, match="no version"):
        open_store(pg_store_url)
    with admin.connect() as conn:
        names = conn.execute(sa.text("SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                                     "AND relkind = 'r'")).scalars().all()
    assert names == ["legacy_notes"]
    with admin.begin() as conn:
        conn.execute(sa.text("DROP TABLE legacy_notes"))
    admin.dispose()
    store = open_store(pg_store_url)
    with store.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    store.dispose()


def test_an_agencys_name_takes_the_spelling_with_half_spaces_whichever_came_first(engine: Engine) -> None:
    # a trial: the simulator sends «کتابخانه‌های» and its variants; the one seen first (letters run
    # together) was kept, and every e-mail, report and page named the agency so
    joined, spaced, standard = ("اداره کل کتابخانههای عمومی", "اداره کل کتابخانه های عمومی",
                                "اداره کل کتابخانه\u200cهای عمومی")
    for order in ((joined, spaced, standard, joined), (standard, spaced, joined)):
        for name in order:
            save_projects(engine, new_run(engine), project(agency_name=name))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM agency WHERE code = '305'")).scalar_one() == standard
        assert change_log(engine) == []
