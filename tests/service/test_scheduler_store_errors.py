"""An operator's trial of serve: a job store that could not be written for a moment (a SQLite store
made read-only) killed APScheduler's thread with a traceback on stderr; serve stayed up, holding its
lock, and never ran a job again, `status` saying it ran. A dropped PostgreSQL database made
APScheduler warn every 10 s in lines quoting the statement. And a quick job's outcome was logged
before its "starts" line."""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime

import sqlalchemy as sa

from budgetwatch.config import parse_config
from service import jobs
from service import scheduler as serve
from service.jobs import Service
from store.db import open_store
from tests.service.conftest import wait_until
from tests.service.test_serve_crash import HOURLY, _start

DISK_ERROR = sa.exc.OperationalError("UPDATE apscheduler_jobs SET next_run_time=? WHERE apscheduler_jobs.id = ?",
                                     (1.0, "housekeeping"), sqlite3.OperationalError("disk I/O error"))


def _serving(tmp_path, monkeypatch, housekeeping):
    """serve's scheduler on a SQLite store, paused, its housekeeping job the stand-in given."""
    monkeypatch.setattr("store.service.housekeeping", housekeeping)
    config = parse_config({"data_dir": str(tmp_path / "data"), "schedule": {**HOURLY, "timezone": "UTC"}})
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    scheduler = serve._scheduler(config, engine)
    service = Service(config, engine)
    jobs.install(service)
    _start(scheduler, config)
    return scheduler, engine, service


def _stop(scheduler, engine, service) -> None:
    """As serve stops: the scheduler shut down only once no job runs (APScheduler's shutdown holds the
    job stores' lock while it waits for the jobs, and a job ending clears its record under that lock:
    shut down while one ends, the two waited for each other until the suite's timeout)."""
    scheduler.pause()
    assert service.wait_idle(20)
    serve._uncleared.clear()
    jobs.install(None)
    scheduler.shutdown(wait=True)
    engine.dispose()


def test_a_job_store_that_cannot_be_written_for_a_while_stops_no_later_job(tmp_path, monkeypatch, caplog):
    runs: list[datetime] = []
    monkeypatch.setattr(serve, "JOB_STORE_RETRY_SECONDS", 0.05)
    scheduler, engine, service = _serving(tmp_path, monkeypatch, lambda _engine: runs.append(datetime.now(UTC)) or ["ran"])
    store = scheduler._lookup_jobstore("default")
    update = store.update_job
    broken = threading.Event()

    def update_job(job):  # noqa: ANN001, ANN202 - the store file read-only while `broken` is set
        if broken.is_set():
            raise DISK_ERROR
        return update(job)

    monkeypatch.setattr(store, "update_job", update_job)
    try:
        with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC))
            broken.set()
            scheduler.resume()
            wait_until(lambda: runs and _said(caplog), 20, "the run and the failed save")
            broken.clear()  # writable again: the job handed over unsaved is handed over once more
            wait_until(lambda: len(runs) >= 2, 20, "a later run of the job")
            assert scheduler._thread.is_alive() and scheduler.running
    finally:
        _stop(scheduler, engine, service)
    [said, *_] = _said(caplog)
    message = said.getMessage()
    assert message.startswith("the scheduler could not save its jobs in the store: ")
    assert "disk I/O error" in message and "UPDATE" not in message and "\n" not in message
    assert said.exc_info is None  # no traceback (only with --debug, for budgetwatch's own errors)


def _said(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.ERROR and "could not save its jobs" in r.getMessage()]


def test_a_jobs_start_is_said_before_anything_the_job_says(tmp_path, monkeypatch, caplog):
    ran = threading.Event()

    def housekeeping(_engine):
        logging.getLogger("budgetwatch.service").info("the stand-in's own line")
        ran.set()
        return ["ran"]

    scheduler, engine, service = _serving(tmp_path, monkeypatch, housekeeping)
    try:
        with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC))
            scheduler.resume()
            assert ran.wait(20)
            wait_until(lambda: any("starts: due" in r.getMessage() for r in caplog.records), 20, "the start said")
    finally:
        _stop(scheduler, engine, service)
    said = [r.getMessage() for r in caplog.records]
    start = next(i for i, m in enumerate(said) if m.startswith("job housekeeping starts: due "))
    assert start < said.index("the stand-in's own line"), said


def test_apschedulers_warning_of_a_database_error_is_one_line_without_the_statement():
    error = sa.exc.ProgrammingError("SELECT apscheduler_jobs.id, apscheduler_jobs.job_state FROM apscheduler_jobs\n"
                                    "WHERE apscheduler_jobs.next_run_time <= ?", (1.0,),
                                    sqlite3.OperationalError('relation "apscheduler_jobs" does not exist'))
    record = logging.LogRecord("apscheduler.scheduler", logging.WARNING, __file__, 1,
                               "Error getting due jobs from job store %r: %s", ("default", error), None)
    assert serve._one_line(record)
    message = record.getMessage()
    assert message == ("Error getting due jobs from job store 'default': database error: "
                       'relation "apscheduler_jobs" does not exist'), message
