"""The rule catalogue as code: one registry line per rule of reconciliation-rules.md.

Adding a rule: write its class (reconcile/rules/capital.py or expense.py, see rules/base.py) with
its thresholds as its ``Limits``, its tests (tests/reconcile/), one line here, and its section in
config.yaml (reconcile/settings.py builds the ``reconcile.rules.<id>`` model from the Limits). The
engine runs every rule listed whose ``reconcile.rules.<id>.enabled`` is true.
"""

from __future__ import annotations

from reconcile.rules import capital, expense
from reconcile.rules.base import Rule

RULES: tuple[Rule, ...] = (
    capital.ProgressLag(),
    capital.MissingReport(),
    capital.ApprovalOverdue(),
    capital.ProgressRegression(),
    capital.SpendProgressGap(),
    capital.CreditInconsistency(),
    capital.CompletionOverdue(),
    capital.InspectionMismatch(),
    expense.OperationShortfall(),
    expense.UnitCostOverrun(),
    expense.MissingReport(),
    expense.ApprovalOverdue(),
    expense.CreditInconsistency(),
)

RULE_IDS: tuple[str, ...] = tuple(dict.fromkeys(rule.id for rule in RULES))


def by_name(name: str) -> Rule:
    """A rule by 'kind.id' ('capital.progress_lag')."""
    for rule in RULES:
        if rule.name == name:
            return rule
    raise KeyError(name)


__all__ = ["RULES", "RULE_IDS", "Rule", "by_name"]
