"""A SQLite run's counts of what its rules checked, made beside it (reconcile.judge.Answers ``beside``):
on a connection of its own in a thread, for every count that reads none of the run's temporary
tables, with the same numbers as counted in the run's thread. Real SQLite files: the second
connection is the point."""

from __future__ import annotations

import os
import random
import shutil
import sys
import threading
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

import reconcile
import reconcile.engine as engine_module
from reconcile.judge import Answers, Asked
from reconcile_builders import config, day, varied_store
from store.db import error_line, make_engine, open_store
from store.models import ProgressReport, SyncRun

_meta = sa.MetaData()
NUMBERS = sa.Table("numbers", _meta, sa.Column("n", sa.Integer, primary_key=True))
STAGED = sa.Table("bw_test_staged", _meta, sa.Column("n", sa.Integer, primary_key=True), prefixes=["TEMPORARY"])


def _count(table: sa.Table, below: int) -> Asked:
    return Asked(select=lambda: sa.select(table.c.n).where(table.c.n < below).order_by(table.c.n),
                 checked=lambda: sa.select(sa.func.count()).select_from(table).where(table.c.n < below),
                 name=f"test.{table.name}_{below}")


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'counts.db'}")
    with engine.begin() as conn:
        NUMBERS.create(conn)
        conn.execute(sa.insert(NUMBERS), [{"n": n} for n in range(1, 1001)])
    yield engine
    engine.dispose()


def _counters() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "reconcile-counter"]


def _everything(answers: Answers, count: int) -> tuple[list[int], list[bool], list[int]]:
    try:
        rows = [len(list(answers.rows(i))) for i in range(count)]
        beside = [answers.counted_beside(i) for i in range(count)]
        return rows, beside, [answers.checked(i) for i in range(count)]
    finally:
        answers.close()


def test_the_counts_beside_are_the_counts_in_turn_and_a_temporary_tables_stay_with_the_run(sqlite_engine):
    seen: list[tuple[str, int]] = []  # (thread, connection) of each count
    priorities: dict[str, set[int]] = {}

    @sa.event.listens_for(sqlite_engine, "before_cursor_execute")
    def _seen(conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT COUNT"):
            thread = threading.current_thread().name
            seen.append((thread, id(conn.connection.dbapi_connection)))
            priorities.setdefault(thread, set()).add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    with sqlite_engine.connect() as reader:
        STAGED.create(reader)
        reader.execute(sa.insert(STAGED), [{"n": n} for n in range(1, 51)])
        asked = [_count(NUMBERS, 700), _count(STAGED, 30), _count(NUMBERS, 5)]
        in_turn = _everything(Answers(reader, asked, ahead=False), len(asked))
        assert seen and {thread for thread, _ in seen} == {threading.current_thread().name}
        seen.clear()
        answers = Answers(reader, asked, ahead=False, beside=sqlite_engine)
        answers._beside.thread.join(30)  # as in a run, where the counts are asked last: all counted beside
        beside = _everything(answers, len(asked))
        runs = id(reader.connection.dbapi_connection)
    assert in_turn[0] == beside[0] == [699, 29, 4] and in_turn[2] == beside[2] == [699, 29, 4]
    assert in_turn[1] == [False, False, False]
    assert beside[1] == [True, False, True]  # the temporary table's count only on the run's connection
    assert sorted(thread for thread, _ in seen) == ["MainThread", "reconcile-counter", "reconcile-counter"]
    assert all((connection == runs) == (thread == "MainThread") for thread, connection in seen)
    if sys.platform == "linux":  # the counter at the lowest priority, the run's thread as it was
        assert priorities["reconcile-counter"] == {19} and priorities["MainThread"] != {19}
    assert not _counters()


def test_a_count_that_fails_beside_is_counted_by_the_run_which_says_its_error(sqlite_engine):
    broken = Asked(select=lambda: sa.select(NUMBERS.c.n).where(NUMBERS.c.n < 3),
                   checked=lambda: sa.select(sa.text("count(*) FROM no_such_table")), name="expense.count_broken")
    with sqlite_engine.connect() as reader:
        answers = Answers(reader, [_count(NUMBERS, 10), broken, _count(NUMBERS, 20)], ahead=False, beside=sqlite_engine)
        try:
            assert [len(list(answers.rows(i))) for i in range(3)] == [9, 2, 19]
            assert answers.checked(0) == 9
            with pytest.raises(DBAPIError) as raised:  # the run's own count of it, after the counter's failed
                answers.checked(1)
            assert answers.checked(2) == 19  # the counter stopped at its failure: the run counted it
        finally:
            answers.close()
    assert error_line(raised.value) == ("database error: no such table: no_such_table "
                                        "(while counting what expense.count_broken checked)")
    assert not _counters()


def test_the_run_never_waits_for_the_counter_it_takes_over_what_is_not_counted(sqlite_engine):
    # a count that would never end (a thread at the lowest priority on a busy machine is nearly
    # that): asked for the next count, the run interrupts it and counts what is left itself
    endless = Asked(select=lambda: sa.select(NUMBERS.c.n).where(NUMBERS.c.n < 2),
                    checked=lambda: sa.select(sa.text(
                        "count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)")),
                    name="test.endless")
    started = threading.Event()

    @sa.event.listens_for(sqlite_engine, "before_cursor_execute")
    def _started(_conn, _cursor, statement, *_args):
        if "RECURSIVE" in statement and threading.current_thread().name == "reconcile-counter":
            started.set()

    answered: list[int] = []
    with sqlite_engine.connect() as reader:
        answers = Answers(reader, [endless, _count(NUMBERS, 30)], ahead=False, beside=sqlite_engine)
        try:
            assert answers.counted_beside(0) and answers.counted_beside(1)
            assert started.wait(30)  # the counter is in the endless count
            asking = threading.Thread(target=lambda: answered.append(answers.checked(1)))
            asking.start()
            asking.join(30)
            assert not asking.is_alive(), "the run waited for the counter's endless count"
        finally:
            answers.close()
    assert answered == [29]
    assert not _counters()


def test_answers_closed_before_their_counts_are_read_leave_no_thread(sqlite_engine):
    with sqlite_engine.connect() as reader:
        answers = Answers(reader, [_count(NUMBERS, 500), _count(NUMBERS, 900)], ahead=False, beside=sqlite_engine)
        answers.close()
    assert not _counters()


def test_runs_record_the_same_counts_beside_as_in_their_thread(tmp_path, monkeypatch):
    # the same store twice: one counts beside its runs, the other in them (a full run, then an
    # incremental one after a change, whose changed subjects' counts stay in the run's thread)
    first = open_store(f"sqlite:///{tmp_path / 'beside.db'}")
    varied_store(first, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
    first.dispose()
    shutil.copyfile(tmp_path / "beside.db", tmp_path / "in_turn.db")
    made: list[tuple[str, list[bool]]] = []
    original = Answers.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(("beside" if self._beside is not None else "in turn",
                     {one.name for i, one in enumerate(self.asked) if not self.counted_beside(i)}))

    monkeypatch.setattr(Answers, "__init__", spy)
    lives = {}
    for name in ("beside", "in_turn"):
        if name == "in_turn":
            monkeypatch.setattr(engine_module, "counts_beside", lambda _engine, _conn: False)
        engine = open_store(f"sqlite:///{tmp_path / name}.db")
        try:
            full = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=False)
            with engine.begin() as conn:  # a sync's change: other progress, marked with a new sync run
                run = conn.execute(sa.select(sa.func.max(SyncRun.__table__.c.id))).scalar() + 1
                conn.execute(sa.insert(SyncRun.__table__).values(id=run, source="nezarat4", mode="incremental",
                                                                 fiscal_years="1405", status="success",
                                                                 started_at=datetime(2026, 11, 24, tzinfo=timezone.utc)))
                conn.execute(sa.update(ProgressReport.__table__).where(ProgressReport.__table__.c.id % 3 == 0)
                             .values(progress=ProgressReport.__table__.c.progress / 2, last_run_id=run))
            step = reconcile.run(engine, config(), as_of=day("1405/09/03"), incremental=True)
        finally:
            engine.dispose()
        assert step.scope == "incremental"
        lives[name] = [({rule: s.checked for rule, s in r.stats.items()}, r.findings, r.life) for r in (full, step)]
    assert lives["beside"] == lives["in_turn"]
    assert sum(lives["beside"][1][0].values()) > 0
    assert [kind for kind, _ in made] == ["beside", "beside", "in turn", "in turn"]
    # in the run's thread: a full run's counts of the operations' quarters (a temporary table); an
    # incremental run's counts of the changed subjects, but not the time-driven rules' of every subject
    assert made[0][1] == {"expense.operation_shortfall", "expense.unit_cost_overrun"}
    assert {"capital.progress_lag", "expense.credit_inconsistency"} <= made[1][1]
    assert not made[1][1] & {"capital.approval_overdue", "expense.approval_overdue"}


@pytest.mark.parametrize(("url", "beside"), [("sqlite:///{tmp}/store.db", True), ("sqlite://", False),
                                             ("sqlite:///:memory:", False),
                                             ("sqlite:///file::memory:?uri=true", False),
                                             ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", False)])
def test_only_a_store_in_a_file_in_wal_mode_is_counted_beside(tmp_path, url, beside):
    engine = make_engine(url.format(tmp=tmp_path))  # the store's pragmas: write-ahead log
    try:
        with engine.connect() as conn:
            assert engine_module.counts_beside(engine, conn) is beside
            if beside:  # a rollback journal: a run spilling its writes would lock the counter out
                conn.exec_driver_sql("PRAGMA journal_mode=DELETE")
                assert engine_module.counts_beside(engine, conn) is False
    finally:
        engine.dispose()


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_counter_takes_only_the_cores_the_run_leaves_idle():
    # Linux: a thread's own nice value (by its id); the run's thread keeps its own
    from reconcile.judge import _lowest_priority

    said: list[int] = []

    def counter() -> None:
        _lowest_priority()
        said.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=counter)
    thread.start()
    thread.join()
    assert said == [19] and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before < 19
