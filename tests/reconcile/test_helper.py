"""A large run on SQLite (a full one, or an incremental one after a large change) judges the
year-to-date expense rules in a helper process (reconcile/helper.py): a copy of the run's process
from a process of one thread, else a new interpreter. Whatever judged them, the store must end the
same: the same deviations with the same ids, figures, sentences and fingerprints, the same events,
the same counts per rule. Two real SQLite stores built alike, one run with a real helper process,
one without; the helper's size thresholds are lowered for these small stores (HELP_FROM,
HELP_CHANGED_FROM: constants of the module, not mocks) and BUDGETWATCH_HELPER_FORK=0 chooses the
new interpreter."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import reconcile
from reconcile import helper
from reconcile.judge import enabled_rules
from store.db import open_store
from store.models import Deviation, OperationPerformance, ProgressReport, ReconcileRun
from reconcile_builders import config, day, recorded, sync_run, varied_store

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


def _synced_change(engine) -> None:
    """Another operation's quantities and another report, written as a sync writes them (marked with
    a new sync run: what an incremental run judges)."""
    perf, pr = OperationPerformance.__table__, ProgressReport.__table__
    with engine.begin() as conn:
        run = sync_run(conn)
        conn.execute(sa.update(perf).where(perf.c.id % 5 == 1).values(quantity=perf.c.quantity * Decimal("0.4"),
                                                                      last_run_id=run))
        conn.execute(sa.update(pr).where(pr.c.id % 6 == 1).values(progress=Decimal(3), last_run_id=run))


@pytest.mark.parametrize("fork", ["1", "0"], ids=["a copy of the run's process", "a new interpreter"])
def test_a_run_with_a_helper_records_exactly_what_a_run_alone_records(_migrated, tmp_path, monkeypatch, fork):
    alone, helped = _store(_migrated, tmp_path / "alone.db"), _store(_migrated, tmp_path / "helped.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setattr(helper, "HELP_CHANGED_FROM", 1)
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 1)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", fork)
    assert helper.forkable() is (fork == "1")  # this test's process has one thread
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
    # an incremental run after a sync changed agreements with operations (HELP_CHANGED_FROM: 1)
    _synced_change(alone)
    _synced_change(helped)
    reconcile.run(alone, config(), as_of=day("1405/09/21"), keep=True, incremental=True)
    said_then = len(said)
    result = reconcile.run(helped, config(), as_of=day("1405/09/21"), keep=False, incremental=True,
                           on_progress=said.append)
    assert result.scope == "incremental"
    assert sum("in a helper process" in line for line in said) == 3  # the helper judged in each run
    assert any("in a helper process" in line for line in said[said_then:])
    assert not any(line.startswith(f"judging {n}/") and name in line for line in said
                   for n, name in ((9, "operation_shortfall"), (10, "unit_cost_overrun")))
    a, b = recorded(alone), recorded(helped)
    assert b[0] == a[0] and b[1] == a[1] and b[2] == a[2]
    assert {row.rule for row in a[0]} >= {"operation_shortfall", "unit_cost_overrun", "progress_lag"}
    assert any(event.event == "updated" or event.event == "resolved" for event in a[1])
    last_rules = a[2][-1][0]  # the change made findings of the helper's rules, judged by it in the other store
    assert last_rules["expense.operation_shortfall"]["findings"] + last_rules["expense.unit_cost_overrun"]["findings"] > 0
    assert _helper_folders() == folders  # its file is gone with it
    alone.dispose()
    helped.dispose()


def test_only_a_large_sqlite_run_that_keeps_nothing_is_helped(_migrated, tmp_path, monkeypatch):
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
    _synced_change(engine)  # an incremental run whose changed agreements have fewer operations than…
    monkeypatch.setattr(helper, "HELP_CHANGED_FROM", 10_000)
    reconcile.run(engine, config(), as_of=day("1405/09/03"), keep=False, incremental=True, on_progress=said.append)
    assert not any("helper" in line for line in said)  # …pays for a helper judges them itself
    monkeypatch.setattr(helper, "HELP_CHANGED_FROM", 1)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")  # a new interpreter costs more: its own threshold
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 10_000)
    assert not helper.worth_helping(9_999) and helper.worth_helping(10_000) and helper.worth_helping(None)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "1")
    assert helper.worth_helping(1) and not helper.worth_helping(0)
    engine.dispose()


def test_a_helper_is_a_copy_of_the_run_only_from_a_process_of_one_thread(monkeypatch):
    """A lock another thread held at a fork would stay held in the copy for ever: from the service
    (a scheduler's threads) the helper is a new interpreter."""
    monkeypatch.delenv("BUDGETWATCH_HELPER_FORK", raising=False)
    assert threading.active_count() == 1 and helper.forkable()
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not helper.forkable()
    finally:
        release.set()
        other.join()
    assert helper.forkable()
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")
    assert not helper.forkable()


def test_a_copy_whose_run_is_gone_stops_and_removes_its_folder(tmp_path):
    folder = tmp_path / "budgetwatch-helper-x"
    folder.mkdir()
    request = {"url": "sqlite:///unused.db", "settings": config().model_dump(mode="json"), "day": "1405-09-02",
               "years": [1405], "rules": [8], "path": str(folder / "found.pickle"), "parent": 1, "only": None}
    copy = helper._fork(request, folder / "stderr.txt")  # its parent is this process, not process 1
    copy.communicate()
    assert copy.returncode == 1 and copy.stdout.closed
    assert not folder.exists()  # no run is left to remove its file: it did


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
