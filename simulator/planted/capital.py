"""The capital projects' planted cases (Nezarat-4), and how a case becomes a project.

Numbers used below (million rials, percent):
  capital default: start 20, targets 28/36/44/52 (8 points a quarter), on-plan actual = target,
                   credits ملی 700/600/600/…, استانی 500/400/400/… → notified_total 1000,
                   absorbed[q] = 1000 × physical share (so spend share − physical share = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

from simulator import calendar as cal
from simulator.model import CapitalCredit, Inspection, ProgressReport, Project, ProjectYear
from simulator.planted.plan import ZERO, D, FixedTime, Plan, PlantedCase, fmt
from simulator.reference import INSPECTION_REMARKS, INSPECTORS

CENT = D("0.01")
NOTIFIED_TOTAL = D(1000)


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



class CapitalPlan(Plan):
    """The capital cases: each rule's edges, near misses and combinations, and their builder."""

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
                                  f"physical share {fmt(physical)}, absorbed {fmt(absorbed[pq])} of 1000 notified, "
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
            last_modified=self.epoch.last_modified(cal.year_start(py) + timedelta(days=30), reports, FixedTime()),
        )
        project.years[py] = record
        self._register_project(project)

        case = PlantedCase(spec.case, "inspection" if spec.inspections else "capital", spec.rule,
                           spec.description, spec.values, project.code, py)
        for rule, quarter, severity in spec.fires:
            self.expect(case, rule, project.code, quarter, severity)
        for rule, quarter, severity in spec.time_fires:
            case.expected.append((rule, project.code, quarter, severity))
        for i, (day, observed) in enumerate(spec.inspections):
            self._add_inspection(Inspection(project.code, day, observed, INSPECTORS[i % len(INSPECTORS)],
                                            INSPECTION_REMARKS[i % len(INSPECTION_REMARKS)]))
        self.cases.append(case)
        return project
