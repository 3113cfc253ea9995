"""The whole path over real HTTP: simulator -> sync -> field inspections -> reconcile.

The simulator plants every situation the rule catalogue flags (and near misses just under each
threshold) and knows which deviations a correct reconciliation finds; the store must lead the
engine to exactly those, no more, no fewer.
"""

from __future__ import annotations

import csv
from datetime import timedelta

import pytest

import reconcile
from reconcile.inspections import import_file
from store.db import open_store
from sync import run_sync
from tests.sync.conftest import CLOCK, store_config


def _found(result) -> set[tuple]:
    return {(f.rule, f.subject, f.fiscal_year, f.quarter, f.severity) for f in result.findings}


def _expected(world, as_of) -> set[tuple]:
    return {(d["rule"], d["subject"], d["fiscal_year"], d["quarter"], d["severity"])
            for d in world.expected_deviations(as_of)}


def test_sync_then_reconcile_finds_exactly_what_the_simulator_planted(simulator_factory, store_url, monkeypatch, tmp_path):
    sim = simulator_factory(projects=150, agreements=90)
    engine = open_store(store_url)
    config = store_config(sim, store_url, monkeypatch)
    assert all(o.status == "success" for o in run_sync(engine, config.sources))

    visits = tmp_path / "visits.csv"
    with visits.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, ["project_code", "date", "observed_progress", "inspector", "remarks"])
        writer.writeheader()
        writer.writerows(sim.world.inspections())
    assert import_file(engine, visits).inserted == len(sim.world.inspections())

    as_of = CLOCK.date()
    result = reconcile.run(engine, config.reconcile, as_of=as_of)
    expected = _expected(sim.world, as_of)
    found = _found(result)
    assert expected, "the simulator planted nothing"
    assert found - expected == set(), "flagged what was not planted"
    assert expected - found == set(), "missed what was planted"
    assert {rule for rule, *_ in expected} >= {
        "progress_lag", "missing_report", "approval_overdue", "progress_regression", "spend_progress_gap",
        "credit_inconsistency", "completion_overdue", "inspection_mismatch", "operation_shortfall",
        "unit_cost_overrun",
    }


@pytest.mark.slow_on_postgresql  # time-driven runs on PostgreSQL: tests/reconcile/test_incremental.py
def test_time_driven_deviations_appear_later_without_a_new_sync(simulator_factory, store_url, monkeypatch):
    sim = simulator_factory(projects=150, agreements=90)
    engine = open_store(store_url)
    config = store_config(sim, store_url, monkeypatch)
    run_sync(engine, config.sources)
    no_visits = lambda found: {f for f in found if f[0] != "inspection_mismatch"}  # noqa: E731 - none imported here
    early_day, later_day = CLOCK.date(), sim.world.epoch.next_close
    early = reconcile.run(engine, config.reconcile, as_of=early_day)
    later = reconcile.run(engine, config.reconcile, as_of=later_day)  # no sync in between: only days passed
    assert _found(early) == no_visits(_expected(sim.world, early_day))
    assert _found(later) == no_visits(_expected(sim.world, later_day))
    appeared = {f[0] for f in _found(later) - _found(early)}
    assert appeared and appeared <= {"missing_report", "approval_overdue", "completion_overdue"}
