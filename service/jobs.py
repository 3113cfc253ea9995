"""The jobs ``budgetwatch serve`` runs: sync, full sync, reconcile, alerts, dispatch, housekeeping.

APScheduler keeps the jobs in the store's database, so a job is a reference to :func:`run_job` and a
few strings; the running :class:`Service` (one per process, installed by service.scheduler) holds the
configuration and the engine. Each job:

- logs one line per event, with the job, source and run id as fields (``extra``) and in the text;
- never raises into the scheduler: a failure is logged and the job runs again at its next slot;
- takes the service's store-work lock for syncs and reconciliations, so the two never run at once in
  this process (the store's own locks keep other processes out), and waits for it only while the
  service is not stopping; a job that gives up its wait because the service stops (or is handed
  over as the stop begins) says so in one line and gives its slot back to the job store
  (:func:`note_slot`): the next start runs it once, within ``misfire_grace_seconds``;
- is recorded in the job store while it runs (its job's ``started`` keyword, its slot and start,
  written by serve's executor with the job's next run, cleared when the run ends however it ends: done, failed, given
  up or stopped): a run whose process died (kill -9, out of memory, power lost, serve leaving past
  its stop timeout) is found at the next start and run again at once (service.scheduler
  ``_install_jobs``; its ``cut_off`` keyword until it starts);
- stops within seconds when the service stops: a sync runs as the coroutine ``sync.sync_sources``
  on an event loop of the job's thread, and :meth:`Service.stop` cancels its task (the sync commits
  the batch in flight, records the run ``interrupted`` and releases its locks); a reconciliation is
  one transaction, and its progress callback raises once the service is stopping, which rolls it back.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.engine import Engine

import alerts
import reconcile
import sync
from reconcile import helper as reconcile_helper
from foundation.vocabulary import SOURCES, Source
from service import logs
from store import service as store_service
from store.db import error_line
from sync.outcome import mode_text

log = logging.getLogger("budgetwatch.service")
# the reconcile job's own runs judge the whole store; a run after a sync, what changed (reconcile/changes.py)
SCHEDULED = "scheduled run"


class AppConfig(Protocol):
    """What the service reads of the application's Config (the service layer may not import it)."""

    sources: Any
    schedule: Any
    reconcile: Any
    alerts: Any
    experts: Any
    routing: Any

    @property
    def database_url(self) -> str: ...


class ServiceStopping(Exception):
    """Raised inside a job's work when the service is stopping (rolls a reconciliation back)."""


class Service:
    """The state the jobs share in one ``serve`` process."""

    def __init__(self, config: AppConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.stopping = threading.Event()
        self._store_work = threading.Lock()
        self._store_work_by: str | None = None  # the job holding it, for the line of one that gives up
        self._syncs: dict[asyncio.Task, asyncio.AbstractEventLoop] = {}
        self._syncs_lock = threading.Lock()
        self._running = 0  # jobs in run_job now
        self._idle = threading.Condition()
        self._on_stop: list[Callable[[], None]] = []  # what stop() calls besides setting `stopping`

    def enabled_sources(self) -> list[Source]:
        return [name for name in SOURCES if getattr(self.config.sources, name).enabled]

    # --- stopping ---------------------------------------------------------------------------

    def keep_spare(self) -> None:
        """Have a helper interpreter wait for the next reconciliation (reconcile/helper.py
        ``keep_spare``: on a large store its run then does not wait ~0.5–1 s for one to start, and an
        incremental run is helped from 2,000 changed operations, as from the command). Never fails a
        job: a spare that cannot start is said, and the next run starts its helper itself."""
        if self.stopping.is_set():
            return
        try:
            reconcile_helper.keep_spare(self.engine, self.config.reconcile)
        except Exception as exc:  # noqa: BLE001 - a spare is an optimisation
            log.warning("could not start a spare reconciliation helper: %s", exc)

    @contextmanager
    def running(self) -> Iterator[None]:
        """One job running for the block (:meth:`wait_idle` waits for none)."""
        with self._idle:
            self._running += 1
        try:
            yield
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Until no job runs (True), or `timeout` seconds (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)

    def stop(self) -> None:
        """Ask every job to end now: running syncs are cancelled, waiting jobs give up, a mail session
        waiting for its server is cut (alerts.smtp ``SmtpSession.abort``)."""
        self.stopping.set()
        with self._syncs_lock:
            for task, loop in self._syncs.items():
                loop.call_soon_threadsafe(task.cancel)
            for call in list(self._on_stop):
                call()

    @contextmanager
    def on_stop(self, call: Callable[[], None]) -> Iterator[None]:
        """`call` is called by :meth:`stop` while the block runs (at once if the service is stopping)."""
        with self._syncs_lock:
            self._on_stop.append(call)
        try:
            if self.stopping.is_set():
                call()
            yield
        finally:
            with self._syncs_lock:
                self._on_stop.remove(call)

    @contextmanager
    def store_work(self, job: str) -> Iterator[bool]:
        """Hold the store-work lock for the block as `job`; yields False (nothing held) if the service
        stops first — then `job` has said so and given its slot back (:func:`give_up`)."""
        waited_for = None  # the job it waited for, as last seen (it may end as the stop comes)
        while not self.stopping.is_set():
            waited_for = self._store_work_by or waited_for
            if self._store_work.acquire(timeout=0.2):
                if self.stopping.is_set():
                    self._store_work.release()
                    break
                self._store_work_by = job
                try:
                    yield True
                finally:
                    self._store_work_by = None
                    self._store_work.release()
                return
        give_up(job, f"gave up waiting for {waited_for or 'another job'} to finish")
        yield False

    # --- jobs -------------------------------------------------------------------------------

    def sync(self, sources: Sequence[Source], *, full: bool, job: str) -> None:
        sources = [s for s in sources if s in self.enabled_sources()]
        if not sources:
            return
        with self.store_work(job) as held:
            if not held:
                return
            outcomes = self._sync(sources, full=full, job=job)
            if outcomes is None:
                return
            changed = [o for o in outcomes if o.inserted or o.updated or o.gone]
            if changed and not self.stopping.is_set():
                runs = ", ".join(f"{o.source} run {o.run_id}" for o in changed)
                self._reconcile(job=job, reason=f"after {runs} changed data")

    def _sync(self, sources: Sequence[Source], *, full: bool, job: str) -> list[Any] | None:
        mode = "full" if full else "incremental"
        started = time.monotonic()
        with self.engine.connect() as conn:
            before = {r.source: (r.last.run_id if r.last else 0) for r in store_service.source_runs(conn, sources)}

        async def main() -> list[Any]:
            task = asyncio.current_task()
            with self._syncs_lock:
                self._syncs[task] = asyncio.get_running_loop()
            try:
                if self.stopping.is_set():
                    raise asyncio.CancelledError
                return await sync.sync_sources(self.engine, self.config.sources, list(sources), full=full)
            finally:
                with self._syncs_lock:
                    self._syncs.pop(task, None)

        try:
            outcomes = asyncio.run(main())
        except asyncio.CancelledError:
            with self.engine.connect() as conn:
                recorded = store_service.source_runs(conn, sources)
            for runs in recorded:
                if runs.last is None or runs.last.run_id <= before[runs.source]:
                    continue  # stopped before it opened a run
                last = runs.last
                extra = {"job": job, "source": runs.source, "run_id": last.run_id, "status": last.status}
                if last.status == "interrupted":
                    log.warning("%s sync of %s run %s stopped: the service is stopping (recorded interrupted)",
                                mode, runs.source, last.run_id, extra=extra)
                else:  # it ended before the stop reached it (a new user read a success as stopped)
                    log.log(logging.INFO if last.status == "success" else logging.WARNING,
                            "%s sync of %s run %s: %s, before the service stopped; the next reconciliation "
                            "judges what it changed", mode, runs.source, last.run_id, last.status, extra=extra)
            return None
        seconds = time.monotonic() - started
        for o in outcomes:
            level = logging.INFO if o.ok else logging.WARNING
            if o.run_id is None:  # no run was opened (another process holds the source's lock): no id, no counts
                log.log(level, "%s sync of %s not run: %s", mode, o.source, o.error or o.status,
                        extra={"job": job, "source": o.source, "status": o.status})
                continue
            # an incremental run that read years whole for a stopped full run says so, as `runs` does
            text = (f"{mode_text(mode, o.completing_full)} sync of {o.source} run {o.run_id}: {o.status}; "
                    f"{o.inserted} new, {o.updated} changed, "
                    f"{o.gone} gone, {o.rejected} rejected ({seconds:.1f} s)")
            if o.error:
                text += f"; {o.error}"
            log.log(level, text, extra={"job": job, "source": o.source, "run_id": o.run_id, "status": o.status})
        return outcomes

    def reconcile(self, *, job: str) -> None:
        with self.store_work(job) as held:
            if held:
                self._reconcile(job=job, reason=SCHEDULED)

    def _reconcile(self, *, job: str, reason: str) -> None:
        def progress(message: str) -> None:
            if self.stopping.is_set():
                raise ServiceStopping("the service is stopping")
            log.debug("reconcile: %s", message, extra={"job": job})

        try:
            # after a sync, only what it changed is judged again (and the time-driven rules); the daily
            # run judges the whole store (reconcile/changes.py)
            result = reconcile.run(self.engine, self.config.reconcile, on_progress=progress, keep=False,
                                   incremental=reason != SCHEDULED)
        except ServiceStopping:
            log.warning("reconciliation (%s) stopped: the service is stopping; nothing of it was kept", reason,
                        extra={"job": job, "status": "interrupted"})
            return
        finally:
            self.keep_spare()  # for the next run, its helper's start-up done meanwhile
        life = result.life
        if result.run_id is None:  # a what-if: recorded nothing (reconcile.as_of after today, say)
            log.warning("reconciliation (%s) recorded nothing: %s", reason, result.what_if,
                        extra={"job": job, "status": "what_if"})
            return
        log.info("reconcile run %s (%s, %s) as of %s, years %s: %d findings; %d opened, %d reopened, %d escalated, "
                 "%d resolved (%.1f s)", result.run_id, reason, result.scope, result.as_of.isoformat(),
                 ",".join(map(str, result.years)) or "-", result.found, life.opened, life.reopened,
                 life.escalated, life.resolved, result.seconds,
                 extra={"job": job, "run_id": result.run_id, "status": "success"})

    def alerts(self, *, job: str, queue: bool) -> None:
        """Queue the digests that are due (``queue``), then send what the outbox owes."""
        cfg = self.config
        reports = []
        if queue:
            reports.append(alerts.queue_digests(self.engine, cfg.alerts, cfg.experts, cfg.routing))
        session = alerts.SmtpSession(cfg.alerts.smtp)
        with self.on_stop(session.abort):
            reports.append(alerts.dispatch(self.engine, cfg.alerts, session=session, stopping=self.stopping))
        # a send with nothing to do (every few minutes) is not news in the log
        level = logging.DEBUG if all(_counted_nothing(r) for r in reports) else logging.INFO
        log.log(level, "alerts: %s", "; ".join(map(_describe, reports)), extra={"job": job})

    def housekeeping(self, *, job: str) -> None:
        with self.store_work(job) as held:
            if held:
                done = store_service.housekeeping(self.engine)
                log.info("housekeeping: %s", "; ".join(done), extra={"job": job})


_REPORT_WORDS = {"QueueReport": "digests", "DispatchReport": "outbox"}  # what an alerts report counts


def _describe(report: Any) -> str:
    """A report's counts as 'outbox: sent 2, deferred 0, failed 0' (the alerts' reports are dataclasses
    of counts), named by what it counts, not by its class."""
    fields = getattr(report, "__dataclass_fields__", None)
    if not fields:
        return str(report)
    parts = [f"{name} {getattr(report, name)}" for name in fields
             if isinstance(getattr(report, name), (int, float)) and not isinstance(getattr(report, name), bool)]
    name = type(report).__name__
    stopped = getattr(report, "stopped", None)  # why a send ended early: said, not left to guess
    return f"{_REPORT_WORDS.get(name, name)}: " + (", ".join(parts) or "nothing") + (f" ({stopped})" if stopped else "")


_NOT_NEWS = frozenset({"no_news"})  # experts with nothing new: counted, but no news in the log


def _counted_nothing(report: Any) -> bool:
    """Whether a report did nothing worth a line at INFO: no count but :data:`_NOT_NEWS` above zero,
    and no reason a send stopped (experts with nothing new made every queuing INFO — a new user)."""
    fields = getattr(report, "__dataclass_fields__", None) or {}
    counts = [getattr(report, name) for name in fields if name not in _NOT_NEWS
              and isinstance(getattr(report, name), int) and not isinstance(getattr(report, name), bool)]
    return bool(fields) and not any(counts) and not getattr(report, "stopped", None)


# --- the scheduler's entry point ---------------------------------------------------------------

_service: Service | None = None

# The keywords of a job in the job store that record a run of it (service.scheduler writes them; the
# job's function takes them and ignores them): `started`, the slot its running instance was handed
# over for and when it was (``slot/start``, store.service ``run_record``: `status` says a run past
# ``schedule.job_overrun_minutes``, counted from its start), saved with the job's next run in
# APScheduler's one update of the job and cleared when the run ends; `cut_off`, that slot again once a start found it left by a serve that died, until the run
# making it up starts. store.service ``unfinished_runs`` reads them for `status`.
STARTED, CUT_OFF = store_service.RUN_STARTED, store_service.RUN_CUT_OFF


@dataclass(frozen=True)
class _Slot:
    due: datetime
    give_back: Callable[[datetime], None]  # `due` the job's next run again, the run's record cleared
    end: Callable[[], None]  # the run's record cleared: it ended


# per job id: the slot (due time) its running instance was handed over for, and how to put it back in
# the job store as the job's next run or clear its record; noted by serve's executor before the job's
# thread starts
_slots: dict[str, _Slot] = {}


def install(service: Service | None) -> None:
    """Make ``service`` the one the jobs of this process run on (None: none)."""
    global _service
    _service = service


def note_slot(job: str, due: datetime, give_back: Callable[[datetime], None],
              end: Callable[[], None] = lambda: None) -> None:
    """The run of `job` about to start is for the slot `due`; `give_back(due)` makes it owed again
    (and clears the run's record), `end()` clears the run's record in the job store as it ends."""
    _slots[job] = _Slot(due, give_back, end)


def give_up(job: str, what: str) -> None:
    """`job` did not do its work because the service is stopping: one line, and its slot put back in
    the job store (the scheduler is paused while jobs wind down), so that the next start runs it once
    if it is then at most ``misfire_grace_seconds`` old — as a slot falling due during the stop."""
    slot = _slots.get(job)
    extra = {"job": job, "status": "interrupted"}
    if slot is None:  # not handed over by serve's scheduler (a test's direct call)
        log.warning("job %s %s: the service is stopping", job, what, extra=extra)
        return
    due = slot.due
    extra["due"] = due.isoformat()
    _slots.pop(job, None)  # given back (or not): the run's record is not cleared as the run ends
    try:
        slot.give_back(due)
    except Exception as exc:  # noqa: BLE001 - the job store unreachable: said, the stop goes on
        # its record as a started run stays, if it was saved: the next start then runs it again
        log.warning("job %s %s: the service is stopping; its slot due %s could not be given back (%s): the next "
                    "start runs it if the job store kept its record as started, else it runs at its next slot",
                    job, what, due.isoformat(), error_line(exc), extra=extra)
        return
    log.warning("job %s %s: the service is stopping; its slot due %s is kept: the next start runs it "
                "(if within misfire_grace_seconds)", job, what, due.isoformat(), extra=extra)


def run_job(kind: str, source: str | None = None, *, started: str | None = None, cut_off: str | None = None) -> None:
    """What the job store refers to: run one job on the installed service; never raises. `started`
    and `cut_off` are the job store's record of a run (:data:`STARTED`), not the job's arguments."""
    service = _service
    job = f"{kind}:{source}" if source else kind
    try:
        if service is None:
            return
        with service.running():  # counted before the stop is asked: wait_idle never misses a job starting
            try:
                if service.stopping.is_set():  # handed over just before the scheduler's pause
                    give_up(job, "did not start")
                else:
                    _starts(job)
                    _run(service, job, kind, source)
            finally:  # while the run still counts: a stop waiting for it shuts the scheduler down only after
                _end(job)
    finally:
        _end(job)  # no service installed: nothing ran


def _starts(job: str) -> None:
    """The "starts" line of a run handed over by serve's scheduler, said in the run's thread before
    its work: after its outcome never (said at APScheduler's event of the submission, a quick job's
    outcome came first), and never for a run that does not start (said as the slot was handed over,
    a run handed over as serve stopped logged "starts", then "did not start": trials)."""
    slot = _slots.get(job)
    if slot is None:  # not handed over by serve's scheduler (a test's direct call)
        return
    late = (datetime.now(UTC) - slot.due).total_seconds()
    log.info("job %s starts: due %s%s", job, slot.due.isoformat(), f" ({late:.0f} s late)" if late >= 1 else "",
             extra={"job": job, "due": slot.due.isoformat(), "late_seconds": round(late, 1)})


def missed(job: str) -> None:
    """APScheduler skipped `job`'s run as missed (past the grace) in its thread: nothing ran, and its
    record as a running job is cleared."""
    _end(job)


def _end(job: str) -> None:
    slot = _slots.pop(job, None)
    if slot is not None:
        _ended(job, slot)


def _ended(job: str, slot: _Slot) -> None:
    """The run of `job` ended (done, failed or stopped): its record in the job store is cleared, so
    that the next start does not take it for a run cut off by a serve that died."""
    try:
        slot.end()
    except Exception as exc:  # noqa: BLE001 - the job store unreachable: the next start runs it once more
        log.warning("job %s ended, but its record as a running job could not be cleared (%s): if serve is "
                    "restarted before its next run, the start runs it once more", job, error_line(exc),
                    extra={"job": job, "due": slot.due.isoformat()})


def _run(service: Service, job: str, kind: str, source: str | None) -> None:
    try:
        logs.REDACTOR.update(logs.secrets_of(service.config))  # a password file may have changed
        if kind == "sync":
            service.sync([source], full=False, job=job)
        elif kind == "full-sync":
            service.sync(service.enabled_sources(), full=True, job=job)
        elif kind == "reconcile":
            service.reconcile(job=job)
        elif kind in ("alerts", "dispatch"):
            service.alerts(job=job, queue=kind == "alerts")
        elif kind == "housekeeping":
            service.housekeeping(job=job)
        else:
            log.error("unknown job %r in the job store: ignored", kind, extra={"job": job})
    except Exception as exc:
        log.error("%s failed: %s (it runs again at its next slot)", job, error_line(exc),
                  exc_info=log.isEnabledFor(logging.DEBUG), extra={"job": job, "status": "failed"})
