"""The expense agreements' planted cases (SABA), and how a case becomes an agreement.

Numbers used below (million rials):
  expense default: operation A (…-first) plans 1000 units in PQ only, unit cost 2;
                   operation B (…-second) plans 500 a quarter, unit cost 1.5, reported on plan;
                   chapter 1 20000/20000/10000/9000, chapter 2 10000/10000/9000/Σ spent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from simulator import calendar as cal
from simulator.model import Agreement, ExpectedDeviation, ExpenseCredit, ExpenseOperation, OperationReport
from simulator.planted.plan import ZERO, D, FixedTime, Plan, PlantedCase


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



class ExpensePlan(Plan):
    """The expense cases: each rule's edges, near misses and combinations, and their builder."""

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
                                                 [r for op in (op_a, op_b) for r in op.performance], FixedTime()),
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
            self.expect(case, rule, subject, quarter, severity)
        self.cases.append(case)
        return agreement
