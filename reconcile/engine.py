"""A reconciliation run: read the store set-wise, judge every enabled rule, give deviations their life.

    result = reconcile.run(engine, config, as_of=date(2026, 11, 23), years=[1405])

1. The as-of day is the argument, else ``reconcile.as_of`` of config.yaml, else today in Tehran;
   the years are the argument, else every fiscal year in the store.
2. A ``reconcile_run`` row is opened (status ``running``).
3. Facts are read chunk by chunk (reconcile/load.py; on PostgreSQL one chunk ahead, by a thread),
   each enabled rule judges each subject it applies to (reconcile/rules/, counting subjects
   checked and flagged), and each chunk's findings are applied to the deviations
   (reconcile/lifecycle.py) in one transaction, which also closes the run with its statistics.
   A failure rolls every deviation change back and marks the run ``failed``.

Evaluation always covers whole years: filters (county, agency, group, rule, severity) apply to
what is shown afterwards, so a filtered view never resolves what it did not look at.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from budgetwatch.config import Config
from budgetwatch.jalali import today_tehran
from reconcile import load
from reconcile.facts import AgreementFacts, AsOf, OperationInAgreement, ProjectYearFacts
from reconcile.findings import Finding, round4
from reconcile.lifecycle import Life, LifeCounts
from reconcile.rules import RULES, Rule
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
        chunk_size: int = 5000) -> RunResult:
    """Reconcile the store as of a day; see the module docstring."""
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
        with engine.begin() as conn:
            life = Life(conn, run_id=run_id, as_of=day, years=chosen, rules={(r.kind, r.id) for r, _ in rules},
                        gone=load.gone_subjects(conn, chosen) if chosen else set(), now=_now())
            for family, chunk in _facts(engine, conn, chosen, day, chunk_size):
                found = judge.project_years(chunk) if family == "capital" else judge.agreements(chunk)
                life.apply(found)
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


def _read_facts(conn, years: list[int], day: date, chunk_size: int) -> Iterator[tuple[str, list]]:
    for chunk in load.project_years(conn, years, day, chunk=chunk_size):
        yield "capital", chunk
    for chunk in load.agreements(conn, years, chunk=max(1, chunk_size // 2)):
        yield "expense", chunk


def _facts(engine: Engine, writer, years: list[int], day: date, chunk_size: int) -> Iterator[tuple[str, list]]:
    """The run's facts, chunk by chunk.

    On PostgreSQL a thread reads one chunk ahead on a connection of its own (one snapshot for the
    whole read), so the server's work on the next chunk overlaps with judging and writing this
    one; the facts tables are only read and the deviation tables only written, so the two
    connections never wait for each other. SQLite works inside this process, where a second thread
    only contends for the interpreter (measured: slower), so it is read in line.
    """
    if engine.dialect.name != "postgresql":
        yield from _read_facts(writer, years, day, chunk_size)
        return
    ahead: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            with engine.connect().execution_options(isolation_level="REPEATABLE READ") as reader, reader.begin():
                for item in _read_facts(reader, years, day, chunk_size):
                    while not stop.is_set():
                        try:
                            ahead.put(item, timeout=0.5)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
            ahead.put(done)
        except BaseException as exc:  # handed to the run, which raises it
            ahead.put(exc)

    thread = threading.Thread(target=read, name="reconcile-facts", daemon=True)
    thread.start()
    try:
        while (item := ahead.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _open_run(engine: Engine, day: date, years: list[int]) -> int:
    with engine.begin() as conn:
        return conn.execute(sa.insert(runs).returning(runs.c.id).values(
            as_of=day, fiscal_years=",".join(map(str, years)), started_at=_now(), status="running",
        )).scalar_one()
