"""A run's rules read ahead (reconcile.judge.Answers): on PostgreSQL a thread reads the rules' rows on
the run's reader while the run words the rows before. The rows and counts must be exactly those read
in turn, an error must surface at the rule it belongs to, and a run that stops early must get its
reader back with no thread left reading. Real PostgreSQL: the thread is there for its server."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from reconcile.judge import Answers, Asked
from store.db import error_line, make_engine
from store.driver import snapshot_reader

pytestmark = pytest.mark.postgres

N = 4567  # more than two batches of the thread's 2,000 rows


def _series(n: int) -> Asked:
    numbers = sa.func.generate_series(1, n).table_valued("value").render_derived(name="s")
    return Asked(select=lambda: sa.select(numbers.c.value.label("value"),
                                          (numbers.c.value * 2).label("twice")).order_by(numbers.c.value),
                 checked=lambda: sa.select(sa.literal(n)))


def _readers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "reconcile-reader"]


@pytest.fixture
def pg_engine(pg_store_url):
    engine = make_engine(pg_store_url)
    yield engine
    engine.dispose()


def _everything(answers: Answers, count: int) -> list[tuple[list[tuple], int]]:
    try:
        rows = [[tuple(r) for r in answers.rows(i)] for i in range(count)]
        return list(zip(rows, [answers.checked(i) for i in range(count)]))
    finally:
        answers.close()


def test_rows_read_ahead_are_the_rows_read_in_turn(pg_engine):
    asked = [_series(N), _series(0), _series(3)]
    with snapshot_reader(pg_engine) as reader:
        in_turn = _everything(Answers(reader, asked, ahead=False), len(asked))
        ahead = _everything(Answers(reader, asked, ahead=True), len(asked))
    assert ahead == in_turn
    assert [len(rows) for rows, _ in ahead] == [N, 0, 3] and [n for _, n in ahead] == [N, 0, 3]
    assert ahead[0][0][:2] == [(1, 2), (2, 4)] and ahead[0][0][-1] == (N, 2 * N)
    assert not _readers()


def test_the_counts_are_read_once_every_rules_rows_are(pg_engine):
    # a count of every subject costs the server up to ~0.4 s at 100k: read between the rules, the
    # run waited for it; read last, it runs while the run waits for its helper (session 27)
    asked_in_order: list[str] = []

    def rule(name: str, n: int) -> Asked:
        series = _series(n)

        def select() -> sa.Select:
            asked_in_order.append(f"{name} rows")
            return series.select()

        def checked() -> sa.Select:
            asked_in_order.append(f"{name} count")
            return series.checked()
        return Asked(select=select, checked=checked)

    with snapshot_reader(pg_engine) as reader:
        got = _everything(Answers(reader, [rule("a", N), rule("b", 3)], ahead=True), 2)
    assert [n for _, n in got] == [N, 3]
    assert asked_in_order == ["a rows", "b rows", "a count", "b count"]


def test_the_counts_are_planned_without_parallel_workers_and_the_pool_gets_its_setting_back(pg_engine):
    # a count of every subject as one process's merge join rather than a parallel hash join spilling
    # to disk: a nightly run's count of operations with an item 0.29-0.51 s in parallel, 0.15-0.18 s
    # in one process (session 29); only the counts: the rows' reads are as they were
    workers = sa.func.current_setting("max_parallel_workers_per_gather")
    with pg_engine.connect() as conn:  # a value of the session's own, whatever the server's
        conn.exec_driver_sql("SET max_parallel_workers_per_gather = 3")
        conn.commit()
    asked = Asked(select=lambda: sa.select(workers.label("workers")),
                  checked=lambda: sa.select(sa.cast(workers, sa.Integer)))
    with snapshot_reader(pg_engine) as reader:
        [(rows, counted)] = _everything(Answers(reader, [asked], ahead=True), 1)
    assert rows == [("3",)] and counted == 0
    assert pg_engine.pool.checkedin() == 1  # the one pooled connection, again below
    with pg_engine.connect() as conn:  # SET LOCAL: the pooled connection is as it was
        assert conn.execute(sa.select(workers)).scalar_one() == "3"


def test_a_count_asked_before_the_next_rules_rows_is_refused_not_lost(pg_engine):
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [_series(5), _series(3)], ahead=True)
        try:
            assert len(list(answers.rows(0))) == 5
            with pytest.raises(RuntimeError, match="count asked before rule 1's rows"):
                answers.checked(0)
        finally:
            answers.close()
        assert not _readers()


def test_rows_read_ahead_have_their_columns_by_name(pg_engine):
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [_series(5)], ahead=True)
        try:
            rows = list(answers.rows(0))
        finally:
            answers.close()
    assert [(r.value, r.twice) for r in rows] == [(i, 2 * i) for i in range(1, 6)]


def test_an_error_reading_ahead_is_raised_at_its_rule_and_the_thread_ends(pg_engine):
    broken = Asked(select=lambda: sa.select(sa.text("no_such_column FROM no_such_table")),
                   checked=lambda: sa.select(sa.literal(0)))
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [_series(N), broken, _series(3)], ahead=True)
        try:
            first = list(answers.rows(0))
            assert len(first) == N  # the rule before it is whole
            with pytest.raises(DBAPIError, match="no_such_table"):
                list(answers.rows(1))
        finally:
            answers.close()
        assert not _readers()


@pytest.mark.parametrize("ahead", [True, False], ids=["ahead", "in-turn"])
def test_a_database_error_names_the_rule_and_what_was_read(pg_engine, ahead):
    # the operator's one line says which rule's rows or count failed (a reviewer's point, session 29)
    broken_rows = Asked(select=lambda: sa.select(sa.text("x FROM no_such_table")),
                        checked=lambda: sa.select(sa.literal(0)), name="expense.rows_broken")
    broken_count = Asked(select=_series(2).select, checked=lambda: sa.select(sa.text("count(*) FROM no_such_count")),
                         name="expense.count_broken")
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [_series(3), broken_rows], ahead=ahead)
        try:
            assert len(list(answers.rows(0))) == 3
            with pytest.raises(DBAPIError) as raised:
                list(answers.rows(1))
        finally:
            answers.close()
        assert error_line(raised.value) == ('database error: relation "no_such_table" does not exist '
                                            "(while reading the rows of expense.rows_broken)")
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [broken_count], ahead=ahead)
        try:
            assert len(list(answers.rows(0))) == 2
            with pytest.raises(DBAPIError) as raised:
                answers.checked(0)
        finally:
            answers.close()
    assert error_line(raised.value).endswith("(while counting what expense.count_broken checked)")
    assert not _readers()


def test_a_run_that_stops_early_gets_its_reader_back_and_no_thread_reads_on(pg_engine):
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [_series(200_000), _series(200_000)], ahead=True)
        try:
            rows = answers.rows(0)
            assert next(rows).value == 1  # the run fails here, say, while the thread has batches to hand over
        finally:
            answers.close()
        assert not _readers()
        assert reader.execute(sa.select(sa.literal(7))).scalar_one() == 7  # the reader is usable again


def test_a_rule_left_half_read_does_not_leak_its_rows_into_the_next(pg_engine):
    with snapshot_reader(pg_engine) as reader:
        answers = Answers(reader, [_series(N), _series(3)], ahead=True)
        try:
            rows = answers.rows(0)
            next(rows)
            rows.close()  # a caller that stopped reading rule 0
            assert [r.value for r in answers.rows(1)] == [1, 2, 3] and answers.checked(1) == 3
        finally:
            answers.close()
