"""Stopping the scheduler: a slot that falls due while running jobs wind down stays for the next start.

An operator's trial saw "Error submitting job … cannot schedule new futures after shutdown" at ERROR
during a stop, and the slot lost: APScheduler 3's shutdown ends the pause (while it waits for running
jobs) and wakes its thread, which processes due jobs once more before it sees the scheduler stopped.
This test reproduces the second path (a slot due since the pause, processed at the shutdown's
wake-up: it failed so on the first version of the fix); the first was closed by shutting down only
once no job runs. The real APScheduler with serve's job store (SQLAlchemy, a SQLite file); the jobs
are stand-ins.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from service.jobs import Service
from service.scheduler import _stop

# the job store keeps jobs by reference: the stand-ins are this module's functions, sharing these
_service = Service(None, None)  # the jobs' shared state only: no sync or send runs here
_started = threading.Event()
_ran_late: list[str] = []


def long_job() -> None:
    with _service.running():
        _started.set()
        _service.stopping.wait(30)
        threading.Event().wait(1.0)  # still running a second after the stop, as a sync rolling back


def due_during_stop() -> None:
    _ran_late.append("ran")


def test_a_slot_due_while_a_job_winds_down_is_left_for_the_next_start(tmp_path, caplog, monkeypatch):
    def left(code: int) -> None:  # serve's way out when the stop times out: a failure here, not pytest's end
        raise AssertionError(f"the stop timed out (os._exit({code}))")

    monkeypatch.setattr("service.scheduler.os._exit", left)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    scheduler = BackgroundScheduler(jobstores={"default": SQLAlchemyJobStore(engine=engine)},
                                    executors={"default": ThreadPoolExecutor(4)}, timezone=UTC)
    scheduler.add_job(long_job, "date", run_date=datetime.now(UTC), id="long")
    scheduler.start()
    assert _started.wait(10)
    due = datetime.now(UTC) + timedelta(seconds=0.3)
    scheduler.add_job(due_during_stop, "date", id="due-during-stop", run_date=due, misfire_grace_time=3600)
    with caplog.at_level(logging.INFO, logger="apscheduler"):
        assert _stop(scheduler, _service, timeout=10) == 0
    assert _ran_late == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # still in the job store, due: the next start runs it once (misfire grace, coalesce)
    kept = SQLAlchemyJobStore(engine=engine)
    kept.start(scheduler, "default")
    job = kept.lookup_job("due-during-stop")
    assert job is not None and job.next_run_time == due
    engine.dispose()


# --- a job waiting for its turn when the stop comes: its slot is owed to the next start -------------

# An operator's trial: full-sync started waiting for sync:saba (the store-work lock); SIGTERM came;
# the log had "job full-sync starts" and nothing after, the next start did not run it (its next run
# was the following week's). Real jobs (service.jobs:run_job, through serve's own scheduler and its
# job store) wait behind a job that holds the store's work until the stop; the holder's work is a
# stand-in that ends when the service stops (a sync or reconciliation cancelled).

WAITING = {"sync:saba": ("sync", "saba"), "full-sync": ("full-sync",), "reconcile": ("reconcile",),
           "housekeeping": ("housekeeping",)}


def _serve_parts(tmp_path):
    from budgetwatch.config import parse_config
    from service.scheduler import _scheduler

    config = parse_config({"data_dir": str(tmp_path / "data"),
                           "schedule": {"timezone": "UTC", "misfire_grace_seconds": 3600}})
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    return config, engine, _scheduler(config, engine)


def _add(scheduler, job_id: str, args: tuple[str, ...], due: datetime) -> None:
    from apscheduler.triggers.interval import IntervalTrigger

    from service.scheduler import RUN_JOB

    scheduler.add_job(RUN_JOB, trigger=IntervalTrigger(hours=1, start_date=due, timezone=UTC), args=args,
                      id=job_id, name="every hour")


def _wait(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _stored_next_runs(engine, scheduler) -> dict[str, datetime]:
    from store.service import JOBS_TABLE

    kept = SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)
    kept.start(scheduler, "default")
    return {job.id: job.next_run_time for job in kept.get_all_jobs()}


def _unfinished(engine) -> list:
    """The runs the job store records as started and not ended (a serve that died leaves them)."""
    from store.service import unfinished_runs

    with engine.connect() as conn:
        return unfinished_runs(conn)


def _next_start_submits(config, engine, expected: set[str]) -> dict[str, list[list[datetime]]]:
    """The slots a next start (no service installed: the jobs return at once) submits per job."""
    from apscheduler.events import EVENT_JOB_SUBMITTED

    from service.scheduler import _scheduler

    submitted: dict[str, list[list[datetime]]] = {}
    scheduler = _scheduler(config, engine)
    scheduler.add_listener(lambda e: submitted.setdefault(e.job_id, []).append(e.scheduled_run_times),
                           EVENT_JOB_SUBMITTED)
    scheduler.start()
    try:
        _wait(lambda: expected <= set(submitted), f"the next start runs the owed slots: {submitted}")
        time.sleep(1.0)  # and nothing more
    finally:
        scheduler.shutdown(wait=True)
    return submitted


@pytest.mark.parametrize("holder", ["reconcile", "housekeeping"])
def test_a_job_waiting_for_its_turn_at_the_stop_says_so_and_its_slot_runs_at_the_next_start(
        tmp_path, caplog, monkeypatch, holder):
    from service import jobs

    def left(code: int) -> None:
        raise AssertionError(f"the stop timed out (os._exit({code}))")

    monkeypatch.setattr("service.scheduler.os._exit", left)
    holding = threading.Event()

    def held_until_the_stop(*_args, on_progress=None, **_kwargs):
        holding.set()
        jobs._service.stopping.wait(30)
        if on_progress:
            on_progress("cancelled")  # a reconciliation rolls back (ServiceStopping)
        return ["nothing"]

    monkeypatch.setattr("reconcile.run", held_until_the_stop)
    monkeypatch.setattr("store.service.housekeeping", held_until_the_stop)
    config, engine, scheduler = _serve_parts(tmp_path)
    service = Service(config, engine)
    waiting = {job_id: args for job_id, args in WAITING.items() if job_id != holder}
    jobs.install(service)
    try:
        scheduler.start()
        holder_due = datetime.now(UTC) + timedelta(seconds=0.2)
        _add(scheduler, holder, WAITING[holder], holder_due)
        assert holding.wait(20)
        due = datetime.now(UTC) + timedelta(seconds=0.2)
        for job_id, args in waiting.items():
            _add(scheduler, job_id, args, due)
        _wait(lambda: service._running == 1 + len(waiting), "every job started (and waits its turn)")
        time.sleep(0.3)  # in store_work's wait
        with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            assert _stop(scheduler, service, timeout=10) == 0
    finally:
        jobs.install(None)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    for job_id in waiting:  # one line each, saying it gave up and that its slot is kept
        [said] = [r for r in caplog.records if getattr(r, "job", None) == job_id and r.name == "budgetwatch.service"
                  and " starts: due " not in r.getMessage()]
        assert said.levelno == logging.WARNING and "the service is stopping" in said.getMessage(), said.getMessage()
        assert f"waiting for {holder}" in said.getMessage() and "next start" in said.getMessage(), said.getMessage()
    stored = _stored_next_runs(engine, scheduler)
    assert stored == {holder: holder_due + timedelta(hours=1), **{job_id: due for job_id in waiting}}, stored
    assert _unfinished(engine) == []  # a graceful stop: no run left for the next start to take as cut off

    submitted = _next_start_submits(config, engine, set(waiting))
    assert submitted == {job_id: [[due]] for job_id in waiting}, submitted  # once each, the slot given up
    engine.dispose()


def test_a_job_handed_over_as_the_stop_begins_keeps_its_slot(tmp_path, caplog, monkeypatch):
    """A slot submitted just before the pause whose thread starts once the service is stopping does
    not run: it is owed too (here the alerts job, which waits for nothing)."""
    from service import jobs

    monkeypatch.setattr("service.scheduler.os._exit", lambda code: (_ for _ in ()).throw(AssertionError(code)))
    config, engine, scheduler = _serve_parts(tmp_path)
    service = Service(config, engine)
    jobs.install(service)
    try:
        due = datetime.now(UTC) + timedelta(seconds=0.2)
        scheduler.start(paused=True)
        _add(scheduler, "alerts", ("alerts",), due)
        # what the scheduler's thread does at the slot (_process_jobs), the pause and the stop coming
        # meanwhile: the job's next run moved past the slot, the slot handed to the executor
        scheduler.pause()
        service.stop()
        scheduler.modify_job("alerts", next_run_time=due + timedelta(hours=1))
        with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            scheduler._lookup_executor("default").submit_job(scheduler.get_job("alerts"), [due])
            _wait(lambda: any(getattr(r, "job", None) == "alerts" and "stopping" in r.getMessage()
                              for r in caplog.records), "the alerts job says it did not run")
            assert _stop(scheduler, service, timeout=10) == 0
    finally:
        jobs.install(None)
    # one line: it did not start (it said "starts" first when that was said as the slot was handed over)
    [said] = [r for r in caplog.records if getattr(r, "job", None) == "alerts"]
    assert said.levelno == logging.WARNING and "did not start" in said.getMessage(), said.getMessage()
    assert _stored_next_runs(engine, scheduler) == {"alerts": due}
    assert _unfinished(engine) == []
    assert _next_start_submits(config, engine, {"alerts"}) == {"alerts": [[due]]}
    engine.dispose()
