"""Reconciliation: the rule catalogue (shared/reconciliation-rules.md) run over the store.

Public surface::

    reconcile.run(engine, settings, *, as_of=None, years=None, on_progress=None, full=False,
                  dry_run=False, keep=True, show=None) -> RunResult
        # judge, record, give life; settings = config.reconcile (reconcile.settings.ReconcileConfig)
    RunResult .run_id .as_of .years .findings [Finding] (keep) .found .stats {'kind.rule': RuleStats}
              .life .status(f) .what_if (why nothing was recorded) .scope (full | incremental)
    Finding   .rule .kind .subject .fiscal_year .quarter .severity .planned .actual .measure .numbers
              .message .evidence_table .evidence_id .sync_run_id .agency_code .county_id .county .key

Where things are: rules/ (one class per rule: its condition set-wise in SQL, its exact verdict and
sentence in Python), scope.py (what a run judges, in SQL terms: years, calendar, subjects),
changes.py (which subjects changed since the last run), judge.py (enabled rules and their
statistics), engine.py (a run), lifecycle.py (deviations' life, compared in the database),
deviations.py (listing, acknowledging, dismissing), inspections.py (field-visit import), facts.py
(the as-of day's calendar, and the shapes of facts tests describe), settings.py (the config
sections ``reconcile`` and ``routing``), wording.py (the Persian words of findings).
"""

from foundation.lazy import lazy_exports

# Exported lazily (PEP 562): the configuration imports reconcile.settings, and so this package, in
# every command; the engine loads only for the commands that judge.
_WHERE = {"RunResult": "reconcile.engine", "run": "reconcile.engine", "SEVERITIES": "reconcile.findings",
          "Finding": "reconcile.findings", "RuleStats": "reconcile.judge"}

__all__ = sorted(_WHERE)


__getattr__ = lazy_exports(__name__, _WHERE)
