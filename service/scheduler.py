"""``budgetwatch serve``: the store's jobs on their schedules, until SIGTERM or Ctrl-C.

APScheduler 3 (a BackgroundScheduler; the main thread waits for a signal) with its SQLAlchemy job
store in the store's own database (table ``apscheduler_jobs``), every job ``coalesce``d, one
instance at a time, with ``schedule.misfire_grace_seconds`` of grace: after downtime a missed job
runs once at start, not once per missed slot. A job whose schedule is unchanged keeps its stored
next run across restarts (that is how a missed run is remembered); a changed schedule replaces it,
and a job no longer configured (a disabled source) is removed.

Only one serve runs per store (store.service.serve_lock), and serve watches its lock every
:data:`LOCK_CHECK_SECONDS` (:class:`_LockWatch`): on PostgreSQL it ends with its session (a server
restart, a failover, a network cut, an idle-session killer). Lost, it is taken again on a new
connection at once (a WARNING); if another serve holds it by then, this one stops as at SIGTERM and
exits :data:`SERVE_LOCKED`, as a second serve does at its start.

Stopping: the first SIGTERM/SIGINT cancels what runs (service.jobs) and waits up to
``schedule.stop_timeout_seconds``; a process whose jobs did not end by then exits anyway (code 1:
every write is a transaction, so nothing half-done is kept), as does a second Ctrl-C. A job that
gives up because the service stops (waiting for its turn, or handed over as the stop began) gives
its slot back to the job store (:class:`_SlotNotingExecutor`): the next start runs it once.

Dying: APScheduler moves a job's next run past its slot as it hands the slot to the executor, so a
serve killed during a run (kill -9, out of memory, power lost; or leaving past its stop timeout)
would lose that slot — the next start would wait for the job's next one (an operator's trial: the
alerts job killed with 22 of 40 digests queued, the other 18 experts told nothing until the next
working day, and `status` HEALTHY meanwhile). So each run is recorded in the job store as it is
handed over (the job's ``started`` keyword, saved in the same update that moves its next run) and
cleared as it ends (:class:`_SlotNotingExecutor`); the next start finds a run never ended — only
one serve runs per store, so its process died — and runs the job again at once (:func:`_install_jobs`,
a WARNING naming the slot), whatever its age: the jobs are idempotent, the run finishes the work.

A job store that cannot be written for a while (a SQLite file made read-only, a disk I/O error, a
PostgreSQL database restarting): APScheduler 3's thread died of the first error it met saving a job
(a traceback on stderr; serve stayed up, holding its lock, and ran nothing again: an operator's
trial). :class:`_Scheduler` says it in one line and tries again every :data:`JOB_STORE_RETRY_SECONDS`;
a job handed over just before the failure may run once more (the jobs are idempotent). APScheduler's
own warnings say a database error in one line (:func:`_one_line`), never the statement.

Overrunning: a job that never ends (its database session frozen, a portal that never answers)
holds its one instance, and each of its slots is skipped. An ordinary overlap (a sync longer than
its interval) is said at INFO; a run handed over more than ``schedule.job_overrun_minutes`` ago is
said at WARNING at each skipped slot, with the moment it started, and ``status`` reports it (exit 8,
from the run's record in the job store) — an operator's trial saw INFO lines only, and ``status``
HEALTHY for two days. Nothing interrupts the run: a frozen PostgreSQL backend cannot be safely
interrupted from the client; the operator decides (restarting serve, which runs the job again).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from foundation.vocabulary import SOURCES
from reconcile import helper as reconcile_helper
from service import jobs
from service.jobs import AppConfig, Service
from service.settings import zone_info
from service.status import RUN_OVERRUNNING
from store.db import error_line
from store.locks import LockHeld
from store.service import JOBS_TABLE, ServeLock, run_record, serve_lock, slot_of

log = logging.getLogger("budgetwatch.service")
RUN_JOB = "service.jobs:run_job"
# serve's exit code when another serve holds the store (at its start, or after this one lost the lock)
SERVE_LOCKED = 3
# serve's exit code when its SQLite store's file was removed or replaced while it ran
STORE_GONE = 1
# how often serve checks that it still holds the serve lock: one query of pg_locks on the lock's own
# connection (SQLite: a stat of the lock file); for this long at most `status` says no serve runs
# after the lock's session ended, and another serve could take the store
LOCK_CHECK_SECONDS = 5.0
# how soon the scheduler tries again after its job store could not be written (APScheduler's own
# retry of a job store it cannot read is 10 s)
JOB_STORE_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class JobSpec:
    id: str
    kind: str
    source: str | None
    schedule: str

    @property
    def args(self) -> tuple[str, ...]:
        return (self.kind, self.source) if self.source else (self.kind,)


def job_specs(config: AppConfig) -> list[JobSpec]:
    """The jobs the configuration asks for (disabled sources and disabled alerts have none)."""
    schedule = config.schedule
    enabled = [name for name in SOURCES if getattr(config.sources, name).enabled]
    specs = [JobSpec(f"sync:{name}", "sync", name, spec) for name in enabled
             if (spec := schedule.sync_for(name)) is not None]
    if enabled:
        specs.append(JobSpec("full-sync", "full-sync", None, schedule.full_sync))
    specs.append(JobSpec("reconcile", "reconcile", None, schedule.reconcile))
    if config.alerts.enabled:
        specs.append(JobSpec("alerts", "alerts", None, schedule.alerts))
        specs.append(JobSpec("dispatch", "dispatch", None, schedule.dispatch))
    specs.append(JobSpec("housekeeping", "housekeeping", None, schedule.housekeeping))
    return specs


def serve(config: AppConfig, engine: Engine, *, on_started: Callable[[], None] | None = None) -> int:
    """Run the jobs until a signal; returns the exit code. Raises store.locks.LockHeld if another
    serve holds the store."""
    with serve_lock(engine) as lock:
        service = Service(config, engine)
        received: list[int] = []
        _on_signals(received)
        scheduler = _scheduler(config, engine)
        jobs.install(service)
        watch = _LockWatch(lock, LOCK_CHECK_SECONDS, store_file=_store_file(engine))
        try:
            scheduler.start(paused=True)  # the job store is open, nothing runs yet
            _install_jobs(scheduler, config)
            service.keep_spare()  # the first reconciliation's helper, started ahead (reconcile/helper.py)
            scheduler.resume()
            for job in scheduler.get_jobs():
                log.info("job %s scheduled %s; next run %s", job.id, job.name,
                         job.next_run_time.isoformat() if job.next_run_time else "-", extra={"job": job.id})
            log.info("budgetwatch serve started (pid %d)", os.getpid(),
                     extra={"started_at": datetime.now(UTC).isoformat()})
            watch.start()
            if on_started:
                on_started()
            _wait_for_signal(received, watch, tick=lambda: _clear_ended(scheduler))
            watch.stop()
            taken = not received and watch.taken_by  # another serve took the store while the lock was lost
            gone = not received and watch.store_gone
            if taken:
                log.error("%s: stopping, as at SIGTERM (exit %d)", watch.taken_by, SERVE_LOCKED)
            elif gone:
                log.error("%s: stopping, as at SIGTERM (exit %d): what the jobs write now would be lost with it",
                          watch.store_gone, STORE_GONE)
            log.info("stopping: cancelling running jobs")
            code = _stop(scheduler, service, config.schedule.stop_timeout_seconds)
            return SERVE_LOCKED if taken else STORE_GONE if gone else code
        finally:
            watch.stop()
            jobs.install(None)


class _LockWatch:
    """Checks every `period` seconds, on a thread of its own, that serve still holds its lock; lost,
    takes it again at once on a new connection (a WARNING: serve goes on), or, when another serve
    holds it by then, sets :attr:`taken_by` (the main thread stops serve). A database that cannot be
    reached meanwhile is said once, and the lock tried again at each check."""

    def __init__(self, lock: ServeLock, period: float, *, store_file: Path | None = None) -> None:
        self.lock = lock
        self.period = period
        self.taken_by: str | None = None  # "serve lock lost (…), and another budgetwatch serve (…) runs …"
        # a SQLite store's file, as it was at the start: removed or replaced, serve went on writing into
        # the deleted file, every run said a success and nothing was kept (an operator's trial)
        self.store_file, self._identity = store_file, _identity(store_file)
        self.store_gone: str | None = None  # "the store's file … was removed while serve ran"
        self._done = threading.Event()
        self._lost: str | None = None  # why, while the lock is lost and not taken again yet
        self._said = False  # that it could not be taken again yet
        self._thread = threading.Thread(target=self._run, name="serve-lock-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """No further check; waits (a little) for one under way."""
        self._done.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.period + 5)

    def _run(self) -> None:
        failing = False
        while not self._done.wait(self.period):
            try:
                if not self.check():
                    return
                failing = False
            except Exception as exc:  # noqa: BLE001 - the watch must not die silently (said once in a row)
                if not failing:
                    log.error("checking the serve lock failed: %s; trying again every %g s", error_line(exc),
                              self.period)
                failing = True

    @property
    def ended(self) -> bool:
        """Whether serve must stop: another serve holds the store, or its file is gone."""
        return bool(self.taken_by or self.store_gone)

    def check(self) -> bool:
        """One check; False once another serve holds the store, or its SQLite file is gone."""
        if self.store_file is not None:
            now = _identity(self.store_file)
            if now != self._identity:
                self.store_gone = (f"the store's file {self.store_file} was "
                                   f"{'removed' if now is None else 'replaced'} while serve ran")
                return False
        if self._lost is None:
            if self.lock.still_held():
                return True
            self._lost = self.lock.lost_why or "lost"
        try:
            retaken = self.lock.take_again()
        except LockHeld as exc:
            self.taken_by = f"serve lock lost ({self._lost}), and {exc} now"
            return False
        except Exception as exc:  # noqa: BLE001 - the database cannot be reached (a restart under way)
            retaken, why = False, f"taking it again failed: {error_line(exc)}"
        else:
            why = "it is not free yet (the server has not ended the session that held it)"
        if retaken:
            log.warning("serve lock lost (%s) and taken again on a new connection: serve goes on", self._lost)
            self._lost, self._said = None, False
        elif not self._said:  # said once while it lasts
            log.warning("serve lock lost (%s); %s: trying again every %g s", self._lost, why, self.period)
            self._said = True
        return True


def _store_file(engine: Engine) -> Path | None:
    """A SQLite store's file (None for PostgreSQL, or a store in memory)."""
    name = engine.url.database if engine.dialect.name == "sqlite" else None
    return Path(name).resolve() if name and name != ":memory:" and not name.startswith("file:") else None


def _identity(path: Path | None) -> tuple[int, int] | None:
    """A file's device and inode (None: not there)."""
    try:
        found = os.stat(path) if path is not None else None
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino) if found is not None else None


class _SlotNotingExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, noting each job's slot (the run time it is handed over for) before
    its thread starts, with the way to give the slot back to the job store: a job that gives up
    because the service stops owes it (service.jobs ``note_slot``). APScheduler moves a job's next
    run past the slot as it hands it over, so a job that did not run would otherwise lose it.

    The slot is also recorded in the job itself (its ``started`` keyword): APScheduler saves the job
    just after this hook, with its next run moved on — one update, so no moment of the job store
    has the slot neither owed nor recorded. The run's end clears it (service.jobs ``run_job``); a
    serve that dies leaves it, and the next start runs the job again (:func:`_install_jobs`)."""

    def _do_submit_job(self, job, run_times):  # noqa: ANN001 - APScheduler's hook, under its lock
        scheduler, job_id, due = self._scheduler, job.id, run_times[-1]
        grace = job.misfire_grace_time
        now = datetime.now(UTC)
        if grace is not None and all(now - t > timedelta(seconds=grace) for t in run_times):
            # APScheduler's run_job skips it as missed (EVENT_JOB_MISSED): no run, nothing to record
            # or owe (a review: recorded, it stayed "started" and the next start ran it as cut off),
            # and no "starts" line (a trial)
            super()._do_submit_job(job, run_times)
            return

        def give_back(due: datetime) -> None:
            # the scheduler is paused while jobs wind down (_stop): the slot stays in the job store
            _running_since.pop(job_id, None)
            scheduler.modify_job(job_id, next_run_time=due, kwargs={})

        def end() -> None:
            _running_since.pop(job_id, None)
            try:
                scheduler.modify_job(job_id, kwargs={})
            except Exception:
                _uncleared.add(job_id)  # tried again while serve waits (_clear_ended)
                raise

        # saved by the scheduler's update of the job; the moment too: after downtime a slot is handed
        # over up to the misfire grace late, and how long the run has run counts from now (status)
        job._modify(kwargs={jobs.STARTED: run_record(due, now)})
        _running_since[job_id] = now
        jobs.note_slot(job_id, due, give_back, end)
        super()._do_submit_job(job, run_times)  # its "starts" line is the run's thread's (service.jobs run_job)


class _Scheduler(BackgroundScheduler):
    """APScheduler's background scheduler, whose thread outlives a job store it cannot write."""

    def _process_jobs(self) -> float | None:
        try:
            return super()._process_jobs()
        except Exception as exc:  # noqa: BLE001 - the scheduler's thread must not die of it (see module)
            log.error("the scheduler could not save its jobs in the store: %s; it tries again every %g s "
                      "(a job handed over meanwhile may run once more)", error_line(exc), JOB_STORE_RETRY_SECONDS)
            return JOB_STORE_RETRY_SECONDS


def _scheduler(config: AppConfig, engine: Engine) -> BackgroundScheduler:
    schedule = config.schedule
    scheduler = _Scheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)},
        executors={"default": _SlotNotingExecutor(max_workers=8)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": schedule.misfire_grace_seconds},
        timezone=zone_info(schedule.timezone),
    )
    scheduler.add_listener(partial(_on_event, overrun=timedelta(minutes=schedule.job_overrun_minutes)),
                           EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
    said = logging.getLogger("apscheduler.scheduler")
    if _said_by_us not in said.filters:  # one serve a process, but tests start several
        said.addFilter(_said_by_us)
        said.addFilter(_one_line)
    return scheduler


def _said_by_us(record: logging.LogRecord) -> bool:
    """APScheduler's own warning of a skipped slot repeats the line _on_event writes (with the job's id)."""
    return "maximum number of running instances reached" not in record.getMessage()


def _one_line(record: logging.LogRecord) -> bool:
    """APScheduler's warnings with an exception in them ("Error getting due jobs from job store
    'default': …") in one line: a database error in the driver's words, not SQLAlchemy's lines quoting
    the statement (an operator's trial: a dropped database repeated them every 10 s)."""
    if isinstance(record.args, tuple) and any(isinstance(a, BaseException) for a in record.args):
        record.args = tuple(error_line(a) if isinstance(a, BaseException) else a for a in record.args)
    return True


def _install_jobs(scheduler: BackgroundScheduler, config: AppConfig) -> None:
    schedule = config.schedule
    stored = {job.id: job for job in scheduler.get_jobs()}
    # runs recorded as started and never ended (or found so by a start that died before making them
    # up): only one serve runs per store, so the process that ran them died during them
    cut_off = {job.id: slot_of(due) for job in stored.values()
               if (due := job.kwargs.get(jobs.CUT_OFF) or job.kwargs.get(jobs.STARTED))}
    specs = job_specs(config)
    for spec in specs:
        # the name carries everything that shapes the job: unchanged, the stored job (and its
        # possibly missed next run) stands; changed, it is replaced
        name = f"'{spec.schedule}' ({schedule.timezone}, grace {schedule.misfire_grace_seconds} s)"
        job = stored.pop(spec.id, None)
        if job is not None and job.name == name and tuple(job.args) == spec.args:
            continue
        scheduler.add_job(RUN_JOB, trigger=schedule.trigger(spec.schedule), args=spec.args, id=spec.id, name=name,
                          replace_existing=True)
    for job_id in stored:
        scheduler.remove_job(job_id)
        log.info("job %s removed: no longer in the configuration", job_id, extra={"job": job_id})
    now = datetime.now(scheduler.timezone)  # as every slot is said: in the schedule's time zone
    for job_id, due in cut_off.items():
        if job_id not in {spec.id for spec in specs}:
            continue
        # at once, not at the slot (it may be past the misfire grace): recorded as cut off until the
        # run starts, so that a start that dies first leaves it owed still, and `status` can say so
        scheduler.modify_job(job_id, next_run_time=now, kwargs={jobs.CUT_OFF: due})
        log.warning("job %s: its run due %s never ended (serve ended during it without stopping: killed, out of "
                    "memory or power lost); it runs again now", job_id, due,
                    extra={"job": job_id, "due": due, "status": "cut_off"})


# job -> when its running instance was handed over (UTC), as its record in the job store says
_running_since: dict[str, datetime] = {}
# jobs whose run ended while the job store could not be reached: their record as running stays
_uncleared: set[str] = set()


def _clear_ended(scheduler: BackgroundScheduler) -> None:
    """Clears the records of runs that ended while the job store could not be reached (a database
    that stopped answering a while): left, `status` would take an idle job for a run past
    ``schedule.job_overrun_minutes`` (exit 8) until its next slot, a week for the full sync (a
    review). Under the scheduler's lock on its job stores, which it holds while it hands a run over:
    a new run of the job is not handed over meanwhile, and one already running keeps its record."""
    for job_id in list(_uncleared):
        with scheduler._jobstores_lock:  # APScheduler 3's, re-entrant: modify_job takes it too
            if job_id not in _running_since:
                try:
                    scheduler.modify_job(job_id, kwargs={})
                except Exception:  # noqa: BLE001 - still unreachable: tried again at the next check
                    return
                log.info("job %s: the record of its ended run is cleared now that the job store answers", job_id,
                         extra={"job": job_id})
            _uncleared.discard(job_id)


def _on_event(event: JobEvent, overrun: timedelta | None = None) -> None:
    """One line per event of the scheduler's; `overrun`: schedule.job_overrun_minutes, past which a
    run that makes its next slot be skipped is said at WARNING."""
    if event.code == EVENT_JOB_MISSED:
        log.warning("job %s missed its run due %s (more than the grace time ago); it runs at its next slot",
                    event.job_id, event.scheduled_run_time.isoformat(), extra={"job": event.job_id})
        jobs.missed(event.job_id)  # found missed only in its thread: the run recorded is cleared
    elif isinstance(event, JobSubmissionEvent):  # EVENT_JOB_MAX_INSTANCES
        due = event.scheduled_run_times[-1]
        since = _running_since.get(event.job_id)
        running = datetime.now(UTC) - since if since is not None else None
        if running is None or overrun is None or running <= overrun:  # an ordinary overlap
            log.info("job %s is still running: its run due %s is skipped", event.job_id, due.isoformat(),
                     extra={"job": event.job_id})
            return
        started = since.astimezone(due.tzinfo).replace(microsecond=0)  # as slots are said: the schedule's zone
        minutes = int(running.total_seconds() // 60)
        log.warning("job %s has been running since %s (%d h %d min), longer than schedule.job_overrun_minutes "
                    "(%d): it may be stuck (a database or portal not answering); its run due %s is skipped, "
                    "and `budgetwatch status` reports it (exit %d) until it ends", event.job_id, started.isoformat(),
                    minutes // 60, minutes % 60, overrun // timedelta(minutes=1), due.isoformat(), RUN_OVERRUNNING,
                    extra={"job": event.job_id, "due": due.isoformat(), "running_since": started.isoformat(),
                           "running_seconds": int(running.total_seconds()), "status": "overrunning"})


# how often the main thread looks for a signal that arrived (the stop's added latency at most)
SIGNAL_POLL_SECONDS = 0.25


def _on_signals(received: list[int]) -> None:
    """SIGTERM/SIGINT noted in `received`; a second one leaves at once.

    The handler takes no lock: it runs in the main thread between any two bytecodes, and a lock
    the main thread already holds there would never be released. Logging takes the handler's lock
    and Event.set() its condition's (a plain Lock): CI once saw serve fall silent at a SIGTERM and
    never exit, every thread's logging stopped with it. The main thread polls `received`
    (:func:`_wait_for_signal`) and logs the signal itself."""
    def handle(signum: int, _frame: object) -> None:
        if received:  # asked twice: leave now (transactions in flight roll back)
            os._exit(128 + signum)
        received.append(signum)  # atomic; no lock

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _wait_for_signal(received: list[int], watch: _LockWatch | None = None,
                     tick: Callable[[], None] | None = None) -> None:
    """Until a signal is noted (then say which), or `watch` finds another serve holding the store. A
    timed wait, so that the main thread runs the Python handler soon even when the kernel delivered
    the signal to another thread; `tick` runs every :data:`LOCK_CHECK_SECONDS` meanwhile."""
    idle = threading.Event()  # never set: only its timed wait is used
    next_tick = time.monotonic() + LOCK_CHECK_SECONDS
    while not received and not (watch and watch.ended):
        idle.wait(SIGNAL_POLL_SECONDS)
        if tick is not None and time.monotonic() >= next_tick:
            tick()
            next_tick = time.monotonic() + LOCK_CHECK_SECONDS
    if received:
        log.info("%s received", signal.Signals(received[0]).name)


def _stop(scheduler: BackgroundScheduler, service: Service, timeout: float) -> int:
    # paused first: slots falling due while running jobs wind down are left in the job store (the
    # next start runs them), not handed to an executor that is shutting down. The scheduler is shut
    # down only once no job runs: APScheduler's shutdown ends the pause while it waits for running
    # jobs, and a slot falling due meanwhile was handed to the closed executor — an ERROR with a
    # traceback, and the slot lost (its next run moved on in the job store)
    scheduler.pause()
    service.stop()
    done = threading.Event()
    deadline = time.monotonic() + timeout

    def shutdown() -> None:
        if service.wait_idle(max(0.0, deadline - time.monotonic())):
            # APScheduler 3's shutdown wakes its thread, which processes due jobs once more before it
            # sees the scheduler stopped: a slot due since the pause would be handed to the executor
            # just shut down. Its processing is made a no-op first (the thread then just ends).
            scheduler._process_jobs = lambda: None  # type: ignore[method-assign]
            scheduler.shutdown(wait=True)
            done.set()

    threading.Thread(target=shutdown, name="scheduler-shutdown", daemon=True).start()
    if done.wait(max(0.0, deadline - time.monotonic()) + 0.5):
        reconcile_helper.let_go_spare()
        log.info("budgetwatch serve stopped")
        return 0
    log.error("jobs still running %.0f s after the stop: leaving without them (their transactions roll back)",
              timeout)
    logging.shutdown()
    os._exit(1)
