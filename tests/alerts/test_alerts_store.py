"""The alerts' store: migration 0004 up and down on both databases, the outbox summary, and the whole
path from a real reconciliation (store facts → reconcile.run → queue → SMTP) and back again."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import alerts
import reconcile
from reconcile.settings import ReconcileConfig
from store.alerts import outbox_summary
from store.db import current_revision, make_engine, upgrade
from store.models import METADATA, ProgressReport
from tests.alerts.builders import INFRA, ROUTING, SOCIAL, T0, TALFIQ, alerts_config, html_part, later, plain_part
from tests.reconcile.reconcile_builders import Store

ALERT_TABLES = {"alert_outbox", "alert_told"}


def _alert_diffs(engine) -> list:
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), METADATA)
    return [d for d in diffs if any(name in str(d) for name in ALERT_TABLES)]


def test_migration_0004_goes_up_and_down(store_url):
    engine = make_engine(store_url)
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT count(*) FROM alert_outbox"))  # the old table is there
        upgrade(engine, "0004")
        assert current_revision(engine) == "0004"
        assert _alert_diffs(engine) == []  # the migrated tables are exactly the models
        from alembic import command

        from store.db import _alembic_config

        command.downgrade(_alembic_config(engine), "0003")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("alert_outbox")}
        assert {"deviation_id", "event", "severity"} <= columns and "alert_told" not in sa.inspect(engine).get_table_names()
        upgrade(engine, "0004")
        assert _alert_diffs(engine) == []
    finally:
        engine.dispose()


def test_migration_0004_refuses_to_drop_old_outbox_rows(store_url):
    engine = make_engine(store_url)
    try:
        upgrade(engine, "0003")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO reconcile_run (id, as_of, fiscal_years, started_at, status) "
                                 "VALUES (1, '2026-11-01', '1405', '2026-11-01 00:00:00', 'success')"))
            conn.execute(sa.text(
                "INSERT INTO deviation (id, kind, rule, subject, fiscal_year, quarter, severity, status, alert_state, "
                "message, first_found_on, last_found_on) VALUES (1, 'capital', 'progress_lag', '1', 1405, 2, 'major', "
                "'open', 'new', 'x', '2026-11-01', '2026-11-01')"))
            conn.execute(sa.text("INSERT INTO alert_outbox (deviation_id, event, severity, recipient, created_at, "
                                 "attempts) VALUES (1, 'new', 'major', 'a@b.ir', '2026-11-01 00:00:00', 0)"))
        with pytest.raises(RuntimeError, match="holds 1 rows of the old"):
            upgrade(engine, "0004")
        assert current_revision(engine) == "0003"
    finally:
        engine.dispose()


def test_outbox_summary_counts_pending_failed_and_times(engine, facts, smtp):
    with engine.connect() as conn:
        assert outbox_summary(conn).pending == 0
    facts.deviation("305", "critical")
    cfg = alerts_config(smtp.port)
    alerts.queue_digests(engine, cfg, [INFRA, TALFIQ], ROUTING, now=T0)
    with engine.connect() as conn:
        summary = outbox_summary(conn)
    assert (summary.pending, summary.failed, summary.oldest_pending_at, summary.last_sent_at) == (2, 0, T0, None)
    smtp.mailbox.answers.append("550 5.1.1 no such user")
    alerts.dispatch(engine, cfg, now=later(1))
    with engine.connect() as conn:
        summary = outbox_summary(conn)
    assert (summary.pending, summary.failed, summary.oldest_pending_at, summary.last_sent_at) == (0, 1, None, later(1))


ONLY_LAG = ReconcileConfig.model_validate({"as_of": date(2026, 11, 23), "rules": {
    rule: {"enabled": rule == "progress_lag"} for rule in (
        "progress_lag", "missing_report", "approval_overdue", "progress_regression", "spend_progress_gap",
        "credit_inconsistency", "completion_overdue", "inspection_mismatch", "operation_shortfall",
        "unit_cost_overrun")}})


def test_from_a_real_reconciliation_to_the_mailbox_and_again(engine, smtp):
    """Catalogue: progress_lag gap 15..30 is major, ≥ 30 critical. Routing: agency 305 is
    infrastructure. So a gap of 20 goes to the infrastructure expert only; a gap of 35 is an
    escalation for them and new for consolidation (every critical); social hears nothing."""
    store = Store(engine)  # project 1305012007-003 of agency 305, target Q2 45
    py = store.project()
    report = store.report(py, 2, 25, reported_on="1405/07/05")  # gap 20: major
    cfg = alerts_config(smtp.port)
    experts = [SOCIAL, INFRA, TALFIQ]

    def reconcile_and_send(hours: float):
        reconcile.run(engine, ONLY_LAG)
        alerts.queue_digests(engine, cfg, experts, ROUTING, now=later(hours))
        assert alerts.dispatch(engine, cfg, now=later(hours)).ok

    reconcile_and_send(0)
    assert [r.rcpt_tos for r in smtp.mailbox.received] == [["infra@mpo-kz.ir"]]
    assert "1305012007-003" in plain_part(smtp.mailbox.received[0].message)
    reconcile_and_send(1)  # the same data judged again: nothing new to anyone
    assert len(smtp.mailbox.received) == 1
    with engine.begin() as conn:
        conn.execute(sa.update(ProgressReport.__table__).where(ProgressReport.__table__.c.id == report.id)
                     .values(progress=10))  # gap 35: critical
    reconcile_and_send(2)
    assert sorted(r.rcpt_tos[0] for r in smtp.mailbox.received[1:]) == ["infra@mpo-kz.ir", "talfiq@mpo-kz.ir"]
    infra_second = plain_part(smtp.mailbox.to(INFRA.address)[1].message)
    assert "تشدیدشده از عمده" in infra_second and "۱۰٪" in infra_second
    # a first digest speaks of no earlier e-mail (a trial: «از رایانامه پیشین شما» in the very first);
    # a later one does, and so does consolidation's first, which is its first
    infra_first = smtp.mailbox.to(INFRA.address)[0].message
    talfiq_first = smtp.mailbox.to(TALFIQ.address)[0].message
    for first in (infra_first, talfiq_first):
        assert "رایانامه پیشین" not in plain_part(first) and "رایانامه پیشین" not in html_part(first)
        assert "انحراف‌های باز زیر در حوزهٔ کار شما یافت شده‌اند" in plain_part(first)
    assert "انحراف‌های زیر از رایانامه پیشین شما تازه یا تشدید شده‌اند" in infra_second
