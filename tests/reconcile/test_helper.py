"""A large full run on SQLite judges the year-to-date expense rules in a helper process
(reconcile/helper.py). Whatever judged them, the store must end the same: the same deviations with
the same ids, figures, sentences and fingerprints, the same events, the same counts per rule. Two
real SQLite stores built alike, one run with a real helper process, one without; the helper's size
threshold is lowered for these small stores (HELP_FROM: a constant of the module, not a mock)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import reconcile
from reconcile import helper
from reconcile.judge import enabled_rules
from store.db import open_store
from store.models import Deviation, OperationPerformance, ProgressReport, ReconcileRun
from reconcile_builders import config, day, recorded, varied_store

HELPED = set(helper.HELPED)


def _store(_migrated, path: Path, seed: int = 11):
    engine = open_store(_migrated.sqlite_copy(path))
    varied_store(engine, random.Random(seed))
    return engine


def _change(engine) -> None:
    """Other figures for the helper's rules and the run's own: an operation's quantities and a report."""
    perf, pr = OperationPerformance.__table__, ProgressReport.__table__
    with engine.begin() as conn:
        conn.execute(sa.update(perf).where(perf.c.id % 3 == 0).values(quantity=perf.c.quantity * Decimal("0.5")))
        conn.execute(sa.update(pr).where(pr.c.id % 4 == 0).values(progress=Decimal(5)))


def _helper_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("budgetwatch-helper-*"))


def test_a_run_with_a_helper_records_exactly_what_a_run_alone_records(_migrated, tmp_path, monkeypatch):
    alone, helped = _store(_migrated, tmp_path / "alone.db"), _store(_migrated, tmp_path / "helped.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    # this test's own temporary folder: another test's helper may come and go in the shared one
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    folders = _helper_folders()
    assert not folders
    said: list[str] = []
    for when, change in (("1405/09/02", False), ("1405/09/20", True)):
        if change:  # a full run after a change: the comparison with stored deviations, helped too
            _change(alone)
            _change(helped)
        reconcile.run(alone, config(), as_of=day(when), keep=True)  # kept findings: never helped
        result = reconcile.run(helped, config(), as_of=day(when), keep=False, on_progress=said.append)
        assert result.scope == "full"
    assert any("in a helper process" in line for line in said)  # the helper did judge
    assert not any(line.startswith(f"judging {n}/") and name in line for line in said
                   for n, name in ((9, "operation_shortfall"), (10, "unit_cost_overrun")))
    a, b = recorded(alone), recorded(helped)
    assert b[0] == a[0] and b[1] == a[1] and b[2] == a[2]
    assert {row.rule for row in a[0]} >= {"operation_shortfall", "unit_cost_overrun", "progress_lag"}
    assert any(event.event == "updated" or event.event == "resolved" for event in a[1])
    assert _helper_folders() == folders  # its file is gone with it
    alone.dispose()
    helped.dispose()


def test_only_a_large_full_sqlite_run_that_keeps_nothing_is_helped(_migrated, tmp_path, monkeypatch):
    engine = _store(_migrated, tmp_path / "store.db")
    names = [rule.name for rule, _ in enabled_rules(config())]
    assert helper.helped(engine, names, keep=False) == []  # 120 performance rows: not worth a process
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    assert [names[i] for i in helper.helped(engine, names, keep=False)] == list(helper.HELPED)
    assert helper.helped(engine, names, keep=True) == []
    assert helper.helped(engine, [n for n in names if n not in HELPED], keep=False) == []
    said: list[str] = []
    # a what-if holds no write lock: a helper could read another moment of the store than the run's
    reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False, dry_run=True, on_progress=said.append)
    reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    reconcile.run(engine, config(), as_of=day("1405/09/03"), keep=False, incremental=True, on_progress=said.append)
    assert not any("helper" in line for line in said)  # nor an incremental run: it judges few subjects itself
    engine.dispose()


def test_a_helper_that_fails_fails_the_run_saying_so_and_records_nothing(_migrated, tmp_path, monkeypatch):
    engine = _store(_migrated, tmp_path / "store.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    perf = OperationPerformance.__table__
    with engine.begin() as conn:  # a figure no reader can read, in a row only the helper's rules read
        conn.execute(sa.update(perf).where(perf.c.id == 3).values(quantity=sa.literal_column("'x'")))
    with pytest.raises(RuntimeError, match=r"the helper process judging expense\.operation_shortfall, "
                                           r"expense\.unit_cost_overrun failed: InvalidOperation"):
        reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Deviation.__table__)).scalar() == 0
        run = conn.execute(sa.select(ReconcileRun.__table__)).one()
    assert run.status == "failed" and "the helper process judging" in run.stats["error"]
    engine.dispose()


def test_a_helper_whose_run_is_gone_stops(_migrated, tmp_path):
    engine = _store(_migrated, tmp_path / "store.db")
    settings = config()
    folder = tmp_path / "budgetwatch-helper-x"
    folder.mkdir()
    request = {"url": str(engine.url), "settings": settings.model_dump(mode="json"), "day": "1405-09-02",
               "years": [1405], "rules": [8], "path": str(folder / "found.pickle"), "parent": 1}  # not its parent
    done = subprocess.run([sys.executable, "-m", "reconcile.helper"], input=json.dumps(request), text=True,
                          capture_output=True, timeout=60)
    assert done.returncode != 0 and "the run that started this helper is gone" in done.stderr
    assert not folder.exists()  # no run is left to remove its file: it did
    engine.dispose()


def test_the_helper_reads_the_run_settings_as_the_run_does():
    settings = config(rules={"operation_shortfall": {"threshold": 0.9}, "unit_cost_overrun": {"enabled": False}})
    again = type(settings).model_validate(json.loads(json.dumps(settings.model_dump(mode="json"))))
    assert [(r.name, lim) for r, lim in enabled_rules(again)] == [(r.name, lim) for r, lim in enabled_rules(settings)]
    assert dict((r.name, lim) for r, lim in enabled_rules(again))["expense.operation_shortfall"].threshold == \
        Decimal("0.9")
