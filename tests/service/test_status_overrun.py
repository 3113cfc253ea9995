"""A job running far longer than it ever should: `status` exits 8, serve warns at each skipped slot.

An operator's trial: with the database frozen under a running job (or any job hung), serve logged
"job X is still running: its run due … is skipped" at INFO every slot while `status` said HEALTHY —
for a sync until twice its interval had passed (the weekly full sync: two weeks), for the
reconciliation a day. The run's record in the job store (store.service ``unfinished_runs``) is
written here as serve writes it, with an old start (no waiting); the serve-side test runs serve's
own scheduler in-process with a stand-in job that does not end, its clock moved past the bound.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from budgetwatch.cli import main
from budgetwatch.config import parse_config
from service import jobs
from service import status as health
from service.jobs import Service
from store.db import open_store
from store import service as store_service
from store.service import serve_lock
from tests.service.conftest import wait_until
from tests.service.test_serve_crash import HOURLY, _start, end_stand_in
from tests.service.test_status import NOW, SETTINGS, add_reconcile_run, add_sync_run, healthy_store
from tests.service.test_status import config as status_config

TWELVE_HOURS = 12 * 3600  # schedule.job_overrun_minutes' default, in seconds


def _job_store(engine, config):
    """The job store as serve makes it (every configured job), its scheduler paused: nothing runs."""
    from service.scheduler import _scheduler

    scheduler = _scheduler(config, engine)
    _start(scheduler, config)
    return scheduler


def _gather(engine, config, now: datetime):
    with serve_lock(engine):  # as a running serve holds it
        return health.gather(config, engine, now=now)


def test_a_run_past_its_bound_exits_8_naming_the_job_since_when_and_for_how_long(engine) -> None:
    healthy_store(engine)
    config = status_config(engine.url.render_as_string(hide_password=False))
    scheduler = _job_store(engine, config)
    try:
        young = NOW - timedelta(hours=11, minutes=55)  # within the default 12 h: an ordinary long run
        scheduler.modify_job("reconcile", kwargs={jobs.STARTED: young.isoformat()})
        within = _gather(engine, config, NOW)
        assert within.causes == [] and within.exit_code == 0
        assert within.as_json()["overrunning_runs"] == []

        started = NOW - timedelta(hours=12, minutes=5)  # 2026-12-02 23:25 in Tehran: 1405/09/11
        scheduler.modify_job("reconcile", kwargs={jobs.STARTED: started.isoformat()})
        found = _gather(engine, config, NOW)
    finally:
        scheduler.shutdown(wait=False)
    assert [code for code, _ in found.causes] == [8] and found.exit_code == 8
    reason = found.causes[0][1]
    assert reason.startswith("the reconcile job has been running since 1405/09/11 23:25 Tehran, for 12 h 5 min: "
                             "longer than the 12 h 0 min of schedule.job_overrun_minutes"), reason
    assert "its run due" not in reason  # handed over at its slot: one time is enough
    report = found.as_json()
    assert report["exit_code"] == 8 and report["healthy"] is False
    assert report["causes"] == [{"code": 8, "reason": reason}]
    assert report["overrunning_runs"] == [{
        "job": "reconcile", "due": "2026-12-02T23:25:00+03:30", "started_at": "2026-12-02T23:25:00+03:30",
        "running_seconds": TWELVE_HOURS + 300, "allowed_seconds": TWELVE_HOURS}]
    assert report["cut_off_runs"] == {}  # the keys before it kept
    shown = "\n".join(health.render(found))
    assert shown.startswith("UNHEALTHY (exit 8)") and f"  ! {reason}" in shown


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_the_bound_is_schedule_job_overrun_minutes(engine) -> None:
    healthy_store(engine)
    url = engine.url.render_as_string(hide_password=False)
    config = parse_config({"database": {"url": url}, **SETTINGS,
                           "schedule": {**SETTINGS["schedule"], "job_overrun_minutes": 30}})
    scheduler = _job_store(engine, config)
    try:
        scheduler.modify_job("dispatch", kwargs={jobs.STARTED: (NOW - timedelta(minutes=29)).isoformat()})
        assert _gather(engine, config, NOW).exit_code == 0
        scheduler.modify_job("dispatch", kwargs={jobs.STARTED: (NOW - timedelta(minutes=31)).isoformat()})
        found = _gather(engine, config, NOW)
    finally:
        scheduler.shutdown(wait=False)
    assert found.exit_code == 8
    assert "the dispatch job has been running since" in found.causes[0][1]
    assert "for 31 min: longer than the 30 min of schedule.job_overrun_minutes" in found.causes[0][1]
    assert found.as_json()["overrunning_runs"][0]["allowed_seconds"] == 30 * 60


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_a_slot_made_up_after_downtime_counts_from_when_it_was_handed_over(engine) -> None:
    """After downtime a missed slot runs at the start, up to misfire_grace_seconds (6 h) late: a run
    an hour old must not be said to run since its slot 13 h ago (an alarm after a maintenance window)."""
    healthy_store(engine)
    config = status_config(engine.url.render_as_string(hide_password=False))
    scheduler = _job_store(engine, config)
    try:
        record = store_service.run_record(NOW - timedelta(hours=13), NOW - timedelta(hours=1))
        scheduler.modify_job("full-sync", kwargs={jobs.STARTED: record})
        assert _gather(engine, config, NOW).exit_code == 0
        due, handed_over = NOW - timedelta(hours=17, minutes=30), NOW - timedelta(hours=12, minutes=30)
        scheduler.modify_job("full-sync", kwargs={jobs.STARTED: store_service.run_record(due, handed_over)})
        found = _gather(engine, config, NOW)
    finally:
        scheduler.shutdown(wait=False)
    assert found.exit_code == 8
    # handed over 2026-12-02 19:30 UTC (23:00 Tehran), due 14:30 UTC (18:00 Tehran)
    assert found.causes[0][1].startswith("the full-sync job has been running since 1405/09/11 23:00 Tehran (its run "
                                         "due 1405/09/11 18:00 Tehran), for 12 h 30 min: "), found.causes[0][1]
    [run] = found.as_json()["overrunning_runs"]
    assert (run["due"], run["started_at"]) == ("2026-12-02T18:00:00+03:30", "2026-12-02T23:00:00+03:30")
    assert run["running_seconds"] == TWELVE_HOURS + 1800


def test_an_old_run_is_cut_off_not_overrunning_when_serve_is_down_or_found_it_left(engine) -> None:
    """With no serve running, an unended run's serve died in it (7, with 6); a run a start found cut
    off has not run again yet (7). Neither runs now: neither is overrunning."""
    healthy_store(engine)
    config = status_config(engine.url.render_as_string(hide_password=False))
    scheduler = _job_store(engine, config)
    old = (NOW - timedelta(days=2)).isoformat()
    try:
        scheduler.modify_job("alerts", kwargs={jobs.STARTED: old})
        down = health.gather(config, engine, now=NOW)
        scheduler.modify_job("alerts", kwargs={jobs.CUT_OFF: old})
        owed = _gather(engine, config, NOW)
    finally:
        scheduler.shutdown(wait=False)
    assert [code for code, _ in down.causes] == [6, 7] and down.as_json()["overrunning_runs"] == []
    assert [code for code, _ in owed.causes] == [7] and owed.as_json()["overrunning_runs"] == []


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_a_sync_stuck_for_days_is_said_stuck_beside_its_stale_source(engine) -> None:
    """The trial's frozen database under the nezarat4 sync: two days on, the source is stale (3, the
    smaller code returned) and the job still running (8): both listed, the second saying why."""
    for source in ("nezarat4", "saba"):
        add_sync_run(engine, source, "success", NOW - timedelta(days=2, hours=1))
    add_sync_run(engine, "saba", "success", NOW - timedelta(minutes=30))
    add_reconcile_run(engine, NOW - timedelta(hours=3))
    config = status_config(engine.url.render_as_string(hide_password=False))
    scheduler = _job_store(engine, config)
    try:
        scheduler.modify_job("sync:nezarat4", kwargs={jobs.STARTED: (NOW - timedelta(days=2)).isoformat()})
        found = _gather(engine, config, NOW)
    finally:
        scheduler.shutdown(wait=False)
    assert [code for code, _ in found.causes] == [3, 8] and found.exit_code == 3
    assert found.causes[1][1].startswith("the sync:nezarat4 job has been running since 1405/09/10 11:30 Tehran, "
                                         "for 2 days: ")


@pytest.mark.slow_on_postgresql  # what it says of what the store holds, not the database: its SQLite variant stays in the default run
def test_status_command_exits_8_and_lists_the_run_in_json(engine, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    url = engine.url.render_as_string(hide_password=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": url}, **SETTINGS}), encoding="utf-8")
    now = datetime.now(UTC)
    for source in ("nezarat4", "saba"):
        add_sync_run(engine, source, "success", now - timedelta(minutes=1))
    add_reconcile_run(engine, now)
    config = status_config(url)
    scheduler = _job_store(engine, config)
    try:
        started = (now - timedelta(hours=13)).replace(microsecond=0)
        scheduler.modify_job("housekeeping", kwargs={jobs.STARTED: started.isoformat()})
        with serve_lock(engine):
            code = main(["--config", str(path), "status", "--format", "json"])
            report = json.loads(capsys.readouterr().out)
            assert main(["--config", str(path), "status"]) == 8
            table = capsys.readouterr().out
    finally:
        scheduler.shutdown(wait=False)
    assert code == 8 and [c["code"] for c in report["causes"]] == [8], report["causes"]
    [run] = report["overrunning_runs"]
    assert run["job"] == "housekeeping" and datetime.fromisoformat(run["started_at"]) == started
    assert run["started_at"].endswith("+03:30") and run["allowed_seconds"] == TWELVE_HOURS
    assert table.startswith("UNHEALTHY (exit 8)") and "the housekeeping job has been running since" in table


@pytest.mark.parametrize("value", ["0", "-5", "six hours", "true", ".inf", "1.5"])
def test_a_bad_job_overrun_minutes_is_refused_naming_the_key_before_anything_runs(
        tmp_path: Path, capsys, monkeypatch, value: str) -> None:
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    store = tmp_path / "store.db"
    path = tmp_path / "config.yaml"
    path.write_text(f'database:\n  url: "sqlite:///{store}"\nschedule:\n  job_overrun_minutes: {value}\n',
                    encoding="utf-8")
    for command in ("status", "check-config"):
        assert main(["--config", str(path), command]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "schedule.job_overrun_minutes = " in line, line
    assert not store.exists()  # nothing opened
    path.write_text(f'database:\n  url: "sqlite:///{store}"\nschedule:\n  job_overrun_minutes: 90\n',
                    encoding="utf-8")
    assert main(["--config", str(path), "check-config"]) == 0  # a whole number of minutes is one


# --- serve's own line ---------------------------------------------------------------------------


class _Later:
    """datetime for service.scheduler, its now() `ahead` of the machine's (a run's hours, not waited for)."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def now(self, tz=None):  # noqa: ANN001, ANN201
        return datetime.now(tz) + self.ahead

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(datetime, name)


def test_serve_says_a_skipped_slot_of_a_run_past_its_bound_at_warning_and_an_ordinary_overlap_at_info(
        tmp_path, caplog, monkeypatch) -> None:
    from service.scheduler import _scheduler

    held, release = threading.Event(), threading.Event()

    def housekeeping(_engine):  # the job that does not end (a frozen database session)
        held.set()
        release.wait(30)
        return ["stand-in"]

    monkeypatch.setattr("store.service.housekeeping", housekeeping)
    clock = _Later()
    monkeypatch.setattr("service.scheduler.datetime", clock)
    config = parse_config({"data_dir": str(tmp_path / "data"), "schedule": {
        **HOURLY, "timezone": "UTC", "misfire_grace_seconds": 60, "job_overrun_minutes": 60}})
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    scheduler = _scheduler(config, engine)
    service = Service(config, engine)
    jobs.install(service)

    def skipped(levelno: int) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno == levelno and getattr(r, "job", None) == "housekeeping"
                and "is skipped" in r.getMessage()]

    try:
        with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
            _start(scheduler, config)
            # its slot 30 s back (within the 60 s grace): a start's record is not its slot's
            scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC) - timedelta(seconds=30))
            scheduler.resume()
            assert held.wait(20)
            handed_over = datetime.now(UTC)
            # an ordinary overlap: its next slot comes while it runs, well within the bound
            scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC))
            wait_until(lambda: skipped(logging.INFO), 20, "the skipped slot said")
            assert skipped(logging.WARNING) == []

            clock.ahead = timedelta(minutes=61)  # the run has gone on past the 60 minutes allowed
            for _ in range(2):  # once per skipped slot
                said = len(skipped(logging.WARNING))
                scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC))
                wait_until(lambda n=said: len(skipped(logging.WARNING)) > n, 20, "the overrunning slot said")
            with serve_lock(engine):
                overrun = health.gather(config, engine, now=datetime.now(UTC) + timedelta(minutes=61))
                within = health.gather(config, engine, now=datetime.now(UTC))
    finally:
        end_stand_in(release, service)
        scheduler.shutdown(wait=True)
        engine.dispose()
    [ordinary] = skipped(logging.INFO)
    assert ordinary.getMessage().startswith("job housekeeping is still running: its run due ")
    first, second = skipped(logging.WARNING)
    message = first.getMessage()
    assert message.startswith("job housekeeping has been running since "), message
    since = datetime.fromisoformat(message.removeprefix("job housekeeping has been running since ").split(" ")[0])
    assert abs((since - handed_over).total_seconds()) < 5 and since.utcoffset() == timedelta(0)  # the schedule's zone
    assert "(1 h 1 min), longer than schedule.job_overrun_minutes (60)" in message
    assert "`budgetwatch status` reports it (exit 8)" in message
    assert (first.status, first.running_since) == ("overrunning", since.isoformat())
    assert second.getMessage().startswith("job housekeeping has been running since ")
    # status reads the same record serve wrote: its hand-over, not only its slot
    assert 8 in [code for code, _ in overrun.causes]
    [run] = overrun.overrunning
    assert run.job == "housekeeping" and abs((run.started_at - since).total_seconds()) < 1
    assert 8 not in [code for code, _ in within.causes] and within.overrunning == []


def test_a_run_whose_record_could_not_be_cleared_as_it_ended_is_cleared_once_the_job_store_answers(
        tmp_path, monkeypatch) -> None:
    # a review: the job store unreachable as a run ended left its record as running, and `status`
    # said the idle job had run past its bound (exit 8) until its next slot — a week for the full sync
    from service import scheduler as serve

    ran = threading.Event()
    monkeypatch.setattr("store.service.housekeeping", lambda _engine: ran.set() or ["stand-in"])
    config = parse_config({"data_dir": str(tmp_path / "data"), "schedule": {**HOURLY, "timezone": "UTC"}})
    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    scheduler = serve._scheduler(config, engine)
    service = Service(config, engine)
    jobs.install(service)
    modify = scheduler.modify_job
    unreachable = threading.Event()
    unreachable.set()

    def modify_job(job_id, **changes):  # noqa: ANN001, ANN003, ANN202 - the job store, unreachable while set
        if unreachable.is_set() and changes == {"kwargs": {}}:
            raise OSError("could not reach the database")
        return modify(job_id, **changes)

    monkeypatch.setattr(scheduler, "modify_job", modify_job)
    try:
        _start(scheduler, config)
        scheduler.modify_job("housekeeping", next_run_time=datetime.now(UTC))
        scheduler.resume()
        assert ran.wait(20)
        wait_until(lambda: "housekeeping" in serve._uncleared, 20, "the failed clear noted")
        scheduler.pause()
        later = datetime.now(UTC) + timedelta(hours=13)
        # what status said, once the scheduler has saved the run's record (it saves the job after
        # handing the run over, and the stand-in may have ended before that)
        wait_until(lambda: 8 in [code for code, _ in _gather(engine, config, later).causes], 20, "the record saved")
        serve._clear_ended(scheduler)  # still unreachable: kept for the next check
        assert "housekeeping" in serve._uncleared
        unreachable.clear()
        serve._clear_ended(scheduler)
        assert serve._uncleared == set()
        assert 8 not in [code for code, _ in _gather(engine, config, later).causes]
    finally:
        serve._uncleared.clear()
        jobs.install(None)
        scheduler.shutdown(wait=True)
        engine.dispose()
