"""serve watches its lock (service/scheduler.py ``_LockWatch``): a real serve on PostgreSQL whose
lock's session is ended with pg_terminate_backend, as a server restart, a failover, a network cut
or an idle-session killer ends it.

An operator's trial: the first serve logged nothing and went on running jobs, `status` said no
serve ran, a second serve started on the same store, and the first noticed only at its SIGTERM
(exit 1, "terminating connection due to administrator command"). Now the first takes the lock again
at its next check (a WARNING) or, if another serve took it meanwhile, stops as at SIGTERM, exit 3.
"""

from __future__ import annotations

import logging
import os
import signal
import socket

import pytest
import sqlalchemy as sa

from store.db import open_store
from store.locks import lock_key
from store.service import serve_holder
from tests.service.conftest import PROCESS_TIMEOUT, budgetwatch, write_config


def _serve_lock_session(store_url: str) -> tuple[int, str]:
    """The server process and application_name of the session holding the store's serve lock."""
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            unsigned = lock_key(conn, "serve") & 0xFFFFFFFFFFFFFFFF
            row = conn.execute(sa.text(
                "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.objsubid = 1 AND d.datname = current_database() "
                "AND l.classid::bigint = :hi AND l.objid::bigint = :lo"),
                {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF}).one()
        return row.pid, row.application_name
    finally:
        engine.dispose()


def _terminate(store_url: str, backend: int) -> None:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.pg_terminate_backend(backend))).scalar()
    finally:
        engine.dispose()


def _holder(store_url: str) -> str | None:
    engine = open_store(store_url)
    try:
        return serve_holder(engine)
    finally:
        engine.dispose()


def _first_serve(simulator_factory, serve_factory, pg_store_url, tmp_path, monkeypatch):
    """(its config, a serve started on a PostgreSQL store of a small simulated province)."""
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    sim = simulator_factory(projects=5, agreements=5)
    config = write_config(tmp_path, sim, pg_store_url, schedule={"sync": "every 1 hours"})
    first = serve_factory(config)
    first.started()
    return config, first


@pytest.mark.slow
@PROCESS_TIMEOUT
def test_serve_whose_lock_session_ends_takes_the_lock_again_and_goes_on(
        simulator_factory, serve_factory, pg_store_url, tmp_path, monkeypatch):
    config, first = _first_serve(simulator_factory, serve_factory, pg_store_url, tmp_path, monkeypatch)
    backend, name = _serve_lock_session(pg_store_url)
    assert name.endswith(f"pid {first.proc.pid}"), name
    _terminate(pg_store_url, backend)

    retaken = first.wait_for(lambda e: "taken again" in e["message"], timeout=60)
    assert retaken["level"] == "WARNING", retaken
    assert "administrator command" in retaken["message"], retaken  # why it was lost, as the server said
    again, name = _serve_lock_session(pg_store_url)
    assert again != backend and name.endswith(f"pid {first.proc.pid}"), (again, name)
    assert _holder(pg_store_url) == f"host {socket.gethostname()} pid {first.proc.pid}"  # what status shows
    second = budgetwatch(config, "serve")
    assert second.returncode == 3, second.stderr
    assert f"pid {first.proc.pid}" in second.stderr.strip().splitlines()[-1]
    assert first.proc.poll() is None
    assert first.terminate() < 5
    assert first.proc.returncode == 0  # its release does not trip over the session that ended
    assert not [e for e in first.events() if e["level"] == "ERROR"]


@pytest.mark.slow
@PROCESS_TIMEOUT
def test_serve_whose_lock_was_taken_by_another_serve_meanwhile_stops_with_3(
        simulator_factory, serve_factory, pg_store_url, tmp_path, monkeypatch):
    config, first = _first_serve(simulator_factory, serve_factory, pg_store_url, tmp_path, monkeypatch)
    backend, _ = _serve_lock_session(pg_store_url)
    # the first is frozen while its session ends and a second serve starts: the second takes the
    # lock before the first's next check, whatever the machine's load
    os.kill(first.proc.pid, signal.SIGSTOP)
    try:
        _terminate(pg_store_url, backend)
        second = serve_factory(config, "second")
        second.started()
    finally:
        os.kill(first.proc.pid, signal.SIGCONT)

    assert first.proc.wait(60) == 3
    events = first.events()
    [error] = [e for e in events if e["level"] == "ERROR"]
    assert f"pid {second.proc.pid}" in error["message"] and socket.gethostname() in error["message"], error
    assert "budgetwatch serve stopped" in [e["message"] for e in events[events.index(error):]]
    assert second.proc.poll() is None
    assert _holder(pg_store_url) == f"host {socket.gethostname()} pid {second.proc.pid}"
    assert second.terminate() < 5


def test_sqlite_serve_lock_is_a_file_lock_no_connection_can_lose_and_a_removed_file_is_noticed(tmp_path):
    """SQLite: the serve lock is a flock on ``<store>.serve.lock``, held by serve's open file, not by
    a database connection: closing every connection keeps it. Only the file removed (a cleaner of the
    folder) would let a second serve lock a new one: the check notices, and taking it again names
    whoever holds the new file."""
    from store.locks import LockHeld
    from store.service import ServeLock, serve_lock

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with serve_lock(engine) as lock:
        engine.dispose()  # every connection of the store closed
        assert lock.still_held()
        with pytest.raises(LockHeld, match=f"pid {os.getpid()}"):
            ServeLock(engine).take()
        (tmp_path / "store.db.serve.lock").unlink()
        assert not lock.still_held() and "removed" in lock.lost_why
        other = ServeLock(engine)
        other.take()  # a second serve on the new file
        try:
            with pytest.raises(LockHeld, match=f"another budgetwatch serve \\(host .* pid {os.getpid()}\\)"):
                lock.take_again()
        finally:
            other.release()
        assert lock.take_again() and lock.still_held()
    assert serve_holder(engine) is None


class _Lock:
    """A stand-in of store.service.ServeLock, lost at its first check, whose database is unreachable
    for `down` tries."""

    def __init__(self, down: int) -> None:
        self.down, self.lost_why = down, "its database session ended: database error: server closed the connection"

    def still_held(self) -> bool:
        return False

    def take_again(self) -> bool:
        if self.down:
            self.down -= 1
            raise sa.exc.OperationalError("connect", {}, Exception("connection refused"))
        return True


def test_a_lock_lost_while_the_database_is_down_is_said_once_and_taken_again_when_it_is_back(caplog):
    from service.scheduler import _LockWatch

    watch = _LockWatch(_Lock(down=3), period=5)
    with caplog.at_level(logging.WARNING, logger="budgetwatch.service"):
        assert all(watch.check() for _ in range(4))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "connection refused" in said[0] and "trying again every 5 s" in said[0], said
    assert said[1].startswith("serve lock lost (its database session ended") and "taken again" in said[1], said
    assert watch.taken_by is None


def test_a_lock_released_is_not_taken_again_by_a_check_that_was_under_way(pg_store_url):
    # a review: a watch's check blocked past serve's stop could take the lock again after the main
    # thread released it, held then by a leaked connection until the process ended
    from store.db import open_store
    from store.service import ServeLock, serve_holder

    engine = open_store(pg_store_url)
    try:
        lock = ServeLock(engine)
        lock.take()
        lock.release()
        assert lock.take_again() is False  # what the late check does
        assert serve_holder(engine) is None
        other = ServeLock(engine)
        other.take()  # the store is free for the next serve
        other.release()
    finally:
        engine.dispose()


class _Held:
    """A stand-in of store.service.ServeLock that stays held."""

    lost_why = None

    def still_held(self) -> bool:
        return True


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_sqlite_store_file_removed_or_replaced_while_serve_runs_stops_it(tmp_path, how):
    # an operator's trial: the store's file removed under a running serve, which went on writing into
    # the deleted file, saying each run a success, while `status` said there was no store
    from service.scheduler import _LockWatch, _store_file

    store = tmp_path / "store.db"
    engine = open_store(f"sqlite:///{store}")
    try:
        assert _store_file(engine) == store.resolve()
        watch = _LockWatch(_Held(), period=5, store_file=_store_file(engine))
        assert watch.check() and not watch.ended
        if how == "replaced":  # another file at its path (a restored copy), made while the first is there
            (tmp_path / "restored.db").write_bytes(b"")
            os.replace(tmp_path / "restored.db", store)
        else:
            store.unlink()
        assert watch.check() is False and watch.ended
        assert watch.store_gone == f"the store's file {store.resolve()} was {how} while serve ran"
    finally:
        engine.dispose()
    assert _store_file(sa.create_engine("postgresql+psycopg://u@127.0.0.1/db")) is None
