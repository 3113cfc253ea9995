"""The service's reconciliation job on a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from datetime import date

import sqlalchemy as sa

from budgetwatch.config import parse_config
from service.jobs import Service


def test_a_scheduled_reconciliation_that_records_nothing_warns_saying_why(engine, tmp_path, monkeypatch, caplog):
    # found in review: `reconcile.as_of` after today made every scheduled run a what-if, logged as a success
    monkeypatch.setattr("reconcile.engine._today", lambda: date(2026, 12, 1))
    config = parse_config({"data_dir": str(tmp_path), "reconcile": {"as_of": "1405/09/20"}})
    with caplog.at_level(logging.INFO, logger="budgetwatch.service"):
        Service(config, engine).reconcile(job="reconcile")
    [record] = [r for r in caplog.records if r.name == "budgetwatch.service" and r.levelno >= logging.INFO]
    assert record.levelno == logging.WARNING and getattr(record, "status", None) == "what_if"
    assert "after today" in record.getMessage()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM reconcile_run")).scalar() == 0


def test_an_alerts_run_that_changed_nothing_is_no_news_and_a_stopped_send_says_why():
    # found by a new user: experts with nothing new (no_news) made every queuing an INFO line, and a
    # send that stopped logged "sent 0" without the reason
    from alerts.outbox import QueueReport
    from alerts.sending import DispatchReport
    from service.jobs import _counted_nothing, _describe

    assert _counted_nothing(QueueReport(no_news=3)) and _counted_nothing(DispatchReport())
    assert not _counted_nothing(QueueReport(messages=1, deviations=2))
    stopped = DispatchReport(stopped="cannot connect to 127.0.0.1:25 (connection refused)")
    assert not _counted_nothing(stopped)
    assert _describe(stopped) == ("outbox: sent 0, deferred 0, failed 0 "
                                  "(cannot connect to 127.0.0.1:25 (connection refused))")
