"""The planting plan: records built so that each reconciliation rule fires exactly where planned.

Every case is one project or agreement of the plant year (`Epoch.plant_year`), shaped around the
plant quarter `PQ` — the latest quarter whose report is already overdue on the clock's day, so every
time-driven rule has a closed, due quarter to work with. Earlier quarters of a planted record are
on plan (reported on time, approved, on target, spend in step with progress), so a case fires only
the rule(s) it lists. Each rule gets a case exactly AT each threshold and severity edge, one just
above, and near misses just below, including the catalogue's rounding to 4 places (a gap of
4.99995 rounds to 5 and fires; 4.99994 rounds to 4.9999 and does not).

The expected deviations of a case are written here, from the plan, not computed by rules.
`world.expected_deviations()` is the union of these and of the time-driven bookkeeping of
generate.py; tests/simulator recomputes the catalogue independently and compares.

Numbers used below (million rials, percent):
  capital default: start 20, targets 28/36/44/52 (8 points a quarter), on-plan actual = target,
                   credits ملی 700/600/600/…, استانی 500/400/400/… → notified_total 1000,
                   absorbed[q] = 1000 × physical share (so spend share − physical share = 0).
  expense default: operation A (…-first) plans 1000 units in PQ only, unit cost 2;
                   operation B (…-second) plans 500 a quarter, unit cost 1.5, reported on plan;
                   chapter 1 20000/20000/10000/9000, chapter 2 10000/10000/9000/Σ spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

from simulator import calendar as cal
from simulator.generate import Epoch
from simulator.model import (
    Agreement,
    CapitalCredit,
    ExpectedDeviation,
    ExpenseCredit,
    ExpenseOperation,
    Inspection,
    OperationReport,
    Project,
    ProjectYear,
    ProgressReport,
)
from simulator.reference import INSPECTION_REMARKS, INSPECTORS, Program

D = Decimal
ZERO = D(0)
CENT = D("0.01")
NOTIFIED_TOTAL = D(1000)

# Rules whose deviation holds from the day after the quarter closed (value-driven, per quarter).
_PER_QUARTER = {"progress_lag", "progress_regression", "spend_progress_gap",
                "operation_shortfall", "unit_cost_overrun"}


@dataclass
class PlantedCase:
    """One planted situation, as listed in the README table."""

    case: str
    domain: str  # capital | expense | inspection | malformed-host
    rule: str  # the rule it exercises
    description: str
    values: str
    subject: str = ""
    fiscal_year: int = 0
    # (rule, subject, quarter, severity) that must be found as of the clock's day
    expected: list[tuple[str, str, int | None, str]] = field(default_factory=list)


@dataclass
class _Capital:
    case: str
    rule: str
    description: str
    values: str
    status: str = "exchanged"
    start: Decimal = D(20)
    targets: list[Decimal] | None = None  # None: default (on plan); [] : no targets
    actual: dict[int, Decimal] | None = None  # None: on plan for every q ≤ PQ
    absorbed: dict[int, Decimal] = field(default_factory=dict)
    timing: dict[int, tuple[str, date, date | None]] = field(default_factory=dict)
    credits: Callable[[Decimal], list[CapitalCredit]] | None = None
    end_year: int | None = None
    inspections: list[tuple[date, Decimal]] = field(default_factory=list)
    fires: list[tuple[str, int | None, str]] = field(default_factory=list)  # value-driven
    time_fires: list[tuple[str, int | None, str]] = field(default_factory=list)  # time-driven, at the clock


@dataclass
class _Expense:
    case: str
    rule: str
    description: str
    values: str
    status: str = "exchanged"
    # (targets per quarter, unit cost) for A and B; None = default
    a_targets: list[Decimal] | None = None
    b_targets: list[Decimal] | None = None
    a_unit_cost: Decimal | None = D(2)
    # A's item in PQ: (quantity, spent) or None for no item; status/timing override
    a_item: tuple[Decimal | None, Decimal | None] | None = None
    a_timing: tuple[str, date, date | None] | None = None
    b_reports: bool = True  # B reports every closed quarter on plan
    b_timing_pq: tuple[str, date, date | None] | None = None
    credits: Callable[[Decimal], list[ExpenseCredit]] | None = None
    fires: list[tuple[str, str, str | int | None, str]] = field(default_factory=list)
    # (rule, 'agreement' | 'A' | 'B', quarter | 'PQ' | 'PQ+', severity)


def _default_capital_credits(absorbed: Decimal) -> list[CapitalCredit]:
    return [
        CapitalCredit("ملی", D(700), D(600), D(600), min(D(600), absorbed * D("0.6"))),
        CapitalCredit("استانی", D(500), D(400), D(400), min(D(400), absorbed * D("0.4"))),
    ]


def _credits_with(**changes: Decimal) -> Callable[[Decimal], list[CapitalCredit]]:
    """Default credits with some cells set, e.g. melli_absorbed=D('600.5')."""

    def build(absorbed: Decimal) -> list[CapitalCredit]:
        rows = _default_capital_credits(absorbed)
        for key, value in changes.items():
            row, column = key.split("_")
            index = {"melli": 0, "ostani": 1}[row]
            setattr(rows[index], column, value)
        return rows

    return build


def _default_expense_credits(spent: Decimal) -> list[ExpenseCredit]:
    return [
        ExpenseCredit(1, D(20000), D(20000), D(10000), D(9000)),
        ExpenseCredit(2, D(10000), D(10000), D(9000), spent),
    ]


def _expense_credits_with(extra: list[ExpenseCredit] | None = None, **changes) -> Callable[[Decimal], list[ExpenseCredit]]:
    def build(spent: Decimal) -> list[ExpenseCredit]:
        rows = _default_expense_credits(spent)
        for key, value in changes.items():
            column, chapter = key.rsplit("_", 1)
            setattr(next(r for r in rows if r.chapter == int(chapter)), column, value)
        return rows + [ExpenseCredit(e.chapter, e.approved, e.notified, e.allocated, e.spent) for e in (extra or [])]

    return build


class Planter:
    """Builds every planted case into the world through the callbacks the world provides."""

    def __init__(
        self,
        epoch: Epoch,
        *,
        new_project: Callable[[str], Project],
        capital_agreement_no: Callable[[int, Project], str],
        new_agreement: Callable[[str, int], tuple[int, str, object, object, Program]],
        register_project: Callable[[Project], None],
        register_agreement: Callable[[Agreement], None],
        add_inspection: Callable[[Inspection], None],
        add_expected: Callable[[ExpectedDeviation], None],
    ) -> None:
        self.epoch = epoch
        self.py = epoch.plant_year
        self.pq = epoch.plant_quarter
        self.today = epoch.today
        self._new_project = new_project
        self._agreement_no = capital_agreement_no
        self._new_agreement = new_agreement
        self._register_project = register_project
        self._register_agreement = register_agreement
        self._add_inspection = add_inspection
        self._add_expected = add_expected
        self.cases: list[PlantedCase] = []

    # ---------------------------------------------------------------- helpers

    def base(self, q: int) -> Decimal:
        """On-plan cumulative progress at the end of quarter q (q = 0: start)."""
        return D(20) + 8 * q

    def default_targets(self) -> list[Decimal]:
        return [self.base(q) for q in (1, 2, 3, 4)]

    def raised_targets(self, value: Decimal) -> list[Decimal]:
        """Default targets with PQ's target set to `value` and later ones kept above it."""
        t = self.default_targets()
        t[self.pq - 1] = value
        for q in range(self.pq + 1, 5):
            t[q - 1] = min(D(100), max(t[q - 1], value + 5 * (q - self.pq)))
        return t

    def on_plan(self, targets: list[Decimal]) -> dict[int, Decimal]:
        return {q: targets[q - 1] for q in range(1, self.pq + 1)}

    def qend(self, q: int) -> date:
        return cal.quarter_end(self.py, q)

    def days_ago(self, n: int) -> date:
        return self.today - timedelta(days=n)

    def closed_after_pq(self) -> list[int]:
        return [q for q in self.epoch.closed(self.py) if q > self.pq]

    # ---------------------------------------------------------------- capital

    def capital_specs(self) -> list[_Capital]:
        pq, py = self.pq, self.py
        b = self.base(pq - 1)  # previous reported value at PQ (the start when PQ = 1)
        specs: list[_Capital] = []

        def lag(case: str, gap: str, fires: list, note: str, **kw) -> None:
            actual_pq = b + 1
            t = self.raised_targets(actual_pq + D(gap))
            actual = self.on_plan(t)
            for q in range(1, pq):
                actual[q] = self.base(q)
            actual[pq] = actual_pq
            specs.append(_Capital(case, "progress_lag", note, f"target {actual_pq + D(gap)}, actual {actual_pq}, gap {gap}",
                                  targets=t, actual=actual, fires=fires, **kw))

        lag("PL-01", "5", [("progress_lag", pq, "minor")], "gap exactly 5: minor edge")
        lag("PL-02", "4.99995", [("progress_lag", pq, "minor")], "gap 4.99995 rounds to 5.0000: fires")
        lag("PL-03", "4.99994", [], "gap 4.99994 rounds to 4.9999: near miss")
        lag("PL-04", "4.9", [], "gap 4.9: near miss")
        lag("PL-05", "15", [("progress_lag", pq, "major")], "gap exactly 15: major edge")
        lag("PL-06", "14.99", [("progress_lag", pq, "minor")], "gap 14.99: just below major")
        lag("PL-07", "30", [("progress_lag", pq, "critical")], "gap exactly 30: critical edge")
        lag("PL-08", "29.99", [("progress_lag", pq, "major")], "gap 29.99: just below critical")
        lag("PL-09", "42", [("progress_lag", pq, "critical")], "gap 42: well above critical")
        lag("PL-10", "20", [], "cancelled agreement with a gap of 20: only credit_inconsistency applies",
            status="cancelled")
        lag("PL-11", "6", [("progress_lag", pq, "minor")],
            "gap 6 on a report rejected 5 days ago: the latest value counts whatever its status",
            timing={pq: ("rejected", self.days_ago(10), self.days_ago(5))})

        def regression(case: str, drop: str, fires: list, note: str) -> None:
            t = self.default_targets()
            t[pq - 1] = b
            actual = {q: self.base(q) for q in range(1, pq)}
            actual[pq] = b - D(drop)
            specs.append(_Capital(case, "progress_regression", note,
                                  f"previous {b}, actual {b - D(drop)}, drop {drop}",
                                  targets=t, actual=actual, fires=fires))

        regression("PR-01", "0.5", [], "drop of exactly 0.5: not below previous − 0.5 (edge, no flag)")
        regression("PR-02", "0.6", [("progress_regression", pq, "major")], "drop 0.6: fires")
        regression("PR-03", "0.4", [], "drop 0.4: near miss")
        regression("PR-04", "3", [("progress_regression", pq, "major")], "drop 3: well above")
        t = self.default_targets()
        t[0] = D(20)
        actual = {q: self.base(q) for q in range(2, pq + 1)}
        actual[1] = D("19.4")
        specs.append(_Capital("PR-05", "progress_regression",
                              "Q1 below the progress at year start (no earlier report: previous = start)",
                              "start 20, Q1 actual 19.4", targets=t, actual=actual,
                              fires=[("progress_regression", 1, "major")]))

        def spend(case: str, diff: str, fires: list, note: str) -> None:
            s = D(20)
            t = [s + q for q in (1, 2, 3, 4)]
            for q in range(pq + 1, 5):
                t[q - 1] = s + D(40 * (q - pq) // (4 - pq))
            if pq == 4:
                t[3] = D(60)
            actual = {q: t[q - 1] for q in range(1, pq + 1)}
            physical = (t[pq - 1] - s) / (t[3] - s)
            absorbed = {pq: NOTIFIED_TOTAL * (physical + D(diff))}
            specs.append(_Capital(case, "spend_progress_gap", note,
                                  f"physical share {_fmt(physical)}, absorbed {_fmt(absorbed[pq])} of 1000 notified, "
                                  f"spend share − physical share {diff}",
                                  targets=t, actual=actual, absorbed=absorbed, fires=fires))

        spend("SG-01", "0.30", [("spend_progress_gap", pq, "major")], "diff exactly 0.30: major edge")
        spend("SG-02", "0.29995", [("spend_progress_gap", pq, "major")], "diff 0.29995 rounds to 0.3000: fires")
        spend("SG-03", "0.29994", [], "diff 0.29994 rounds to 0.2999: near miss")
        spend("SG-04", "0.29", [], "diff 0.29: near miss")
        spend("SG-05", "0.50", [("spend_progress_gap", pq, "critical")], "diff exactly 0.50: critical edge")
        spend("SG-06", "0.4999", [("spend_progress_gap", pq, "major")], "diff 0.4999: just below critical")
        spend("SG-07", "0.62", [("spend_progress_gap", pq, "critical")], "diff 0.62: above critical")
        flat = [D(20)] * 4
        specs.append(_Capital("SG-08", "spend_progress_gap",
                              "no planned gain this year (target[4] = start): rule not applicable",
                              "start 20, all targets 20, absorbed 600 of 1000", targets=flat,
                              actual={q: D(20) for q in range(1, pq + 1)}, absorbed={pq: D(600)}))

        on_plan = self.default_targets()
        specs.append(_Capital("AO-01", "approval_overdue", "pending report entered 16 days before the clock",
                              f"reported {self.days_ago(16)}, pending",
                              timing={pq: ("pending", self.days_ago(16), None)},
                              time_fires=[("approval_overdue", pq, "minor")]))
        specs.append(_Capital("AO-02", "approval_overdue", "pending report entered exactly 15 days before: edge, no flag",
                              f"reported {self.days_ago(15)}, pending",
                              timing={pq: ("pending", self.days_ago(15), None)}))
        specs.append(_Capital("AO-03", "approval_overdue", "rejected report entered 16 days before",
                              f"reported {self.days_ago(16)}, rejected {self.days_ago(10)}",
                              timing={pq: ("rejected", self.days_ago(16), self.days_ago(10))},
                              time_fires=[("approval_overdue", pq, "minor")]))
        specs.append(_Capital("AO-04", "approval_overdue", "rejected 2 days ago, entered 5 days ago: not yet overdue",
                              f"reported {self.days_ago(5)}, rejected {self.days_ago(2)}",
                              timing={pq: ("rejected", self.days_ago(5), self.days_ago(2))}))

        actual = {q: on_plan[q - 1] for q in range(1, pq)}
        specs.append(_Capital("MR-01", "missing_report", f"no report for Q{pq}, whose due day has passed",
                              f"due {cal.due_day(py, pq)}", actual=actual,
                              time_fires=[("missing_report", pq, "major")]))
        specs.append(_Capital("MR-02", "missing_report", "no report at all in the year",
                              f"quarters 1..{pq} overdue", actual={},
                              time_fires=[("missing_report", q, "major") for q in range(1, pq + 1)]))
        specs.append(_Capital("MR-03", "missing_report", "agreement awaiting exchange, no reports: not checked",
                              "status awaiting", status="awaiting", targets=[], actual={}))
        specs.append(_Capital("MR-04", "missing_report", "cancelled agreement, no reports: not checked",
                              "status cancelled", status="cancelled", actual={}))

        ci = [("credit_inconsistency", None, "major")]
        specs.append(_Capital("CI-01", "credit_inconsistency", "absorbed exceeds allocated by exactly 0.5: edge, no flag",
                              "ملی allocated 600, absorbed 600.5", credits=_credits_with(melli_absorbed=D("600.5"))))
        specs.append(_Capital("CI-02", "credit_inconsistency", "absorbed exceeds allocated by 0.6",
                              "ملی allocated 600, absorbed 600.6", credits=_credits_with(melli_absorbed=D("600.6")),
                              fires=ci))
        specs.append(_Capital("CI-03", "credit_inconsistency", "excess 0.50005 rounds to 0.5001: fires",
                              "ملی allocated 600, absorbed 600.50005",
                              credits=_credits_with(melli_absorbed=D("600.50005")), fires=ci))
        specs.append(_Capital("CI-04", "credit_inconsistency", "excess 0.50004 rounds to 0.5000: near miss",
                              "ملی allocated 600, absorbed 600.50004",
                              credits=_credits_with(melli_absorbed=D("600.50004"))))
        specs.append(_Capital("CI-05", "credit_inconsistency", "notified exceeds approved",
                              "ملی approved 700, notified 720", credits=_credits_with(melli_notified=D(720)), fires=ci))
        specs.append(_Capital("CI-06", "credit_inconsistency", "allocated exceeds notified by 1",
                              "استانی notified 400, allocated 401", credits=_credits_with(ostani_allocated=D(401)),
                              fires=ci))
        specs.append(_Capital("CI-07", "credit_inconsistency",
                              "each row only 0.3 over, the total row 0.6 over: fires on the total",
                              "absorbed 600.3 / 400.3 against allocated 600 / 400",
                              credits=_credits_with(melli_absorbed=D("600.3"), ostani_absorbed=D("400.3")), fires=ci))
        specs.append(_Capital("CI-08", "credit_inconsistency", "two rows broken: one deviation",
                              "absorbed 610 / 410 against allocated 600 / 400",
                              credits=_credits_with(melli_absorbed=D(610), ostani_absorbed=D(410)), fires=ci))
        specs.append(_Capital("CI-09", "credit_inconsistency", "cancelled agreement, absorbed over allocated by 5",
                              "ملی allocated 600, absorbed 605", status="cancelled",
                              credits=_credits_with(melli_absorbed=D(605)), fires=ci))
        specs.append(_Capital("CI-10", "credit_inconsistency", "awaiting agreement, allocated while nothing notified",
                              "notified 0, ملی allocated 100", status="awaiting", targets=[], actual={},
                              credits=lambda _a: [CapitalCredit("ملی", D(700), ZERO, D(100), ZERO),
                                                  CapitalCredit("استانی", D(500), ZERO, ZERO, ZERO)],
                              fires=ci))

        def completion(case: str, end: int, final: str, fires: list, note: str, status: str = "exchanged") -> None:
            t = [D(97), D(98), D(99), D(100)]
            actual = {q: t[q - 1] for q in range(1, pq)}
            actual[pq] = D(final)
            specs.append(_Capital(case, "completion_overdue", note, f"end year {end}, latest progress {final}",
                                  status=status, start=D(96), targets=t, actual=actual, end_year=end, fires=fires))

        completion("CO-01", py - 1, "99.9", [("completion_overdue", None, "minor")], "one year past the end year: minor")
        completion("CO-02", py - 2, "99.9", [("completion_overdue", None, "major")], "two years past: major")
        completion("CO-03", py - 3, "99.9", [("completion_overdue", None, "critical")], "three years past: critical")
        completion("CO-04", py - 5, "99.9", [("completion_overdue", None, "critical")], "five years past: critical")
        completion("CO-05", py - 1, "100", [], "past the end year but at 100: near miss")
        completion("CO-06", py, "99.9", [], "in its end year: not yet overdue")
        completion("CO-07", py - 2, "99.9", [], "cancelled agreement: not checked", status="cancelled")

        # Inspections: the record is on plan; the latest inspection decides.
        a = self.base(pq)
        late = min(self.days_ago(3), cal.year_end(py))

        def inspect(case: str, observed: Decimal, fires: list, note: str, extra: list | None = None) -> None:
            visits = (extra or []) + [(late, observed)]
            specs.append(_Capital(case, "inspection_mismatch", note,
                                  f"reported {a} for Q{pq}, observed {observed} on {late}",
                                  inspections=visits, fires=fires))

        inspect("IM-01", a - 10, [("inspection_mismatch", pq, "major")], "difference exactly 10: major edge")
        inspect("IM-02", a - D("9.9"), [], "difference 9.9: near miss")
        inspect("IM-03", a - D("9.99995"), [("inspection_mismatch", pq, "major")], "difference 9.99995 rounds to 10: fires")
        inspect("IM-04", a - D("9.99994"), [], "difference 9.99994 rounds to 9.9999: near miss")
        inspect("IM-05", a - 25, [("inspection_mismatch", pq, "critical")], "difference exactly 25: critical edge")
        inspect("IM-06", a - D("24.99"), [("inspection_mismatch", pq, "major")], "difference 24.99: just below critical")
        inspect("IM-07", a + 12, [("inspection_mismatch", pq, "major")], "observed 12 above reported: the difference is absolute")
        inspect("IM-08", a + 40, [("inspection_mismatch", pq, "critical")], "difference 40: above critical")
        inspect("IM-09", a - 2, [], "an older inspection 30 points off, the latest matches: only the latest counts",
                extra=[(late - timedelta(days=40), a + 30)])
        early = cal.quarter_start(py, 1) + timedelta(days=40)
        specs.append(_Capital("IM-10", "inspection_mismatch",
                              "inspection before Q1 ended: compared with the progress at year start, quarter empty",
                              f"start 20, observed 30 on {early}", inspections=[(early, D(30))],
                              fires=[("inspection_mismatch", None, "major")]))
        mid = self.qend(pq) - timedelta(days=10)
        reference_q = pq - 1 if pq > 1 else None
        reference = self.base(pq - 1)
        specs.append(_Capital("IM-11", "inspection_mismatch",
                              "inspection inside PQ: compared with the report of the last quarter ended before it",
                              f"Q{reference_q or 'start'} reported {reference}, observed {reference + 11} on {mid}, "
                              f"Q{pq} reported {a}",
                              inspections=[(mid, reference + 11)],
                              fires=[("inspection_mismatch", reference_q, "major")]))
        return specs

    def build_capital(self, spec: _Capital) -> Project:
        py = self.py
        project = self._new_project(spec.case)
        project.end_year = spec.end_year if spec.end_year is not None else py + 2
        project.start_year = min(project.start_year, project.end_year - 3, py)
        targets_list = self.default_targets() if spec.targets is None else spec.targets
        targets = {q: targets_list[q - 1] for q in range(1, 5)} if targets_list else {}
        if spec.status == "awaiting":
            targets = {}
        actual = self.on_plan(targets_list) if spec.actual is None else spec.actual
        gain = targets[4] - spec.start if targets else ZERO
        reports: list[ProgressReport] = []
        previous_absorbed = ZERO
        for q in sorted(actual):
            if q in spec.absorbed:
                absorbed = spec.absorbed[q]
            else:
                physical = (actual[q] - spec.start) / gain if gain > 0 else ZERO
                absorbed = (NOTIFIED_TOTAL * max(ZERO, physical)).quantize(CENT, rounding=ROUND_FLOOR)
            absorbed = max(absorbed, previous_absorbed)
            previous_absorbed = absorbed
            status, reported, decided = spec.timing.get(
                q, ("approved", self.qend(q) + timedelta(days=5), self.qend(q) + timedelta(days=10))
            )
            reports.append(ProgressReport(q, reported, actual[q], absorbed, status, decided, None))
        if spec.credits is None and spec.status == "awaiting":
            credits = [CapitalCredit("ملی", D(700), ZERO, ZERO, ZERO), CapitalCredit("استانی", D(500), ZERO, ZERO, ZERO)]
        else:
            credits = (spec.credits or _default_capital_credits)(previous_absorbed)
        record = ProjectYear(
            fiscal_year=py,
            progress_at_year_start=spec.start,
            status=spec.status,
            agreement_no=None if spec.status == "awaiting" else self._agreement_no(py, project),
            agreement_date=None if spec.status == "awaiting" else cal.year_start(py) + timedelta(days=30),
            credits=credits,
            targets=targets,
            reports=reports,
            last_modified=self.epoch.last_modified(cal.year_start(py) + timedelta(days=30), reports, _FixedTime()),
        )
        project.years[py] = record
        self._register_project(project)

        case = PlantedCase(spec.case, "inspection" if spec.inspections else "capital", spec.rule,
                           spec.description, spec.values, project.code, py)
        for rule, quarter, severity in spec.fires:
            active = cal.quarter_end(py, quarter) + timedelta(days=1) if rule in _PER_QUARTER else date.min
            self._add_expected(ExpectedDeviation(rule, project.code, py, quarter, severity, active, spec.case))
            case.expected.append((rule, project.code, quarter, severity))
        for rule, quarter, severity in spec.time_fires:
            case.expected.append((rule, project.code, quarter, severity))
        for i, (day, observed) in enumerate(spec.inspections):
            self._add_inspection(Inspection(project.code, day, observed, INSPECTORS[i % len(INSPECTORS)],
                                            INSPECTION_REMARKS[i % len(INSPECTION_REMARKS)]))
        self.cases.append(case)
        return project

    # ---------------------------------------------------------------- expense

    def expense_specs(self) -> list[_Expense]:
        pq = self.pq
        specs: list[_Expense] = []

        def shortfall(case: str, quantity: Decimal | None, fires: list, note: str) -> None:
            spent = None if quantity is None else quantity * 2
            specs.append(_Expense(case, "operation_shortfall", note,
                                  f"A planned 1000 in Q{pq}, delivered {quantity}", a_item=(quantity, spent),
                                  fires=fires))

        sf = lambda sev: [("operation_shortfall", "A", "PQ+", sev)]  # noqa: E731
        shortfall("OS-01", D(850), [], "ratio exactly 0.85: not below (edge, no flag)")
        shortfall("OS-02", D(849), sf("minor"), "ratio 0.849: minor")
        shortfall("OS-03", D("849.95"), [], "ratio 0.84995 rounds to 0.8500: near miss")
        shortfall("OS-04", D("849.94"), sf("minor"), "ratio 0.84994 rounds to 0.8499: fires")
        shortfall("OS-05", D(700), sf("minor"), "ratio exactly 0.70: still minor (edge)")
        shortfall("OS-06", D(699), sf("major"), "ratio 0.699: major")
        shortfall("OS-07", D(400), sf("major"), "ratio exactly 0.40: still major (edge)")
        shortfall("OS-08", D(399), sf("critical"), "ratio 0.399: critical")
        shortfall("OS-09", D(0), sf("critical"), "reported zero: critical")
        shortfall("OS-10", None, sf("critical"), "reported with quantity null (counts as 0): critical")
        specs.append(_Expense("OS-11", "operation_shortfall", "A never reported (B did): the rule needs a report of A",
                              "A planned 1000, no item", a_item=None))

        def overrun(case: str, spent: str, fires: list, note: str, unit_cost: Decimal | None = D(2)) -> None:
            specs.append(_Expense(case, "unit_cost_overrun", note,
                                  f"A delivered 1000, spent {spent}, unit cost {unit_cost}",
                                  a_item=(D(1000), D(spent)), a_unit_cost=unit_cost, fires=fires))

        uc = lambda sev: [("unit_cost_overrun", "A", "PQ+", sev)]  # noqa: E731
        overrun("UC-01", "2400", uc("minor"), "ratio exactly 1.20: minor edge")
        overrun("UC-02", "2399.9", uc("minor"), "ratio 1.19995 rounds to 1.2000: fires")
        overrun("UC-03", "2399.88", [], "ratio 1.19994 rounds to 1.1999: near miss")
        overrun("UC-04", "2390", [], "ratio 1.195: near miss")
        overrun("UC-05", "3000", uc("major"), "ratio exactly 1.50: major edge")
        overrun("UC-06", "2999.8", uc("minor"), "ratio 1.4999: just below major")
        overrun("UC-07", "4000", uc("major"), "ratio 2.0: above")
        overrun("UC-08", "5000", [], "unit cost null: rule not applicable", unit_cost=None)

        only_pq = [D(0)] * 4
        only_pq[pq - 1] = D(1000)
        b_only_pq = [D(0)] * 4
        b_only_pq[pq - 1] = D(500)
        specs.append(_Expense("EM-01", "missing_report", f"no performance item at all for Q{pq}, quantities planned",
                              f"A plans 1000, B plans 500 in Q{pq}", a_targets=only_pq, b_targets=b_only_pq,
                              a_item=None, b_reports=False, fires=[("missing_report", "agreement", pq, "major")]))
        specs.append(_Expense("EM-02", "missing_report", "A reported, B (also planned) not: the agreement has an item",
                              "items: A only", a_targets=only_pq, b_targets=b_only_pq, a_item=(D(1000), D(2000)),
                              b_reports=False))
        if pq < 4:
            later = [D(0)] * 4
            later[pq] = D(1000)
            b_later = [D(0)] * 4
            b_later[pq] = D(500)
            specs.append(_Expense("EM-03", "missing_report", f"no item for Q{pq} and nothing planned in it",
                                  f"quantities planned only in Q{pq + 1}", a_targets=later, b_targets=b_later,
                                  a_item=None, b_reports=False))
        specs.append(_Expense("EM-04", "missing_report", "AWAITING agreement, nothing reported: not checked",
                              "status AWAITING", status="awaiting", a_item=None, b_reports=False))
        specs.append(_Expense("EM-05", "missing_report", "CANCELLED agreement, nothing reported: not checked",
                              "status CANCELLED", status="cancelled", a_item=None, b_reports=False))

        item = (D(1000), D(2000))
        specs.append(_Expense("EA-01", "approval_overdue", "A's item pending, entered 16 days before the clock",
                              f"reported {self.days_ago(16)}, PENDING", a_item=item,
                              a_timing=("pending", self.days_ago(16), None),
                              fires=[("approval_overdue", "A", pq, "minor")]))
        specs.append(_Expense("EA-02", "approval_overdue", "pending, entered exactly 15 days before: edge, no flag",
                              f"reported {self.days_ago(15)}, PENDING", a_item=item,
                              a_timing=("pending", self.days_ago(15), None)))
        specs.append(_Expense("EA-03", "approval_overdue", "rejected, entered 16 days before",
                              f"reported {self.days_ago(16)}, REJECTED {self.days_ago(10)}", a_item=item,
                              a_timing=("rejected", self.days_ago(16), self.days_ago(10)),
                              fires=[("approval_overdue", "A", pq, "minor")]))
        specs.append(_Expense("EA-04", "approval_overdue", "A and B both pending 20 days: one deviation per item",
                              f"reported {self.days_ago(20)}, PENDING", a_item=item,
                              a_timing=("pending", self.days_ago(20), None),
                              b_timing_pq=("pending", self.days_ago(20), None),
                              fires=[("approval_overdue", "A", pq, "minor"), ("approval_overdue", "B", pq, "minor")]))

        ec = [("credit_inconsistency", "agreement", None, "major")]
        specs.append(_Expense("EC-01", "credit_inconsistency", "spent over allocated by exactly 0.5: edge, no flag",
                              "chapter 1 allocated 10000, spent 10000.5", a_item=item,
                              credits=_expense_credits_with(spent_1=D("10000.5"))))
        specs.append(_Expense("EC-02", "credit_inconsistency", "spent over allocated by 0.6",
                              "chapter 1 allocated 10000, spent 10000.6", a_item=item,
                              credits=_expense_credits_with(spent_1=D("10000.6")), fires=ec))
        specs.append(_Expense("EC-03", "credit_inconsistency", "excess 0.50005 rounds to 0.5001: fires",
                              "chapter 1 spent 10000.50005", a_item=item,
                              credits=_expense_credits_with(spent_1=D("10000.50005")), fires=ec))
        specs.append(_Expense("EC-04", "credit_inconsistency", "excess 0.50004 rounds to 0.5000: near miss",
                              "chapter 1 spent 10000.50004", a_item=item,
                              credits=_expense_credits_with(spent_1=D("10000.50004"))))
        specs.append(_Expense("EC-05", "credit_inconsistency", "notified over approved",
                              "chapter 1 approved 20000, notified 20100", a_item=item,
                              credits=_expense_credits_with(notified_1=D(20100)), fires=ec))
        specs.append(_Expense("EC-06", "credit_inconsistency", "allocated over notified by 1",
                              "chapter 2 notified 10000, allocated 10001", a_item=item,
                              credits=_expense_credits_with(allocated_2=D(10001)), fires=ec))
        specs.append(_Expense("EC-07", "credit_inconsistency", "two chapters broken: one deviation",
                              "chapter 1 spent 10001, chapter 2 allocated 10001", a_item=item,
                              credits=_expense_credits_with(spent_1=D(10001), allocated_2=D(10001)), fires=ec))
        specs.append(_Expense("EC-08", "credit_inconsistency", "CANCELLED agreement, spent over allocated",
                              "chapter 1 allocated 10000, spent 10100", status="cancelled", a_item=None, b_reports=False,
                              credits=_expense_credits_with(spent_1=D(10100)), fires=ec))
        specs.append(_Expense("EC-09", "credit_inconsistency", "AWAITING agreement, allocated while nothing notified",
                              "chapter 1 notified 0, allocated 500", status="awaiting", a_item=None, b_reports=False,
                              credits=lambda _s: [ExpenseCredit(1, D(20000), ZERO, D(500), None),
                                                  ExpenseCredit(2, D(10000), ZERO, None, None)], fires=ec))
        specs.append(_Expense("EC-10", "credit_inconsistency", "a chapter with null notified/allocated/spent: nulls are 0",
                              "chapter 5 approved 100, the rest null", a_item=item,
                              credits=_expense_credits_with(extra=[ExpenseCredit(5, D(100), None, None, None)])))
        specs.append(_Expense("EC-11", "credit_inconsistency", "allocated 50 against a null (= 0) notified",
                              "chapter 5 approved 100, notified null, allocated 50", a_item=item,
                              credits=_expense_credits_with(extra=[ExpenseCredit(5, D(100), None, D(50), None)]),
                              fires=ec))
        return specs

    def build_expense(self, spec: _Expense) -> Agreement:
        py, pq = self.py, self.pq
        portal_id, number, agency, county, program = self._new_agreement(spec.case, py)
        a_tpl, b_tpl = program.operations[0], program.operations[1]
        a_targets = spec.a_targets or [D(1000) if q == pq else D(0) for q in (1, 2, 3, 4)]
        b_targets = spec.b_targets or [D(500)] * 4
        op_a = ExpenseOperation(f"{program.code}-{a_tpl.suffix}", a_tpl.title, a_tpl.unit, a_targets, spec.a_unit_cost)
        op_b = ExpenseOperation(f"{program.code}-{b_tpl.suffix}", b_tpl.title, b_tpl.unit, b_targets, D("1.5"))
        on_time = lambda q: ("approved", self.qend(q) + timedelta(days=5), self.qend(q) + timedelta(days=10))  # noqa: E731
        if spec.status != "awaiting":
            if spec.a_item is not None:
                status, reported, decided = spec.a_timing or on_time(pq)
                op_a.performance.append(OperationReport(pq, spec.a_item[0], spec.a_item[1], reported, status, decided, None))
            if spec.b_reports:
                for q in self.epoch.closed(py):
                    if q == pq and spec.b_timing_pq:
                        status, reported, decided = spec.b_timing_pq
                    elif q <= pq:
                        status, reported, decided = on_time(q)
                    else:  # closed since, not yet due: reported a few days after the quarter ended
                        reported = min(self.qend(q) + timedelta(days=3), self.today)
                        decided = reported + timedelta(days=5)
                        status, decided = ("approved", decided) if decided <= self.today else ("pending", None)
                    if b_targets[q - 1] > 0:
                        op_b.performance.append(OperationReport(q, b_targets[q - 1], b_targets[q - 1] * D("1.5"),
                                                                reported, status, decided, None))
        spent = sum((r.spent or ZERO for op in (op_a, op_b) for r in op.performance), ZERO)
        if spec.credits is None and spec.status == "awaiting":
            credits = [ExpenseCredit(1, D(20000), None, None, None), ExpenseCredit(2, D(10000), ZERO, None, None)]
        else:
            credits = (spec.credits or _default_expense_credits)(spent)
        agreement = Agreement(
            portal_id=portal_id,
            agreement_no=number,
            fiscal_year=py,
            agency=agency,
            county=county,
            program_code=program.code,
            program_title=program.title,
            status=spec.status,
            exchanged_on=None if spec.status == "awaiting" else cal.year_start(py) + timedelta(days=30),
            credits=credits,
            operations=[op_a, op_b],
            modified_at=self.epoch.last_modified(cal.year_start(py) + timedelta(days=30),
                                                 [r for op in (op_a, op_b) for r in op.performance], _FixedTime()),
            case=spec.case,
        )
        self._register_agreement(agreement)
        case = PlantedCase(spec.case, "expense", spec.rule, spec.description, spec.values, number, py)
        for rule, who, quarter, severity in spec.fires:
            subject = number if who == "agreement" else f"{number}/{(op_a if who == 'A' else op_b).code}"
            if quarter == "PQ+":  # cumulative: holds at PQ and at every later closed quarter
                for q in range(pq, 5):
                    self._add_expected(ExpectedDeviation(rule, subject, py, q, severity,
                                                         cal.quarter_end(py, q) + timedelta(days=1), spec.case))
                    if q == pq or q in self.closed_after_pq():
                        case.expected.append((rule, subject, q, severity))
                continue
            if rule in ("missing_report", "approval_overdue"):
                case.expected.append((rule, subject, quarter, severity))  # booked by the bookkeeping
                continue
            active = cal.quarter_end(py, quarter) + timedelta(days=1) if rule in _PER_QUARTER else date.min
            self._add_expected(ExpectedDeviation(rule, subject, py, quarter, severity, active, spec.case))
            case.expected.append((rule, subject, quarter, severity))
        self.cases.append(case)
        return agreement

    def plant(self) -> None:
        for spec in self.capital_specs():
            self.build_capital(spec)
        for spec in self.expense_specs():
            self.build_expense(spec)


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


class _FixedTime:
    """A stand-in RNG for Epoch.stamp: planted records are stamped at 11:30."""

    def randint(self, a: int, b: int) -> int:
        return 11 if a == 7 else 30
