"""A reconciliation run: read the store set-wise, judge every enabled rule, give deviations their life.

    result = reconcile.run(engine, config.reconcile, as_of=date(2026, 11, 23), years=[1405])

1. The as-of day is the argument, else ``reconcile.as_of`` of config.yaml, else today in Tehran;
   the years are the argument, else every fiscal year in the store.
2. A ``reconcile_run`` row is opened (status ``running``, store/reconcile_runs.py).
3. The subjects are planned as chunks of ids (reconcile/load.py). Each chunk is read and judged by
   every enabled rule (reconcile/judge.py, counting subjects checked and flagged) — in worker
   processes for a large store (reconcile/parallel.py, ``reconcile.workers``), else here — and
   each chunk's findings are applied to the deviations (reconcile/lifecycle.py), in plan order, in
   one transaction, which also closes the run with its statistics. A failure rolls every deviation
   change back and marks the run ``failed``.

Evaluation always covers whole years: filters (county, agency, group, rule, severity) apply to
what is shown afterwards, so a filtered view never resolves what it did not look at. A caller that
shows progress (the web console) passes ``on_progress``: it receives short English messages at
each phase and after each chunk ("judging 3/10 chunks"), in the run's own thread.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from foundation.jalali import today_tehran
from reconcile import load, parallel
from reconcile.facts import AsOf
from reconcile.findings import Finding
from reconcile.judge import Assignment, Chunk, RuleStats, add_counts, enabled_rules, judge_chunk, rule_stats
from reconcile.lifecycle import Life, LifeCounts
from reconcile.settings import ReconcileConfig
from store import reconcile_runs
from store.driver import large_page_cache, snapshot_reader
from store.models import utcnow

Progress = Callable[[str], None]


@dataclass
class RunResult:
    run_id: int
    as_of: date
    years: list[int]
    findings: list[Finding]
    stats: dict[str, RuleStats]  # by 'kind.rule'
    deviations: dict[tuple, tuple[int, str]] = field(default_factory=dict)  # identity -> (id, status)
    life: LifeCounts = field(default_factory=LifeCounts)
    seconds: float = 0.0

    def status(self, finding: Finding) -> str:
        return self.deviations.get(finding.key, (0, "open"))[1]

    def deviation_id(self, finding: Finding) -> int | None:
        return self.deviations.get(finding.key, (None, ""))[0]


def run(engine: Engine, settings: ReconcileConfig, *, as_of: date | None = None, years: list[int] | None = None,
        on_progress: Progress | None = None, chunk_size: int = 5000, workers: int | None = None) -> RunResult:
    """Reconcile the store as of a day; see the module docstring.

    ``settings`` is the ``reconcile`` section of config.yaml. ``workers`` overrides
    ``reconcile.workers`` (0: judge in this process; None: the configured number, or by default as
    many as the CPUs, up to 4, once the store is large).
    """
    started = time.perf_counter()
    say = on_progress or _quiet
    day = as_of or settings.as_of or today_tehran()
    rules = enabled_rules(settings)
    stats = rule_stats(rules)
    with engine.connect() as conn:
        chosen = sorted(set(years)) if years else load.store_years(conn)
    run_id = reconcile_runs.open_run(engine, day, chosen)
    say(f"run {run_id}: planning years {', '.join(map(str, chosen)) or '(none)'} as of {day.isoformat()}")
    assignment = Assignment(chosen, AsOf(day, settings.report_due_days, settings.approval_due_days), rules)
    findings: list[Finding] = []
    # A run builds millions of short-lived facts and keeps hundreds of thousands of findings, none
    # of them in reference cycles: the cyclic collector would rescan the kept ones again and again
    # (quadratic time), so it is paused for the run and restored after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # one transaction: facts are read and deviations written chunk by chunk, committed together
        with engine.begin() as conn, contextlib.ExitStack() as stack:
            stack.enter_context(large_page_cache(conn))
            plan = _plan(conn, chosen, chunk_size)
            subjects = sum(hi - lo + 1 for _, lo, hi in plan)  # ids are dense enough to size the run
            count = parallel.worker_count(workers if workers is not None else settings.workers, subjects)
            if count:
                judged = stack.enter_context(parallel.judging_in_workers(engine, conn, plan, assignment, count))
            life = Life(conn, run_id=run_id, as_of=day, years=chosen, rules={(r.kind, r.id) for r, _ in rules},
                        gone=load.gone_subjects(conn, chosen) if chosen else set(), now=utcnow())
            if not count:
                judged = _judge_here(stack.enter_context(_reader(engine, conn)), plan, assignment)
            say(f"judging 0/{len(plan)} chunks" + (f" in {count} worker processes" if count else ""))
            for done, (found, digests, chunk_counts) in enumerate(judged, 1):
                add_counts(stats, chunk_counts)
                life.apply(found, digests)
                findings.extend(found)
                say(f"judging {done}/{len(plan)} chunks")
            say("resolving deviations no longer found")
            counts = life.finish()
            seconds = time.perf_counter() - started
            reconcile_runs.close_run(conn, run_id, {
                "rules": {name: s.as_dict() for name, s in stats.items()},
                "life": counts.as_dict(), "findings": len(findings), "seconds": round(seconds, 3)})
            say("committing")
    except BaseException as exc:
        reconcile_runs.fail_run(engine, run_id, exc)
        raise
    finally:
        if collecting:
            gc.enable()
    findings.sort(key=lambda f: f.key)
    say(f"run {run_id} done: {len(findings)} findings, {counts.opened} opened, {counts.resolved} resolved")
    return RunResult(run_id=run_id, as_of=day, years=chosen, findings=findings, stats=stats,
                     deviations=life.deviations, life=counts, seconds=seconds)


def _quiet(_message: str) -> None:
    """No one watches the run's progress."""


def _plan(conn: sa.Connection, years: list[int], chunk_size: int) -> list[Chunk]:
    """The run's chunks, capital first: agreements (with their operations) weigh about twice a project year."""
    if not years:
        return []
    return ([("capital", lo, hi) for lo, hi in load.chunks(conn, "capital", years, chunk_size)]
            + [("expense", lo, hi) for lo, hi in load.chunks(conn, "expense", years, max(1, chunk_size // 2))])


@contextlib.contextmanager
def _reader(engine: Engine, conn: sa.Connection) -> Iterator[sa.Connection]:
    """Where an in-process run reads its facts: one snapshot of the store for the whole run.

    SQLite: the run's own transaction. PostgreSQL: a REPEATABLE READ transaction of its own, so that a
    sync committing meanwhile is not seen half-way, while the run's writing transaction stays READ
    COMMITTED (a person acknowledging a deviation meanwhile must not make the run fail).
    """
    if engine.dialect.name != "postgresql":
        yield conn
        return
    with snapshot_reader(engine) as reader:
        yield reader


def _judge_here(conn: sa.Connection, plan: list[Chunk], assignment: Assignment) -> Iterator[parallel.Judged]:
    """Each chunk read on `conn` and judged in this process (the Life makes the digests)."""
    for chunk in plan:
        found, counts = judge_chunk(conn, chunk, assignment)
        yield found, None, counts
