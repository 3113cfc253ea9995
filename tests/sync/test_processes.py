"""Each source's sync in a process of its own (sync/processes.py): events and outcomes reach the caller."""

from __future__ import annotations

import os
from collections import Counter

from store.db import open_store
from sync.engine import SyncObserver, run_sync
from tests.sync.conftest import store_config
from tests.sync.test_sync import _assert_store_equals_truth


class Recorder(SyncObserver):
    def __init__(self) -> None:
        self.events: Counter = Counter()
        self.queued: Counter = Counter()
        self.finished_outcomes = []

    def started(self, source, run_id, years, mode):
        self.events[source, "started"] += 1

    def page(self, source, year, page_no, rows, announced):
        self.events[source, "page"] += 1

    def details_queued(self, source, n):
        self.queued[source] += n

    def detail_done(self, source):
        self.events[source, "detail_done"] += 1

    def finished(self, outcome):
        self.finished_outcomes.append(outcome)


def test_both_sources_run_in_their_own_processes_and_report_every_event(simulator_factory, sqlite_url, monkeypatch):
    sim = simulator_factory(projects=40, agreements=20)
    engine = open_store(sqlite_url)
    recorder = Recorder()
    outcomes = run_sync(engine, store_config(sim, sqlite_url, monkeypatch), observer=recorder)
    assert [(o.source, o.status) for o in outcomes] == [("nezarat4", "success"), ("saba", "success")]
    _assert_store_equals_truth(engine, sim)
    for source in ("nezarat4", "saba"):
        assert recorder.events[source, "started"] == 1 and recorder.events[source, "page"] > 0
        assert recorder.events[source, "detail_done"] == recorder.queued[source] > 0
    assert sorted(o.source for o in recorder.finished_outcomes) == ["nezarat4", "saba"]
    assert {o.source: o.run_id for o in recorder.finished_outcomes} == {o.source: o.run_id for o in outcomes}


class DiesForNezarat4:
    """A client factory (picklable, so it crosses into the children) whose Nezarat-4 process ends
    abruptly, as a crash would, before it reports anything."""

    def __init__(self, config) -> None:
        self.config = config

    def __call__(self, source: str):
        from connectors import SabaClient

        if source == "nezarat4":
            os._exit(3)
        return SabaClient(self.config.portal_settings("saba"))


def test_a_source_process_that_dies_is_reported_failed_and_the_other_goes_on(simulator_factory, sqlite_url,
                                                                            monkeypatch):
    sim = simulator_factory(projects=10, agreements=10)
    engine = open_store(sqlite_url)
    config = store_config(sim, sqlite_url, monkeypatch)
    recorder = Recorder()
    nz, sb = run_sync(engine, config, observer=recorder, client_factory=DiesForNezarat4(config), processes=True)
    assert nz.status == "failed" and "exit code 3" in nz.error and "next sync" in nz.error
    assert sb.status == "success" and sb.read == len(sim.world.truth_agreements())
    assert sorted(o.source for o in recorder.finished_outcomes) == ["nezarat4", "saba"]
