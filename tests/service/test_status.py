"""`budgetwatch status`: the verdict and its exit code per cause, on SQLite and PostgreSQL, from store
rows made by hand (the real-process test in test_serve.py watches it follow a failing source)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from budgetwatch.cli import main
from budgetwatch.config import parse_config
from foundation.jalali import format_jalali
from service import status as health
from store.alerts import AlertOutbox, record_digest
from store.models import Deviation, ReconcileRun, SyncRun
from store.service import serve_lock

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
SETTINGS = {
    "schedule": {"sync": "every 1 hours", "full_sync": "0 4 * * fri"},
    "alerts": {"enabled": True, "sender": "budgetwatch@mpo-kz.ir"},
    "routing": {"default": "consolidation", "agencies": {"110": "social", "120": "infrastructure"}},
}


def config(url: str):
    return parse_config({"database": {"url": url}, **SETTINGS})


def add_sync_run(engine, source: str, status: str, finished: datetime, error: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(SyncRun.__table__).values(
            source=source, mode="incremental", fiscal_years="1405", started_at=finished - timedelta(minutes=2),
            finished_at=finished, status=status, error=error))


def add_reconcile_run(engine, finished: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(ReconcileRun.__table__).values(
            as_of=finished.date(), fiscal_years="1405", started_at=finished - timedelta(seconds=30),
            finished_at=finished, status="success"))


def add_deviation(engine, subject: str, severity: str, agency: str | None, status: str = "open") -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(Deviation.__table__).values(
            kind="capital", rule="progress_lag", subject=subject, fiscal_year=1405, quarter=2, severity=severity,
            status=status, message="…", agency_code=agency, first_found_on=date(2026, 11, 1),
            last_found_on=date(2026, 12, 1)))


def healthy_store(engine) -> None:
    for source in ("nezarat4", "saba"):
        add_sync_run(engine, source, "success", NOW - timedelta(minutes=30))
    add_reconcile_run(engine, NOW - timedelta(hours=3))


def test_a_new_store_is_unhealthy_for_sources_and_reconciliation(engine) -> None:
    found = health.gather(config(str(engine.url)), engine, now=NOW)
    # 6 too, and first (docs/operations.md): a stopped service explains the rest. An operator's trial
    # found it listed last, after the stale sources and reconciliation it explained
    assert [code for code, _ in found.causes] == [6, 3, 3, 4]
    assert found.exit_code == 6
    with serve_lock(engine):
        assert health.gather(config(str(engine.url)), engine, now=NOW).exit_code == 3
    assert "nezarat4 has not synced successfully ever" in found.causes[1][1]
    said = [line for line in health.render(found) if line.startswith("  ! ")]
    assert len(said) == 4 and said[0].startswith("  ! serve is not running on this store"), said


def test_recent_successes_are_healthy_and_a_failure_after_them_is_shown_not_judged(engine) -> None:
    healthy_store(engine)
    add_sync_run(engine, "saba", "failed", NOW - timedelta(minutes=5), error="SABA: user name or password refused")
    with serve_lock(engine):  # as a running serve holds it
        found = health.gather(config(str(engine.url)), engine, now=NOW)
    assert found.causes == [] and found.exit_code == 0
    saba = found.sources[1]
    assert saba.last.status == "failed" and saba.last_success is not None
    shown = "\n".join(health.render(found))
    assert "SABA: user name or password refused" in shown
    # the reconciliation's day as every command writes one: Jalali (ASCII digits), then ISO
    day = (NOW - timedelta(hours=3)).date()
    assert f"as of {format_jalali(day, persian_digits=False)} ({day.isoformat()})," in shown


def test_a_source_without_success_within_twice_its_interval_exits_3(engine) -> None:
    healthy_store(engine)
    add_sync_run(engine, "saba", "failed", NOW + timedelta(minutes=80))
    with serve_lock(engine):
        found = health.gather(config(str(engine.url)), engine, now=NOW + timedelta(hours=1, minutes=31))
        on_time = health.gather(config(str(engine.url)), engine, now=NOW + timedelta(hours=1, minutes=29))
    assert [code for code, _ in found.causes] == [3, 3]  # both: 2 h 1 min since their success, 2 h allowed
    assert "its last run" in found.causes[1][1] and "failed" in found.causes[1][1]
    assert on_time.exit_code == 0


def test_a_reconciliation_older_than_a_day_exits_4(engine) -> None:
    healthy_store(engine)
    later = NOW + timedelta(hours=21, minutes=1)  # reconciliation 24 h 1 min old
    for source in ("nezarat4", "saba"):
        add_sync_run(engine, source, "success", later - timedelta(minutes=1))
    with serve_lock(engine):
        found = health.gather(config(str(engine.url)), engine, now=later)
    assert found.exit_code == 4
    assert found.causes[0][1].startswith("no successful reconciliation since")


def _message(recipient: str, created: datetime) -> dict:
    return {"recipient": recipient, "expert_name": "کارشناس", "sender": "budgetwatch@mpo-kz.ir",
            "message_id": f"<{recipient}.{created.timestamp()}@mpo-kz.ir>", "subject": "گزارش", "body_text": "…",
            "body_html": "<p>…</p>", "raw": "Subject: x\r\n\r\n…", "created_at": created, "next_attempt_at": created}


def test_an_outbox_message_waiting_longer_than_allowed_exits_5(engine) -> None:
    assert "status" in AlertOutbox.__table__.c  # the outbox of store.alerts (contracts.md)
    healthy_store(engine)
    with engine.begin() as conn:
        record_digest(conn, _message("a@mpo-kz.ir", NOW - timedelta(minutes=59)), [])
    with serve_lock(engine):
        assert health.gather(config(str(engine.url)), engine, now=NOW).exit_code == 0
    with engine.begin() as conn:
        record_digest(conn, _message("b@mpo-kz.ir", NOW - timedelta(minutes=61)), [])
    with serve_lock(engine):
        found = health.gather(config(str(engine.url)), engine, now=NOW)
    assert found.exit_code == 5 and found.outbox.pending == 2 and found.outbox.stuck
    assert found.as_json()["outbox"]["stuck"] is True


def test_open_deviations_are_counted_by_severity_and_expert_group(engine) -> None:
    add_deviation(engine, "p1", "critical", "110")
    add_deviation(engine, "p2", "critical", "110")
    add_deviation(engine, "p3", "major", "120")
    add_deviation(engine, "p4", "minor", "999")  # not routed: the default group
    add_deviation(engine, "p5", "minor", None)
    add_deviation(engine, "p6", "critical", "120", status="resolved")  # not open
    found = health.gather(config(str(engine.url)), engine, now=NOW)
    assert found.deviations == {("critical", "social"): 2, ("major", "infrastructure"): 1,
                                ("minor", "consolidation"): 2}


def test_status_command_prints_json_and_exits_with_the_verdict(engine, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": str(engine.url.render_as_string(hide_password=False))},
                                    **SETTINGS}), encoding="utf-8")
    for source in ("nezarat4", "saba"):
        add_sync_run(engine, source, "success", datetime.now(UTC) - timedelta(minutes=1))
    assert main(["--config", str(path), "status", "--format", "json"]) == 6  # never reconciled, no serve
    report = json.loads(capsys.readouterr().out)
    assert report["healthy"] is False and report["exit_code"] == 6
    assert [c["code"] for c in report["causes"]] == [6, 4]  # serve's absence first: it explains the rest
    assert report["sources"][0]["last_run"]["status"] == "success"
    assert report["service"] == {"running": False, "holder": None}
    assert main(["--config", str(path), "status"]) == 6
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ! ")]
    assert len(said) == 2 and said[0].startswith("  ! serve is not running on this store"), said
    assert said[1].startswith("  ! no successful reconciliation ever"), said
    add_reconcile_run(engine, datetime.now(UTC))
    with serve_lock(engine):
        assert main(["--config", str(path), "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("HEALTHY") and "open deviations:" in out


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_status_into_a_pipe_closed_early_still_exits_with_its_verdict(tmp_path: Path, fmt: str) -> None:
    """`status | head -1` in a monitor's script: the reader goes away after the first line, and the
    verdict must still be the exit code (a trial saw 1, "status itself could not run", for a 6)."""
    import os
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text(f'database:\n  url: "sqlite:///{tmp_path / "store.db"}"\n', encoding="utf-8")
    budgetwatch = str(Path(sys.executable).with_name("budgetwatch"))
    subprocess.run([budgetwatch, "--config", str(config), "db", "upgrade"], check=True, capture_output=True)
    read, write = os.pipe()
    os.close(read)  # the reader gone before the first line: every write meets a broken pipe
    try:
        done = subprocess.run([budgetwatch, "--config", str(config), "status", "--format", fmt], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 6, done.stderr  # serve is not running on a new store (and it is never run)
    assert "Traceback" not in done.stderr


def test_a_store_no_serve_runs_on_is_unhealthy_at_once(engine) -> None:
    # found by a new user: after serve stopped (or crashed) status said HEALTHY, exit 0, for up to two
    # sync intervals — the cron example of docs/deploy.md would tell nobody
    healthy_store(engine)
    found = health.gather(config(str(engine.url)), engine, now=NOW)
    assert [code for code, _ in found.causes] == [6] and found.exit_code == 6
    assert found.causes[0][1].startswith("serve is not running on this store")
    assert "UNHEALTHY (exit 6)" in "\n".join(health.render(found))


def test_with_serve_stopped_past_next_runs_are_said_owed_and_times_are_tehrans(engine) -> None:
    # an operator's trial: with serve stopped, "next runs" listed times already past as if to come, and
    # the JSON gave UTC where docs/deploy.md gives Tehran's time with its offset
    import dataclasses

    healthy_store(engine)
    found = dataclasses.replace(health.gather(config(str(engine.url)), engine, now=NOW),
                                next_runs={"reconcile": NOW - timedelta(hours=3), "dispatch": NOW + timedelta(minutes=5)})
    shown = "\n".join(health.render(found))
    assert "next runs: (serve is not running: none runs until it starts)" in shown
    [past] = [line for line in shown.splitlines() if line.strip().startswith("reconcile")]
    [coming] = [line for line in shown.splitlines() if line.strip().startswith("dispatch")]
    assert past.endswith("(past: run once at the start if within its grace, else at its next slot)")
    assert "past" not in coming
    report = found.as_json()
    assert report["checked_at"].endswith("+03:30") and report["next_runs"]["dispatch"].endswith("+03:30")
    assert datetime.fromisoformat(report["next_runs"]["dispatch"]) == NOW + timedelta(minutes=5)
