"""The service's reconciliation job on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from datetime import date

import sqlalchemy as sa

from budgetwatch.config import parse_config
from service.jobs import Service


def test_a_scheduled_reconciliation_that_records_nothing_warns_saying_why(engine, tmp_path, monkeypatch, caplog):
    # found in review: `reconcile.as_of` after today made every scheduled run a what-if, logged as a success
    monkeypatch.setattr("reconcile.engine._today", lambda: date(2026, 12, 1))
    config = parse_config({"data_dir": str(tmp_path), "reconcile": {"as_of": "1405/09/20"}})
    with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
        Service(config, engine).reconcile(job="reconcile")
    [record] = [r for r in caplog.records if r.name == "budgetwatch.service" and r.levelno >= logging.INFO]
    assert record.levelno == logging.WARNING and getattr(record, "status", None) == "what_if"
    assert "after today" in record.getMessage()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconcile_run")).scalar() == 0


def test_an_alerts_run_that_changed_nothing_is_no_news_and_a_stopped_send_says_why():
    # found by a new user: experts with nothing new (no_news) made every queuing an INFO line, and a
    # send that stopped logged "sent 0" without the reason
    from alerts.outbox import QueueReport
    from alerts.sending import DispatchReport
    from service.jobs import _counted_nothing, _describe

    assert _counted_nothing(QueueReport(no_news=3)) and _counted_nothing(DispatchReport())
    assert not _counted_nothing(QueueReport(messages=1, deviations=2))
    stopped = DispatchReport(stopped="cannot connect to 127.0.0.1:25 (connection refused)")
    assert not _counted_nothing(stopped)
    assert _describe(stopped) == ("outbox: sent 0, deferred 0, failed 0 "
                                  "(cannot connect to 127.0.0.1:25 (connection refused))")


def test_a_stop_during_a_sync_logs_each_run_as_it_ended(engine, tmp_path, monkeypatch, caplog):
    # found by a new user: SIGTERM while SABA still synced logged Nezarat-4's run, a success 15 s
    # before, as "stopped: the service is stopping (recorded success)". The sync is replaced here by
    # one that records both runs through the store and is then cancelled, as a stop cancels it: the
    # moment a signal lands between two sources' ends cannot be timed from outside a real sync.
    import asyncio

    from store import runs

    async def stopped_between(engine_, _sources, _names, *, full):
        done = runs.open_run(engine_, "nezarat4", "full", [1405])
        runs.close_run(engine_, done, status="success", counts={}, error=None, stats={})
        cut = runs.open_run(engine_, "saba", "full", [1405])
        runs.close_run(engine_, cut, status="interrupted", counts={}, error="the service is stopping", stats={})
        raise asyncio.CancelledError

    monkeypatch.setattr("sync.sync_sources", stopped_between)
    config = parse_config({"data_dir": str(tmp_path)})
    with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
        assert Service(config, engine)._sync(["nezarat4", "saba"], full=True, job="full_sync") is None
    said = {getattr(r, "source", None): r for r in caplog.records if r.name == "budgetwatch.service"}
    assert said["nezarat4"].levelno == logging.INFO and "stopped:" not in said["nezarat4"].getMessage()
    assert "success, before the service stopped" in said["nezarat4"].getMessage()
    assert said["saba"].levelno == logging.WARNING and "stopped: the service is stopping" in said["saba"].getMessage()


def test_a_scheduled_sync_of_a_source_another_process_holds_says_it_did_not_run(sqlite_url, tmp_path, caplog):
    # an operator's trial: "incremental sync of saba run None: locked; 0 new, 0 changed, 0 gone,
    # 0 rejected (0.0 s); another budgetwatch process …" read like a run that found nothing
    from store.db import open_store
    from store.locks import exclusive

    engine = open_store(sqlite_url)
    config = parse_config({"data_dir": str(tmp_path)})
    try:
        with exclusive(engine, "sync:saba"), caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            [outcome] = Service(config, engine)._sync(["saba"], full=False, job="sync:saba")
    finally:
        engine.dispose()
    assert outcome.status == "locked" and outcome.error.endswith(" is running sync:saba on this store")
    [record] = [r for r in caplog.records if r.name == "budgetwatch.service"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"incremental sync of saba not run: {outcome.error}"  # the lock's own words
    assert (record.job, record.source, record.status) == ("sync:saba", "saba", "locked")
    assert not hasattr(record, "run_id")


def test_a_reconciliation_job_leaves_a_spare_helper_for_the_next_and_a_stopping_service_none(
        engine, tmp_path, monkeypatch):
    """On a large store the service keeps a helper interpreter waiting for its next reconciliation
    (reconcile/helper.py keep_spare; the threshold lowered for this small store: a module constant)."""
    import tempfile

    from reconcile import helper

    monkeypatch.setattr("reconcile.engine._today", lambda: date(2099, 3, 20))
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")  # as in the service, whose process has threads
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = parse_config({"data_dir": str(tmp_path / "data"), "reconcile": {"as_of": "1405/09/20"}})
    service = Service(config, engine)
    try:
        service.reconcile(job="reconcile")
        assert helper.spare_ready()
        service.stop()
        helper.let_go_spare()
        service.keep_spare()  # a stopping service starts none
        assert not helper.spare_ready() and not list(tmp_path.glob("budgetwatch-helper-*"))
    finally:
        helper.let_go_spare()


def test_a_scheduled_run_that_completes_a_stopped_full_sync_says_so_as_runs_does(engine, tmp_path, monkeypatch,
                                                                                  caplog):
    # an operator's trial: the service logged "incremental sync of saba run 10: success" for a run that
    # read 1404 whole for a stopped full sync, which `runs` lists as "incremental (+ full 1404, owed)".
    # The sync is replaced by one returning such a run's outcome: a real one is tests/sync/test_sync.py's
    # (test_a_full_run_stopped_in_its_first_year_leaves_every_later_year_owed); here, what the log says.
    from sync.outcome import SourceOutcome

    async def owed(_engine, _sources, _names, *, full):
        return [SourceOutcome(source="saba", run_id=10, status="success", mode="incremental", years=[1404, 1405],
                              completing_full=[1404])]

    monkeypatch.setattr("sync.sync_sources", owed)
    config = parse_config({"data_dir": str(tmp_path)})
    with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
        Service(config, engine)._sync(["saba"], full=False, job="sync:saba")
    [record] = [r for r in caplog.records if r.name == "budgetwatch.service"]
    assert record.getMessage().startswith("incremental (+ full 1404, owed) sync of saba run 10: success; ")
