"""Whole reconciliation runs on a varied store, on both databases: what they store, fingerprints,
references, failures, and runs across the schema's migrations.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
import sqlalchemy as sa

import reconcile
from reconcile.findings import Finding
from store.models import Deviation, DeviationEvent, DeviationFound, ProgressReport, ReconcileRun
from reconcile_builders import config, day, varied_store

AUTUMN = day("1405/09/02")
SKIP = {"id", "reconcile_run_id", "updated_at"}  # the run's own ids and clock


def _deviations(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(Deviation.__table__).order_by(
            Deviation.__table__.c.kind, Deviation.__table__.c.rule, Deviation.__table__.c.subject,
            Deviation.__table__.c.fiscal_year, Deviation.__table__.c.quarter)).mappings().all()
    return [{k: v for k, v in row.items() if k not in SKIP} for row in rows]


def _forget_deviations(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(DeviationEvent.__table__))
        conn.execute(sa.delete(Deviation.__table__))


def test_a_second_run_on_the_same_store_changes_nothing(engine):
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    assert len(first.findings) > 20 and len({f.rule for f in first.findings}) >= 6  # the store is varied
    assert first.life.opened == len(first.findings) == first.found
    stored = _deviations(engine)
    again = reconcile.run(engine, config(), as_of=AUTUMN)
    assert again.findings == first.findings
    assert again.life.unchanged == len(first.findings) and again.life.opened == again.life.resolved == 0
    assert _deviations(engine) == stored


def test_a_large_run_closes_its_connection_and_the_next_run_opens_another(engine, monkeypatch):
    """reconcile.engine.CLOSE_FROM: a run that staged that many findings or more closes its
    connection instead of emptying its temporary tables; the next run on the same engine (the
    service's) opens a new one, stages anew and judges the same."""
    import reconcile.engine as engine_module

    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    monkeypatch.setattr(engine_module, "CLOSE_FROM", 1)
    connections = []
    sa.event.listen(engine, "connect", lambda dbapi, _record: connections.append(dbapi))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    assert first.found > 1
    opened = len(connections)
    stored = _deviations(engine)
    again = reconcile.run(engine, config(), as_of=AUTUMN, incremental=True)
    assert len(connections) > opened  # the first run's connection was closed, not pooled
    full = reconcile.run(engine, config(), as_of=AUTUMN, incremental=False)
    assert full.findings == first.findings and full.life.unchanged == len(first.findings)
    assert again.life.opened == again.life.resolved == 0
    assert _deviations(engine) == stored


def test_a_large_runs_log_is_in_the_store_file_when_it_returns_and_the_setting_given_back(engine, monkeypatch):
    """A large run on SQLite commits without checkpointing and copies its write-ahead log into the
    store file beside `show` (store.driver.defer_checkpoint, store.db.checkpoint_wal): by the time
    the run returns the file alone holds every deviation, and the connection's setting is back."""
    import sqlite3

    import reconcile.engine as engine_module

    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write-ahead log")
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    monkeypatch.setattr(engine_module, "CLOSE_FROM", 1)
    settings: list[int] = []

    def show(rows, result):  # the run's own connection (Found's), after its commit, while the checkpoint goes on
        conn = rows.func.__self__.conn
        settings.append(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())

    result = reconcile.run(engine, config(), as_of=AUTUMN, keep=False, show=show)
    assert result.found > 1 and settings == [1000]
    file_only = sqlite3.connect(f"file:{engine.url.database}?immutable=1", uri=True)  # the file, no log
    try:
        assert file_only.execute("SELECT count(*) FROM deviation").fetchone()[0] == result.life.opened
    finally:
        file_only.close()


def test_progress_is_told_at_each_phase_and_rule(engine):
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    told: list[str] = []
    result = reconcile.run(engine, config(), as_of=AUTUMN, on_progress=told.append)
    rules = len(result.stats)
    assert told[0].startswith(f"run {result.run_id}: judging years 1405 as of 2026-11-23")
    assert f"judging 1/{rules}: capital.progress_lag" in told and f"judging {rules}/{rules}: expense.credit_inconsistency" in told
    assert told[-1] == (f"run {result.run_id} done: {len(result.findings)} findings, "
                        f"{result.life.opened} opened, {result.life.resolved} resolved")


def test_the_fingerprint_is_the_one_earlier_versions_stored():
    # Stored deviations carry the fingerprint of the version that judged them: if its formula
    # changed, the first run after an upgrade would record every deviation as 'updated'. The digest
    # below was made by the version that introduced fingerprints (schema 0002, commit cda2841).
    finding = Finding(rule="progress_lag", kind="capital", subject="1305012007-003", fiscal_year=1405, quarter=2,
                      severity="major", planned=Decimal("55.0"), actual=Decimal("32"), measure=Decimal("-23.0000"),
                      message="پروژه «الف» ۳۲٪ در برابر ۵۵٪",
                      numbers={"planned_cum": "55", "actual": "32", "منبع": "ملی"},
                      evidence_table="progress_report", evidence_id=7, sync_run_id=3, agency_code="300",
                      county_id=5, county="اهواز")
    assert finding.fingerprint == "fe98cd16b6d3d4530b6cf6ec92995320"
    stored = finding.digests()[1]
    assert list(json.loads(stored).items()) == list(finding.numbers.items())  # the rule's order, kept


def test_new_and_updated_deviations_store_the_same_numbers_in_the_rules_order(engine):
    # new and updated deviations take the staged JSON text (reconcile/lifecycle.py): read back raw,
    # both give the finding's figures in the rule's order
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    by_key = {f.key: f for f in first.findings}
    dev = Deviation.__table__

    def assert_stored_in_order() -> None:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(dev.c.kind, dev.c.rule, dev.c.subject, dev.c.fiscal_year, dev.c.quarter,
                                          sa.cast(dev.c.numbers, sa.Text))).all()
        assert len(rows) == len(first.findings) > 0
        for *key, text in rows:
            assert list(json.loads(text).items()) == list(by_key[tuple(key)].numbers.items())

    assert_stored_in_order()
    with engine.begin() as conn:  # make every deviation look judged on other figures
        conn.execute(sa.update(dev).values(fingerprint="0" * 32, numbers=None))
    again = reconcile.run(engine, config(), as_of=AUTUMN)
    assert again.life.updated == len(first.findings)
    assert_stored_in_order()


def test_an_unreadable_row_fails_the_run_and_stores_no_deviation(engine):
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    if engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL's date type cannot hold the unreadable day this test plants")
    with engine.begin() as conn:  # a day no reader can read, on a report a rule must read (SQLite keeps dates as text)
        conn.execute(sa.update(ProgressReport.__table__).where(ProgressReport.__table__.c.id == 5)
                     .values(reported_on=sa.literal_column("'1405-13-45'"), comptroller_status="pending"))
    with pytest.raises(ValueError, match="month must be in 1..12"):
        reconcile.run(engine, config(), as_of=AUTUMN)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Deviation.__table__)).scalar() == 0
        run = conn.execute(sa.select(ReconcileRun.__table__)).one()
    assert run.status == "failed" and "capital.approval_overdue: month must be in 1..12" in run.stats["error"]


def test_a_store_from_before_fingerprints_is_refused_then_upgraded_and_judged(tmp_path):
    # a store left at revision 0001 (no deviation.fingerprint) says what to do, then upgrades in place
    from store.db import StoreError, make_engine, open_store, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = make_engine(url)
    upgrade(old, "0001")
    with pytest.raises(StoreError, match=r"at 0001 but this budgetwatch needs .*run `budgetwatch db upgrade`"):
        open_store(url)
    upgrade(old, "head")
    engine = open_store(url)
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(Deviation.__table__.c.fingerprint)).scalars().all()
    assert len(stored) == len(first.findings) > 0
    assert sorted(stored) == sorted(f.fingerprint for f in first.findings)


def test_every_reference_of_a_run_resolves(engine):
    # deviation.county_id / reconcile_run_id / sync_run_id and deviation_event.reconcile_run_id carry
    # no foreign key constraint (migration 0003): the run itself must write only ids that exist
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    reconcile.run(engine, config(), as_of=AUTUMN)
    dev, ev = Deviation.__table__, DeviationEvent.__table__
    with engine.connect() as conn:
        def ids(table: str) -> set[int]:
            return set(conn.execute(sa.text(f"SELECT id FROM {table}")).scalars())

        runs, syncs, counties = ids("reconcile_run"), ids("sync_run"), ids("county")
        rows = conn.execute(sa.select(dev.c.county_id, dev.c.reconcile_run_id, dev.c.sync_run_id)).all()
        events = conn.execute(sa.select(ev.c.reconcile_run_id)).scalars().all()
    assert rows and events and counties and syncs
    assert {county for county, _, _ in rows} <= counties | {None}
    assert {run for _, run, _ in rows} <= runs and set(events) <= runs
    assert {sync for _, _, sync in rows} - {None} <= syncs and any(sync for _, _, sync in rows)


def test_upgrading_to_0003_keeps_every_deviation_and_drops_only_the_reference_checks(tmp_path):
    from store.db import make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'at0002.db'}")
    upgrade(engine, "0002")
    later_columns = [(table, column) for table in ("project_credit", "expense_credit", "operation")
                     for column in ("first_run_id", "last_run_id")]  # migration 0007's, which today's models write
    later_columns.append(("project_year", "plan_code"))  # migration 0008's
    later_columns.append(("field_inspection", "revision"))  # migration 0012's, which today's runs read
    with engine.begin() as conn:
        for table, column in later_columns:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {'VARCHAR(64)' if column == 'plan_code' else 'INTEGER'}")
        DeviationFound.__table__.create(conn)  # migration 0010's, which today's runs write
    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    before = _deviations(engine)
    with engine.begin() as conn:
        for table, column in later_columns:
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        DeviationFound.__table__.drop(conn)
    upgrade(engine, "head")
    assert _deviations(engine) == before and len(before) == len(first.findings) > 0
    inspector = sa.inspect(engine)
    assert [k["referred_table"] for k in inspector.get_foreign_keys("deviation")] == []
    assert [(k["constrained_columns"], k["referred_table"]) for k in inspector.get_foreign_keys("deviation_event")] \
        == [(["deviation_id"], "deviation")]
    again = reconcile.run(engine, config(), as_of=AUTUMN)
    assert again.life.unchanged == len(first.findings) and again.life.opened == again.life.updated == 0


def test_0003_goes_down_and_up_again_on_either_database(engine):
    from alembic import command

    from store.db import _alembic_config, upgrade

    def keys() -> list[tuple[str, str]]:
        inspector = sa.inspect(engine)
        return sorted((table, key["constrained_columns"][0]) for table in ("deviation", "deviation_event")
                      for key in inspector.get_foreign_keys(table))

    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    before = _deviations(engine)
    command.downgrade(_alembic_config(engine), "0002")
    assert keys() == [("deviation", "county_id"), ("deviation", "reconcile_run_id"), ("deviation", "sync_run_id"),
                      ("deviation_event", "deviation_id"), ("deviation_event", "reconcile_run_id")]
    upgrade(engine)
    assert keys() == [("deviation_event", "deviation_id")]
    assert _deviations(engine) == before and len(before) == len(first.findings)


def test_a_migration_that_finds_broken_references_changes_nothing(tmp_path):
    # SQLite migrations run with enforcement off and check the store before committing: a store
    # holding an event of a deviation that does not exist is refused, and left exactly as it was
    # (no half-copied table: the copy's CREATE TABLE is inside the migration's transaction)
    from store.db import current_revision, make_engine, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'broken.db'}")
    upgrade(engine, "0002")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        conn.exec_driver_sql("INSERT INTO deviation_event (deviation_id, event, at) VALUES (999, 'opened', '2026-11-25')")
        conn.commit()
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    tables = set(sa.inspect(engine).get_table_names())
    with pytest.raises(RuntimeError, match="referring to missing rows"):
        upgrade(engine)
    engine.dispose()
    assert current_revision(engine) == "0002"
    assert set(sa.inspect(engine).get_table_names()) == tables


def test_an_expert_acknowledging_during_a_run_neither_fails_it_nor_is_lost(engine, store_url):
    """A deviation acknowledged from another connection while a run judges (the console beside the
    nightly run). On SQLite a run used to read in a deferred transaction and then fail at its first
    write with "database is locked" once the acknowledgement had committed; now the run holds the
    write lock from its start and the acknowledgement waits for it."""
    import threading

    from reconcile.deviations import acknowledge
    from store.db import open_store

    varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first = reconcile.run(engine, config(), as_of=AUTUMN)
    target = min(deviation_id for deviation_id, _status in first.deviations.values())
    other = open_store(store_url)
    errors: list[BaseException] = []

    def ack() -> None:
        try:
            acknowledge(other, target, by="tolfiq", reason="seen on site")
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=ack)

    def on_progress(message: str) -> None:
        if message.startswith("judging 2/"):
            thread.start()
            thread.join(2)  # SQLite: it waits for the run's lock, and the run goes on meanwhile

    try:
        second = reconcile.run(engine, config(), as_of=AUTUMN, on_progress=on_progress)
        thread.join(30)
        assert not thread.is_alive() and errors == []
        assert second.run_id is not None and second.life.opened == 0
        with engine.connect() as conn:
            status, by = conn.execute(sa.select(Deviation.__table__.c.status, Deviation.__table__.c.acted_by)
                                      .where(Deviation.__table__.c.id == target)).one()
        assert (status, by) == ("acknowledged", "tolfiq")
    finally:
        other.dispose()


def _second_run_beside_the_first(engine, store_url, monkeypatch, first_day: str, second_day: str):
    """A second run started once the first holds the store (SQLite: its write lock; PostgreSQL: the
    reconciliation's lock) and has read the last recorded run, as the first had: the service's
    run and a person's, started together. Returns the first run and what the second returned or raised."""
    import threading

    from store import reconcile_runs
    from store.db import open_store

    other = open_store(store_url)
    read_last = threading.Event()
    real_last_recorded = reconcile_runs.last_recorded

    def last_recorded(conn):  # the real query; told when the second run has read its last run
        latest = real_last_recorded(conn)
        if threading.current_thread().name == "second-run":
            read_last.set()
        return latest

    monkeypatch.setattr(reconcile_runs, "last_recorded", last_recorded)
    ended: list = []

    def second() -> None:
        try:
            ended.append(reconcile.run(other, config(), as_of=day(second_day), incremental=True, keep=False))
        except BaseException as exc:  # shown by the caller's assertions
            ended.append(exc)

    thread = threading.Thread(target=second, name="second-run")

    def on_progress(message: str) -> None:
        if message.startswith("judging 1/") and not thread.is_alive():
            thread.start()
            assert read_last.wait(30)

    try:
        first = reconcile.run(engine, config(), as_of=day(first_day), incremental=True, keep=False,
                              on_progress=on_progress)
        thread.join(60)
        assert not thread.is_alive()
    finally:
        other.dispose()
    [outcome] = ended
    return first, outcome


def _run_statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return conn.execute(sa.select(ReconcileRun.__table__.c.status)
                            .order_by(ReconcileRun.__table__.c.id)).scalars().all()


def test_a_run_that_waited_for_another_follows_it(engine, store_url, monkeypatch):
    # It plans on the run it waited for (read again under the lock), not on the run both had found
    # last (with Rule.moved it could then miss an approval overdue between the two runs' days: the
    # reviewer's find, session 27), and records; a full judgement then has nothing to do. What this
    # asserts is that it records and agrees with a full run; the planning on the other run is what
    # the next test's refusal depends on.
    varied_store(engine, random.Random(29))
    reconcile.run(engine, config(), as_of=AUTUMN, keep=False)
    first, second = _second_run_beside_the_first(engine, store_url, monkeypatch, "1405/09/03", "1405/09/04")
    assert isinstance(second, reconcile.RunResult), second
    assert _run_statuses(engine) == ["success", "success", "success"]
    assert second.scope == "incremental"
    whole = reconcile.run(engine, config(), as_of=day("1405/09/04"), dry_run=True)
    assert (whole.life.opened, whole.life.resolved, whole.life.updated) == (0, 0, 0)  # as a full run leaves it
    assert first.run_id < second.run_id


def test_a_run_that_waited_for_a_run_of_a_later_day_records_nothing_and_says_so(engine, store_url, monkeypatch):
    from store.db import StoreError

    varied_store(engine, random.Random(29))
    reconcile.run(engine, config(), as_of=AUTUMN, keep=False)
    first, second = _second_run_beside_the_first(engine, store_url, monkeypatch, "1405/09/04", "1405/09/03")
    assert isinstance(second, StoreError) and getattr(second, "exit_code", None) == 1  # one line, exit 1
    assert f"reconciliation run {first.run_id} was recorded as of 1405/09/04" in str(second)
    assert "records nothing" in str(second)
    assert _run_statuses(engine) == ["success", "success", "failed"]
    # the store as the first run left it: a full judgement of its day has nothing to do
    whole = reconcile.run(engine, config(), as_of=day("1405/09/04"), dry_run=True)
    assert (whole.life.opened, whole.life.resolved, whole.life.updated) == (0, 0, 0)


def test_a_run_whose_process_died_is_recorded_interrupted_by_the_next(engine):
    """A run killed with -9 (or out of memory) stayed «running» for ever on the console and in
    `status`: the next run on the host closes it. A run of another host, or of a process that still
    lives (waiting for the reconciliation's lock), is left running."""
    import socket
    import subprocess
    import sys

    from store.reconcile_runs import ABANDONED

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    dead_pid = int(ended.stdout)  # a process that has ended: its pid names no one now
    host = socket.gethostname()
    with subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) as alive:
        runs = ReconcileRun.__table__
        with engine.begin() as conn:
            ids = [conn.execute(sa.insert(runs).returning(runs.c.id).values(
                as_of=AUTUMN, fiscal_years="1405", started_at=sa.func.current_timestamp(), status="running",
                stats=stats)).scalar_one()
                for stats in ({"process": {"host": host, "pid": dead_pid}},
                              {"process": {"host": host, "pid": alive.pid}},
                              {"process": {"host": host + "-elsewhere", "pid": dead_pid}},
                              None)]  # an older budgetwatch's: no process recorded
        varied_store(engine, random.Random(3), projects=4)
        result = reconcile.run(engine, config(), as_of=AUTUMN)
        alive.stdin.close()
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(runs))}
    assert [rows[i].status for i in ids] == ["interrupted", "running", "running", "running"]
    assert rows[ids[0]].stats == {"error": ABANDONED} and rows[ids[0]].finished_at is not None
    assert rows[result.run_id].status == "success"
