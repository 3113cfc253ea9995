"""A SQLite run's counts of what its rules checked, made beside it (reconcile.judge.Answers ``beside``):
on a connection of its own in a thread, for every count that reads none of the run's temporary
tables, with the same numbers as counted in the run's thread. Real SQLite files: the second
connection is the point."""

from __future__ import annotations

import os
import random
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

import reconcile
import reconcile.engine as engine_module
from reconcile.judge import Answers, Asked
from reconcile_builders import config, day, varied_store
from store.db import error_line, make_engine, open_store

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

    @sa.event.listens_for(sqlite_engine, "before_cursor_execute")
    def _seen(conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT COUNT"):
            seen.append((threading.current_thread().name, id(conn.connection.dbapi_connection)))

    with sqlite_engine.connect() as reader:
        STAGED.create(reader)
        reader.execute(sa.insert(STAGED), [{"n": n} for n in range(1, 51)])
        asked = [_count(NUMBERS, 700), _count(STAGED, 30), _count(NUMBERS, 5)]
        in_turn = _everything(Answers(reader, asked, ahead=False), len(asked))
        assert seen and {thread for thread, _ in seen} == {threading.current_thread().name}
        seen.clear()
        beside = _everything(Answers(reader, asked, ahead=False, beside=sqlite_engine), len(asked))
        runs = id(reader.connection.dbapi_connection)
    assert in_turn[0] == beside[0] == [699, 29, 4] and in_turn[2] == beside[2] == [699, 29, 4]
    assert in_turn[1] == [False, False, False]
    assert beside[1] == [True, False, True]  # the temporary table's count only on the run's connection
    assert sorted(thread for thread, _ in seen) == ["MainThread", "reconcile-counter", "reconcile-counter"]
    assert all((connection == runs) == (thread == "MainThread") for thread, connection in seen)
    assert not _counters()


def test_an_error_counting_beside_is_raised_at_its_rule_and_names_it(sqlite_engine):
    broken = Asked(select=lambda: sa.select(NUMBERS.c.n).where(NUMBERS.c.n < 3),
                   checked=lambda: sa.select(sa.text("count(*) FROM no_such_table")), name="expense.count_broken")
    with sqlite_engine.connect() as reader:
        answers = Answers(reader, [_count(NUMBERS, 10), broken, _count(NUMBERS, 20)], ahead=False, beside=sqlite_engine)
        try:
            assert [len(list(answers.rows(i))) for i in range(3)] == [9, 2, 19]
            assert answers.checked(0) == 9
            with pytest.raises(DBAPIError) as raised:
                answers.checked(1)
            with pytest.raises(DBAPIError):  # the counts after it were not made either
                answers.checked(2)
        finally:
            answers.close()
    assert error_line(raised.value) == ("database error: no such table: no_such_table "
                                        "(while counting what expense.count_broken checked)")
    assert not _counters()


def test_answers_closed_before_their_counts_are_read_leave_no_thread(sqlite_engine):
    with sqlite_engine.connect() as reader:
        answers = Answers(reader, [_count(NUMBERS, 500), _count(NUMBERS, 900)], ahead=False, beside=sqlite_engine)
        answers.close()
    assert not _counters()


def test_a_run_records_the_same_counts_beside_as_in_its_thread(tmp_path, monkeypatch):
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        varied_store(engine, random.Random(7), projects=24, totals=False, absorbed=(None, 100, 900))
        counted: list[str] = []
        original = Answers.__init__

        def spy(self, *args, **kwargs):
            original(self, *args, **kwargs)
            counted.append("beside" if self._beside is not None and self._beside.statements else "in turn")

        monkeypatch.setattr(Answers, "__init__", spy)
        beside = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=False)
        monkeypatch.setattr(engine_module, "counts_beside", lambda _engine: False)
        in_turn = reconcile.run(engine, config(), as_of=day("1405/09/02"), incremental=False)
    finally:
        engine.dispose()
    assert counted == ["beside", "in turn"]
    assert {name: s.checked for name, s in beside.stats.items()} == {name: s.checked for name, s in in_turn.stats.items()}
    assert sum(s.checked for s in beside.stats.values()) > 0
    assert beside.findings == in_turn.findings


@pytest.mark.parametrize(("url", "beside"), [("sqlite:///{tmp}/store.db", True), ("sqlite://", False),
                                             ("sqlite:///:memory:", False),
                                             ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", False)])
def test_only_a_store_in_a_file_is_counted_beside(tmp_path, url, beside):
    engine = sa.create_engine(url.format(tmp=tmp_path))
    try:
        assert engine_module.counts_beside(engine) is beside
    finally:
        engine.dispose()


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
