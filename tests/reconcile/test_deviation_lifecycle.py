"""Deviations' life through runs of the engine, on SQLite and PostgreSQL.

Rows are inserted with the SQLModel classes; each test changes the data (as a sync would) or the
as-of day, runs `reconcile.run`, and reads the deviations and their events back.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

import reconcile
import reconcile.lifecycle
from reconcile import deviations as dv
from reconcile.settings import RoutingConfig
from store.models import Deviation, DeviationEvent, ProgressReport, ProjectYear, ReconcileRun
from reconcile_builders import Store, config, day

AUTUMN = day("1405/09/02")  # Q1, Q2 of 1405 closed; Q2 reports due 1405/07/15 — all on time below
RULE_IDS = ("progress_lag", "missing_report", "approval_overdue", "progress_regression", "spend_progress_gap",
            "credit_inconsistency", "completion_overdue", "inspection_mismatch", "operation_shortfall",
            "unit_cost_overrun")


def only(*rules: str):
    """A configuration with only `rules` on, so a test's changes touch one deviation."""
    return config(rules={r: {"enabled": r in rules} for r in RULE_IDS})


LAG = only("progress_lag")


@pytest.fixture
def store(engine):
    return Store(engine)


def deviations(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(Deviation.__table__).order_by("id"))]


def events(engine) -> list[tuple]:
    t = DeviationEvent.__table__
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(t.c.deviation_id, t.c.event, t.c.severity, t.c.reason)
                                               .order_by(t.c.id))]


def set_progress(engine, report: ProgressReport, progress) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(ProgressReport.__table__).where(ProgressReport.__table__.c.id == report.id)
                     .values(progress=Decimal(str(progress))))


def lagging_project(store, q2_progress=40):
    """Targets 30/45/60/80: Q1 on plan, Q2 `q2_progress` (45 − it = the gap)."""
    py = store.project()
    store.report(py, 1, 30, reported_on="1405/04/05")
    return py, store.report(py, 2, q2_progress, reported_on="1405/07/05")


def test_first_found_is_open_and_new_with_numbers_message_and_links(engine, store):
    _py, q2 = lagging_project(store, q2_progress=32)
    result = reconcile.run(engine, config(), as_of=AUTUMN)
    [f] = result.findings
    assert (f.rule, f.subject, f.quarter, f.severity) == ("progress_lag", "1305012007-003", 2, "minor")
    [row] = deviations(engine)
    assert (row["status"], row["alert_state"], row["severity"], row["quarter"]) == ("open", "new", "minor", 2)
    assert (row["planned"], row["actual"], row["measure"]) == (Decimal(45), Decimal(32), Decimal(13))
    assert row["numbers"] == {"target": "45", "actual": "32", "gap": "13", "threshold": "5",
                              "band": "5", "next": "15"}
    assert "پیشرفت فیزیکی ۳۲٪ گزارش کرده در برابر ۴۵٪ پیش\u200cبینی\u200cشده" in row["message"]
    assert (row["evidence_table"], row["evidence_id"], row["sync_run_id"]) == ("progress_report", q2.id, 1)
    assert (row["first_found_on"], row["last_found_on"], row["reconcile_run_id"]) == (AUTUMN, AUTUMN, result.run_id)
    assert events(engine) == [(row["id"], "opened", "minor", None)]
    assert result.status(f) == "open"


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_each_new_deviation_gets_its_opened_event_in_the_order_of_the_ids(engine, store):
    # on PostgreSQL the events are made of what the deviations' insert returns, in one statement
    for k, q2_progress in enumerate((44, 32, 20, 38, 10)):  # gaps 1 (none), 13, 25, 7, 35
        py = store.project(f"1305012007-0{k}1")
        store.report(py, 1, 30, reported_on="1405/04/05")
        store.report(py, 2, q2_progress, reported_on="1405/07/05")
    reconcile.run(engine, LAG, as_of=AUTUMN)
    rows = deviations(engine)
    assert [row["severity"] for row in rows] == ["minor", "major", "minor", "critical"]  # 44: under the threshold
    assert events(engine) == [(row["id"], "opened", row["severity"], None) for row in rows]


def test_rerun_on_unchanged_data_changes_nothing(engine, store):
    lagging_project(store)
    a = store.agreement()
    o = store.operation(a)
    store.performance(o, 1, 50, 90)
    reconcile.run(engine, config(), as_of=AUTUMN)
    before_rows, before_events = deviations(engine), events(engine)
    assert len(before_rows) >= 3
    second = reconcile.run(engine, config(), as_of=AUTUMN)
    assert deviations(engine) == before_rows
    assert events(engine) == before_events
    assert second.life.unchanged == len(before_rows) and second.life.opened == 0


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_time_driven_rules_are_found_by_a_later_as_of_without_a_sync(engine, store):
    py = store.project(end_year=1404)
    store.report(py, 1, 30, status="pending", reported_on="1405/04/05")
    a = store.agreement()
    o = store.operation(a)
    store.performance(o, 1, 100, 100, reported_on="1405/04/05")
    found = {(f.kind, f.rule, f.quarter) for f in reconcile.run(engine, config(), as_of=day("1405/04/10")).findings}
    assert found == {("capital", "completion_overdue", None)}
    found = {(f.kind, f.rule, f.quarter) for f in reconcile.run(engine, config(), as_of=day("1405/07/16")).findings}
    assert found == {("capital", "completion_overdue", None), ("capital", "approval_overdue", 1),
                     ("capital", "missing_report", 2), ("expense", "missing_report", 2),
                     # Q2 now closed with nothing delivered in it: 100 / 200 year to date
                     ("expense", "operation_shortfall", 2)}


def test_not_found_any_more_is_resolved_with_the_day(engine, store):
    _py, q2 = lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    set_progress(engine, q2, 45)  # the agency corrected its report
    later = day("1405/09/10")
    result = reconcile.run(engine, LAG, as_of=later)
    [row] = deviations(engine)
    assert (row["status"], row["resolved_on"], row["alert_state"]) == ("resolved", later, "none")
    assert events(engine)[-1] == (row["id"], "resolved", "minor", "not found")
    assert result.life.resolved == 1
    reconcile.run(engine, LAG, as_of=later)  # stays resolved, no new event
    assert len(events(engine)) == 2


def test_found_again_after_resolution_is_reopened_and_new(engine, store):
    _py, q2 = lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    set_progress(engine, q2, 45)
    reconcile.run(engine, LAG, as_of=day("1405/09/10"))
    set_progress(engine, q2, 20)
    reconcile.run(engine, LAG, as_of=day("1405/09/20"))
    [row] = deviations(engine)
    assert (row["status"], row["alert_state"], row["severity"], row["resolved_on"]) == ("open", "new", "major", None)
    assert [e[1] for e in events(engine)] == ["opened", "resolved", "reopened"]


def test_higher_severity_escalates(engine, store):
    _py, q2 = lagging_project(store, q2_progress=35)  # gap 10: minor
    reconcile.run(engine, LAG, as_of=AUTUMN)
    with engine.begin() as conn:  # the alert was queued: nothing owed any more
        conn.execute(sa.update(Deviation.__table__).values(alert_state="none"))
    set_progress(engine, q2, 25)  # gap 20: major
    result = reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    assert (row["status"], row["severity"], row["alert_state"]) == ("open", "major", "escalated")
    assert events(engine)[-1][1:3] == ("escalated", "major")
    assert result.life.escalated == 1


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_escalation_before_the_first_alert_went_out_stays_new(engine, store):
    _py, q2 = lagging_project(store, q2_progress=35)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    set_progress(engine, q2, 10)  # gap 35: critical
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    assert (row["severity"], row["alert_state"]) == ("critical", "new")


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_lower_severity_is_updated_quietly(engine, store):
    _py, q2 = lagging_project(store, q2_progress=25)  # major
    reconcile.run(engine, LAG, as_of=AUTUMN)
    with engine.begin() as conn:
        conn.execute(sa.update(Deviation.__table__).values(alert_state="none"))
    set_progress(engine, q2, 38)  # gap 7: minor
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    assert (row["status"], row["severity"], row["alert_state"], row["actual"]) == ("open", "minor", "none", Decimal(38))
    assert events(engine)[-1][1:3] == ("lowered", "minor")


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_same_severity_other_figures_are_updated(engine, store):
    _py, q2 = lagging_project(store, q2_progress=35)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    set_progress(engine, q2, 36)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    assert (row["actual"], row["measure"], row["alert_state"]) == (Decimal(36), Decimal(9), "new")
    assert "۳۶٪" in row["message"]
    assert events(engine)[-1][1] == "updated"


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_acknowledged_survives_reruns_until_it_escalates(engine, store):
    _py, q2 = lagging_project(store, q2_progress=35)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    dv.acknowledge(engine, row["id"], by="کارشناس تلفیق", reason="پیمانکار تغییر کرده")
    acked = deviations(engine)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    assert deviations(engine) == acked
    [row] = acked
    assert (row["status"], row["alert_state"], row["acted_by"]) == ("acknowledged", "none", "کارشناس تلفیق")
    set_progress(engine, q2, 36)  # same severity: stays acknowledged
    reconcile.run(engine, LAG, as_of=AUTUMN)
    assert deviations(engine)[0]["status"] == "acknowledged"
    set_progress(engine, q2, 20)  # major: escalates
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    assert (row["status"], row["alert_state"], row["severity"]) == ("open", "escalated", "major")
    assert [e[1] for e in events(engine)] == ["opened", "acknowledged", "updated", "escalated"]


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_dismissed_never_changes_and_is_hidden_unless_asked(engine, store):
    _py, q2 = lagging_project(store, q2_progress=35)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    dv.dismiss(engine, row["id"], by="کارشناس", reason="هدف اشتباه ثبت شده")
    dismissed = deviations(engine)
    set_progress(engine, q2, 5)  # would be critical
    result = reconcile.run(engine, LAG, as_of=AUTUMN)
    assert deviations(engine) == dismissed
    set_progress(engine, q2, 45)  # not found any more: still dismissed, not resolved
    reconcile.run(engine, LAG, as_of=AUTUMN)
    assert deviations(engine) == dismissed
    assert [e[1] for e in events(engine)] == ["opened", "dismissed"]
    with engine.connect() as conn:
        routing = RoutingConfig()
        assert [f.rule for f in result.findings] == ["progress_lag"]  # found, but never shown again
        assert dv.list_deviations(conn, dv.View(), routing) == []
        shown = dv.list_deviations(conn, dv.View(include_dismissed=True), routing)
        assert [s.status for s in shown] == ["dismissed"]


def test_ack_and_dismiss_refuse_wrong_states(engine, store):
    lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    with pytest.raises(dv.DeviationError, match="--by"):
        dv.acknowledge(engine, row["id"], by=" ", reason="x")
    dv.acknowledge(engine, row["id"], by="الف", reason="x")
    with pytest.raises(dv.DeviationError, match="acknowledged by الف"):
        dv.acknowledge(engine, row["id"], by="ب", reason="y")
    dv.dismiss(engine, row["id"], by="ب", reason="y")
    with pytest.raises(dv.DeviationError, match="dismissed"):
        dv.dismiss(engine, row["id"], by="ب", reason="y")
    with pytest.raises(dv.DeviationError, match="no deviation"):
        dv.acknowledge(engine, 999999, by="ب", reason="y")


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_a_run_over_other_years_or_rules_resolves_nothing_it_did_not_judge(engine, store):
    lagging_project(store)
    store.project("1305012007-004", year=1404)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    assert [r["status"] for r in deviations(engine)] == ["open"]
    reconcile.run(engine, LAG, as_of=AUTUMN, years=[1404])
    assert [r["status"] for r in deviations(engine)] == ["open"]
    result = reconcile.run(engine, only("credit_inconsistency"), as_of=AUTUMN)
    assert [r["status"] for r in deviations(engine)] == ["open"]
    assert "capital.progress_lag" not in result.stats


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_gone_project_is_not_judged_and_its_deviations_resolve_as_gone(engine, store):
    py, _q2 = lagging_project(store)
    reconcile.run(engine, config(), as_of=AUTUMN)
    with engine.begin() as conn:
        conn.execute(sa.update(ProjectYear.__table__).where(ProjectYear.__table__.c.id == py.id).values(gone=True))
    result = reconcile.run(engine, config(), as_of=AUTUMN)
    assert result.findings == []
    assert deviations(engine)[0]["status"] == "resolved"
    assert events(engine)[-1][1:] == ("resolved", "minor", "gone")


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_run_records_per_rule_stats_and_flags_mis_tuned_rules(engine, store):
    for n in range(4):
        py = store.project(f"1305012007-01{n}")
        store.report(py, 1, 30 if n else 10, reported_on="1405/04/05")
        store.report(py, 2, 45, reported_on="1405/07/05")
    result = reconcile.run(engine, config(), as_of=AUTUMN)
    lag = result.stats["capital.progress_lag"]
    assert (lag.checked, lag.flagged, lag.findings, lag.share, lag.mis_tuned) == (4, 1, 1, Decimal("0.25"), False)
    tight = reconcile.run(engine, config(rules={"progress_lag": {"minor": 0, "major": 15, "critical": 30}}),
                          as_of=AUTUMN).stats["capital.progress_lag"]
    assert (tight.flagged, tight.mis_tuned) == (4, True)
    with engine.connect() as conn:
        run = conn.execute(sa.select(ReconcileRun.__table__).where(ReconcileRun.__table__.c.id == result.run_id)).one()
    assert run.status == "success" and run.as_of == AUTUMN and run.fiscal_years == "1405"
    assert run.stats["rules"]["capital.progress_lag"] == {
        "kind": "capital", "rule": "progress_lag", "checked": 4, "flagged": 1, "findings": 1, "share": 0.25,
        "mis_tuned": False}


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_a_second_run_judges_every_subject_once_again(engine, store):
    for n in range(7):
        py = store.project(f"1305012007-02{n}")
        store.report(py, 1, 20 + n, reported_on="1405/04/05")
        a = store.agreement(f"1405-032-1100{n}")
        o = store.operation(a)
        store.performance(o, 1, 50 + n, 60)
    whole = reconcile.run(engine, config(), as_of=AUTUMN)
    small = reconcile.run(engine, config(), as_of=AUTUMN)
    assert [f.key for f in small.findings] == [f.key for f in whole.findings]
    assert small.life.unchanged == len(whole.findings) and small.life.opened == 0
    assert small.stats["capital.progress_lag"].checked == 7
    assert small.stats["expense.operation_shortfall"].checked == 7


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_every_year_in_the_store_is_judged(engine, store):
    for year in (1403, 1404, 1405):
        store.project(f"1305012007-03{year % 10}", year=year)
    result = reconcile.run(engine, config(), as_of=AUTUMN)
    assert result.years == [1403, 1404, 1405]
    assert {(f.fiscal_year, f.rule) for f in result.findings} >= {(1403, "missing_report"), (1404, "missing_report")}
    assert [f.quarter for f in result.findings if f.fiscal_year == 1403] == [1, 2, 3, 4]


def test_a_failed_run_changes_no_deviation_and_is_recorded_as_failed(engine, store, monkeypatch):
    _py, q2 = lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    before_rows, before_events = deviations(engine), events(engine)
    set_progress(engine, q2, 10)  # would escalate

    def broken(self, **_kwargs):
        raise RuntimeError("disk full")

    # the deviations are written, then resolving fails: everything of the run must roll back
    monkeypatch.setattr(reconcile.lifecycle.Found, "_resolve", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        reconcile.run(engine, LAG, as_of=AUTUMN)
    assert deviations(engine) == before_rows and events(engine) == before_events
    with engine.connect() as conn:
        run = conn.execute(sa.select(ReconcileRun.__table__).order_by(ReconcileRun.__table__.c.id.desc())).first()
    assert run.status == "failed" and "disk full" in run.stats["error"]


def test_two_people_acknowledging_at_once_one_is_told_the_other_did(engine, store):
    # a trial: on SQLite both were told «بررسی ثبت شد», two events recorded, the second name kept.
    # The other act is made between this act's read and its write (on PostgreSQL the read locks the
    # row, so the other act would wait for this one: the interleaving exists on SQLite alone)
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's FOR UPDATE makes the other act wait: no interleaving to make")
    lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    other: list[int] = []

    def meanwhile(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("UPDATE DEVIATION ") and not other:
            other.append(1)
            dv.acknowledge(engine, row["id"], by="الف", reason="first")

    sa.event.listen(engine, "before_cursor_execute", meanwhile)
    try:
        with pytest.raises(dv.DeviationChanged, match="acknowledged by الف meanwhile") as raised:
            dv.acknowledge(engine, row["id"], by="ب", reason="second")
    finally:
        sa.event.remove(engine, "before_cursor_execute", meanwhile)
    assert (raised.value.status, raised.value.acted_by) == ("acknowledged", "الف")
    [after] = deviations(engine)
    assert (after["status"], after["acted_by"], after["acted_reason"]) == ("acknowledged", "الف", "first")
    assert [e[1] for e in events(engine)] == ["opened", "acknowledged"]


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_an_act_on_a_status_no_longer_shown_changes_nothing(engine, store):
    # a trial: a page shown while open, dismissed after another had acknowledged it, overwrote that
    lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    dv.acknowledge(engine, row["id"], by="الف", reason="تماس گرفته شد", seen="open")
    with pytest.raises(dv.DeviationChanged, match="is acknowledged by الف now, not open as shown"):
        dv.dismiss(engine, row["id"], by="ب", reason="نادرست", seen="open")
    [after] = deviations(engine)
    assert (after["status"], after["acted_by"]) == ("acknowledged", "الف")
    dv.dismiss(engine, row["id"], by="ب", reason="نادرست", seen="acknowledged")  # seen as it is: done
    assert deviations(engine)[0]["status"] == "dismissed"


@pytest.mark.slow_on_postgresql  # the reason is checked before the store: one database is enough by default
@pytest.mark.parametrize("reason", ["\u200c\u200c", "\u200f\u200e", " \u2066\u2069 ", "\ufeff", "\u3164", "\u2800 ",
                                    "\u0640"])
def test_a_reason_of_invisible_characters_alone_is_no_reason(engine, store, reason):
    lagging_project(store)
    reconcile.run(engine, LAG, as_of=AUTUMN)
    [row] = deviations(engine)
    with pytest.raises(dv.DeviationError, match="say why"):
        dv.acknowledge(engine, row["id"], by="الف", reason=reason)
    with pytest.raises(dv.DeviationError, match="--by"):
        dv.acknowledge(engine, row["id"], by="\u200c", reason="دلیل")
    assert deviations(engine)[0]["status"] == "open"


@pytest.mark.slow_on_postgresql  # the same statements on PostgreSQL as this module's core tests there (opened, resolved, reopened, escalated, acts)
def test_a_county_is_found_by_its_other_spellings(engine):
    from foundation.persian import text_key
    from store.models import County

    with engine.begin() as conn:
        ids = {name: conn.execute(sa.insert(County.__table__).values(name=name, name_key=text_key(name))
                                  .returning(County.__table__.c.id)).scalar_one()
               for name in ("هفتکل", "صیدون", "بندر ماهشهر")}
    with engine.connect() as conn:  # domain.md §11's alias table, as a sync stores the names
        assert dv.county_ids(conn, ["هفتگل"]) == {ids["هفتکل"]}
        assert dv.county_ids(conn, ["سیدون", "ماهشهر"]) == {ids["صیدون"], ids["بندر ماهشهر"]}
        assert dv.county_ids(conn, ["هفت كل"]) == {ids["هفتکل"]}  # letters and spaces, as before
        with pytest.raises(dv.DeviationError, match="unknown county 'تهران'"):
            dv.county_ids(conn, ["تهران"])
