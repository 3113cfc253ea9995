"""Reconciliations started from the console: one at a time, in a background thread.

The consolidation group starts a run (years, as-of day) from the page; ``ReconcileJobs.start`` runs
``reconcile.run`` in a thread and returns at once, and a second start while one runs is refused
(:class:`JobBusy`). The run's short English phase messages (``on_progress``) are kept so the page
can show where it is; when it ends, its result (run id, findings, what changed) or its one-line
error is kept until the next start. A run started elsewhere (the CLI, the scheduler) is not seen
here: the reconciliation's own lock in the store keeps the two apart, and the page lists the
store's recent runs whoever started them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy.engine import Engine

import reconcile
from store.db import error_line

log = logging.getLogger(__name__)


class JobBusy(Exception):
    """A reconciliation started from the console is still running."""


@dataclass
class ReconcileJob:
    by: str
    years: list[int] | None
    as_of: date | None
    started_at: datetime
    state: str = "running"  # running | done | failed
    phase: str = "starting"
    phases: list[str] = field(default_factory=list)
    finished_at: datetime | None = None
    seconds: float | None = None
    run_id: int | None = None
    result_as_of: date | None = None
    result_years: list[int] = field(default_factory=list)
    findings: int = 0
    what_if: str | None = None  # why the run recorded nothing: RunResult.what_if_reason (past | future)
    life: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


Runner = Callable[..., Any]  # reconcile.run's signature (tests may give a slower one)


class ReconcileJobs:
    """The console's reconciliation: at most one running; the last one's outcome kept."""

    def __init__(self, engine: Engine, settings: Any, runner: Runner | None = None) -> None:
        self.engine = engine
        self.settings = settings  # config.reconcile (ReconcileConfig)
        self._runner = runner or reconcile.run
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last: ReconcileJob | None = None

    def start(self, *, by: str, years: list[int] | None, as_of: date | None,
              before: Callable[[], None] | None = None,
              on_end: Callable[[ReconcileJob], None] | None = None) -> ReconcileJob:
        """Start a run in the background. ``before`` (the console's log of acts) runs once the start is
        allowed and before the run begins: if it raises, nothing starts, so a run is never started
        without its line, nor a line written for a start that was refused. It holds the jobs' lock
        meanwhile: a second start waits for it (on a busy SQLite store up to its busy timeout), then is
        refused."""
        with self._lock:
            if self.last is not None and self.last.running:
                raise JobBusy(f"a reconciliation started by {self.last.by} is still running")
            if before is not None:
                before()
            job = ReconcileJob(by=by, years=years, as_of=as_of, started_at=datetime.now(timezone.utc))
            thread = threading.Thread(target=self._run, args=(job, on_end), name="console-reconcile", daemon=True)
            thread.start()  # a thread that cannot start leaves the last job as it was (not "running")
            self.last, self._thread = job, thread
            return job

    def _progress(self, job: ReconcileJob, message: str) -> None:
        job.phase = message
        job.phases.append(message)
        del job.phases[:-20]  # the last few are enough for the page

    def _run(self, job: ReconcileJob, on_end: Callable[[ReconcileJob], None] | None) -> None:
        began = time.monotonic()
        try:
            result = self._runner(self.engine, self.settings, as_of=job.as_of, years=job.years, keep=False,
                                  on_progress=lambda message: self._progress(job, message))
            life = result.life
            job.life = {name: getattr(life, name, 0) for name in
                        ("opened", "reopened", "escalated", "lowered", "updated", "resolved", "unchanged",
                         "dismissed_found")}
            job.run_id, job.result_as_of, job.result_years = result.run_id, result.as_of, list(result.years)
            job.findings = result.found
            job.what_if = result.what_if_reason
            job.state = "done"
        except Exception as exc:  # the page and the log show one line; the traceback with --debug
            job.error = error_line(exc)
            log.error("reconciliation started from the console by %s failed: %s", job.by, job.error,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            job.state = "failed"
        finally:
            job.finished_at = datetime.now(timezone.utc)
            job.seconds = time.monotonic() - began
            if on_end is not None:
                try:
                    on_end(job)
                except Exception as exc:  # recording the end must not hide the outcome
                    log.error("could not record the end of the console's reconciliation: %s", error_line(exc),
                              exc_info=log.isEnabledFor(logging.DEBUG))

    def wait(self, timeout: float) -> bool:
        """Tests and shutdown: wait for the running job; True when none runs any more."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.last is None or not self.last.running
