"""A deviation's last day found, kept once per rule and year (store.models.DeviationFound).

A recording run leaves every active deviation of its years and rules found again or resolved; the
day it found them is written once per (kind, rule, fiscal year), not into each deviation: a nightly
run used to rewrite every active deviation (the whole table at 100k: docs/benchmarks.md, session
21). These tests hold what people read: the day a deviation was last found, while active, once
resolved or dismissed, sorted in the console, and after a downgrade.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import reconcile
from reconcile import deviations as dv
from reconcile_builders import config, day, sync_run, varied_store
from store import console
from store.models import Deviation, ProgressReport, deviation_as_read, last_found

dev, pr = Deviation.__table__, ProgressReport.__table__
FIRST, SECOND, THIRD = day("1405/09/02"), day("1405/09/10"), day("1405/09/20")


def _read(engine, deviation_id: int):
    with engine.connect() as conn:
        return conn.execute(sa.select(*deviation_as_read()).where(dev.c.id == deviation_id)).one()


def _lags(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(*deviation_as_read()).where(
            dev.c.kind == "capital", dev.c.rule == "progress_lag", dev.c.status == "open").order_by(dev.c.id)).all()


def _rows_written(engine) -> tuple[list[int], object]:
    """Rows each UPDATE of the deviation table changed, while listening."""
    counts: list[int] = []

    def after(_conn, _cursor, statement, _params, context, _many) -> None:
        if statement.lstrip().upper().startswith("UPDATE DEVIATION "):
            counts.append(context.rowcount)

    event.listen(engine, "after_cursor_execute", after)
    return counts, after


@pytest.mark.slow_on_postgresql  # the day kept by the statements the console's sort and the downgrade test on PostgreSQL
def test_a_later_run_that_finds_the_same_writes_no_deviation_yet_reads_its_day(engine):
    varied_store(engine, random.Random(5), projects=12)
    first = reconcile.run(engine, config(), as_of=FIRST)
    assert first.life.opened > 20
    counts, listener = _rows_written(engine)
    try:
        full = reconcile.run(engine, config(), as_of=SECOND, incremental=False)
        carried = reconcile.run(engine, config(), as_of=THIRD, incremental=True)
    finally:
        event.remove(engine, "after_cursor_execute", listener)
    assert full.scope == "full" and carried.scope == "incremental"
    assert full.life.unchanged == first.life.opened and carried.life.unchanged == first.life.opened
    # found again twice, unchanged (the full run) and carried (the incremental): no row rewritten
    assert sum(counts) == 0
    with engine.connect() as conn:
        read = set(conn.execute(sa.select(last_found(dev)).distinct().where(dev.c.status == "open")).scalars())
        stored = set(conn.execute(sa.select(dev.c.last_found_on).distinct().where(dev.c.first_found_on == FIRST))
                     .scalars())
    assert read == {THIRD} and stored == {FIRST}


@pytest.mark.slow_on_postgresql  # the day kept by the statements the console's sort and the downgrade test on PostgreSQL
def test_a_run_moves_the_day_only_for_the_rules_and_years_it_judged(engine):
    varied_store(engine, random.Random(5), projects=12)
    reconcile.run(engine, config(), as_of=FIRST)
    # progress_lag switched off: its deviations stay as they are, found last on FIRST
    reconcile.run(engine, config(rules={"progress_lag": {"enabled": False}}), as_of=SECOND, incremental=True)
    reconcile.run(engine, config(), as_of=THIRD, years=[1404])  # a year the store does not hold
    reconcile.run(engine, config(), as_of=day("1405/09/25"), dry_run=True)  # a what-if: nothing recorded
    with engine.connect() as conn:
        days = dict(conn.execute(sa.select(dev.c.rule, sa.func.max(last_found(dev)))
                                 .where(dev.c.status == "open").group_by(dev.c.rule)).all())
    assert days.pop("progress_lag") == FIRST
    assert set(days.values()) == {SECOND} and len(days) >= 3


@pytest.mark.slow_on_postgresql  # the day kept by the statements the console's sort and the downgrade test on PostgreSQL
def test_resolving_or_dismissing_keeps_the_last_day_a_run_found_it(engine):
    varied_store(engine, random.Random(5), projects=12)
    reconcile.run(engine, config(), as_of=FIRST)
    reconcile.run(engine, config(), as_of=SECOND, incremental=True)  # carried: found on SECOND
    gone, dismissed, kept = _lags(engine)[:3]
    assert gone.last_found_on == dismissed.last_found_on == kept.last_found_on == SECOND

    dv.dismiss(engine, dismissed.id, by="کارشناس", reason="پروژه متوقف شده است")
    with engine.begin() as conn:  # the lagging report now meets its target, written as a sync writes
        run = sync_run(conn)
        conn.execute(sa.update(pr).where(pr.c.id == gone.evidence_id).values(progress=Decimal(100), last_run_id=run))
    later = reconcile.run(engine, config(), as_of=THIRD, incremental=True)
    assert later.life.resolved >= 1

    resolved = _read(engine, gone.id)
    assert (resolved.status, resolved.resolved_on, resolved.last_found_on) == ("resolved", THIRD, SECOND)
    left = _read(engine, dismissed.id)
    assert (left.status, left.last_found_on) == ("dismissed", SECOND)  # not found by THIRD's run for people
    assert _read(engine, kept.id).last_found_on == THIRD
    with engine.connect() as conn:
        row, _history = dv.get(conn, kept.id)
    assert row.last_found_on == THIRD  # what `deviations show` and the console's page read


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_the_console_sorts_by_the_day_people_read(engine):
    varied_store(engine, random.Random(5), projects=12)
    reconcile.run(engine, config(), as_of=FIRST)
    reconcile.run(engine, config(), as_of=SECOND, incremental=True)
    gone, kept = _lags(engine)[:2]
    with engine.begin() as conn:
        run = sync_run(conn)
        conn.execute(sa.update(pr).where(pr.c.id == gone.evidence_id).values(progress=Decimal(100), last_run_id=run))
    reconcile.run(engine, config(), as_of=THIRD, incremental=True)  # gone: resolved, last found SECOND
    query = console.DeviationQuery(sort="found", statuses=("open", "resolved"), per_page=10_000)
    with engine.connect() as conn:
        page = console.list_deviations(conn, query)
    days = [(r["id"], r["last_found_on"]) for r in page.rows]
    assert dict(days)[gone.id] == SECOND and dict(days)[kept.id] == THIRD
    assert [d for _i, d in days] == sorted(d for _i, d in days)  # by the day read, not the day stored
    # newest first, as the console's column header asks, page after page
    pages = []
    with engine.connect() as conn:
        for n in (1, 2, 3):
            newest = console.DeviationQuery(sort="found", descending=True, statuses=("open", "resolved"),
                                            per_page=len(days) // 3 + 1, page=n)
            pages += [(r["last_found_on"], r["id"]) for r in console.list_deviations(conn, newest).rows]
    assert pages == sorted(((d, i) for i, d in days), reverse=True)


def test_a_downgrade_writes_the_days_back_into_the_deviations(engine):
    from alembic import command

    from store.db import _alembic_config, upgrade

    varied_store(engine, random.Random(5), projects=12)
    reconcile.run(engine, config(), as_of=FIRST)
    dismissed = _lags(engine)[0]
    dv.dismiss(engine, dismissed.id, by="کارشناس", reason="پروژه متوقف شده است")  # its day: FIRST
    reconcile.run(engine, config(), as_of=SECOND, incremental=True)
    with engine.connect() as conn:
        before = dict(conn.execute(sa.select(dev.c.id, last_found(dev))).all())
    assert before.pop(dismissed.id) == FIRST and set(before.values()) == {SECOND}
    before[dismissed.id] = FIRST
    command.downgrade(_alembic_config(engine), "0009")
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(dev.c.id, dev.c.last_found_on)).all()) == before
    upgrade(engine)
    again = reconcile.run(engine, config(), as_of=THIRD, incremental=True)
    assert again.scope == "incremental"
    with engine.connect() as conn:
        assert set(conn.execute(sa.select(last_found(dev)).distinct().where(dev.c.status == "open")).scalars()) \
            == {THIRD}
