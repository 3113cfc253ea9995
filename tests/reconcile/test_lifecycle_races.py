"""A person's act while a run records its verdicts (PostgreSQL): the person's act wins.

On PostgreSQL acknowledging and dismissing do not wait for a reconciliation (its writing
transaction is READ COMMITTED), so a person may dismiss a deviation after the run compared its
findings and before it wrote them. "A dismissed deviation never changes": the run must neither
resolve nor escalate it. The act is made from another connection at the exact moment, by a hook on
the run's own statements. (SQLite: the run holds the write lock from its start; a person's act waits.)
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from reconcile import deviations as dv
from reconcile import lifecycle as life
from reconcile.findings import Finding
from store.db import open_store
from store.models import ReconcileRun

NOW = datetime(2026, 12, 4, tzinfo=timezone.utc)
AS_OF = date(2026, 12, 4)


def _findings(n: int, severity: str) -> list[Finding]:
    return [Finding(rule="progress_lag", kind="capital", subject=f"{1300000000 + i}-001", fiscal_year=1405,
                    quarter=1, severity=severity, planned=Decimal(40), actual=Decimal(20), measure=Decimal(20),
                    message=f"پیام {i}") for i in range(n)]


def _record(engine, conn, findings: list[Finding]) -> life.LifeCounts:
    runs = ReconcileRun.__table__
    with engine.begin() as c:
        run_id = c.execute(sa.insert(runs).returning(runs.c.id).values(
            as_of=AS_OF, fiscal_years="1405", started_at=NOW, status="running")).scalar_one()
    with conn.begin():
        found = life.Found(conn)
        found.add(findings)
        found.compare()
        counts = found.apply(run_id=run_id, as_of=AS_OF, now=NOW,
                             resolvable=[life.identities_of([("capital", "progress_lag")])])
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
