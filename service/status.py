"""The health of the unattended service, for ``budgetwatch status`` and any monitor that runs it.

:func:`gather` reads the store (store.service, store.alerts) and the schedule and returns a
:class:`Status`: per source the last run, its outcome and age, and when it last succeeded; the next
run of each job as the running service recorded it; the runs running longer than they ever should
(their record in the job store, store.service ``unfinished_runs``); open deviations by severity × expert group
(routing is reconcile's); the outbox backlog; and a verdict. The verdict's exit codes, one per cause
(several causes: the smallest code, but 6 before any other; every cause is listed, in that order):

====  ==================================================================================
0     healthy
3     an enabled source has not succeeded within twice its sync interval (or never has)
4     the last successful reconciliation is older than a day (or there is none)
5     the outbox is stuck: a message has waited unsent longer than schedule.outbox_stuck_minutes
6     serve is not running on this store: nothing syncs, reconciles or sends until it is started
7     a job's run never ended: the serve running it died (kill -9, out of memory, power lost) and
      it has not run again yet — the next start runs it at once (listed with 6 while serve is down)
8     a job has been running longer than schedule.job_overrun_minutes since serve handed its run
      over (a frozen database session, a portal that never answers): serve skips its slots until
      it ends, and nothing else would say so before its source or the reconciliation is stale
====  ==================================================================================

(1 and 2 keep their meaning for every command: an unexpected error, a configuration error.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from foundation.jalali import TEHRAN, format_jalali
from foundation.vocabulary import GROUPS, SEVERITIES, SOURCES
from reconcile.deviations import group_of
from service.jobs import AppConfig
from service.settings import interval_of
from store import service as queries

HEALTHY, SOURCE_STALE, RECONCILE_STALE, OUTBOX_STUCK, SERVE_DOWN, RUN_CUT_OFF = 0, 3, 4, 5, 6, 7
RUN_OVERRUNNING = 8
RECONCILE_MAX_AGE = timedelta(days=1)


@dataclass(frozen=True)
class SourceHealth:
    source: str
    last: queries.SyncRunInfo | None
    last_success: queries.SyncRunInfo | None
    allowed: timedelta  # twice the sync interval
    healthy: bool


@dataclass(frozen=True)
class OutboxHealth:
    pending: int
    failed: int
    oldest_pending_at: datetime | None
    last_sent_at: datetime | None
    stuck: bool


@dataclass(frozen=True)
class OverrunningRun:
    job: str
    due: datetime  # the slot it runs for
    started_at: datetime  # when serve handed it over (after downtime up to the misfire grace after `due`)
    running: timedelta
    allowed: timedelta  # schedule.job_overrun_minutes


@dataclass
class Status:
    now: datetime
    serving: str | None  # "host H pid P" of the running serve, or None
    sources: list[SourceHealth]
    reconcile_last: queries.ReconcileRunInfo | None
    reconcile_success: queries.ReconcileRunInfo | None
    next_runs: dict[str, datetime | None]
    deviations: dict[tuple[str, str], int]  # (severity, group) -> open deviations
    outbox: OutboxHealth | None  # None: alerts are off, or this budgetwatch has no outbox yet
    causes: list[tuple[int, str]] = field(default_factory=list)
    cut_off: dict[str, datetime] = field(default_factory=dict)  # job -> the slot of its run that never ended
    overrunning: list[OverrunningRun] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """The first cause's code (:func:`_cause_order`): the smallest — but SERVE_DOWN first."""
        return min((code for code, _ in self.causes), key=_cause_order, default=HEALTHY)

    def as_json(self) -> dict[str, Any]:
        return {
            "healthy": not self.causes,
            "exit_code": self.exit_code,
            "causes": [{"code": code, "reason": text} for code, text in self.causes],
            "checked_at": _iso(self.now),
            "service": {"running": self.serving is not None, "holder": self.serving},
            "sources": [{
                "source": s.source, "healthy": s.healthy, "allowed_age_seconds": int(s.allowed.total_seconds()),
                "last_run": _run_json(s.last, self.now), "last_success": _run_json(s.last_success, self.now),
            } for s in self.sources],
            "reconcile": {"last_run": _reconcile_json(self.reconcile_last, self.now),
                          "last_success": _reconcile_json(self.reconcile_success, self.now)},
            "next_runs": {job: _iso(when) for job, when in sorted(self.next_runs.items())},
            "cut_off_runs": {job: _iso(due) for job, due in sorted(self.cut_off.items())},
            "overrunning_runs": [{"job": r.job, "due": _iso(r.due), "started_at": _iso(r.started_at),
                                  "running_seconds": int(r.running.total_seconds()),
                                  "allowed_seconds": int(r.allowed.total_seconds())} for r in self.overrunning],
            "open_deviations": [{"severity": sev, "group": grp, "count": n}
                                for (sev, grp), n in sorted(self.deviations.items())],
            "outbox": None if self.outbox is None else {
                "pending": self.outbox.pending, "failed": self.outbox.failed, "stuck": self.outbox.stuck,
                "oldest_pending_at": _iso(self.outbox.oldest_pending_at),
                "last_sent_at": _iso(self.outbox.last_sent_at)},
        }


def gather(config: AppConfig, engine: Engine, *, now: datetime | None = None) -> Status:
    now = now or datetime.now(UTC)
    schedule = config.schedule
    enabled = [name for name in SOURCES if getattr(config.sources, name).enabled]
    with engine.connect() as conn:
        runs = queries.source_runs(conn, enabled)
        last_reconcile, last_success = queries.reconcile_runs(conn)
        next_runs = queries.next_runs(conn)
        unfinished = queries.unfinished_runs(conn)
        by_agency = queries.open_deviations_by_agency(conn)
        outbox = _outbox(conn, config, now) if config.alerts.enabled else None
    status = Status(now=now, serving=queries.serve_holder(engine), sources=[], reconcile_last=last_reconcile,
                    reconcile_success=last_success, next_runs=next_runs, deviations={}, outbox=outbox)
    for r in runs:
        spec = schedule.sync_for(r.source) or schedule.full_sync
        allowed = 2 * interval_of(schedule.trigger(spec), now)
        ok = r.last_success is not None and now - _finished(r.last_success) <= allowed
        status.sources.append(SourceHealth(r.source, r.last, r.last_success, allowed, ok))
        if not ok:
            since = (f"since {_when(r.last_success.finished_at)}" if r.last_success else "ever")
            last = f"; its last run {r.last.run_id} {r.last.status}" if r.last else ""
            reason = f"{r.source} has not synced successfully {since} (allowed: {_age(allowed)}){last}"
            status.causes.append((SOURCE_STALE, reason))
    if last_success is None or now - _finished(last_success) > RECONCILE_MAX_AGE:
        when = f"since {_when(last_success.finished_at)}" if last_success else "ever"
        status.causes.append((RECONCILE_STALE, f"no successful reconciliation {when} (allowed: a day)"))
    if outbox is not None and outbox.stuck:
        reason = f"the outbox is stuck: {outbox.pending} unsent, the oldest since {_when(outbox.oldest_pending_at)}"
        status.causes.append((OUTBOX_STUCK, reason))
    allowed = timedelta(minutes=schedule.job_overrun_minutes)
    for run in unfinished:
        # with serve running, a run recorded as started is running now; with none, its serve died in it
        if run.cut_off or status.serving is None:
            status.cut_off[run.job] = run.due
            then = "it runs again now" if status.serving else "the next start of serve runs it again at once"
            status.causes.append((RUN_CUT_OFF, f"the {run.job} job's run due {_when(run.due)} never ended: serve "
                                               f"ended during it without stopping (killed, out of memory, power "
                                               f"lost); {then}"))
        elif now - _aware(run.started_at) > allowed:
            overrun = OverrunningRun(run.job, run.due, run.started_at, now - _aware(run.started_at), allowed)
            status.overrunning.append(overrun)
            status.causes.append((RUN_OVERRUNNING, _overrun_reason(overrun)))
    if status.serving is None:  # a stopped or crashed service is unhealthy now, not in two intervals
        status.causes.append((SERVE_DOWN, "serve is not running on this store: nothing syncs, reconciles "
                                          "or sends until it is started"))
    counts: Counter[tuple[str, str]] = Counter()
    for severity, agency, n in by_agency:
        counts[(severity, group_of(agency, config.routing))] += n
    status.deviations = dict(counts)
    status.causes.sort(key=lambda cause: (_cause_order(cause[0]), cause[1]))
    return status


def _cause_order(code: int) -> tuple[bool, int]:
    """Causes by code, but SERVE_DOWN before any other: a stopped service explains the rest (the
    stale sources and reconciliation, a run cut off), so it is listed, and returned, first."""
    return (code != SERVE_DOWN, code)


def _overrun_reason(run: OverrunningRun) -> str:
    late = _aware(run.started_at) - _aware(run.due) >= timedelta(minutes=1)  # a slot made up after downtime
    due = f" (its run due {_when(run.due)})" if late else ""
    return (f"the {run.job} job has been running since {_when(run.started_at)}{due}, for {_age(run.running)}: "
            f"longer than the {_age(run.allowed)} of schedule.job_overrun_minutes; it may be stuck (a database "
            f"or portal not answering), and serve skips its slots until it ends")


def _outbox(conn: Any, config: AppConfig, now: datetime) -> OutboxHealth | None:
    from store import alerts as outbox_store

    summary = outbox_store.outbox_summary(conn)
    limit = timedelta(minutes=config.schedule.outbox_stuck_minutes)
    oldest = summary.oldest_pending_at
    stuck = bool(summary.pending) and oldest is not None and now - _aware(oldest) > limit
    return OutboxHealth(summary.pending, summary.failed, oldest, summary.last_sent_at, stuck)


# --- text -------------------------------------------------------------------------------------


def render(status: Status) -> list[str]:
    """The status as lines for a terminal (an operator's English, times in Tehran, Jalali)."""
    lines = [("HEALTHY" if not status.causes else f"UNHEALTHY (exit {status.exit_code})")
             + f" at {_when(status.now)}"]
    lines += [f"  ! {text}" for _, text in status.causes]
    lines.append(f"service: {'running, ' + status.serving if status.serving else 'not running on this store'}")
    lines.append("sources:")
    for s in status.sources:
        last = (f"run {s.last.run_id} {s.last.mode} {s.last.status}, {_age(status.now - _finished(s.last))} ago"
                if s.last else "never run")
        success = f"last success {_age(status.now - _finished(s.last_success))} ago" if s.last_success else "no success yet"
        lines.append(f"  {s.source:9} {'ok ' if s.healthy else 'BAD'} {last}; {success} (allowed {_age(s.allowed)})")
        if s.last and s.last.error and s.last.status != "success":
            lines.append(f"            {s.last.error}")
    r = status.reconcile_last
    lines.append("reconciliation: " + (f"run {r.run_id} {r.status} as of {format_jalali(r.as_of, persian_digits=False)} ({r.as_of}), "
                                       f"{_age(status.now - _finished(r))} ago" if r else "never run"))
    if not status.next_runs:
        lines.append("next runs: (no serve has run on this store yet)")
    else:  # with serve stopped, the job store's times are what the last serve left: past ones are owed
        lines.append("next runs:" + ("" if status.serving else " (serve is not running: none runs until it starts)"))
    for job, when in sorted(status.next_runs.items(), key=lambda item: (item[1] is None, item[1] or status.now)):
        missed = when is not None and _aware(when) < status.now and not status.serving
        lines.append(f"  {job:14} {_when(when) if when else 'paused'}" + (" (past: run once at the start if within its grace, else at its next slot)"
                                                                             if missed else ""))
    lines.append("open deviations: " + " ".join(f"{sev:>9}" for sev in SEVERITIES))
    for group in GROUPS:
        lines.append(f"  {group:15}" + " ".join(f"{status.deviations.get((sev, group), 0):>9}" for sev in SEVERITIES))
    o = status.outbox
    lines.append("outbox: " + ("alerts off or not available" if o is None else
                               f"{o.pending} unsent (oldest {_when(o.oldest_pending_at) or '-'}), {o.failed} failed, "
                               f"last sent {_when(o.last_sent_at) or '-'}{' — STUCK' if o.stuck else ''}"))
    return lines


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _finished(run: Any) -> datetime:
    return _aware(run.finished_at or run.started_at)


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return format_jalali(_aware(value).astimezone(TEHRAN), persian_digits=False, with_time=True) + " Tehran"


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in Tehran's time with its offset, as the logs and docs/deploy.md give every time."""
    return _aware(value).astimezone(TEHRAN).isoformat() if value else None


def _run_json(run: queries.SyncRunInfo | None, now: datetime) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"run_id": run.run_id, "mode": run.mode, "status": run.status, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at), "age_seconds": int((now - _finished(run)).total_seconds()),
            "inserted": run.inserted, "updated": run.updated, "gone": run.gone, "rejected": run.rejected,
            "error": run.error}


def _reconcile_json(run: queries.ReconcileRunInfo | None, now: datetime) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"run_id": run.run_id, "as_of": run.as_of.isoformat(), "status": run.status,
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at),
            "age_seconds": int((now - _finished(run)).total_seconds())}
