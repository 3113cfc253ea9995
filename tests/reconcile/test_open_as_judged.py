"""A recording run opens each rule's new deviations while it judges the next rules
(reconcile.lifecycle.Found.open_through): on PostgreSQL in a writing thread (store.driver.WriteBehind),
on SQLite before it waits for its helper process (whose size threshold is lowered for these small
stores: HELP_FROM, a constant of the module).

Whenever they are opened, the store must end the same as when a run opens them all at the end
(``reconcile.engine.OPEN_AS_JUDGED`` off, a constant of the module): the same deviations with the
same ids, figures, sentences and fingerprints, the same events of each deviation, the same counts.
Only the order of one run's events differs: opened as judged, then resolved and changed, where the
run that opens at the end resolves first. And a write that fails behind the run fails it, with
nothing recorded. Two real stores built alike, on each database.
"""

from __future__ import annotations

import random
import threading
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

import reconcile
from reconcile import engine as reconcile_engine
from reconcile import helper, lifecycle
from reconcile.findings import Finding
from store.db import open_store
from store.models import Deviation, DeviationEvent, OperationPerformance, ProgressReport, ReconcileRun
from reconcile_builders import config, day, recorded, sync_run, varied_store


@pytest.fixture
def two_stores(store_url, request, tmp_path):
    """Two stores built alike on the parametrised database."""
    if store_url.startswith("sqlite"):
        other_url = request.getfixturevalue("_migrated").sqlite_copy(tmp_path / "other.db")
    else:
        other_url = request.getfixturevalue("other_pg_store_url")
    engines = [open_store(store_url), open_store(other_url)]
    for engine in engines:
        varied_store(engine, random.Random(17))
    yield engines
    for engine in engines:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """As conftest's: the first store, migrated on SQLite (a copy of the template)."""
    if request.param == "sqlite":
        yield request.getfixturevalue("_migrated").sqlite_copy(tmp_path / "store.db")
    else:
        yield request.getfixturevalue("pg_store_url")


def _change(engine) -> None:
    """Other figures: deviations updated, escalated or lowered, some resolved, others opened."""
    perf, pr = OperationPerformance.__table__, ProgressReport.__table__
    with engine.begin() as conn:
        conn.execute(sa.update(perf).where(perf.c.id % 3 == 0).values(quantity=perf.c.quantity * Decimal("0.5")))
        conn.execute(sa.update(pr).where(pr.c.id % 4 == 0).values(progress=Decimal(5)))
        conn.execute(sa.update(pr).where(pr.c.id % 4 == 1).values(progress=Decimal(100)))


def _event_order(engine, run_id: int) -> list[str]:
    ev = DeviationEvent.__table__
    with engine.connect() as conn:
        kinds = conn.execute(sa.select(ev.c.event).where(ev.c.reconcile_run_id == run_id).order_by(ev.c.id)).scalars()
        order: list[str] = []
        for kind in kinds:
            if not order or order[-1] != kind:
                order.append(kind)
    return order


@pytest.mark.slow_on_postgresql
def test_opening_as_judged_records_what_opening_at_the_end_records(two_stores, monkeypatch):
    as_judged, at_end = two_stores
    monkeypatch.setattr(helper, "HELP_FROM", 0)  # SQLite opens as it judges only beside a helper
    for when, change in (("1405/09/02", False), ("1405/09/20", True), ("1405/10/05", False)):
        if change:
            _change(as_judged)
            _change(at_end)
        monkeypatch.setattr(reconcile_engine, "OPEN_AS_JUDGED", True)
        first = reconcile.run(as_judged, config(), as_of=day(when), keep=False)
        monkeypatch.setattr(reconcile_engine, "OPEN_AS_JUDGED", False)
        second = reconcile.run(at_end, config(), as_of=day(when), keep=False)
        assert first.scope == second.scope == "full"
        assert first.life == second.life
    a, b = recorded(as_judged), recorded(at_end)
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert len(a[0]) > 20
    changes = {row.event for row in a[1]}
    assert {"opened", "resolved"} <= changes and changes & {"updated", "escalated", "lowered"}
    # the two ways did differ: the second run's events, opened as judged, come before its resolved
    order_judged, order_end = _event_order(as_judged, 2), _event_order(at_end, 2)
    assert order_judged.index("opened") < order_judged.index("resolved")
    assert order_end.index("resolved") < order_end.index("opened")


@pytest.mark.slow
@pytest.mark.postgres
def test_incremental_runs_opening_as_judged_record_what_opening_at_the_end_records(pg_store_url, other_pg_store_url,
                                                                                    monkeypatch):
    # PostgreSQL opens as it judges in incremental runs too (SQLite only beside a helper):
    # changes marked as a sync marks them, so that each run judges only what changed
    as_judged, at_end = open_store(pg_store_url), open_store(other_pg_store_url)
    for engine in (as_judged, at_end):
        varied_store(engine, random.Random(23), projects=40)
    perf, pr = OperationPerformance.__table__, ProgressReport.__table__

    def change(engine, k: int) -> None:
        with engine.begin() as conn:
            run = sync_run(conn)
            conn.execute(sa.update(pr).where(pr.c.id % 5 == k).values(progress=Decimal(100), last_run_id=run))
            conn.execute(sa.update(pr).where(pr.c.id % 7 == k).values(progress=Decimal(3), last_run_id=run))
            conn.execute(sa.update(perf).where(perf.c.id % 4 == k).values(
                quantity=perf.c.quantity * Decimal("0.3"), last_run_id=run))

    scopes = []
    # days of one quarter: the same quarters closed, so that the runs after the first are incremental
    for when, k, incremental in (("1405/09/02", None, False), ("1405/09/10", 1, True), ("1405/09/20", 2, True),
                                 ("1405/09/21", None, True)):
        results = []
        for engine, flag in ((as_judged, True), (at_end, False)):
            if k is not None:
                change(engine, k)
            monkeypatch.setattr(reconcile_engine, "OPEN_AS_JUDGED", flag)
            results.append(reconcile.run(engine, config(), as_of=day(when), incremental=incremental, keep=False))
        assert results[0].scope == results[1].scope and results[0].life == results[1].life
        scopes.append(results[0].scope)
    assert scopes == ["full", "incremental", "incremental", "incremental"]
    a, b = recorded(as_judged), recorded(at_end)
    as_judged.dispose()
    at_end.dispose()
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert {row.event for row in a[1]} >= {"opened", "resolved"}


def test_a_write_that_fails_behind_the_run_fails_it_and_records_nothing(two_stores, monkeypatch):
    """The failure is injected: a database that fails on the fourth batch of a run cannot be made
    here on demand. It is raised where the write ran (PostgreSQL: the writing thread)."""
    engine = two_stores[0]
    real, calls, threads = lifecycle.bulk_insert, [], set()

    def failing(conn, table, *args, **kwargs):
        calls.append(table.name)
        threads.add(threading.current_thread().name)
        if len(calls) == 4:
            raise OSError("disk full")
        return real(conn, table, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "bulk_insert", failing)
    monkeypatch.setattr(lifecycle, "_BATCH", 3)  # many small batches: the failure falls mid-run
    with pytest.raises(OSError, match="disk full"):
        reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    assert threads == ({"reconcile-writer"} if engine.dialect.name == "postgresql" else {"MainThread"})
    assert not any(t.name == "reconcile-writer" for t in threading.enumerate())


@pytest.mark.postgres
def test_a_value_error_behind_the_run_is_not_named_after_the_rule_being_judged(pg_store_url, monkeypatch):
    """A run names the rule whose stored value it could not read (ValueError while judging); a write
    that failed behind it surfaces while a later rule is judged, and is not that rule's error."""
    engine = open_store(pg_store_url)
    varied_store(engine, random.Random(17))
    real, calls = lifecycle.bulk_insert, []

    def failing(conn, table, *args, **kwargs):
        calls.append(table.name)
        if len(calls) == 4:
            raise ValueError("a figure the database refused")
        return real(conn, table, *args, **kwargs)

    monkeypatch.setattr(lifecycle, "bulk_insert", failing)
    monkeypatch.setattr(lifecycle, "_BATCH", 3)
    try:
        with pytest.raises(ValueError) as raised:
            reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    finally:
        engine.dispose()
    assert str(raised.value) == "a figure the database refused"
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Deviation.__table__)).scalar_one() == 0
        assert conn.execute(sa.select(ReconcileRun.__table__.c.status)).scalars().all() == ["failed"]
    monkeypatch.setattr(lifecycle, "bulk_insert", real)
    result = reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)  # the next run does it all
    assert result.life.opened > 20


@pytest.mark.parametrize("as_judged", [False, True], ids=["at-end", "as-judged"])
def test_an_identity_staged_twice_is_opened_once_and_the_first_stands(engine, as_judged):
    """A rule that words one identity twice (a portal listing an operation code twice, say): the
    first finding stands, opened once, whichever way the run opens (a first run, where nothing is
    stored to pair with, too)."""
    runs, dev = ReconcileRun.__table__, Deviation.__table__
    now, as_of = datetime(2026, 12, 5, tzinfo=timezone.utc), date(2026, 12, 5)
    with engine.begin() as conn:
        run_id = conn.execute(sa.insert(runs).returning(runs.c.id).values(
            as_of=as_of, fiscal_years="1405", started_at=now, status="running")).scalar_one()

    def finding(subject: str, message: str) -> Finding:
        return Finding(rule="progress_lag", kind="capital", subject=subject, fiscal_year=1405, quarter=2,
                       severity="major", planned=Decimal(40), actual=Decimal(20), measure=Decimal(20), message=message)

    with engine.connect() as conn, conn.begin():
        found = lifecycle.Found(conn, [("capital", "progress_lag")],
                                behind=as_judged and engine.dialect.name == "postgresql")
        found.add([finding("1300000001-001", "اول"), finding("1300000002-001", "دیگری"),
                   finding("1300000001-001", "دوم")], rule_index=0)
        if as_judged:
            found.open_through(0, run_id=run_id, as_of=as_of, now=now)
        found.written()
        found.compare()
        counts = found.apply(run_id=run_id, as_of=as_of, now=now,
                             resolvable=[lifecycle.identities_of([("capital", "progress_lag")])],
                             years=[1405], rules=[("capital", "progress_lag")])
    assert counts.opened == 2
    with engine.connect() as conn:
        stored = conn.execute(sa.select(dev.c.subject, dev.c.message).order_by(dev.c.id)).all()
    assert [tuple(row) for row in stored] == [("1300000001-001", "اول"), ("1300000002-001", "دیگری")]


def test_a_run_that_opened_every_rule_as_it_judged_resolves_only_what_it_did_not_find(engine):
    """The deviations a run did not find are those no verdict names (lifecycle._missing): a run that
    opened every rule as it judged paired each finding with its stored deviation then, so compare
    builds no identity index on the staged findings (session 29). The deviation found again stays,
    the one not found is resolved; findings staged for a rule already opened, which would never be
    paired, are refused."""
    runs, dev = ReconcileRun.__table__, Deviation.__table__
    rules = [("capital", "progress_lag")]
    now, as_of = datetime(2026, 12, 5, tzinfo=timezone.utc), date(2026, 12, 5)

    def finding(subject: str) -> Finding:
        return Finding(rule="progress_lag", kind="capital", subject=subject, fiscal_year=1405, quarter=2,
                       severity="major", planned=Decimal(40), actual=Decimal(20), measure=Decimal(20), message="عقب")

    def identity_index(conn) -> bool:
        if conn.dialect.name == "postgresql":
            return conn.execute(sa.text("SELECT to_regclass('pg_temp.bw_found_identity')")).scalar() is not None
        return conn.execute(sa.text("SELECT count(*) FROM temp.sqlite_master WHERE name = 'bw_found_identity'")
                            ).scalar_one() > 0

    lives = []
    for subjects in (["1300000001-001", "1300000002-001"], ["1300000001-001"]):
        with engine.begin() as conn:
            run_id = conn.execute(sa.insert(runs).returning(runs.c.id).values(
                as_of=as_of, fiscal_years="1405", started_at=now, status="running")).scalar_one()
        with engine.connect() as conn, conn.begin():
            found = lifecycle.Found(conn, rules, behind=engine.dialect.name == "postgresql")
            found.add([finding(subject) for subject in subjects], rule_index=0)
            found.open_through(0, run_id=run_id, as_of=as_of, now=now)
            found.written()
            with pytest.raises(RuntimeError, match="staged after its deviations were opened"):
                found.add([finding("1300000003-001")], rule_index=0)
            found.compare()
            assert not identity_index(conn)
            lives.append(found.apply(run_id=run_id, as_of=as_of, now=now, resolvable=[lifecycle.identities_of(rules)],
                                     years=[1405], rules=rules))
    assert (lives[0].opened, lives[1].opened, lives[1].unchanged, lives[1].resolved) == (2, 0, 1, 1)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(dev.c.subject, dev.c.status).order_by(dev.c.id)).all()
    assert [tuple(row) for row in stored] == [("1300000001-001", "open"), ("1300000002-001", "resolved")]

def test_whether_any_of_a_ranges_rules_is_stored_is_asked_pair_by_pair(engine):
    """Opening a range of rules pairs its findings with stored deviations only where the store holds
    one of those rules (lifecycle.stores_any): asked of each (kind, rule) pair by its index, never
    matching another pair's kind or rule."""
    with engine.begin() as conn:
        assert lifecycle.stores_any(conn, []) is False
        conn.execute(sa.insert(Deviation.__table__).values(
            kind="expense", rule="missing_report", subject="1405-032-11002", fiscal_year=1405, quarter=2,
            status="resolved", alert_state="none", severity="major", message="…", first_found_on=date(2026, 9, 1),
            last_found_on=date(2026, 9, 1), updated_at=datetime(2026, 9, 1, tzinfo=timezone.utc)))
        assert lifecycle.stores_any(conn, [("expense", "missing_report")]) is True  # whatever its status
        assert lifecycle.stores_any(conn, [("capital", "progress_lag"), ("expense", "missing_report")]) is True
        # the same rule of the other kind, another rule of the same kind: neither is stored
        assert lifecycle.stores_any(conn, [("capital", "missing_report"), ("expense", "approval_overdue")]) is False


def test_whether_a_rule_is_stored_is_asked_of_its_index_even_where_a_scan_looks_cheaper(engine):
    """PostgreSQL planned an EXISTS of one (kind, rule) as a scan of the table until its first row,
    taking the matching rows for spread evenly: where a rule's deviations lie after the others (a
    rule judged late, inserted last), that read every other rule's deviation first (28 ms in a 1 %
    run at 100k, 163 ms from a cold cache; docs/benchmarks.md, session 26)."""
    late, early = ("expense", "unit_cost_overrun"), ("capital", "progress_lag")
    rows = [dict(kind=kind, rule=rule, subject=f"{n:07d}", fiscal_year=1405, quarter=1, status="open",
                 alert_state="none", severity="minor", message="…", first_found_on=date(2026, 9, 1),
                 last_found_on=date(2026, 9, 1), updated_at=datetime(2026, 9, 1, tzinfo=timezone.utc))
            for (kind, rule), count in ((early, 6000), (late, 3000)) for n in range(count)]
    with engine.begin() as conn:
        conn.execute(sa.insert(Deviation.__table__), rows)
        conn.exec_driver_sql("ANALYZE deviation")
        probe = lifecycle.stored_probe([late])
        sql = str(probe.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN " if conn.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(explain + sql))
        assert "Seq Scan on deviation" not in plan and "SCAN deviation" not in plan, plan
        assert lifecycle.stores_any(conn, [late]) is True
        assert lifecycle.stores_any(conn, [("expense", "approval_overdue"), early]) is True
        assert lifecycle.stores_any(conn, [("expense", "approval_overdue")]) is False
