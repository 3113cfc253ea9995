"""Work in proportion to change (reconcile/changes.py): an incremental run finds what a full run finds.

After each random change set — written as a sync writes, marked with a new sync run — the run
judges incrementally; a full judgement of the same moment, as a what-if, must then have nothing to
open, change or resolve. Real stores on both databases.
"""

from __future__ import annotations

import contextlib
import random
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import reconcile
from foundation.jalali import format_jalali
from store.db import open_store
from store.models import (
    ChangeLog,
    Deviation,
    ExpenseAgreement,
    ExpenseCredit,
    Operation,
    OperationPerformance,
    ProgressReport,
    ProjectCredit,
    ProjectYear,
    ReconcileRun,
    last_found,
)
from reconcile_builders import Store, config, day, sync_run, varied_store

py, pr, pc = ProjectYear.__table__, ProgressReport.__table__, ProjectCredit.__table__
ea, ec, op, perf = (ExpenseAgreement.__table__, ExpenseCredit.__table__, Operation.__table__,
                    OperationPerformance.__table__)
NOTHING_TO_DO = {"opened": 0, "reopened": 0, "escalated": 0, "lowered": 0, "updated": 0, "resolved": 0}


def _change(engine, rnd: random.Random, run: int | None = None) -> int:
    """A random change set, written as a sync would: every changed row marked with a new sync run
    (or with `run`)."""
    with engine.begin() as conn:
        run = sync_run(conn) if run is None else run
        ids = lambda table: conn.execute(sa.select(table.c.id)).scalars().all()  # noqa: E731
        for report in rnd.sample(ids(pr), 4):
            conn.execute(sa.update(pr).where(pr.c.id == report).values(
                progress=Decimal(rnd.choice((5, 30, 44.99995, 45, 70))), last_run_id=run,
                comptroller_status=rnd.choice(("approved", "pending"))))
        for item in rnd.sample(ids(perf), 4):
            conn.execute(sa.update(perf).where(perf.c.id == item).values(
                quantity=Decimal(rnd.choice((0, 50, 84.994, 85, 120))), spent=Decimal(rnd.choice((50, 300))),
                last_run_id=run))
        year = rnd.choice(ids(py))
        conn.execute(sa.update(py).where(py.c.id == year).values(
            target_q2=Decimal(rnd.choice((20, 45, 90))), last_run_id=run))
        if rnd.random() < 0.5:  # a project the portal no longer lists
            conn.execute(sa.update(py).where(py.c.id == rnd.choice(ids(py))).values(gone=True, last_run_id=run))
        year = rnd.choice(ids(py))
        conn.execute(sa.insert(pc).values(project_year_id=year, source=f"منبع {run}", source_key=f"s{run}",
                                          approved=Decimal(10), notified=Decimal(rnd.choice((5, 20))),
                                          first_run_id=run, last_run_id=run))
        agreement = rnd.choice(ids(ea))
        conn.execute(sa.insert(ec).values(agreement_id=agreement, chapter=run, approved=Decimal(10),
                                          notified=Decimal(10), allocated=Decimal(rnd.choice((5, 30))),
                                          spent=Decimal(1), first_run_id=run, last_run_id=run))
        operation = rnd.choice(ids(op))
        conn.execute(sa.update(op).where(op.c.id == operation).values(
            unit_cost=Decimal(rnd.choice((1, 3))), last_run_id=run))
    return run


def _active(engine, rule: str | None = None) -> int:
    dev = Deviation.__table__
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(dev)
                            .where(dev.c.status.in_(("open", "acknowledged")),
                                   sa.true() if rule is None else dev.c.rule == rule)).scalar_one()


def _import_random_visits(engine, rnd: random.Random, folder, made: list[tuple[str, str, str]]) -> None:
    """Field visits imported as an expert's file does: new ones, dated from before the first run to
    the last run's day (some on days still to come for the next run), and corrections of visits
    imported before (the same project, day and inspector, another figure)."""
    from reconcile.inspections import import_file

    rows = {}
    for _ in range(3):
        key = (f"1305012007-{rnd.randrange(30):03d}", f"1405/{rnd.choice(('08', '09'))}/{rnd.randrange(1, 30):02d}",
               rnd.choice(("احمدی", "کریمی")))
        rows[key] = rnd.choice((10, 30, 55, 100))
    for key in rnd.sample(made, min(2, len(made))):
        rows[key] = rnd.choice((10, 30, 55, 100))
    made.extend(k for k in rows if k not in made)
    path = folder / f"visits-{len(made)}.csv"
    path.write_text("project_code,date,observed_progress,inspector\n"
                    + "".join(f"{code},{when},{observed},{who}\n" for (code, when, who), observed in rows.items()),
                    encoding="utf-8")
    import_file(engine, path, today=day("1405/09/29"))


def test_incremental_runs_find_what_a_full_run_finds_on_random_change_sets(engine, tmp_path):
    rnd = random.Random(17)
    varied_store(engine, rnd)
    first = reconcile.run(engine, config(), as_of=day("1405/09/02"))
    assert first.scope == "full" and first.life.opened > 40
    visits: list[tuple[str, str, str]] = []
    for n, when in enumerate(("1405/09/02", "1405/09/05", "1405/09/05", "1405/09/20", "1405/09/29")):
        _change(engine, rnd)
        _import_random_visits(engine, rnd, tmp_path, visits)
        step = reconcile.run(engine, config(), as_of=day(when), incremental=True)
        assert step.scope == "incremental", n
        whole = reconcile.run(engine, config(), as_of=day(when), dry_run=True)
        assert whole.scope == "full" and whole.run_id is None
        assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} == NOTHING_TO_DO, (n, whole.life)
        # found again on the run's day, judged or carried, as a full run would leave them
        assert _last_found_days(engine) == {day(when)}, n
    assert _active(engine) > 40
    assert _active(engine, "inspection_mismatch") > 3  # the visits mattered


def test_a_sync_run_that_drew_its_id_before_a_later_one_committed_is_not_passed_over(engine):
    """PostgreSQL draws ids in the order they are asked for, not committed: a sync run that drew its
    id and had not yet committed its row is invisible to a snapshot that sees a later run, and a
    watermark taken then ("up to the later run, and those running") would pass over everything the
    earlier run writes. A run's reader takes its snapshot once no sync run is half-registered
    (store.locks ``sync_runs_settled``): it waits for the earlier run's commit, and sees it running."""
    import threading

    from store import locks, runs

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers commit one at a time, so sync run ids become visible in their order")
    rnd = random.Random(23)
    varied_store(engine, rnd)
    _sync_run_ids_drawn_after_the_stores(engine)
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    early = engine.connect()  # a sync that has drawn its run's id and not yet committed
    ended: list = []

    def reconciling_run() -> None:
        try:
            ended.append(reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True))
        except BaseException as exc:  # shown by the assertion below
            ended.append(exc)

    reconciling = threading.Thread(target=reconciling_run, name="reconciling", daemon=True)
    try:
        early.begin()
        early_run = runs.register_run(early, "nezarat4", "incremental", [1405])
        later_run = runs.open_run(engine, "saba", "incremental", [1405])  # not held up by the earlier one
        assert later_run > early_run
        reconciling.start()
        assert _waits_for_the_lock(engine, locks.SYNC_RUNS, reconciling), \
            "the run took its snapshot while a sync run was half-registered"
        early.commit()
    finally:
        early.close()  # rolled back if the test failed before its commit
        if reconciling.ident is not None:
            reconciling.join(60)
    assert not reconciling.is_alive() and len(ended) == 1 and getattr(ended[0], "scope", ended[0]) == "incremental"
    _change(engine, rnd, run=early_run)  # what the earlier sync run writes after that run's snapshot
    whole = reconcile.run(engine, config(), as_of=day("1405/09/02"), dry_run=True)
    assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} != NOTHING_TO_DO  # it matters
    step = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True)
    assert step.scope == "incremental"
    whole = reconcile.run(engine, config(), as_of=day("1405/09/02"), dry_run=True)
    assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} == NOTHING_TO_DO, whole.life


def _sync_run_ids_drawn_after_the_stores(engine) -> None:
    """PostgreSQL: the sync run sequence moved past the ids varied_store wrote by hand."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('sync_run', 'id'), (SELECT max(id) FROM sync_run))"))


def _waits_for_the_lock(engine, name: str, thread, seconds: float = 30) -> bool:
    """Whether `thread` comes to wait for the advisory lock `name` (pg_locks; no event tells it)
    within `seconds`, rather than end or go on without it."""
    from store import locks

    with engine.connect() as conn:
        key = locks.lock_key(conn, name)
        waiting = sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                          "AND classid = :high AND objid = :low AND objsubid = 1")
        deadline = time.monotonic() + seconds
        while thread.is_alive() and time.monotonic() < deadline:
            if conn.execute(waiting, {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}).scalar_one():
                return True
            conn.rollback()
            time.sleep(0.02)
    return False


def test_a_sync_run_stuck_half_registered_stops_a_run_after_a_while_saying_so(engine, store_url, monkeypatch,
                                                                              tmp_path, capsys):
    """A process stopped between drawing its sync run's id and committing it: `reconcile` waits
    store.locks.SETTLE_SECONDS for it, then records nothing and says why in one line, exit 1; the next run
    records, and the lock is let go after each (a sync registers at once)."""
    from budgetwatch.cli import main
    from store import locks, runs

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers commit one at a time: no registration is half-visible")
    varied_store(engine, random.Random(23), projects=6)
    _sync_run_ids_drawn_after_the_stores(engine)
    monkeypatch.setattr(locks, "SETTLE_SECONDS", 1)
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    with engine.connect() as stuck:
        stuck.begin()
        runs.register_run(stuck, "nezarat4", "incremental", [1405])
        code = main(["reconcile", "--as-of", "1405/09/02"])  # as a person runs it
        err = capsys.readouterr().err
        stuck.rollback()
    assert code == 1 and "Traceback" not in err, err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: a sync run on this store has been registering for over 1 s (a process stopped between drawing "
        "its run's id and committing it); the reconciliation did not start: run it again once that sync has "
        "ended or been stopped"], err
    with engine.connect() as conn:
        assert conn.execute(sa.select(ReconcileRun.__table__.c.status)
                            .order_by(ReconcileRun.__table__.c.id.desc()).limit(1)).scalar_one() != "success"
    assert reconcile.run(engine, config(), as_of=day("1405/09/02")).run_id is not None  # once it has gone
    other = open_store(store_url)  # another process's sync: a lock left held in this engine's pool would stop it
    try:
        with other.connect() as conn:  # after a run that failed and one that recorded, the lock is free
            conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))  # failing rather than hanging
            assert runs.register_run(conn, "saba", "incremental", [1405]) > 0
            conn.rollback()
    finally:
        other.dispose()


def test_sync_run_ids_come_from_a_sequence_without_a_cache(engine):
    """sync_runs_settled's argument needs ids handed out in increasing order across sessions: a
    sequence with a cache gives each session a block of ids, and one drawn from an older block after
    a reconciliation's snapshot would fall below its watermark (store/locks.py)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite draws a row's id in its write transaction, one writer at a time")
    with engine.connect() as conn:
        cache = conn.execute(sa.text("SELECT seqcache FROM pg_sequence "
                                     "WHERE seqrelid = pg_get_serial_sequence('sync_run', 'id')::regclass")).scalar_one()
    assert cache == 1


def test_nightly_runs_find_each_approval_on_the_day_it_becomes_overdue(engine):
    # A run whose approval cut-off moved reads, on unchanged subjects, only the entries the move
    # reached (Rule.moved). Entries pending approval entered one a day, a report and an item each:
    # each pair becomes overdue on its own day; every night a full judgement of the same moment must
    # find nothing more to do, and a run after three days at once opens three days' pairs.
    store = Store(engine)
    agreement = store.agreement()
    first = day("1405/07/01")
    for n in range(8):
        entered = format_jalali(first + timedelta(days=n), persian_digits=False)
        store.report(store.project(f"1305012007-1{n:02d}"), 1, 30, status="pending", reported_on=entered)
        store.performance(store.operation(agreement, f"11002-{n:02d}"), 1, 100, status="pending",
                          reported_on=entered)
    settings = config()
    due = settings.approval_due_days
    start = reconcile.run(engine, settings, as_of=first + timedelta(days=due))  # late: entered before 07/01
    assert start.stats["capital.approval_overdue"].findings == 0
    opened_by_night = []
    asked_since: list[set] = []  # the days the approval rules' selects were given, night by night

    def approvals_asked(conn, cursor, statement, parameters, context, executemany) -> None:
        if "comptroller_status" in statement and "count(" not in statement:
            values = parameters.values() if isinstance(parameters, dict) else parameters
            asked_since[-1].update(str(v) for v in values if isinstance(v, (date, str)))  # SQLite: ISO text

    event.listen(engine, "before_cursor_execute", approvals_asked)
    last_night = 0
    try:
        for night in (1, 2, 3, 6, 7):  # 07/16 + 1, 2, 3, then three days at once, then one
            when = first + timedelta(days=due + night)
            asked_since.append(set())
            step = reconcile.run(engine, settings, as_of=when, incremental=True)
            assert step.scope == "incremental"
            # both approval rules asked only from the last run's cut-off on (Rule.moved)
            last_cutoff = first + timedelta(days=last_night)
            assert last_cutoff.isoformat() in asked_since[-1], (night, sorted(asked_since[-1]))
            last_night = night
            whole = reconcile.run(engine, settings, as_of=when, dry_run=True)
            assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} == NOTHING_TO_DO, night
            opened_by_night.append(step.life.opened)
    finally:
        event.remove(engine, "before_cursor_execute", approvals_asked)
    assert opened_by_night == [2, 2, 2, 6, 2]
    dev = Deviation.__table__
    with engine.connect() as conn:  # the eight pairs' first seven days, each found once
        assert conn.execute(sa.select(sa.func.count()).select_from(dev).where(
            dev.c.rule == "approval_overdue", dev.c.status == "open")).scalar_one() == 14


def test_an_approval_clock_moved_back_or_unreadable_reads_every_unrecorded_entry(engine):
    from reconcile.facts import AsOf
    from reconcile.rules.base import approval_moved
    from reconcile.scope import Scope

    with engine.connect() as conn:
        scope = Scope(conn, AsOf(day("1405/08/01"), 15, 15), (1405,))
        entered = pr.c.reported_on
        assert approval_moved(scope, "approval cut-off 2026-09-01", entered) is not None  # moved forward since
        assert approval_moved(scope, "approval cut-off 2026-12-01", entered) is None  # a later cut-off then
        assert approval_moved(scope, "approval cut-off 1405/07/01", entered) is None
        assert approval_moved(scope, "late quarters 1405/1", entered) is None


def test_a_years_begun_clock_moved_forward_reads_only_the_years_begun_since(engine):
    # a review: on 1 Farvardin credit_inconsistency read every year's possibly-broken credits
    from reconcile.facts import AsOf
    from reconcile.rules.base import begun_clock, begun_moved
    from reconcile.scope import Scope

    with engine.connect() as conn:
        scope = Scope(conn, AsOf(day("1405/01/01"), 15, 15), (1404, 1405, 1406))
        assert begun_clock(scope) == "years begun [1404, 1405]"
        moved = begun_moved(scope, "years begun [1404]", py.c.fiscal_year)
        assert moved is not None and moved.compare(py.c.fiscal_year.in_([1405]))
        assert begun_moved(scope, "years begun []", py.c.fiscal_year).compare(py.c.fiscal_year.in_([1404, 1405]))
        assert begun_moved(scope, "years begun [1404, 1405, 1406]", py.c.fiscal_year) is None  # moved back
        assert begun_moved(scope, "approval cut-off 2026-09-01", py.c.fiscal_year) is None  # unreadable


def _last_found_days(engine) -> set:
    dev = Deviation.__table__
    with engine.connect() as conn:
        return set(conn.execute(sa.select(last_found(dev)).distinct()
                                .where(dev.c.status.in_(("open", "acknowledged")))).scalars())


def test_a_run_on_unchanged_data_judges_only_what_time_can_change(engine):
    varied_store(engine, random.Random(3))
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    again = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True)
    assert again.scope == "incremental"
    # the same day: every time-driven rule's clock is the last run's, and no visit came (nor is there
    # one: test_visits_imported_corrected_or_come_due_since_the_last_run_are_judged_by_the_next)
    assert {name for name, s in again.stats.items() if s.checked} == set()
    assert again.life.opened == again.life.resolved == again.life.updated == 0
    assert again.life.unchanged == _active(engine) > 0  # found again, judged or not
    # a day later the approval cut-off has moved (every subject judged), no quarter became late
    later = reconcile.run(engine, config(), as_of=day("1405/09/03"), incremental=True)
    assert later.scope == "incremental"
    assert later.stats["capital.approval_overdue"].checked > 0 and later.stats["expense.approval_overdue"].checked > 0
    assert later.stats["capital.missing_report"].checked == later.stats["expense.missing_report"].checked == 0
    assert later.stats["capital.completion_overdue"].checked == 0


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_year_that_begins_is_judged_for_its_credits_though_nothing_changed(engine):
    # a trial: credit_inconsistency judged years not begun; once it waits for the year, the year's
    # beginning must reach subjects no sync touched since (its clock: the years begun)
    varied_store(engine, random.Random(3))
    before = reconcile.run(engine, config(), as_of=day("1404/12/29"))
    assert not [f for f in before.findings if f.rule == "credit_inconsistency"]
    assert before.stats["capital.credit_inconsistency"].checked == 0
    begun = reconcile.run(engine, config(), as_of=day("1405/01/01"), incremental=True)
    assert begun.scope == "incremental"
    assert _active(engine, "credit_inconsistency") > 0
    whole = reconcile.run(engine, config(), as_of=day("1405/01/01"), dry_run=True)
    assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} == NOTHING_TO_DO, whole.life
    again = reconcile.run(engine, config(), as_of=day("1405/01/02"), incremental=True)  # the clock is steady
    assert again.stats["capital.credit_inconsistency"].checked == again.stats["expense.credit_inconsistency"].checked == 0


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_store_recorded_before_credits_waited_for_their_year_is_judged_whole_after_the_upgrade(engine, monkeypatch):
    """A review: the release that made credit_inconsistency wait for a year to begin (and isolated
    negative figures in sentences) must raise wording.VERSION, or the first run after the upgrade is
    incremental and carries the old release's deviations of years not begun, and its sentences."""
    from reconcile.rules import capital, expense

    varied_store(engine, random.Random(3))
    # the release before: wording 9, credit_inconsistency judging years not begun, not time-driven
    for rule in (capital.CreditInconsistency, expense.CreditInconsistency):
        monkeypatch.setattr(rule, "time_driven", False)
    monkeypatch.setattr("reconcile.scope.Scope.begun_years", lambda self: self.years)
    monkeypatch.setattr("reconcile.wording.VERSION", 9)
    before = reconcile.run(engine, config(), as_of=day("1404/12/28"))
    assert any(f.rule == "credit_inconsistency" for f in before.findings)
    monkeypatch.undo()
    runs = ReconcileRun.__table__
    with engine.begin() as conn:  # its run recorded no clock for the rule
        stats = conn.execute(sa.select(runs.c.stats).where(runs.c.id == before.run_id)).scalar_one()
        for name in ("capital.credit_inconsistency", "expense.credit_inconsistency"):
            stats["clocks"].pop(name, None)
        conn.execute(sa.update(runs).where(runs.c.id == before.run_id).values(stats=stats))
    upgraded = reconcile.run(engine, config(), as_of=day("1404/12/29"), incremental=True)
    assert upgraded.scope == "full"  # another basis: the wording's version
    assert _active(engine, "credit_inconsistency") == 0
    whole = reconcile.run(engine, config(), as_of=day("1404/12/29"), dry_run=True)
    assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} == NOTHING_TO_DO, whole.life


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_store_recorded_before_the_next_band_was_kept_is_judged_whole_after_the_upgrade(engine, monkeypatch):
    """The release that keeps where the next severity's band begins (``numbers["next"]``, and shows
    figures apart from it: a unit cost of 2.9998 beside 2 read «۳») raised wording.VERSION: the first
    run after the upgrade is full and every banded deviation keeps its next bound."""
    from types import MappingProxyType

    from reconcile.rules import base

    varied_store(engine, random.Random(5))
    banded = base._banded.__wrapped__

    def before(bands, limits, severity):  # the release before: no "next"
        band, bounds = banded(bands, limits, severity)
        return MappingProxyType({"band": band["band"]}), bounds

    monkeypatch.setattr(base, "_banded", before)
    monkeypatch.setattr("reconcile.wording.VERSION", 10)
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    monkeypatch.undo()
    deviations = Deviation.__table__
    bands = sa.select(deviations.c.numbers).where(sa.or_(  # the bands below each rule's highest
        sa.and_(deviations.c.rule == "progress_lag", deviations.c.severity != "critical"),
        sa.and_(deviations.c.rule == "unit_cost_overrun", deviations.c.severity == "minor")))
    with engine.connect() as conn:
        assert all("next" not in n for n in conn.execute(bands).scalars()), "the old release kept no next bound"
    upgraded = reconcile.run(engine, config(), as_of=day("1405/09/03"), incremental=True)
    assert upgraded.scope == "full"  # another basis: the wording's version
    with engine.connect() as conn:
        kept = conn.execute(bands.where(deviations.c.status == "open")).scalars().all()
    assert kept and all("next" in n for n in kept)


def test_on_sqlite_the_plan_searches_run_ids_by_index_whatever_analyze_counted(tmp_path):
    """What changed since the last run is found through the run id indexes (migration 0009), not by
    reading every fact row, even when SQLite's statistics say one run id covers a million rows, as
    ANALYZE (the service's PRAGMA optimize) counts a store filled by one full sync. Asked as
    ``IN (SELECT id FROM sync_run …)``, SQLite scanned the tables then: 1 s of an unchanged re-run at 100k."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    varied_store(engine, random.Random(7))
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    facts = [py, pr, pc, ea, ec, op, perf, ChangeLog.__table__]
    with engine.begin() as conn:  # the statistics of a million rows written by one sync run
        conn.exec_driver_sql("ANALYZE")
        conn.execute(sa.text("DELETE FROM sqlite_stat1 WHERE tbl IN :names").bindparams(
            sa.bindparam("names", expanding=True)), {"names": [t.name for t in facts]})
        for table in facts:
            for index in table.indexes:
                one_run = [c.name for c in index.columns] in (["last_run_id"], ["run_id"])
                conn.exec_driver_sql("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)",
                                     (table.name, index.name, "1000000 1000000" if one_run else "1000000 1"))
    engine.dispose()  # new connections load the statistics
    asked: list[tuple[str, tuple]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def keep(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO bw_changed_") or "FROM change_log" in statement:  # the plan's
            asked.append((statement, parameters))

    again = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True)
    event.remove(engine, "before_cursor_execute", keep)
    assert again.scope == "incremental"
    assert len(asked) == 3  # the renames, the changed project years, the changed agreements
    with engine.connect() as conn:
        plans = [row[3] for statement, parameters in asked  # the SELECT of an INSERT into a temporary table
                 for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement[statement.index('SELECT'):]}",
                                                 parameters)]
    engine.dispose()
    scans = [line for line in plans if line.startswith("SCAN") and any(f" {t.name}" in line for t in facts)]
    assert not scans, scans
    assert sum("last_run_id" in line for line in plans) == 7


# sqlite_stat1 of bench/reconcile.py's 100k store after ANALYZE (its tables of what the approval rules read)
BENCH_STATISTICS = [(table, index, stat) for table, rows in {
    "agency": [("ix_agency_name_key", "40 1"), ("sqlite_autoindex_agency_1", "40 1")],
    "county": [("sqlite_autoindex_county_1", "30 1")],
    "expense_agreement": [("ix_expense_agreement_agency_code", "50000 1250"), ("ix_expense_agreement_county_id", "50000 1667"),
                          ("ix_expense_agreement_fiscal_year", "50000 50000"), ("ix_expense_agreement_gone", "50000 50000"),
                          ("ix_expense_agreement_last_run_id", "50000 50000"),
                          ("ix_expense_agreement_portal_id", "50000 50000"),
                          ("sqlite_autoindex_expense_agreement_1", "50000 1 1")],
    "operation": [("ix_operation_agreement_id", "250000 5"), ("ix_operation_last_run_id", "250000 250000"),
                  ("sqlite_autoindex_operation_1", "250000 5 1")],
    "operation_performance": [("ix_operation_performance_last_run_id", "1000000 333334"),
                              ("ix_operation_performance_operation_id", "1000000 4"),
                              ("ix_operation_performance_pending", "20121 1 1"),
                              ("sqlite_autoindex_operation_performance_1", "1000000 4 1")],
    "progress_report": [("ix_progress_report_last_run_id", "400000 133334"), ("ix_progress_report_pending", "20148 1 1"),
                        ("ix_progress_report_project_year_id", "400000 4"),
                        ("sqlite_autoindex_progress_report_1", "400000 4 1")],
    "project": [("ix_project_portal_id", "100000 100000"), ("sqlite_autoindex_project_1", "100000 1")],
    "project_year": [("ix_project_year_agency_code", "100000 2500"), ("ix_project_year_agreement_no", "100000 100000"),
                     ("ix_project_year_county_id", "100000 3334"), ("ix_project_year_fiscal_year", "100000 100000"),
                     ("ix_project_year_gone", "100000 100000"), ("ix_project_year_last_run_id", "100000 100000"),
                     ("ix_project_year_project_id", "100000 1"), ("sqlite_autoindex_project_year_1", "100000 1 1")],
}.items() for index, stat in rows]


def test_on_sqlite_the_approval_rules_read_the_pending_rows_by_index(tmp_path):
    """Both approval_overdue rules read the reports and items the comptroller has not approved through
    their partial indexes (migration 0011), not every project year's or operation's rows: a nightly
    run asks them of every subject because their cut-off moves each day (their selects 0.21–0.26 s and
    0.36–0.46 s at 100k on SQLite before; docs/benchmarks.md, session 22). Planned on the statistics that
    ANALYZE gave bench/reconcile.py's 100k store, where 2 % of the rows are pending."""
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    varied_store(engine, random.Random(8))
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.execute(sa.text("DELETE FROM sqlite_stat1 WHERE tbl IN :names").bindparams(
            sa.bindparam("names", expanding=True)), {"names": sorted({t for t, _, _ in BENCH_STATISTICS})})
        for row in BENCH_STATISTICS:
            conn.exec_driver_sql("INSERT INTO sqlite_stat1 VALUES (?, ?, ?)", row)
    engine.dispose()  # new connections load the statistics
    plans: list[list[str]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany):
        # explained where it runs: an incremental run's select names its temporary tables
        if "comptroller_status !=" in statement and not statement.startswith("SELECT count("):
            plans.append([row[3] for row in conn.connection.driver_connection.execute(
                f"EXPLAIN QUERY PLAN {statement}", parameters)])

    for as_of, incremental in (("1405/09/02", False), ("1405/09/03", True)):  # then a nightly run, next day
        assert reconcile.run(engine, config(), as_of=day(as_of), incremental=incremental).scope == (
            "incremental" if incremental else "full")
    event.remove(engine, "before_cursor_execute", explain)
    engine.dispose()
    assert len(plans) == 4
    for plan in plans:
        assert plan[0] in ("SCAN progress_report USING INDEX ix_progress_report_pending",
                           "SCAN operation_performance USING INDEX ix_operation_performance_pending"), plan
        assert not any(line.startswith("SCAN") for line in plan[1:]), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan  # in the index's order, not sorted


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_another_basis_or_full_judges_everything(engine):
    varied_store(engine, random.Random(5))
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    step = {"incremental": True}
    assert reconcile.run(engine, config(), as_of=day("1405/10/02"), **step).scope == "full"  # Q3 closed since
    assert reconcile.run(engine, config(report_due_days=20), as_of=day("1405/10/02"), **step).scope == "full"
    assert reconcile.run(engine, config(report_due_days=20), as_of=day("1405/10/02")).scope == "full"
    assert reconcile.run(engine, config(report_due_days=20), as_of=day("1405/10/03"), **step).scope == "incremental"


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_sentences_reworded_by_an_upgrade_are_judged_whole_once(engine, monkeypatch):
    """An upgrade that rewords findings (reconcile/wording.py VERSION) must not leave the deviations
    of unchanged subjects in the old words: its first run judges everything."""
    varied_store(engine, random.Random(6))
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    assert reconcile.run(engine, config(), as_of=day("1405/09/03"), incremental=True).scope == "incremental"
    monkeypatch.setattr("reconcile.wording.VERSION", reconcile.wording.VERSION + 1)
    assert reconcile.run(engine, config(), as_of=day("1405/09/04"), incremental=True).scope == "full"
    assert reconcile.run(engine, config(), as_of=day("1405/09/05"), incremental=True).scope == "incremental"


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_past_day_or_a_dry_run_records_nothing(engine):
    # issue 12 item 13: the life of deviations moves only forward
    varied_store(engine, random.Random(9))
    today = reconcile.run(engine, config(), as_of=day("1405/10/02"))
    dev = Deviation.__table__
    with engine.connect() as conn:
        before = conn.execute(sa.select(dev).order_by(dev.c.id)).all()
        runs = conn.execute(sa.select(sa.func.count()).select_from(ReconcileRun.__table__)).scalar_one()
    past = reconcile.run(engine, config(), as_of=day("1405/05/01"))
    dry = reconcile.run(engine, config(), as_of=day("1405/10/05"), dry_run=True)
    assert past.run_id is None and "before the last recorded run" in past.what_if
    assert past.what_if.startswith(f"as of 1405/05/01 ({day('1405/05/01').isoformat()}), ")  # as the header writes it
    assert dry.run_id is None and "dry-run" in dry.what_if
    assert past.life.resolved > 0  # what it would have done, told, not done
    with engine.connect() as conn:
        assert conn.execute(sa.select(dev).order_by(dev.c.id)).all() == before
        assert conn.execute(sa.select(sa.func.count()).select_from(ReconcileRun.__table__)).scalar_one() == runs
    assert today.life.opened == len(before)


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_day_after_today_is_a_what_if_and_leaves_later_runs_recorded(engine, monkeypatch):
    # found by a new user: `reconcile --as-of 2030-01-01` was recorded, and every later run became a
    # what-if ("before the last recorded run's day") until 2030
    monkeypatch.setattr("reconcile.engine._today", lambda: day("1405/09/10"))
    varied_store(engine, random.Random(4))
    ahead = reconcile.run(engine, config(), as_of=day("1405/09/11"))
    assert ahead.run_id is None
    assert ahead.what_if == (f"as of 1405/09/11 ({day('1405/09/11').isoformat()}), after today "
                             f"1405/09/10 ({day('1405/09/10').isoformat()}): a what-if, nothing is recorded")
    assert ahead.life.opened > 0  # told what it would do
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ReconcileRun.__table__)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(Deviation.__table__)).scalar_one() == 0
    now = reconcile.run(engine, config(), as_of=day("1405/09/10"))  # today itself is recorded
    assert now.what_if is None and now.run_id is not None and now.life.opened > 0


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_run_dated_after_today_by_an_older_version_does_not_hold_later_runs_back(engine, monkeypatch):
    # a store where an older budgetwatch recorded `--as-of 2030-01-01`: today's runs record again
    varied_store(engine, random.Random(4))
    reconcile.run(engine, config(), as_of=day("1408/10/11"))  # recorded: the fixture's today is 2099
    monkeypatch.setattr("reconcile.engine._today", lambda: day("1405/09/10"))
    now = reconcile.run(engine, config(), as_of=day("1405/09/10"))
    assert now.what_if is None and now.run_id is not None
    assert reconcile.run(engine, config(), as_of=day("1405/09/05")).what_if_reason == "past"  # before today's run


def test_a_show_that_fails_half_way_leaves_the_run_recorded_and_the_store_usable(engine):
    """The output fails while rows still stream (a full disk, a closed pipe): the run is recorded, the
    error is the output's, and the stream does not hold the connection (on PostgreSQL a stream left
    open would make the connection's rollback wait forever; the suite's timeout catches that)."""
    varied_store(engine, random.Random(7))
    kept = []

    def show(rows, result):
        kept.append(rows())  # as a traceback would keep the reader's stream alive
        next(iter(kept[0]))
        raise OSError("No space left on device")

    try:
        reconcile.run(engine, config(), as_of=day("1405/08/20"), keep=False, show=show)
    except OSError as exc:
        assert "No space" in str(exc)
    else:
        raise AssertionError("the output's error was swallowed")
    with engine.connect() as conn:
        assert conn.execute(sa.select(ReconcileRun.__table__.c.status)).scalars().all() == ["success"]
    assert _active(engine) > 0
    again = reconcile.run(engine, config(), as_of=day("1405/08/20"), keep=False)
    assert again.life.opened == 0 and again.life.resolved == 0


def test_findings_the_days_made_late_on_unchanged_subjects_are_shown_once_and_counted_as_opened(engine):
    # a time-driven rule whose clock moved judges every subject; what it finds on a subject whose facts
    # did not change is new, and must not be counted, nor shown, a second time as carried
    varied_store(engine, random.Random(3))
    reconcile.run(engine, config(), as_of=day("1405/10/02"))  # the third quarter is closed, not due yet
    shown: list[tuple] = []

    def show(rows, _result) -> None:
        with contextlib.closing(rows()) as stream:
            shown.extend((r.kind, r.rule, r.subject, r.fiscal_year, r.quarter, r.deviation_id) for r in stream)

    later = reconcile.run(engine, config(), as_of=day("1405/10/20"), incremental=True, keep=False, show=show)
    assert later.scope == "incremental"
    assert later.life.opened > 0 and later.stats["capital.missing_report"].findings > 0  # its reports now late
    assert len(shown) == len(set(shown)) == _active(engine)
    life = later.life
    assert life.opened + life.reopened + life.escalated + life.lowered + life.updated + life.unchanged == _active(engine)


def test_a_run_that_opens_many_deviations_leaves_postgresql_planning_on_them(engine):
    """A first run opens every deviation in one transaction. Until the table is analyzed, PostgreSQL
    plans the next run on its old statistics (an empty table: 30 s instead of 0.1 s for one of its
    queries at 100k, docs/benchmarks.md session 13). Autovacuum would analyze it within a minute of
    the commit (it is off on the test server, so only the run's ANALYZE after its commit can pass this)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    varied_store(engine, random.Random(3), projects=60)
    first = reconcile.run(engine, config(), as_of=day("1405/09/02"))
    assert first.life.opened > 50
    with engine.connect() as conn:
        counted = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'deviation'::regclass")).scalar()
    assert counted == first.life.opened


def test_postgresql_analyzes_a_runs_deviations_while_the_caller_reads_them(engine):
    """The ANALYZE after a recording run's commit runs on a connection of its own beside the
    caller's `show` (0.35 s of a 100k first run's command, docs/benchmarks.md session 15): the
    statistics arrive while `show` is still reading, and are there when the run returns."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    varied_store(engine, random.Random(3), projects=60)
    seen: list[float] = []

    def show(rows, result) -> None:
        with contextlib.closing(rows()) as stream:
            listed = sum(1 for _ in stream)
        deadline = time.monotonic() + 30  # the other connection's ANALYZE, awaited by its result
        with engine.connect() as conn:
            while time.monotonic() < deadline:
                counted = conn.execute(sa.text(
                    "SELECT reltuples FROM pg_class WHERE oid = 'deviation'::regclass")).scalar()
                conn.rollback()
                if counted == listed:
                    break
                time.sleep(0.01)
        seen.append(counted)

    first = reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False, show=show)
    assert first.life.opened > 50 and seen == [first.life.opened]


def test_a_run_first_brings_postgresql_statistics_up_to_a_table_that_outgrew_them(engine):
    """Deviations written while the statistics were not kept (a restore, a copy of the database, an
    older budgetwatch): the run analyzes the table before it plans on it, though it opens nothing."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    varied_store(engine, random.Random(3), projects=5)
    old = [dict(kind="capital", rule="progress_lag", subject=f"P-OLD-{i}", fiscal_year=1399, quarter=1,
                severity="minor", status="open", message="جمله‌ای بلند " * 8, first_found_on=day("1399/05/01"),
                last_found_on=day("1399/05/01")) for i in range(3000)]
    with engine.begin() as conn:
        conn.execute(sa.insert(Deviation.__table__), old)
    run = reconcile.run(engine, config(), as_of=day("1405/09/02"))
    assert run.life.opened < 3000 // 10  # too few for the run's own ANALYZE after it writes
    with engine.connect() as conn:
        counted = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = 'deviation'::regclass")).scalar()
    assert counted >= 3000


def test_a_run_first_brings_postgresql_statistics_to_facts_never_analyzed(engine):
    """A first sync interrupted before its closing ANALYZE (Ctrl-C, a kill) leaves the facts it
    committed without statistics where autovacuum is off or behind: a trial's reconciliation then
    ran for minutes instead of a second on 15,000 projects. The run analyzes them before it plans."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    varied_store(engine, random.Random(3), projects=40)
    tables = ("project", "project_year", "progress_report", "expense_agreement", "operation", "operation_performance")
    estimated = f"SELECT relname, reltuples FROM pg_class WHERE relnamespace = current_schema()::regnamespace " \
                f"AND relname IN {tables}"
    with engine.connect() as conn:
        assert {name: tuples for name, tuples in conn.execute(sa.text(estimated))} == dict.fromkeys(tables, -1)
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    with engine.connect() as conn:
        after = dict(conn.execute(sa.text(estimated)).all())
        counts = {name: conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar() for name in tables}
    assert after == counts and all(n > 0 for n in counts.values())


def test_postgresql_plans_an_incremental_run_on_the_count_of_its_changed_subjects(engine):
    """The changed subjects' temporary tables are analyzed as they are filled: unanalyzed, PostgreSQL
    estimates 2,550 ids a page, and for a 1 % change read every performance item four times over to
    reach a few operations' quarters (65 → 5 ms at 10k projects; docs/benchmarks.md, session 31).
    What the planner counts is read on the run's own connection, right after the ANALYZE."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    rnd = random.Random(5)
    varied_store(engine, rnd)
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    _change(engine, rnd)
    counted: dict[str, tuple[int, int]] = {}

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.startswith("ANALYZE bw_changed_"):
            table = statement.split()[1]
            counted[table] = tuple(cursor.connection.execute(
                f"SELECT reltuples::int, (SELECT count(*) FROM {table}) FROM pg_class WHERE oid = '{table}'::regclass"
            ).fetchone())

    event.listen(engine, "after_cursor_execute", seen)
    try:
        step = reconcile.run(engine, config(), as_of=day("1405/09/03"), incremental=True)
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    assert step.scope == "incremental"
    assert set(counted) == {"bw_changed_project_year", "bw_changed_agreement"}
    assert all(planned == rows > 0 for planned, rows in counted.values()), counted


def test_a_helpers_changed_subjects_are_counted_for_postgresqls_planner(engine):
    """The same tables made from the run's ids on a helper process's connection (changes.changed_tables)."""
    from reconcile import changes

    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    with engine.begin() as conn:
        changes.changed_tables(conn, {"project_years": [3, 5, 8], "agreements": [2]})
        counted = conn.execute(sa.text(
            "SELECT relname, reltuples::int FROM pg_class WHERE relname LIKE 'bw_changed_%' "
            "AND relkind = 'r' AND relpersistence = 't' AND pg_table_is_visible(oid) ORDER BY relname")).all()
        changes.clean(conn)
    assert [tuple(r) for r in counted] == [("bw_changed_agreement", 1), ("bw_changed_project_year", 3)]


# --- field visits: imported, corrected, or come due since the last run --------------------------

def _visits_file(tmp_path, name: str, rows: list[tuple[str, str, str, str]]):
    path = tmp_path / name
    path.write_text("project_code,date,observed_progress,inspector\n"
                    + "".join(f"{code},{when},{observed},{who}\n" for code, when, observed, who in rows),
                    encoding="utf-8")
    return path


def _as_a_full_run_finds(engine, when: str, n) -> list:
    """A full judgement of the same moment, as a what-if, has nothing to open, change or resolve; its
    findings of field visits."""
    whole = reconcile.run(engine, config(), as_of=day(when), dry_run=True)
    assert {k: v for k, v in whole.life.as_dict().items() if k in NOTHING_TO_DO} == NOTHING_TO_DO, (n, whole.life)
    return sorted(f.subject for f in whole.findings if f.rule == "inspection_mismatch")


def test_visits_imported_corrected_or_come_due_since_the_last_run_are_judged_by_the_next(engine, tmp_path):
    """Visits arrive by import, not by a sync: an import numbers the visits it writes
    (field_inspection.revision) and a run keeps the largest it saw, so the next judges again the
    project years of the visits written since; a visit counts from its day on, so those dated since
    the last run's day are judged again too (reconcile/changes.py). Nothing else of the visits is
    judged: an incremental run no longer asks inspection_mismatch of every visited project year."""
    from reconcile.inspections import import_file

    varied_store(engine, random.Random(5))
    first = reconcile.run(engine, config(), as_of=day("1405/09/02"))
    assert first.stats["capital.inspection_mismatch"].checked == 0
    a, b, c = "1305012007-001", "1305012007-002", "1305012007-003"
    # a now, b on a day still to come for the next run; reports are at most 60 %
    import_file(engine, _visits_file(tmp_path, "v1.csv", [(a, "1405/09/03", "100", "احمدی"),
                                                          (b, "1405/09/10", "100", "احمدی")]),
                today=day("1405/09/10"))
    step = reconcile.run(engine, config(), as_of=day("1405/09/05"), incremental=True)
    assert step.scope == "incremental" and step.stats["capital.inspection_mismatch"].findings == 1
    assert _as_a_full_run_finds(engine, "1405/09/05", "a imported") == [a]
    # a corrected (a visit's figures replaced by a file: the same visit), c visited the same day
    import_file(engine, _visits_file(tmp_path, "v2.csv", [(a, "1405/09/03", "55", "احمدی"),
                                                          (c, "1405/09/05", "100", "کریمی")]),
                today=day("1405/09/10"))
    step = reconcile.run(engine, config(), as_of=day("1405/09/06"), incremental=True)
    assert step.scope == "incremental"
    assert _as_a_full_run_finds(engine, "1405/09/06", "a corrected") == [a, c]  # a's figures changed
    # no import since: only b, whose day has come, is a visit to judge again
    step = reconcile.run(engine, config(), as_of=day("1405/09/12"), incremental=True)
    assert step.scope == "incremental" and step.stats["capital.inspection_mismatch"].checked == 1
    assert _as_a_full_run_finds(engine, "1405/09/12", "b come due") == [a, b, c]
    again = reconcile.run(engine, config(), as_of=day("1405/09/12"), incremental=True)
    assert again.stats["capital.inspection_mismatch"].checked == 0 and again.life.unchanged == _active(engine)


@pytest.mark.slow_on_postgresql  # the run's logic, not the database's: its SQLite variant stays in the default run
def test_a_run_after_the_upgrade_that_numbers_visits_judges_everything_once(engine):
    """A run recorded before migration 0012 kept no watermark of visits: the next judges everything,
    saying why, and the one after that judges incrementally again."""
    varied_store(engine, random.Random(6))
    first = reconcile.run(engine, config(), as_of=day("1405/09/02"))
    runs = ReconcileRun.__table__
    with engine.begin() as conn:
        stats = dict(conn.execute(sa.select(runs.c.stats).where(runs.c.id == first.run_id)).scalar_one())
        stats["watermark"] = {k: v for k, v in stats["watermark"].items() if k != "visits"}
        conn.execute(sa.update(runs).where(runs.c.id == first.run_id).values(stats=stats))
    step = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True)
    assert step.scope == "full"
    assert reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True).scope == "incremental"


def test_imports_of_visits_number_themselves_one_at_a_time(engine, tmp_path):
    """PostgreSQL: two imports at once each draw the largest revision plus one; without a lock both
    would draw the same, and a run that saw the first's commit would pass over the second's visits
    for ever. The second waits for the first's commit (store.locks ``VISIT_IMPORTS``), and a run
    recorded while the first was still open judges its visits in the next run."""
    import threading

    from reconcile.inspections import import_file
    from store import locks
    from store.models import FieldInspection

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers commit one at a time: an import holds the write lock from its start")
    fi = FieldInspection.__table__
    varied_store(engine, random.Random(8))
    reconcile.run(engine, config(), as_of=day("1405/09/02"))
    a, b = "1305012007-004", "1305012007-005"
    holding, release = threading.Event(), threading.Event()

    def held(_conn, _result) -> None:  # the first import, its revision drawn, not yet committed
        holding.set()
        assert release.wait(60)

    first = threading.Thread(target=import_file, args=(engine, _visits_file(tmp_path, "a.csv", [
        (a, "1405/09/02", "100", "احمدی")])), kwargs={"today": day("1405/09/02"), "also": held}, daemon=True)
    second = threading.Thread(target=import_file, args=(engine, _visits_file(tmp_path, "b.csv", [
        (b, "1405/09/02", "100", "احمدی")])), kwargs={"today": day("1405/09/02")}, daemon=True)
    try:
        first.start()
        assert holding.wait(60)
        between = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True)  # sees neither
        assert between.stats["capital.inspection_mismatch"].findings == 0
        second.start()
        assert _waits_for_the_lock(engine, locks.VISIT_IMPORTS, second), "the second import did not wait"
    finally:
        release.set()
        first.join(60)
        second.join(60)
    with engine.connect() as conn:
        revisions = dict(conn.execute(sa.select(fi.c.project_code, fi.c.revision)
                                      .where(fi.c.project_code.in_((a, b)))).all())
    assert revisions[b] == revisions[a] + 1
    step = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=True)
    assert step.scope == "incremental" and step.stats["capital.inspection_mismatch"].findings == 2
    assert _as_a_full_run_finds(engine, "1405/09/02", "both imports") == [a, b]
