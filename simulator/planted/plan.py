"""What every planted case shares: its record (`PlantedCase`), the plant year's on-plan figures, and
the booking of its deviations into the world's expected deviations.

`Plan` is the base of the capital and expense plans (capital.py, expense.py): it holds the epoch
(plant year `py`, plant quarter `pq`) and the callbacks through which the world lends its
identities and takes the built records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from simulator import calendar as cal
from simulator.epoch import Epoch
from simulator.model import Agreement, ExpectedDeviation, Inspection, Project
from simulator.reference import Program

D = Decimal
ZERO = D(0)

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



class Plan:
    """The plant year's helpers and the world's callbacks, shared by the capital and expense plans."""

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


    def expect(self, case: PlantedCase, rule: str, subject: str, quarter: int | None, severity: str) -> None:
        """Book a value-driven deviation of `case`: per-quarter rules hold from the day after the quarter."""
        active = cal.quarter_end(self.py, quarter) + timedelta(days=1) if rule in _PER_QUARTER else date.min
        self._add_expected(ExpectedDeviation(rule, subject, self.py, quarter, severity, active, case.case))
        case.expected.append((rule, subject, quarter, severity))


def fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


class FixedTime:
    """A stand-in RNG for Epoch.stamp: planted records are stamped at 11:30."""

    def randint(self, a: int, b: int) -> int:
        return 11 if a == 7 else 30

