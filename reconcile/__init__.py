"""Reconciliation: the rule catalogue (shared/reconciliation-rules.md) run over the store.

Public surface::

    reconcile.run(engine, settings, *, as_of=None, years=None, on_progress=None) -> RunResult
        # judge, record, give life; settings = config.reconcile (reconcile.settings.ReconcileConfig)
    RunResult .run_id .as_of .years .findings [Finding] .stats {'kind.rule': RuleStats} .life .status(f)
    Finding   .rule .kind .subject .fiscal_year .quarter .severity .planned .actual .measure .numbers
              .message .evidence_table .evidence_id .sync_run_id .agency_code .county_id .county .key

Where things are: rules/ (one class per rule, pure), facts.py (what rules read), load.py (set-wise
SQL into facts), judge.py (rules on facts; one chunk judged), engine.py (a run), parallel.py (chunks
judged in worker processes), lifecycle.py (deviations' life), deviations.py (listing,
acknowledging, dismissing), inspections.py (field-visit CSV import), settings.py (the config
sections ``reconcile`` and ``routing``), wording.py (the Persian words of findings).
"""

from reconcile.engine import RunResult, run
from reconcile.findings import SEVERITIES, Finding
from reconcile.judge import RuleStats, evaluate

__all__ = ["SEVERITIES", "Finding", "RuleStats", "RunResult", "evaluate", "run"]
