"""What a Persian-reading user found on the console's pages in a trial: an S-curve that hid the
performance reported after a quarter without a report, a run's raw values and reasons that read
backwards or in English, S-curves in other colours than the printed report's, an agency's code read
as part of its name, and the log of acts naming people by their login and the CLI as `cli`."""

from __future__ import annotations

import html as html_lib
import re
from datetime import date, datetime, timezone
from decimal import Decimal

import sqlalchemy as sa

from reports.charts import PLANNED, REPORTED
from store.models import Agency, Deviation, Project, ProjectYear, RejectedRecord, SyncRun
from store.users import recent_actions
from tests.web.conftest import add_dredging, post_login
from web.curves import HEIGHT, TOP, BOTTOM, cumulative_share

AGREEMENT = "1405-161-15004"
WATER = "شرکت آب و فاضلاب استان خوزستان"


def _agreement(engine) -> None:
    """The demo store's 1405-161-15004 (tests.web.conftest.add_dredging), of a water company."""
    with engine.begin() as conn:
        conn.execute(sa.update(Agency.__table__).where(Agency.__table__.c.code == "311").values(name=WATER))
        add_dredging(conn, AGREEMENT, "311", "1405161")


def _paths(html: str) -> dict[str, str]:
    """The S-curve's lines by colour: {stroke: the path's whole tag}."""
    svg = html[html.index('<figure class="curve">'):html.index("</figure>")]
    return {re.search(r'stroke="([^"]+)"', tag)[1]: tag for tag in re.findall(r"<path [^>]*>", svg)}


def _points(tag: str) -> list[tuple[float, float]]:
    d = re.search(r'd="([^"]+)"', tag)[1]
    return [tuple(map(float, xy.split(","))) for xy in re.findall(r"[ML]([0-9.]+,[0-9.]+)", d)]


def _y(share: float) -> float:
    return round(TOP + (HEIGHT - TOP - BOTTOM) * (1 - share / 100), 1)


def test_a_quarter_without_a_figure_counts_0_before_a_later_one_and_the_series_ends_after_the_last():
    # reconciliation-rules.md, expense agreements: year-to-date sums count an empty quarter as 0
    assert cumulative_share({1: None, 2: Decimal(399)}, Decimal(1000)) == {
        0: Decimal(0), 1: Decimal("0.0"), 2: Decimal("39.9")}
    assert cumulative_share({2: Decimal(399)}, Decimal(1000)) == {0: Decimal(0), 1: Decimal("0.0"),
                                                                  2: Decimal("39.9")}
    # what follows the last figure is not known: no point for it
    assert cumulative_share({1: Decimal(100), 3: Decimal(50), 4: None}, Decimal(1000)) == {
        0: Decimal(0), 1: Decimal("10.0"), 2: Decimal("10.0"), 3: Decimal("15.0")}
    assert cumulative_share({}, Decimal(1000)) == {0: Decimal(0)}
    assert cumulative_share({1: Decimal(5)}, None) == {}


def test_the_agreements_s_curve_shows_performance_reported_after_a_quarter_without_a_report(sqlite_store):
    _agreement(sqlite_store.engine)
    html = sqlite_store.client("infra").get(f"/agreements/{AGREEMENT}").text
    lines = _paths(html)
    # performance: 0 at the year's start and in the first quarter (nothing reported), 39.9 % by the second
    assert [y for _, y in _points(lines[REPORTED])] == [_y(0), _y(0), _y(39.9)], lines[REPORTED]
    assert "عملکرد انباشته: ۳۹٫۹٪" in html
    # planned likewise: the first quarter's empty target counts 0, the second's brings it to 100 %
    assert [y for _, y in _points(lines[PLANNED])] == [_y(0), _y(0), _y(100)], lines[PLANNED]


def test_s_curves_are_drawn_in_the_printed_reports_colours(sqlite_store):
    """reports/charts.py: planned grey and dashed, reported blue and solid; the console drew planned
    blue and dashed, reported green. The legend draws each line as the chart does."""
    _agreement(sqlite_store.engine)
    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.insert(Project.__table__).values(id=1, code="1305012007-003"))
        conn.execute(sa.insert(ProjectYear.__table__).values(
            project_id=1, fiscal_year=1405, title="پروژه", title_key="p", agency_code="301",
            agreement_status="exchanged", progress_at_year_start=10, target_q1=20, target_q2=35))
    client = sqlite_store.client("tolfiq")
    for path in ("/projects/1305012007-003", f"/agreements/{AGREEMENT}"):
        html = client.get(path).text
        figure = html[html.index('<figure class="curve">'):html.index("</figure>")]
        lines = _paths(html)
        assert set(lines) == {PLANNED, REPORTED}, path
        assert 'stroke-dasharray="6 4"' in lines[PLANNED] and "stroke-dasharray" not in lines[REPORTED], path
        legend = figure[figure.index("<figcaption>"):]
        planned_key, reported_key = re.findall(r'<span class="key[^"]*">.*?</span>', legend, re.S)
        assert f'stroke="{PLANNED}"' in planned_key and "stroke-dasharray" in planned_key, path
        assert f'stroke="{REPORTED}"' in reported_key and "stroke-dasharray" not in reported_key, path
        assert "#2e7d32" not in figure, path  # the console's own green is gone
    css = client.get("/static/console.css").text
    assert "#2e7d32; margin-inline-start" not in css and ".key.planned { color" not in css


def test_an_agencys_code_follows_its_name_as_the_emails_write_it(sqlite_store):
    _agreement(sqlite_store.engine)
    code = '(کد <bdi dir="ltr" class="code">311</bdi>)'
    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.insert(Project.__table__).values(id=1, code="1305012007-004"))
        conn.execute(sa.insert(ProjectYear.__table__).values(
            project_id=1, fiscal_year=1405, title="پروژه", title_key="p", agency_code="311",
            agreement_status="exchanged", target_q1=20))
        deviation = conn.execute(sa.insert(Deviation.__table__).values(
            kind="expense", rule="operation_shortfall", subject=f"{AGREEMENT}/15004-01", fiscal_year=1405,
            quarter=2, severity="critical", status="open", alert_state="none", planned=1000, actual=399,
            message="تحقق ۳۹٫۹٪", agency_code="311", first_found_on=date(2026, 10, 1),
            last_found_on=date(2026, 10, 1), updated_at=datetime(2026, 10, 1, tzinfo=timezone.utc))
            .returning(Deviation.__table__.c.id)).scalar_one()
    client = sqlite_store.client("infra")
    for path in ("/projects/1305012007-004", f"/agreements/{AGREEMENT}"):
        html = client.get(path).text
        # the expert group stays after it, as it was
        assert f"{WATER} {code} (امور زیربنایی)" in html, path
    assert f"{WATER} {code}" in client.get(f"/deviations/{deviation}").text


def test_a_runs_raw_values_read_left_to_right_and_its_reasons_in_persian(sqlite_store):
    rows = [  # (field, raw, reason) as connectors/saba and foundation give them
        ("quarterlyTargets", '[24, "24.0", "24.0"]', "3 quarters, not 4"),
        ("credits[].approved", '"10000"', "expected number or null, found string"),
        ("credits[].chapter", "9", "not a expense chapter (1..7)"),
        ("exchangedOn", "1405/13/01", "no such Jalali day (month must be in 1..12)"),
        ("status", "SIGNED", "not one of EXCHANGED, AWAITING, AMENDED, CANCELLED"),
        ("remarks", "x", "a reason no one taught the console"),
    ]
    with sqlite_store.engine.begin() as conn:
        run_id = conn.execute(sa.insert(SyncRun.__table__).values(
            source="saba", mode="full", fiscal_years="1405", status="success",
            started_at=datetime(2026, 10, 1, tzinfo=timezone.utc)).returning(SyncRun.__table__.c.id)).scalar_one()
        conn.execute(sa.insert(RejectedRecord.__table__), [
            {"run_id": run_id, "source": "saba", "locator": f"agreement id={i}", "field": field, "raw": raw,
             "reason": reason} for i, (field, raw, reason) in enumerate(rows, start=1)])
    html = sqlite_store.client("admin").get(f"/runs/{run_id}").text
    raws = [html_lib.unescape(m) for m in re.findall(r'<td data-label="مقدار خام"><bdi dir="ltr" class="raw">(.*?)</bdi>',
                                                      html)]
    assert raws == [raw for _, raw, _ in rows]
    whys = [html_lib.unescape(m) for m in re.findall(r'<td data-label="چرا"[^>]*>(.*?)</td>', html, re.S)]
    assert whys == [
        "۳ سه‌ماهه دارد، نه ۴",
        "باید عدد یا تهی باشد، متن است",
        "شمارهٔ فصل هزینه (۱ تا ۷) نیست",
        "چنین روزی در تقویم شمسی نیست",  # foundation's reading, said as the visits' reasons say it
        "هیچ‌یک از این‌ها نیست: \u2066EXCHANGED, AWAITING, AMENDED, CANCELLED\u2069",
        '<bdi dir="ltr">a reason no one taught the console</bdi>',  # one not known: as it is, left to right
    ]


def test_every_reason_the_connectors_give_is_said_in_persian():
    """The reasons of connectors/ and foundation/ a rejected row carries, one of each form."""
    from web.words import rejection_reason

    reasons = [
        "expected int, found null", "expected object or null, found list", "field missing",
        "not a quarter (1..4)", "not one of APPROVED, PENDING, REJECTED", "the same chapter twice",
        "an agreement of another year in the listing of 1405", "empty, but required",
        "the same operation code twice", "performance for an operation the agreement does not list",
        "a second report for quarter 3", "a second target row for quarter 2", "a second performance row for quarter 4",
        "not a known agreement status", "not a known comptroller status", "row has 5 cells, the header 7",
        "unreadable row", "identity unreadable, project not stored: not a Jalali date",
        "404: the agreement is no longer there", "empty", "not a code (digits, Latin letters, '-' and '/' only)",
        "not a number", "not a whole number", "percent sign in a cell that is not a percentage",
        "thousands separator not between groups of three digits", "year 1600 is not a Jalali year from 1300 to 1499",
        "no such Gregorian day (day is out of range for month)", "not an ISO 8601 date-time",
        "ISO 8601 date-time without a UTC offset", "no such time of day (hour must be in 0..23)",
    ]
    for reason in reasons:
        text, known = rejection_reason(reason)
        words = re.sub(r"\u2066.*?\u2069|ISO 8601|UTC|null|JSON|boolean|\(?2026-12-03\)?", "", text)
        assert known and not re.search(r"[A-Za-z]", words), (reason, text)
    assert rejection_reason("something new") == ("something new", False)


def test_the_log_of_acts_names_people_by_their_display_name_and_the_command_line_in_persian(sqlite_store):
    client = sqlite_store.client("social")  # a sign-in by «کاربر social»
    post_login(client, {"username": "Nobody", "password": "wrong password!"})  # a failed one, as typed
    html = sqlite_store.client("admin").get("/users").text
    log = html[html.index("کارهای اخیر"):]
    who = [html_lib.unescape(m) for m in re.findall(r'<td data-label="کاربر">(.*?)</td>', log)]
    assert '<bdi title="social">کاربر social</bdi>' in who
    assert '<bdi dir="ltr">nobody</bdi>' in who  # no one of that name signed in: the name as logged
    assert '<bdi title="cli">خط فرمان</bdi>' in who and not any(">cli<" in w for w in who)  # users added by the CLI
    with sqlite_store.engine.connect() as conn:  # what is stored is unchanged
        assert {a.username for a in recent_actions(conn, 100)} >= {"cli", "social", "admin"}
