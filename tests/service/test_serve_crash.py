"""A serve that dies during a job (kill -9, out of memory, power lost): the next start runs the job again.

An operator's trial: the alerts job killed with 22 of 40 digests queued; the restarted serve waited
for the job's next slot (the next working day with the shipped schedule), the other 18 experts got
nothing, and `status` said HEALTHY. APScheduler moves a job's next run past its slot as it hands the
slot over, so the slot was lost; now the run is recorded in the job store while it runs and a start
that finds it unended runs the job again at once (service.scheduler).

The first tests are in-process (serve's own scheduler and job store on SQLite, the jobs' work a
stand-in); the last are `budgetwatch serve` as a real process killed with SIGKILL mid-job. A job is
made due by writing its next run in the job store (tests.service.conftest ``due_now``), as its
crontab minute would; nothing else falls due in these tests (every schedule hourly). The kill must
land while the job cannot end, with no timing: a sync waits on portals that answer 30 s late, the
alerts job on the queuing lock the test holds (PostgreSQL's advisory lock; SQLite's lock is the whole
database's, the job store's writes included, so no such hold exists there: the sync test covers it).
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from budgetwatch.config import parse_config
from service import jobs
from service import status as health
from service.jobs import Service
from simulator import Faults
from store.db import open_store
from store.service import serve_lock, unfinished_runs
from tests.alerts.conftest import smtp  # noqa: F401 - the real SMTP server fixture, shared
from tests.service.conftest import (
    PROCESS_TIMEOUT,
    QUICK,
    due_now,
    next_run,
    sync_runs,
    wait_until,
    write_config,
)
from tests.service.conftest import unfinished_runs as recorded_runs

HOURLY = {name: "every 1 hours" for name in QUICK}  # nothing falls due but what a test makes due


# --- in-process: serve's scheduler and job store, the job's work a stand-in ------------------------

def _parts(tmp_path):
    from service.scheduler import _scheduler

    config = parse_config({"data_dir": str(tmp_path / "data"),
                           "schedule": {**HOURLY, "timezone": "UTC", "misfire_grace_seconds": 60}})
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    return config, engine, _scheduler(config, engine)


def _stored(engine):
    with engine.connect() as conn:
        return unfinished_runs(conn)


def _start(scheduler, config) -> None:
    from service.scheduler import _install_jobs

    scheduler.start(paused=True)
    _install_jobs(scheduler, config)


def test_a_run_is_recorded_while_it_runs_and_a_start_after_its_process_died_runs_it_again_at_once(
        tmp_path, caplog, monkeypatch):
    """The record is written with the job's next run, as the slot is handed over, and cleared at the
    run's end; a start that finds it (the process died: one serve per store) runs the job now, even
    past the misfire grace, and once: the run that makes it up clears it in turn."""
    from service.scheduler import _scheduler

    held, release = threading.Event(), threading.Event()

    def housekeeping(_engine):
        held.set()
        release.wait(30)
        return ["stand-in"]

    monkeypatch.setattr("store.service.housekeeping", housekeeping)
    config, engine, scheduler = _parts(tmp_path)
    service = Service(config, engine)
    jobs.install(service)
    try:
        _start(scheduler, config)
        due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        scheduler.modify_job("housekeeping", next_run_time=due)
        scheduler.resume()
        assert held.wait(20)
        # while it runs: recorded, its next run already the next hour's
        wait_until(lambda: _stored(engine), 10, "the run recorded in the job store")
        [running] = _stored(engine)
        assert (running.job, running.due, running.cut_off) == ("housekeeping", due, False)
        assert scheduler.get_job("housekeeping").next_run_time > due + timedelta(minutes=59)

        # the process dies here (the job never ends in it); a later start on the same job store —
        # more than the misfire grace (60 s) after the slot, which would make a missed slot wait
        later = _scheduler(config, engine)
        with monkeypatch.context() as clock, caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            clock.setattr("service.scheduler.datetime", _Clock(due + timedelta(minutes=5)))
            _start(later, config)
        [said] = [r for r in caplog.records if getattr(r, "status", None) == "cut_off"]
        assert said.levelno == logging.WARNING and said.job == "housekeeping"
        assert f"its run due {due.isoformat()} never ended" in said.getMessage()
        assert "it runs again now" in said.getMessage()
        [owed] = _stored(engine)
        assert (owed.job, owed.due, owed.cut_off) == ("housekeeping", due, True)
        assert later.get_job("housekeeping").next_run_time == due + timedelta(minutes=5)
        assert {job.id for job in later.get_jobs() if job.kwargs} == {"housekeeping"}  # no other job touched
        later.shutdown(wait=False)
    finally:
        end_stand_in(release, service)
    scheduler.shutdown(wait=True)
    engine.dispose()


def end_stand_in(release, service) -> None:  # noqa: ANN001 - a threading.Event and a service.jobs.Service
    """Lets a stand-in job that does not end by itself end, waits for it, and uninstalls the service."""
    release.set()
    wait_until(lambda: not service._running, 20, "the stand-in ended")
    jobs.install(None)


class _Clock:
    """datetime for service.scheduler, its now() fixed (the start's, minutes after the slot)."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self, tz=None):  # noqa: ANN001, ANN201
        return self._now.astimezone(tz) if tz else self._now

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(datetime, name)


def test_a_run_that_ended_leaves_no_record_and_the_next_start_runs_it_at_its_next_slot(tmp_path, monkeypatch):
    """Done, failed (an exception: logged, the job runs at its next slot) or not: the record goes."""
    from service.scheduler import _scheduler

    ran: list[str] = []

    def fails(_engine):
        ran.append("housekeeping")
        raise RuntimeError("the stand-in fails")

    monkeypatch.setattr("store.service.housekeeping", fails)
    monkeypatch.setattr("reconcile.run", lambda *_a, **_k: ran.append("reconcile") or _NoRun())
    config, engine, scheduler = _parts(tmp_path)
    jobs.install(Service(config, engine))
    try:
        _start(scheduler, config)
        due = datetime.now(UTC) - timedelta(seconds=1)
        for job_id in ("housekeeping", "reconcile"):
            scheduler.modify_job(job_id, next_run_time=due)
        scheduler.resume()
        wait_until(lambda: sorted(ran) == ["housekeeping", "reconcile"] and not _stored(engine)
                   and not jobs._slots, 20, "both ran, and ended")
    finally:
        jobs.install(None)
    scheduler.shutdown(wait=True)
    later = _scheduler(config, engine)
    _start(later, config)
    assert all(job.kwargs == {} and job.next_run_time > datetime.now(UTC) + timedelta(minutes=50)
               for job in later.get_jobs())
    later.shutdown(wait=False)
    engine.dispose()


def test_a_run_missed_past_the_grace_leaves_no_record_and_is_not_run_as_cut_off(tmp_path, monkeypatch, caplog):
    """A slot older than misfire_grace_seconds (a serve started after a long outage) is skipped by
    APScheduler: nothing runs, so nothing may stay recorded as started — a review found the record
    left, and the next start then ran the job as if serve had died during it."""
    from service.scheduler import _scheduler

    ran: list[str] = []
    monkeypatch.setattr("store.service.housekeeping", lambda _engine: ran.append("housekeeping"))
    config, engine, scheduler = _parts(tmp_path)
    jobs.install(Service(config, engine))
    try:
        _start(scheduler, config)
        scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC) - timedelta(minutes=5))  # grace: 60 s
        with caplog.at_level(logging.WARNING, logger="service.scheduler"):
            scheduler.resume()
            wait_until(lambda: "missed its run" in caplog.text, 20, "the run missed")
        assert ran == [] and _stored(engine) == [] and not jobs._slots
    finally:
        jobs.install(None)
    scheduler.shutdown(wait=True)
    later = _scheduler(config, engine)
    with caplog.at_level(logging.WARNING, logger="service.scheduler"):
        _start(later, config)
    assert "never ended" not in caplog.text
    assert all(job.kwargs == {} and job.next_run_time > datetime.now(UTC) + timedelta(minutes=50)
               for job in later.get_jobs())
    later.shutdown(wait=False)
    engine.dispose()


class _NoRun:
    """What reconcile.run returns when it recorded nothing (a what-if): the job says so and ends."""

    run_id = None
    what_if = "a stand-in"


def test_status_says_a_run_cut_off_by_a_dead_serve_until_it_runs_again(engine, tmp_path) -> None:
    """With no serve running, a run recorded as started was cut off (listed with 6); with serve
    running, it runs now — unless the start found it cut off and has not run it again yet (7)."""
    from service.scheduler import _scheduler

    from tests.service.test_status import NOW, healthy_store
    from tests.service.test_status import config as status_config

    healthy_store(engine)
    config = status_config(engine.url.render_as_string(hide_password=False))
    scheduler = _scheduler(config, engine)
    _start(scheduler, config)
    due = NOW - timedelta(minutes=3)
    scheduler.modify_job("alerts", kwargs={jobs.STARTED: due.isoformat()})
    down = health.gather(config, engine, now=NOW)
    assert [code for code, _ in down.causes] == [6, 7] and down.exit_code == 6
    assert down.cut_off == {"alerts": due}
    assert down.causes[1][1].startswith("the alerts job's run due ") and "never ended" in down.causes[1][1]
    assert "the next start of serve runs it again" in down.causes[1][1]
    assert down.as_json()["cut_off_runs"] == {"alerts": due.astimezone(health.TEHRAN).isoformat()}
    with serve_lock(engine):  # a serve runs: the run is its own, running now
        running = health.gather(config, engine, now=NOW)
        assert running.causes == [] and running.exit_code == 0 and running.cut_off == {}
        scheduler.modify_job("alerts", kwargs={jobs.CUT_OFF: due.isoformat()})
        owed = health.gather(config, engine, now=NOW)
    assert owed.exit_code == 7 and "it runs again now" in owed.causes[0][1], owed.causes
    assert "UNHEALTHY (exit 7)" in "\n".join(health.render(owed))
    scheduler.shutdown(wait=False)


# --- `budgetwatch serve` killed with SIGKILL mid-job --------------------------------------------------

def _status(capsys, config) -> tuple[int, dict]:
    code = main(["--config", str(config), "status", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _started_at(serve) -> float:
    return _epoch(serve.wait_for(lambda e: "started_at" in e)["started_at"])


def _cut_off_said(serve, job_id: str) -> dict:
    """The start's line on `job_id`'s run cut off, written before "serve started"."""
    events = serve.events()
    started = next(i for i, e in enumerate(events) if e["message"].startswith("budgetwatch serve started"))
    said = [e for e in events[:started] if e.get("status") == "cut_off"]
    assert [e["job"] for e in said] == [job_id], said
    assert said[0]["level"] == "WARNING" and "it runs again now" in said[0]["message"], said[0]
    return said[0]


@pytest.mark.slow
@PROCESS_TIMEOUT
def test_a_full_sync_killed_mid_run_runs_again_at_the_restart_and_once_ended_is_not_run_again(
        simulator_factory, serve_factory, store_url, tmp_path, capsys, monkeypatch):
    from tests.sync.test_sync import _assert_store_equals_truth

    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    sim = simulator_factory(projects=40, agreements=20)
    sim.set_faults(Faults(latency_ms=30_000))  # every answer 30 s away: the sync cannot end before the kill
    config = write_config(tmp_path, sim, store_url, schedule=HOURLY)
    due_now(config, "full-sync")
    serve = serve_factory(config)
    serve.started()
    assert not [e for e in serve.events() if e.get("status") == "cut_off"]  # a slot come, nothing owed
    serve.wait_for(lambda e: e["message"].startswith("job full-sync starts"))
    wait_until(lambda: any(r["status"] == "running" for r in sync_runs(store_url)), 90, "a full sync running")
    serve.kill()
    [cut] = recorded_runs(store_url)
    assert (cut.job, cut.cut_off) == ("full-sync", False)
    assert next_run(store_url, "full-sync") > datetime.now(UTC) + timedelta(minutes=50)  # the slot moved on
    code, report = _status(capsys, config)
    assert code == 6 and 7 in [c["code"] for c in report["causes"]], report["causes"]
    assert set(report["cut_off_runs"]) == {"full-sync"}

    sim.set_faults(Faults())
    again = serve_factory(config)
    again.started()
    restarted_at = _started_at(again)
    said = _cut_off_said(again, "full-sync")
    assert _epoch(said["due"]) == cut.due.timestamp()
    start = again.wait_for(lambda e: e["message"].startswith("job full-sync starts"))
    assert _epoch(start["due"]) - restarted_at < 30, start  # at once, not at its next slot (an hour on)
    for source in ("nezarat4", "saba"):
        again.wait_for(lambda e, s=source: e.get("source") == s and e.get("status") == "success"
                       and e["message"].startswith("full sync of"), timeout=120)
    wait_until(lambda: not recorded_runs(store_url), 120, "the full-sync job ended (its reconciliation too)")
    engine = open_store(store_url)
    try:
        _assert_store_equals_truth(engine, sim)
    finally:
        engine.dispose()
    code, report = _status(capsys, config)
    assert report["cut_off_runs"] == {} and code == 0, report["causes"]

    # ended: a kill now (serve idle) leaves nothing owed, and the next start runs nothing at once
    again.kill()
    assert recorded_runs(store_url) == []
    third = serve_factory(config)
    third.started()
    events = third.events()
    assert not [e for e in events if e.get("status") == "cut_off"], events
    assert next_run(store_url, "full-sync") > datetime.now(UTC) + timedelta(minutes=50)
    assert not [e for e in third.events() if " starts: due " in e["message"]]
    assert third.terminate() < 5
    runs = sync_runs(store_url)
    assert [r["mode"] for r in runs if r["status"] == "success"] == ["full", "full"], runs
    assert "running" not in {r["status"] for r in runs}, runs


@pytest.mark.slow
@PROCESS_TIMEOUT
def test_alerts_killed_while_queuing_run_again_at_the_restart_and_every_expert_gets_a_digest(
        simulator_factory, serve_factory, pg_store_url, smtp, tmp_path, capsys, monkeypatch):  # noqa: F811
    """The trial's case: killed with the digests partly queued (here none: the queuing waits for a
    lock the test holds, as for a hand-run `alerts queue`); after the restart every expert's digest
    arrives — the dispatch job is hourly here, so only the alerts job run again can send them."""
    from store.alerts import lock_for_queuing
    from store.locks import advisory_lock_in_pg_locks, lock_key
    from tests.alerts.builders import EXPERTS, ROUTING, SENDER, Facts

    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    engine = open_store(pg_store_url)
    facts = Facts(engine)
    facts.deviation("305", "critical")
    facts.deviation("118", "major")
    sim = simulator_factory(projects=5, agreements=5)
    alerts = {"enabled": True, "sender": SENDER, "min_severity": "minor",
              "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none"}}
    experts = [expert.model_dump(mode="json") for expert in EXPERTS]
    routing = ROUTING.model_dump(mode="json")
    config = write_config(tmp_path, sim, pg_store_url, schedule=HOURLY,
                          extra={"alerts": alerts, "experts": experts, "routing": routing})
    due_now(config, "alerts")
    holder = engine.connect()
    try:
        transaction = holder.begin()
        lock_for_queuing(holder)  # the job's queuing waits for it
        serve = serve_factory(config)
        serve.started()
        assert not [e for e in serve.events() if e.get("status") == "cut_off"]  # a slot come, nothing owed
        serve.wait_for(lambda e: e["message"].startswith("job alerts starts"))
        where, params = advisory_lock_in_pg_locks(lock_key(holder, "alerts:queue"))
        waiting = sa.text(f"SELECT count(*) FROM pg_locks l WHERE {where.replace('l.granted', 'NOT l.granted')}")
        wait_until(lambda: holder.execute(waiting, params).scalar(), 60, "the alerts job waiting to queue")
        serve.kill()
        transaction.rollback()
    finally:
        holder.close()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alert_outbox")).scalar() == 0
    code, report = _status(capsys, config)
    assert code == 6 and set(report["cut_off_runs"]) == {"alerts"}, report

    again = serve_factory(config)
    again.started()
    _cut_off_said(again, "alerts")
    addresses = [expert["email"] for expert in experts]
    wait_until(lambda: all(smtp.mailbox.to(address) for address in addresses), 120,
               f"a digest for each of {addresses}")
    wait_until(lambda: not recorded_runs(pg_store_url), 60, "the alerts job ended")
    assert again.terminate() < 5
    assert sorted(len(smtp.mailbox.to(address)) for address in addresses) == [1] * len(addresses)
    [line] = [e for e in again.events() if e.get("job") == "alerts" and e["message"].startswith("alerts:")]
    assert f"digests: messages {len(addresses)}" in line["message"], line
    engine.dispose()


class _Planted:
    """A job state someone else wrote into the job table: restoring it would run a command."""

    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_status_reads_a_job_table_row_as_data_never_as_code(tmp_path) -> None:
    """`status` unpickles APScheduler's job states to find runs never ended; it runs where monitoring
    runs, often under another account than serve: a planted row is skipped, not executed (a review)."""
    import pickle

    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    marker = tmp_path / "ran"
    job_state = {"version": 1, "id": "alerts", "kwargs": {jobs.STARTED: "2026-12-07T04:30:00+00:00"}}
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, next_run_time FLOAT, "
                             "job_state BLOB NOT NULL)")
        conn.execute(sa.text("INSERT INTO apscheduler_jobs VALUES (:id, NULL, :state)"), [
            {"id": "alerts", "state": pickle.dumps(job_state, 2)},
            {"id": "planted", "state": pickle.dumps({"kwargs": _Planted(marker)}, 2)}])
    with engine.connect() as conn:
        found = unfinished_runs(conn)
    assert [(run.job, run.cut_off) for run in found] == [("alerts", False)]
    assert not marker.exists()
    engine.dispose()
