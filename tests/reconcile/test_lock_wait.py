"""A run waiting for another reconciliation (PostgreSQL's advisory lock) stops at Ctrl-C at once.

Only one reconciliation writes deviations at a time; a second one waits for the first. That wait
must be in the run's own (main) thread: psycopg cancels a statement at Ctrl-C only there. A run
that opens its deviations as it judges (reconcile/lifecycle.py ``Found.hold``) once waited in its
writing thread, and Ctrl-C could not end it before the other run let go (review of session 15).
Real signals, a real lock held by another connection.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest
import sqlalchemy as sa

import reconcile
from reconcile import engine as reconcile_engine
from reconcile_builders import config, day, varied_store
from store import locks
from store.db import open_store
from store.models import ReconcileRun

HOLD = 6.0  # the other run lets go after this (so that a failing test ends)


@pytest.mark.postgres
@pytest.mark.parametrize("as_judged", [True, False], ids=["opening-as-judged", "opening-at-the-end"])
def test_ctrl_c_ends_a_run_that_waits_for_another_reconciliation(pg_store_url, monkeypatch, as_judged):
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    monkeypatch.setattr(reconcile_engine, "OPEN_AS_JUDGED", as_judged)
    engine = open_store(pg_store_url)
    holder = engine.connect()
    try:
        varied_store(engine, random.Random(23), projects=40)
        key = locks.lock_key(holder, "reconcile")
        holder.execute(sa.select(sa.func.pg_advisory_lock(key)))  # another run, writing
        holder.commit()
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                holder.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                holder.commit()

        let_go = threading.Timer(HOLD, release)
        waited: list[float] = []

        def interrupt_when_waiting() -> None:  # Ctrl-C once the run waits for this very lock (pg_locks), not before
            with engine.connect() as watch:
                for _ in range(int(HOLD / 0.02)):
                    if watch.execute(sa.text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                            "AND classid = :high AND objid = :low AND objsubid = 1"),
                            {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}).scalar_one():
                        waited.append(time.monotonic())
                        os.kill(os.getpid(), signal.SIGINT)
                        return
                    watch.rollback()
                    released.wait(0.02)

        interrupt = threading.Thread(target=interrupt_when_waiting)
        interrupt.start()
        let_go.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
            ended = time.monotonic()
        finally:
            let_go.cancel()
            let_go.join()
            interrupt.join()
        assert waited, "the run never waited for the other run's lock"
        took = ended - waited[0]
        assert took < 2, f"Ctrl-C took {took:.1f} s to end the run"
        release()
        with engine.connect() as conn:  # the run is marked failed; nothing of it stored
            assert conn.execute(sa.select(ReconcileRun.__table__.c.status)).scalars().all() == ["failed"]
            assert conn.execute(sa.text("SELECT count(*) FROM deviation")).scalar_one() == 0
    finally:
        holder.close()
        engine.dispose()
