"""Reconciliation: the rule catalogue (shared/reconciliation-rules.md) run over the store.

Public surface::

    reconcile.run(engine, config, *, as_of=None, years=None) -> RunResult   # judge, record, give life
    RunResult .run_id .as_of .years .findings [Finding] .stats {'kind.rule': RuleStats} .life .status(f)
    Finding   .rule .kind .subject .fiscal_year .quarter .severity .planned .actual .measure .numbers
              .message .evidence_table .evidence_id .sync_run_id .agency_code .county_id .county .key

Where things are: rules/ (one class per rule, pure), facts.py (what rules read), load.py (set-wise
SQL into facts), engine.py (a run), lifecycle.py (deviations' life), deviations.py (listing,
acknowledging, dismissing), inspections.py (field-visit CSV import).
"""

from reconcile.engine import RuleStats, RunResult, evaluate, run
from reconcile.findings import SEVERITIES, Finding

__all__ = ["SEVERITIES", "Finding", "RuleStats", "RunResult", "evaluate", "run"]
