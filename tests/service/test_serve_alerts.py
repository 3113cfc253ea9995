"""The whole cycle unattended: `budgetwatch serve` syncs the simulated portals, reconciles, queues the
experts' digests and sends them to a real SMTP server (aiosmtpd, in the test process)."""

from __future__ import annotations

import pytest

from tests.alerts.conftest import smtp  # noqa: F401 - the real SMTP server fixture, shared
from tests.service.conftest import (
    PASSWORDS,
    PROCESS_TIMEOUT,
    distinctive_passwords,
    sync_runs,
    wait_until,
    write_config,
)

# the service end to end: its SQLite variant is in the default run
pytestmark = [pytest.mark.slow_on_postgresql, PROCESS_TIMEOUT]

SMTP_PASSWORD = "Smtp-pass-91c4e7-leak-canary"


def test_serve_syncs_reconciles_and_a_digest_arrives_by_smtp(simulator_factory, serve_factory, smtp, store_url,  # noqa: F811
                                                            tmp_path, monkeypatch):
    # both databases: the job store, the serve lock and the outbox are the database's on each
    sim = simulator_factory(projects=30, agreements=15)
    distinctive_passwords(sim)
    monkeypatch.setenv("BUDGETWATCH_SMTP_PASSWORD", SMTP_PASSWORD)  # set, unused (no login): must not leak
    alerts = {"enabled": True, "sender": "budgetwatch@mpo-kz.ir", "min_severity": "minor",
              "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none"}}
    experts = [{"name": "کارشناس تلفیق", "email": "consolidation@mpo-kz.ir", "groups": ["consolidation"]}]
    config = write_config(tmp_path, sim, store_url,
                          schedule={"sync": "every 2 seconds", "alerts": "every 2 seconds", "dispatch": "every 2 seconds"},
                          extra={"alerts": alerts, "experts": experts})
    serve = serve_factory(config)
    serve.started()
    for source in ("nezarat4", "saba"):
        serve.wait_for(lambda e, s=source: e.get("source") == s and e.get("status") == "success", timeout=120)
    serve.wait_for(lambda e: e["message"].startswith("reconcile run") and e.get("status") == "success", timeout=120)
    wait_until(lambda: smtp.mailbox.to("consolidation@mpo-kz.ir"), timeout=120, what="a digest at the SMTP server")
    assert serve.terminate() < 5

    digest = smtp.mailbox.to("consolidation@mpo-kz.ir")[0]
    assert digest.mail_from == "budgetwatch@mpo-kz.ir"
    body = digest.message.get_body(("html",)).get_content()
    assert 'dir="rtl"' in body
    # the SIGTERM may land in a later sync: that run is interrupted, none failed or left running
    assert {r["status"] for r in sync_runs(store_url)} <= {"success", "interrupted"}
    alerts_lines = [e for e in serve.events() if e.get("job") in ("alerts", "dispatch")
                    and e["message"].startswith("alerts:")]
    assert any("digests: messages 1" in e["message"] for e in alerts_lines), alerts_lines
    # an operator's log: no library chatter (alembic said 7 'setup plugin' lines a start), no class names
    assert not [e for e in serve.events() if e["logger"].startswith("alembic")]
    assert not [e for e in alerts_lines if "Report" in e["message"]], alerts_lines
    secrets = [*PASSWORDS.values(), SMTP_PASSWORD]
    assert not [line for line in serve.lines() for secret in secrets if secret in line]
