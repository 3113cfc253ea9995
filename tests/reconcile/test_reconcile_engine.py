"""The engine's pure parts: the registry, thresholds from config, per-rule counts, mis-tuned warning."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from fact_store import evaluate
from reconcile.judge import RuleStats, enabled_rules
from reconcile.findings import round4
from reconcile.rules import RULE_IDS, RULES
from reconcile.settings import RulesConfig
from reconcile_builders import agreement, as_of, config, item, operation, project, report


def test_registry_holds_every_rule_of_the_catalogue():
    assert {(r.kind, r.id) for r in RULES} == {
        ("capital", i) for i in ("progress_lag", "missing_report", "approval_overdue", "progress_regression",
                                 "spend_progress_gap", "credit_inconsistency", "completion_overdue",
                                 "inspection_mismatch")
    } | {("expense", i) for i in ("operation_shortfall", "unit_cost_overrun", "missing_report", "approval_overdue",
                                  "credit_inconsistency")}
    assert len(RULE_IDS) == 10
    for rule in RULES:
        assert rule.rationale and rule.unit in ("project_year", "agreement", "operation")


def test_thresholds_and_switches_come_from_config():
    rules = dict((r.name, lim) for r, lim in enabled_rules(config(rules={
        "progress_lag": {"minor": 4, "major": 12.5, "critical": 25},
        "operation_shortfall": {"threshold": 0.9},
        "unit_cost_overrun": {"enabled": False},
    })))
    assert (rules["capital.progress_lag"].minor, rules["capital.progress_lag"].major) == (Decimal(4), Decimal("12.5"))
    assert rules["expense.operation_shortfall"].threshold == Decimal("0.9")  # exactly, not a float
    assert "expense.unit_cost_overrun" not in rules
    assert rules["capital.completion_overdue"].major_years == 2


def test_counts_subjects_checked_and_flagged_per_rule():
    projects = [project(reports=[report(1, 30)]), project(reports=[report(1, 10)]), project(reports=[])]
    agreements = [agreement(operations=[operation(items=[item(1, 50)]), operation(code="x", items=[item(1, 100)])])]
    findings, stats = evaluate(projects, agreements, as_of("1405/05/01"), enabled_rules(config()))
    lag = stats["capital.progress_lag"]
    assert (lag.checked, lag.flagged, lag.findings) == (2, 1, 1)  # a project without reports is not checked
    shortfall = stats["expense.operation_shortfall"]
    assert (shortfall.checked, shortfall.flagged) == (2, 1)
    assert {f.rule for f in findings} >= {"progress_lag", "operation_shortfall"}


def test_more_than_half_flagged_is_mis_tuned_exactly_half_is_not():
    assert not RuleStats("capital", "progress_lag", checked=4, flagged=2).mis_tuned
    assert RuleStats("capital", "progress_lag", checked=4, flagged=3).mis_tuned
    assert not RuleStats("capital", "progress_lag", checked=200001, flagged=100000).mis_tuned
    assert RuleStats("capital", "progress_lag", checked=200001, flagged=100001).mis_tuned
    assert not RuleStats("capital", "progress_lag").mis_tuned
    assert RuleStats("capital", "x", checked=3, flagged=1).share == Decimal("0.3333")


def test_round4_is_half_away_from_zero():
    assert round4(Decimal("0.849996")) == Decimal("0.8500")
    assert round4(Decimal("0.84995")) == Decimal("0.8500")
    assert round4(Decimal("0.849949")) == Decimal("0.8499")
    assert round4(Decimal("-0.00005")) == Decimal("-0.0001")
    assert round4(Decimal("4.99995")) == Decimal("5.0000")


def test_each_rules_config_section_is_built_from_its_limits():
    # one source for a threshold: the Limits defaults; the config model offers the same keys and defaults
    assert list(RulesConfig.model_fields) == list(RULE_IDS)
    defaults = RulesConfig()
    for rule in RULES:
        section = getattr(defaults, rule.id)
        limits = {f.name: f.default for f in dataclasses.fields(rule.Limits)}
        assert set(type(section).model_fields) == {"enabled", *limits}, rule.name
        assert section.enabled is True
        assert rule.limits_from(section) == rule.Limits(), rule.name


def test_a_run_collects_its_young_garbage_less_often_and_restores_the_pace_after(tmp_path):
    import gc

    import reconcile
    from reconcile.judge import YOUNG_COLLECTIONS_EVERY
    from reconcile.settings import ReconcileConfig
    from store.db import open_store

    engine = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    try:
        reconcile.run(engine, ReconcileConfig(), on_progress=lambda _said: seen.append(gc.get_threshold()))
        assert seen and all(t == (max(before[0], YOUNG_COLLECTIONS_EVERY), *before[1:]) for t in seen), seen
        assert gc.get_threshold() == before
        gc.set_threshold(0)  # a process that turned the collector off keeps it off
        seen.clear()
        reconcile.run(engine, ReconcileConfig(), on_progress=lambda _said: seen.append(gc.get_threshold()))
        assert seen and all(t[0] == 0 for t in seen) and gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*before)
        engine.dispose()


def test_runs_judging_at_once_restore_the_pace_when_the_last_ends():
    import gc

    from reconcile.judge import YOUNG_COLLECTIONS_EVERY, fewer_collections

    before = gc.get_threshold()
    first, second = fewer_collections(), fewer_collections()
    try:
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)  # the first run ends while the second judges on
        assert gc.get_threshold()[0] == max(before[0], YOUNG_COLLECTIONS_EVERY)
        second.__exit__(None, None, None)
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)
