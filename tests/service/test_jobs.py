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
