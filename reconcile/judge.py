"""The judge: every enabled rule on every subject it applies to, and one chunk of a run judged.

:class:`Judge` is pure: it sees facts only, and counts for each rule the subjects it checked and
flagged and the findings it made (:class:`RuleStats`). :func:`judge_chunk` reads one chunk of a
run's plan (reconcile/load.py) on the connection it is given and judges it; a run calls it in its
own process for a small store and in worker processes for a large one (reconcile/parallel.py), so
both ways judge alike. :func:`evaluate` judges facts built in memory (tests, tools).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from reconcile import load
from reconcile.facts import (
    AgreementFacts,
    AsOf,
    InspectionFact,
    OperationInAgreement,
    ProjectYearFacts,
)
from reconcile.findings import Finding, round4
from reconcile.rules import RULES, Rule
from reconcile.settings import ReconcileConfig

Chunk = tuple[str, int, int]  # (family: capital | expense, first id, last id)
Counts = dict[str, tuple[int, int, int]]  # rule name -> (checked, flagged, findings) in one chunk


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


def rule_stats(rules: list[tuple[Rule, Any]]) -> dict[str, RuleStats]:
    """Zero counts for each of `rules`, by 'kind.rule'."""
    return {rule.name: RuleStats(rule.kind, rule.id) for rule, _ in rules}


def add_counts(stats: dict[str, RuleStats], counts: Counts) -> None:
    """Add one chunk's counts (perhaps judged in a worker process) to a run's."""
    for name, (checked, flagged, findings) in counts.items():
        rule = stats[name]
        rule.checked += checked
        rule.flagged += flagged
        rule.findings += findings


def enabled_rules(settings: ReconcileConfig) -> list[tuple[Rule, Any]]:
    """(rule, its limits) for every rule the ``reconcile`` section leaves on."""
    chosen = []
    for rule in RULES:
        rule_settings = getattr(settings.rules, rule.id)
        if rule_settings.enabled:
            chosen.append((rule, rule.limits_from(rule_settings)))
    return chosen


class Judge:
    """Every enabled rule on every subject it applies to, counting what each rule checked and flagged.

    Pure: it sees facts only. :func:`judge_chunk` feeds it the store's chunks; tests feed it built facts.
    """

    def __init__(self, as_of: AsOf, rules: list[tuple[Rule, Any]]) -> None:
        self.as_of = as_of
        self.stats = rule_stats(rules)
        self._capital = [(r, lim, self.stats[r.name]) for r, lim in rules if r.unit == "project_year"]
        self._agreement = [(r, lim, self.stats[r.name]) for r, lim in rules if r.unit == "agreement"]
        self._operation = [(r, lim, self.stats[r.name]) for r, lim in rules if r.unit == "operation"]

    def counts(self) -> Counts:
        """What this judge counted, as plain tuples (they cross from worker processes)."""
        return {name: (s.checked, s.flagged, s.findings) for name, s in self.stats.items()}

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


@dataclass
class Assignment:
    """What every chunk of one run is judged against: its years, as-of day and enabled rules.

    It crosses to worker processes once; ``visits`` (the field inspections, few) is filled by the
    first capital chunk a reader judges and kept for its later chunks.
    """

    years: list[int]
    as_of: AsOf
    rules: list[tuple[Rule, Any]]
    visits: dict[str, tuple[InspectionFact, ...]] | None = None


def judge_chunk(conn: Connection, chunk: Chunk, assignment: Assignment) -> tuple[list[Finding], Counts]:
    """Read one chunk of a run's plan on `conn` and judge it: its findings and per-rule counts."""
    family, lo, hi = chunk
    judge = Judge(assignment.as_of, assignment.rules)
    if family == "capital":
        if assignment.visits is None:
            assignment.visits = load.inspections(conn, assignment.years, assignment.as_of.day)
        found = judge.project_years(load.project_years_between(conn, assignment.years, lo, hi, assignment.visits))
    else:
        found = judge.agreements(load.agreements_between(conn, assignment.years, lo, hi))
    return found, judge.counts()


def judge_setwise(scope: Any, rule: Rule, limits: Any) -> tuple[list[Finding], int]:
    """One rule stated set-wise, judged in `scope` (reconcile/scope.py): its findings and the number
    of subjects it checked."""
    rows = scope.conn.execute(rule.select(scope, limits))
    found = list(rule.findings(rows, scope, limits))
    checked = scope.conn.execute(rule.checked(scope, limits)).scalar_one()
    return found, int(checked)
