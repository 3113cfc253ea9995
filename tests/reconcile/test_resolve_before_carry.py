"""An incremental run resolves before it carries (reconcile/lifecycle.py, ``Found.apply``).

``_carry`` counts the active deviations of the judged years and rules that the run did not judge
anew as unchanged and moves their last_found_on to the run's day; it reads what is active *after*
the run resolved. Carried first, a deviation the run resolves would be counted as unchanged too and
keep the run's day as the last day it was found, though the run did not find it. Real stores on both
databases; the facts change as a sync writes them (test_incremental.py).
"""

from __future__ import annotations

import random
from decimal import Decimal

import sqlalchemy as sa

import reconcile
from store.models import Deviation, ProgressReport, deviation_as_read
from reconcile_builders import config, day, sync_run, varied_store

dev, pr = Deviation.__table__, ProgressReport.__table__
FIRST, LATER = day("1405/09/02"), day("1405/09/20")


def _lags(engine) -> list:
    """The active progress lags, by id: a rule judged only where the facts changed."""
    with engine.connect() as conn:
        return conn.execute(sa.select(*deviation_as_read()).where(dev.c.kind == "capital", dev.c.rule == "progress_lag",
                                                 dev.c.status.in_(("open", "acknowledged")))
                            .order_by(dev.c.id)).all()


def _deviation(engine, row) -> sa.Row:
    identity = (dev.c.kind == row.kind, dev.c.rule == row.rule, dev.c.subject == row.subject,
                dev.c.fiscal_year == row.fiscal_year, dev.c.quarter == row.quarter)
    with engine.connect() as conn:
        return conn.execute(sa.select(*deviation_as_read()).where(*identity)).one()


def _active(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(dev)
                            .where(dev.c.status.in_(("open", "acknowledged")))).scalar_one()


def test_a_deviation_resolved_by_an_incremental_run_is_not_also_carried(engine):
    varied_store(engine, random.Random(5), projects=12)
    first = reconcile.run(engine, config(), as_of=FIRST, keep=True)
    assert first.scope == "full"
    lags = _lags(engine)
    gone = lags[0]
    kept = next(row for row in lags if row.subject != gone.subject)  # a subject the sync leaves alone
    assert gone.evidence_table == "progress_report" and gone.last_found_on == kept.last_found_on == FIRST

    with engine.begin() as conn:  # the lagging report now meets its target, written as a sync writes
        run = sync_run(conn)
        conn.execute(sa.update(pr).where(pr.c.id == gone.evidence_id).values(progress=Decimal(100), last_run_id=run))

    later = reconcile.run(engine, config(), as_of=LATER, incremental=True, keep=True)
    assert later.scope == "incremental"
    life = later.life
    assert life.resolved >= 1

    resolved = _deviation(engine, gone)
    assert resolved.status == "resolved" and resolved.resolved_on == LATER
    assert resolved.last_found_on == FIRST  # not found by the later run: not moved to its day

    carried = _deviation(engine, kept)
    key = (kept.kind, kept.rule, kept.subject, kept.fiscal_year, kept.quarter)
    assert key not in later.deviations  # not judged anew: carried
    assert carried.status == "open" and carried.last_found_on == LATER

    # every active deviation is counted once by the run, none of the resolved among them
    changed = life.opened + life.reopened + life.escalated + life.lowered + life.updated
    assert life.unchanged == _active(engine) - changed
