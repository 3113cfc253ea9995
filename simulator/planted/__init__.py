"""The planting plan: records built so that each reconciliation rule fires exactly where planned.

Every case is one project or agreement of the plant year (`Epoch.plant_year`), shaped around the
plant quarter `PQ` — the latest quarter whose report is already overdue on the clock's day, so every
time-driven rule has a closed, due quarter to work with. Earlier quarters of a planted record are
on plan (reported on time, approved, on target, spend in step with progress), so a case fires only
the rule(s) it lists. Each rule gets a case exactly AT each threshold and severity edge, one just
above, and near misses just below, including the catalogue's rounding to 4 places (a gap of
4.99995 rounds to 5 and fires; 4.99994 rounds to 4.9999 and does not).

The expected deviations of a case are written in the plan, not computed by rules.
`world.expected_deviations()` is the union of these and of the time-driven bookkeeping of
truth.py; tests/simulator recomputes the catalogue independently and compares.

The package is split as reconcile/rules/ is, by domain: plan.py holds what every case shares
(`PlantedCase`, the plant year's on-plan helpers, the booking of a case's deviations); capital.py
the capital projects' cases and builder; expense.py the expense agreements'.
"""

from __future__ import annotations

from simulator.planted.capital import CapitalPlan
from simulator.planted.expense import ExpensePlan
from simulator.planted.plan import PlantedCase

__all__ = ["PlantedCase", "Planter"]


class Planter(CapitalPlan, ExpensePlan):
    """Builds every planted case into the world through the callbacks the world provides."""

    def plant(self) -> None:
        for spec in self.capital_specs():
            self.build_capital(spec)
        for spec in self.expense_specs():
            self.build_expense(spec)
