"""The reconciliation's section of config.yaml: the as-of day, deadlines, workers, each rule's
thresholds (``reconcile.rules.<id>``), and the routing of agencies to expert groups.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field, field_validator

from foundation.settings import Strict
from foundation.vocabulary import Group


class _Rule(Strict):
    enabled: bool = True


class ProgressLagRule(_Rule):
    """gap = target − actual in points: minor ≥ minor, major ≥ major, critical ≥ critical."""

    minor: float = 5
    major: float = 15
    critical: float = 30


class MissingReportRule(_Rule):
    pass


class ApprovalOverdueRule(_Rule):
    pass


class ProgressRegressionRule(_Rule):
    tolerance: float = 0.5  # points a report may fall below the previous one before it flags


class SpendProgressGapRule(_Rule):
    major: float = 0.30  # spend_share − physical_share
    critical: float = 0.50


class CreditInconsistencyRule(_Rule):
    tolerance: float = 0.5  # million rials by which one stage may exceed the one before it


class CompletionOverdueRule(_Rule):
    major_years: int = 2  # years past the planned end year (1 year is minor)
    critical_years: int = 3


class InspectionMismatchRule(_Rule):
    major: float = 10  # points between observed and reported progress
    critical: float = 25


class OperationShortfallRule(_Rule):
    threshold: float = 0.85  # flags when actual_cum / planned_cum is below this
    minor: float = 0.70  # ratio ≥ minor is minor
    major: float = 0.40  # minor > ratio ≥ major is major; below major is critical


class UnitCostOverrunRule(_Rule):
    minor: float = 1.20  # (spent_cum / actual_cum) / unitCost ≥ minor flags
    major: float = 1.50


class RulesConfig(Strict):
    progress_lag: ProgressLagRule = Field(default_factory=ProgressLagRule)
    missing_report: MissingReportRule = Field(default_factory=MissingReportRule)
    approval_overdue: ApprovalOverdueRule = Field(default_factory=ApprovalOverdueRule)
    progress_regression: ProgressRegressionRule = Field(default_factory=ProgressRegressionRule)
    spend_progress_gap: SpendProgressGapRule = Field(default_factory=SpendProgressGapRule)
    credit_inconsistency: CreditInconsistencyRule = Field(default_factory=CreditInconsistencyRule)
    completion_overdue: CompletionOverdueRule = Field(default_factory=CompletionOverdueRule)
    inspection_mismatch: InspectionMismatchRule = Field(default_factory=InspectionMismatchRule)
    operation_shortfall: OperationShortfallRule = Field(default_factory=OperationShortfallRule)
    unit_cost_overrun: UnitCostOverrunRule = Field(default_factory=UnitCostOverrunRule)


class ReconcileConfig(Strict):
    as_of: date | None = None  # None: today in Asia/Tehran
    report_due_days: int = Field(default=15, ge=0, le=120)
    approval_due_days: int = Field(default=15, ge=0, le=120)
    # processes that read and judge a large store's chunks; None: one per CPU (at most 4) from
    # 20,000 subjects up, 0: always in the run's own process (reconcile/parallel.py)
    workers: int | None = Field(default=None, ge=0, le=16)
    rules: RulesConfig = Field(default_factory=RulesConfig)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: Any) -> Any:
        if isinstance(value, str):
            from foundation.jalali import parse_day

            return parse_day(value)
        return value


class RoutingConfig(Strict):
    default: Group = "consolidation"
    agencies: dict[str, Group] = Field(default_factory=dict)  # agency code -> group

    @field_validator("agencies", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            from foundation.persian import to_ascii_digits

            return {to_ascii_digits(str(k)).strip(): v for k, v in value.items()}
        return value
