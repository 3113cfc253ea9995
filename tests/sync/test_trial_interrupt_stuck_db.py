"""Ctrl-C and SIGTERM of a sync whose database stopped answering (PostgreSQL). An operator's trial:
`kill -STOP` of one idle backend of the store's database during `sync --full` left the sync waiting
in the pool's pre-ping for ever; Ctrl-C twice did nothing, and it exited 130 only after `kill -CONT`.
Now the sync is cut short a few seconds after the signal, says its line and exits; the database rolls
back what the stuck connection had not committed."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import psycopg
import pytest
import sqlalchemy as sa

from simulator import Faults
from tests.sync.test_trial_interrupt import SCRIPT, _config_file

pytestmark = pytest.mark.slow


@pytest.fixture
def own_database():
    """A database of this test's own (bw_tb_*), dropped afterwards: its backends are the ones stopped."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set: no PostgreSQL to stop a backend of")
    admin_url = sa.engine.make_url(url).set(drivername="postgresql")
    name = f"bw_tb_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(admin_url.render_as_string(hide_password=False), autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    stopped: list[int] = []
    try:
        yield admin, name, sa.engine.make_url(url).set(database=name, query={}).render_as_string(
            hide_password=False), stopped
    finally:
        for pid in stopped:  # never left stopped, whatever happened
            os.kill(pid, signal.SIGCONT)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _idle_backend(admin, name: str) -> int | None:
    """An idle backend of database `name` that holds no advisory lock (the pool's, not the sync lock's)."""
    row = admin.execute(
        "SELECT pid FROM pg_stat_activity a WHERE datname = %s AND state = 'idle' AND pid <> pg_backend_pid() "
        "AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory') LIMIT 1",
        (name,)).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize(("signum", "code", "line"), [(signal.SIGINT, 130, "interrupted"),
                                                     (signal.SIGTERM, 143, "interrupted (SIGTERM)")])
def test_a_sync_stuck_on_a_stopped_backend_ends_soon_after_the_signal(simulator_factory, own_database, tmp_path,
                                                                     signum, code, line):
    admin, name, store_url, stopped = own_database
    sim = simulator_factory()
    sim.set_faults(Faults(latency_ms=20))
    config, env = _config_file(tmp_path, sim, store_url)
    proc = subprocess.Popen([str(SCRIPT), "--config", str(config), "sync", "--full", "--source", "saba"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        sim.log.wait_for(10, timeout=60)
        deadline = time.monotonic() + 30
        while (pid := _idle_backend(admin, name)) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "no idle backend to stop"
            time.sleep(0.05)  # pg_stat_activity is polled: nothing to await
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        # stuck once the portal hears nothing more from it for a second (its next checkout pings the
        # stopped backend); the state is polled, with a deadline
        deadline = time.monotonic() + 30
        while sim.log.wait_for(sim.log.total() + 1, timeout=1.0):
            assert proc.poll() is None and time.monotonic() < deadline, "the sync never waited on the database"
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signum)
        signalled = time.monotonic()
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == line, err
    assert took < 10, f"exited {took:.1f} s after the signal"
