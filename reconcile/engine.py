"""A reconciliation run: read the store set-wise, judge every enabled rule, give deviations their life.

    result = reconcile.run(engine, config, as_of=date(2026, 11, 23), years=[1405])

1. The as-of day is the argument, else ``reconcile.as_of`` of config.yaml, else today in Tehran;
   the years are the argument, else every fiscal year in the store.
2. A ``reconcile_run`` row is opened (status ``running``).
3. The subjects are planned as chunks of ids (reconcile/load.py). Each chunk's facts are read and
   each enabled rule judges each subject it applies to (reconcile/rules/, counting subjects
   checked and flagged) — in worker processes for a large store (reconcile/parallel.py,
   ``reconcile.workers``), else here — and each chunk's findings are applied to the deviations
   (reconcile/lifecycle.py), in plan order, in one transaction, which also closes the run with
   its statistics. A failure rolls every deviation change back and marks the run ``failed``.

Evaluation always covers whole years: filters (county, agency, group, rule, severity) apply to
what is shown afterwards, so a filtered view never resolves what it did not look at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the app's whole Config, until the layer takes only its own section
    from budgetwatch.config import Config

import contextlib
import gc
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from foundation.jalali import today_tehran
from reconcile import load, parallel
from reconcile.facts import AgreementFacts, AsOf, OperationInAgreement, ProjectYearFacts
from reconcile.findings import Finding, round4
from reconcile.lifecycle import Life, LifeCounts
from reconcile.rules import RULES, Rule
from store.db import large_page_cache, snapshot_reader
from store.models import ReconcileRun

runs = ReconcileRun.__table__

@dataclass
class RuleStats:
    """How often one rule fired: subjects it judged, subjects it flagged, findings it made."""

    kind: str
    rule: str
    checked: int = 0
    flagged: int = 0
    findings: int = 0

    @property
    def share(self) -> Decimal:
        return round4(Decimal(self.flagged) / self.checked) if self.checked else Decimal(0)

    @property
    def mis_tuned(self) -> bool:
        """More than half of what it checked flagged: its threshold may be mis-tuned."""
        return 2 * self.flagged > self.checked

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "checked": self.checked, "flagged": self.flagged,
                "findings": self.findings, "share": float(self.share), "mis_tuned": self.mis_tuned}


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


def enabled_rules(config: Config) -> list[tuple[Rule, Any]]:
    """(rule, its limits) for every rule config.yaml leaves on."""
    chosen = []
    for rule in RULES:
        settings = getattr(config.reconcile.rules, rule.id)
        if settings.enabled:
            chosen.append((rule, rule.limits_from(settings)))
    return chosen


class Judge:
    """Every enabled rule on every subject it applies to, counting what each rule checked and flagged.

    Pure: it sees facts only. The engine feeds it the store's chunks; tests feed it built facts.
    """

    def __init__(self, as_of: AsOf, rules: list[tuple[Rule, Any]]) -> None:
        self.as_of = as_of
        self.stats = {rule.name: RuleStats(rule.kind, rule.id) for rule, _ in rules}
        self._capital = [(r, lim, self.stats[r.name]) for r, lim in rules if r.unit == "project_year"]
        self._agreement = [(r, lim, self.stats[r.name]) for r, lim in rules if r.unit == "agreement"]
        self._operation = [(r, lim, self.stats[r.name]) for r, lim in rules if r.unit == "operation"]

    def add(self, counts: dict[str, tuple[int, int, int]]) -> None:
        """Counts a worker judged elsewhere (reconcile/parallel.py): (checked, flagged, findings) per rule."""
        for name, (checked, flagged, findings) in counts.items():
            stats = self.stats[name]
            stats.checked += checked
            stats.flagged += flagged
            stats.findings += findings

    def _judge(self, rules: list, facts: Any, out: list[Finding]) -> None:
        for rule, limits, counts in rules:
            found = rule.check(facts, self.as_of, limits)
            if found is None:
                continue
            counts.checked += 1
            if found:
                counts.flagged += 1
                counts.findings += len(found)
                out.extend(found)

    def project_years(self, chunk: Iterable[ProjectYearFacts]) -> list[Finding]:
        out: list[Finding] = []
        for p in chunk:
            self._judge(self._capital, p, out)
        return out

    def agreements(self, chunk: Iterable[AgreementFacts]) -> list[Finding]:
        out: list[Finding] = []
        for a in chunk:
            self._judge(self._agreement, a, out)
            for o in a.operations:
                self._judge(self._operation, OperationInAgreement(a, o), out)
        return out


def evaluate(project_years: Iterable[ProjectYearFacts], agreements: Iterable[AgreementFacts], as_of: AsOf,
             rules: list[tuple[Rule, Any]]) -> tuple[list[Finding], dict[str, RuleStats]]:
    """Findings and per-rule counts for facts in memory (no store): for tests and tools."""
    judge = Judge(as_of, rules)
    return judge.project_years(project_years) + judge.agreements(agreements), judge.stats


def run(engine: Engine, config: Config, *, as_of: date | None = None, years: list[int] | None = None,
        chunk_size: int = 5000, workers: int | None = None) -> RunResult:
    """Reconcile the store as of a day; see the module docstring.

    ``workers`` overrides ``reconcile.workers`` (0: judge in this process; None: the configured
    number, or by default as many as the CPUs, up to 4, once the store is large).
    """
    started = time.perf_counter()
    settings = config.reconcile
    day = as_of or settings.as_of or today_tehran()
    rules = enabled_rules(config)
    judge = Judge(AsOf(day, settings.report_due_days, settings.approval_due_days), rules)
    with engine.connect() as conn:
        chosen = sorted(set(years)) if years else load.store_years(conn)
    run_id = _open_run(engine, day, chosen)
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
                judged = stack.enter_context(
                    parallel.judging_in_workers(engine, conn, plan, chosen, judge.as_of, rules, count))
            life = Life(conn, run_id=run_id, as_of=day, years=chosen, rules={(r.kind, r.id) for r, _ in rules},
                        gone=load.gone_subjects(conn, chosen) if chosen else set(), now=_now())
            if not count:
                judged = _judge_here(stack.enter_context(_reader(engine, conn)), plan, chosen, judge)
            for found, digests, chunk_counts in judged:
                judge.add(chunk_counts)
                life.apply(found, digests)
                findings.extend(found)
            counts = life.finish()
            seconds = time.perf_counter() - started
            conn.execute(sa.update(runs).where(runs.c.id == run_id).values(
                status="success", finished_at=_now(),
                stats={"rules": {name: s.as_dict() for name, s in judge.stats.items()},
                       "life": counts.as_dict(), "findings": len(findings), "seconds": round(seconds, 3)},
            ))
    except BaseException as exc:
        with engine.begin() as conn:
            conn.execute(sa.update(runs).where(runs.c.id == run_id).values(
                status="failed", finished_at=_now(), stats={"error": f"{type(exc).__name__}: {exc}"[:500]}))
        raise
    finally:
        if collecting:
            gc.enable()
    findings.sort(key=lambda f: f.key)
    return RunResult(run_id=run_id, as_of=day, years=chosen, findings=findings, stats=judge.stats,
                     deviations=life.deviations, life=counts, seconds=seconds)


def _plan(conn, years: list[int], chunk_size: int) -> list[parallel.Chunk]:
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


def _judge_here(conn, plan: list[parallel.Chunk], years: list[int], judge: Judge
                ) -> Iterator[tuple[list[Finding], None, parallel.Counts]]:
    """Each chunk read on the run's own connection and judged in this process (counts go to `judge`)."""
    visits = load.inspections(conn, years, judge.as_of.day) if years else {}
    for family, lo, hi in plan:
        if family == "capital":
            yield judge.project_years(load.project_years_between(conn, years, lo, hi, visits)), None, {}
        else:
            yield judge.agreements(load.agreements_between(conn, years, lo, hi)), None, {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _open_run(engine: Engine, day: date, years: list[int]) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.insert(runs).returning(runs.c.id).values(
            as_of=day, fiscal_years=",".join(map(str, years)), started_at=_now(), status="running",
        )).scalar_one()
