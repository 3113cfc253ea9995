"""A person's act while a run records its verdicts (PostgreSQL): the person's act wins.

On PostgreSQL acknowledging and dismissing do not wait for a reconciliation (its writing
transaction is READ COMMITTED), so a person may dismiss a deviation after the run compared its
findings and before it wrote them. "A dismissed deviation never changes": the run must neither
resolve nor escalate it. The act is made from another connection at the exact moment, by a hook on
the run's own statements. (SQLite: the run holds the write lock from its start; a person's act waits.)
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from reconcile import deviations as dv
from reconcile import lifecycle as life
from reconcile.findings import Finding
from store.db import open_store
from store.models import ReconcileRun, last_found

NOW = datetime(2026, 12, 4, tzinfo=timezone.utc)
AS_OF = date(2026, 12, 4)


def _findings(n: int, severity: str) -> list[Finding]:
    return [Finding(rule="progress_lag", kind="capital", subject=f"{1300000000 + i}-001", fiscal_year=1405,
                    quarter=1, severity=severity, planned=Decimal(40), actual=Decimal(20), measure=Decimal(20),
                    message=f"پیام {i}") for i in range(n)]


def _record(engine, conn, findings: list[Finding], as_of: date = AS_OF) -> life.LifeCounts:
    runs = ReconcileRun.__table__
    with engine.begin() as c:
        run_id = c.execute(sa.insert(runs).returning(runs.c.id).values(
            as_of=as_of, fiscal_years="1405", started_at=NOW, status="running")).scalar_one()
    with conn.begin():
        found = life.Found(conn)
        found.add(findings)
        found.compare()
        counts = found.apply(run_id=run_id, as_of=as_of, now=NOW,
                             resolvable=[life.identities_of([("capital", "progress_lag")])],
                             years=[1405], rules=[("capital", "progress_lag")])
        found.drop()
    return counts


def _dismiss_when(conn, engine, starts: str, deviation_id: int) -> list[int]:
    """Dismiss `deviation_id` from another connection right after `conn` runs a statement starting with `starts`."""
    fired: list[int] = []

    def after(_conn, clause, *_args) -> None:
        if not fired and str(clause).lstrip().startswith(starts):
            fired.append(deviation_id)
            dv.dismiss(engine, deviation_id, by="کارشناس", reason="پروژه متوقف شده است")

    sa.event.listen(conn, "after_execute", after)
    return fired


def _state(conn, deviation_id: int) -> tuple[str, list[str]]:
    status = conn.execute(sa.select(life.dev.c.status).where(life.dev.c.id == deviation_id)).scalar_one()
    events = conn.execute(sa.select(life.event_table.c.event).where(life.event_table.c.deviation_id == deviation_id)
                          .order_by(life.event_table.c.id)).scalars().all()
    return status, events


@pytest.fixture
def pg_engine(pg_store_url):
    engine = open_store(pg_store_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_a_deviation_dismissed_while_the_run_resolves_stays_dismissed(pg_engine):
    with pg_engine.connect() as conn:
        _record(pg_engine, conn, _findings(10, "minor"))
        fired = _dismiss_when(conn, pg_engine, "INSERT INTO bw_missing", 10)  # id 10: not found again
        counts = _record(pg_engine, conn, _findings(9, "minor"))
        assert fired == [10]
        assert counts.resolved == 0
        assert _state(conn, 10) == ("dismissed", ["opened", "dismissed"])


@pytest.mark.postgres
def test_a_deviation_dismissed_after_the_comparison_is_not_escalated(pg_engine):
    with pg_engine.connect() as conn:
        _record(pg_engine, conn, _findings(3, "minor"))
        fired = _dismiss_when(conn, pg_engine, "INSERT INTO bw_verdict", 2)  # compare() has decided
        _record(pg_engine, conn, _findings(3, "critical"))
        assert fired == [2]
        assert _state(conn, 2) == ("dismissed", ["opened", "dismissed"])
        assert _state(conn, 1) == ("open", ["opened", "escalated"])  # the others escalate as before


@pytest.mark.postgres
def test_a_deviation_dismissed_after_the_comparison_keeps_its_last_found_day(pg_engine):
    # found again unchanged on a later day: the others' last_found_on moves, the dismissed one's not
    # (a run opening as it judges leaves seconds to minutes between its comparison and this update)
    later = AS_OF + timedelta(days=16)
    with pg_engine.connect() as conn:
        _record(pg_engine, conn, _findings(3, "minor"))
        fired = _dismiss_when(conn, pg_engine, "INSERT INTO bw_verdict", 2)
        _record(pg_engine, conn, _findings(3, "minor"), as_of=later)
        assert fired == [2]
        found_on = dict(conn.execute(sa.select(life.dev.c.id, last_found(life.dev))).all())
        assert found_on == {1: later, 2: AS_OF, 3: later}
        assert _state(conn, 2) == ("dismissed", ["opened", "dismissed"])


@pytest.mark.postgres
def test_a_dismissal_in_flight_as_the_run_resolves_leaves_no_resolved_event(pg_engine):
    # The person's transaction has dismissed deviation 3 (row locked, not committed) when the run
    # starts resolving it; it commits once the run waits for its row lock. The run must then see
    # the dismissal: no 'resolved' event in the history of a deviation that stays dismissed.
    locked, waiting = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    run_pid: list[int] = []

    def person() -> None:
        try:
            with pg_engine.connect() as watch, pg_engine.begin() as c:
                c.execute(sa.select(life.dev.c.id).where(life.dev.c.id == 3).with_for_update())
                c.execute(sa.update(life.dev).where(life.dev.c.id == 3).values(status="dismissed"))
                locked.set()
                for _ in range(400):  # until the run's connection waits for a lock (row 3), 20 s at most
                    if watch.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid "
                                             "AND wait_event_type = 'Lock'"), {"pid": run_pid[0]}).scalar_one():
                        waiting.set()
                        break
                    watch.rollback()
                    threading.Event().wait(0.05)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)
            locked.set()

    thread = threading.Thread(target=person)

    def after(_conn, clause, *_args) -> None:
        if str(clause).lstrip().startswith("INSERT INTO bw_missing") and not thread.is_alive() and not locked.is_set():
            thread.start()
            assert locked.wait(10)

    with pg_engine.connect() as conn:
        run_pid.append(conn.connection.driver_connection.info.backend_pid)
        _record(pg_engine, conn, _findings(3, "minor"))
        sa.event.listen(conn, "after_execute", after)
        counts = _record(pg_engine, conn, _findings(2, "minor"))  # id 3 not found again
        thread.join(30)
        assert not failures and waiting.is_set()
        assert counts.resolved == 0
        assert _state(conn, 3) == ("dismissed", ["opened"])
