"""`budgetwatch serve` as a real process against the simulator: stopping, killing, restarting, refusing.

Schedules are in seconds (``every 2 seconds``); each test waits for log events or store rows with
a deadline, and takes seconds.
"""

from __future__ import annotations

import socket
import time

import pytest
import yaml

from budgetwatch.cli import main
from simulator import Faults
from store.db import open_store
from tests.service.conftest import (
    PASSWORDS,
    PROCESS_TIMEOUT,
    budgetwatch,
    distinctive_passwords,
    sync_runs,
    wait_until,
    write_config,
)
from tests.sync.test_sync import _assert_store_equals_truth

pytestmark = [pytest.mark.slow, PROCESS_TIMEOUT]


def _store_equals_truth(store_url: str, sim) -> None:
    engine = open_store(store_url)
    try:
        _assert_store_equals_truth(engine, sim)
    finally:
        engine.dispose()


def _no_password_in(lines: list[str]) -> None:
    leaked = [line for line in lines for password in PASSWORDS.values() if password in line]
    assert not leaked, f"a password in the log: {leaked[:3]}"


def test_sigterm_during_a_sync_stops_within_seconds_and_a_restart_finishes_the_work(
        simulator_factory, serve_factory, store_url, tmp_path):
    sim = simulator_factory(projects=80, agreements=40)
    distinctive_passwords(sim)
    sim.set_faults(Faults(latency_ms=15))  # a sync of a few seconds: the signal lands inside it
    config = write_config(tmp_path, sim, store_url, schedule={"sync": "every 1 seconds"})
    serve = serve_factory(config)
    serve.started()
    # early in the first sync (it takes ~130 requests): after 60 a source had sometimes ended, and
    # the signal came between two syncs (2 of 7 runs under load)
    assert sim.log.wait_for(25, timeout=120), "no sync reached the portals"
    took = serve.terminate()
    assert serve.proc.returncode == 0
    assert took < 5, f"serve took {took:.1f} s to stop"
    runs = sync_runs(store_url)
    assert runs and all(r["status"] != "running" for r in runs), runs
    assert "interrupted" in {r["status"] for r in runs}, runs
    assert any(e["message"].startswith("incremental sync of") and e.get("status") == "interrupted"
               for e in serve.events())
    # every run is logged as it ended: only an interrupted one as stopped (trial: a run that had
    # succeeded seconds before the signal was logged as "stopped … (recorded success)")
    events = serve.events()
    assert all(e.get("status") == "interrupted" for e in events if "stopped: the service is stopping" in e["message"])
    logged = {e.get("run_id") for e in events if "sync of" in e["message"] and e.get("status") == "success"}
    assert {r["id"] for r in runs if r["status"] == "success"} <= logged, (runs, logged)

    sim.set_faults(Faults())
    again = serve_factory(config)
    again.started()
    for source in ("nezarat4", "saba"):
        again.wait_for(lambda e, s=source: e.get("source") == s and e.get("status") == "success", timeout=120)
    assert again.terminate() < 5
    _store_equals_truth(store_url, sim)
    _no_password_in(serve.lines() + again.lines())


def test_kill_9_during_a_sync_then_restart_runs_the_missed_slot_once_and_ends_equal_to_the_truth(
        simulator_factory, serve_factory, sqlite_url, tmp_path):
    sim = simulator_factory(projects=60, agreements=30)
    sim.set_faults(Faults(latency_ms=15))
    config = write_config(tmp_path, sim, sqlite_url, schedule={"sync": "every 2 seconds"})
    serve = serve_factory(config)
    serve.started()
    assert sim.log.wait_for(60, timeout=120), "no sync reached the portals"
    serve.kill()
    assert any(r["status"] == "running" for r in sync_runs(sqlite_url)), "the kill missed the sync"
    time.sleep(5)  # the downtime itself: at least two slots of each sync pass while nothing runs

    sim.set_faults(Faults())
    again = serve_factory(config)
    again.started()
    restarted_at = _epoch(again.wait_for(lambda e: "started_at" in e)["started_at"])
    for source in ("nezarat4", "saba"):
        again.wait_for(lambda e, s=source: e.get("source") == s and e.get("status") == "success", timeout=120)
    again.terminate()
    _store_equals_truth(sqlite_url, sim)
    starts = [e for e in again.events() if e["message"].startswith("job sync:")
              and " starts: due " in e["message"]]
    for source in ("nezarat4", "saba"):
        missed = [e for e in starts if e["job"] == f"sync:{source}"
                  and _epoch(e["due"]) < restarted_at]
        # two or three slots passed while it was down: coalesced, they run once
        assert len(missed) == 1, f"{source}: the slots missed while down ran {len(missed)} times: {missed}"
    statuses = [r["status"] for r in sync_runs(sqlite_url)]
    assert "running" not in statuses and "interrupted" in statuses


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_a_second_serve_on_the_same_store_names_the_first_and_exits_3(
        simulator_factory, serve_factory, store_url, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    sim = simulator_factory(projects=5, agreements=5)
    config = write_config(tmp_path, sim, store_url, schedule={"sync": "every 1 hours"})
    first = serve_factory(config)
    first.started()
    second = budgetwatch(config, "serve")
    assert second.returncode == 3, second.stderr
    message = second.stderr.strip().splitlines()[-1]
    assert f"pid {first.proc.pid}" in message and socket.gethostname() in message, message
    assert first.proc.poll() is None, "the first serve must keep running"
    _, report = status(capsys, config, "--format", "json")
    assert f"pid {first.proc.pid}" in report
    assert first.terminate() < 5


def status(capsys, config, *args: str) -> tuple[int, str]:
    """`budgetwatch status` in this process (the serve it reports on is a real process)."""
    code = main(["--config", str(config), "status", *args])
    return code, capsys.readouterr().out


def test_status_is_unhealthy_while_a_source_fails_and_healthy_once_it_recovers(
        simulator_factory, serve_factory, sqlite_url, tmp_path, capsys, monkeypatch):
    # SQLite only: the verdicts on PostgreSQL are covered row by row in test_status.py
    store_url = sqlite_url
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    sim = simulator_factory(projects=20, agreements=10, captcha_after=1000)
    distinctive_passwords(sim)
    config = write_config(tmp_path, sim, store_url, schedule={"sync": "every 5 seconds"})
    wrong = tmp_path / "saba.password"
    wrong.write_text("not-the-Sb-password-but-close", encoding="utf-8")
    serve = serve_factory(config)
    serve.started()
    serve.wait_for(lambda e: e.get("source") == "saba" and e.get("status") == "failed", timeout=120)
    serve.wait_for(lambda e: e.get("source") == "nezarat4" and e.get("status") == "success", timeout=120)
    code, failing = status(capsys, config)
    assert code == 3, failing
    assert "saba has not synced successfully ever" in " ".join(failing.split())

    wrong.write_text(PASSWORDS["saba"], encoding="utf-8")  # the operator fixes the password file
    serve.wait_for(lambda e: e.get("source") == "saba" and e.get("status") == "success", timeout=120)
    healthy = wait_until(lambda: (found := status(capsys, config, "--format", "json"))[0] == 0 and found,
                         timeout=120, what="status exits 0 once saba syncs again")
    assert '"healthy": true' in healthy[1]
    assert serve.terminate() < 5
    _no_password_in(serve.lines() + [failing, healthy[1]])


def test_serve_refuses_sources_that_cannot_log_in_before_scheduling_anything(
        simulator_factory, sqlite_url, tmp_path):
    # found by a new user: `sync` refused an empty user name and an unset password variable, while
    # `serve` started, scheduled its syncs and logged a traceback for every one of them, night after night
    sim = simulator_factory(projects=2, agreements=2)
    config = write_config(tmp_path, sim, sqlite_url)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["sources"]["nezarat4"].update(username="", password_file=None, password_env="BW_TEST_UNSET_PASSWORD")
    config.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    done = budgetwatch(config, "serve", timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "sources.nezarat4.username" in done.stderr
    assert "BW_TEST_UNSET_PASSWORD" in done.stderr
    assert sync_runs(sqlite_url) == []  # nothing was tried
