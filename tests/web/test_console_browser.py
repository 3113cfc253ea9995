"""The console in a real browser (Playwright driving Debian's Chromium) over a real store: the
simulated portals synced over HTTP, field visits imported, a reconciliation run; the application
served by uvicorn on loopback. A budget expert's day: sign in, filter deviations, acknowledge one,
record a field visit, start a reconciliation and see its result. Every page's screenshot is saved
(artifacts/screenshots/web-*.png) for a person to look at, on a laptop and on a 390 px phone; no
page may log a console error (the pages run no script, and the CSP forbids any).

SQLite only: the store's queries are tested on both databases over HTTP (test_deviations_page.py).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
import sqlalchemy as sa

import reconcile
from reconcile.inspections import import_file
from store.db import open_store
from store.models import Deviation, ExpenseAgreement, FieldInspection, RejectedRecord
from sync import run_sync
from tests.browser import browser_page, chromium, screenshot_path
from tests.sync.conftest import CLOCK, sim_config, store_config
from tests.web.conftest import PASSWORD, SECRET, add_dredging, add_users, console_config, serving
from web import create_app


@dataclass
class Served:
    url: str
    engine: sa.engine.Engine
    app: object
    reconcile: object  # the reconcile section of the store's configuration


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    from simulator import Simulator

    folder = tmp_path_factory.mktemp("console")
    url = f"sqlite:///{folder / 'store.db'}"
    engine = open_store(url)
    monkeypatch = pytest.MonkeyPatch()
    with Simulator(sim_config(projects=80, agreements=40)) as sim:
        config = store_config(sim, url, monkeypatch)
        assert all(o.ok for o in run_sync(engine, config.sources))
        visits = folder / "visits.csv"
        with visits.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, ["project_code", "date", "observed_progress", "inspector", "remarks"])
            writer.writeheader()
            writer.writerows(sim.world.inspections())
        import_file(engine, visits)
    monkeypatch.undo()
    reconcile.run(engine, config.reconcile, as_of=CLOCK.date())
    add_users(engine)
    app = create_app(engine, console_config(folder), secret=SECRET)
    with serving(app) as port:
        yield Served(f"http://127.0.0.1:{port}", engine, app, config.reconcile)
    engine.dispose()


@pytest.fixture(scope="module")
def browser(served):
    """One Chromium for the module's pages (~1 s of CPU a test less), started once the store is
    filled: its sync runs an event loop, which a running Playwright's would refuse."""
    with chromium() as running:
        yield running


def _sign_in(page, served: Served, username: str) -> None:
    page.goto(f"{served.url}/deviations")
    assert "/login" in page.url  # no session: the login page first
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/deviations$"))


def _sign_in_from_login(page, served: Served, username: str) -> None:
    """Signed in from the sign-in page itself: the overview follows."""
    page.goto(f"{served.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))


def test_a_budget_experts_day_in_the_console(served, browser):
    with browser_page(browser=browser) as (page, errors):
        page.goto(f"{served.url}/login")
        page.screenshot(path=screenshot_path("web-login"), full_page=True)
        _sign_in(page, served, "tolfiq")

        # filter: critical, open
        page.select_option("select[name=severity]", "critical")
        page.select_option("select[name=status]", "open")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"severity=critical"))
        severities = page.locator("table.devs tbody .sev").all_inner_texts()
        assert severities and set(severities) == {"بحرانی"}
        page.screenshot(path=screenshot_path("web-deviations-filtered"), full_page=True)

        # a deviation's page: acknowledge it
        page.locator("table.devs tbody tr td:nth-child(2) a").first.click()
        page.wait_for_url(re.compile(r"/deviations/\d+$"))
        deviation_id = int(page.url.rsplit("/", 1)[1])
        page.fill("form[action$='/acknowledge'] textarea[name=reason]", "با دستگاه تماس گرفته شد؛ گزارش اصلاح می‌شود")
        page.click("form[action$='/acknowledge'] button[type=submit]")
        page.wait_for_selector("text=بررسی ثبت شد")
        assert page.locator(".st-acknowledged").count() >= 1
        page.screenshot(path=screenshot_path("web-deviation-acknowledged"), full_page=True)
        with served.engine.connect() as conn:
            row = conn.execute(sa.select(Deviation.__table__).where(Deviation.__table__.c.id == deviation_id)).one()
        assert (row.status, row.acted_by) == ("acknowledged", "tolfiq")

        # a project's page, then a field visit recorded for it
        code = page.locator("dl a[href^='/projects/'], dl a[href^='/agreements/']").first.inner_text()
        with served.engine.connect() as conn:
            project = conn.execute(sa.text("SELECT code FROM project ORDER BY id LIMIT 1")).scalar_one()
            agreement = conn.execute(sa.select(ExpenseAgreement.__table__.c.agreement_no).limit(1)).scalar_one()
        assert code
        page.goto(f"{served.url}/projects/{project}")
        assert page.locator("figure.curve svg path").count() >= 1
        page.screenshot(path=screenshot_path("web-project"), full_page=True)
        page.click("a.button[href^='/visits?project=']")
        page.fill("input[name=date]", "۱۴۰۵/۰۸/۲۰")
        page.fill("input[name=observed_progress]", "۳۷٫۵")
        page.fill("textarea[name=remarks]", "کارگاه فعال بود")
        page.screenshot(path=screenshot_path("web-visit-form"), full_page=True)
        page.click("form[action='/visits'] button[type=submit]")
        page.wait_for_url(re.compile(rf"/projects/{re.escape(project)}$"))
        page.wait_for_selector("text=بازدید ثبت شد")
        with served.engine.connect() as conn:
            visits = conn.execute(sa.select(FieldInspection.__table__).where(
                FieldInspection.__table__.c.source_file == "console-tolfiq.csv")).all()
        assert [(v.project_code, str(v.observed_progress).rstrip("0")) for v in visits] == [(project, "37.5")]

        page.goto(f"{served.url}/agreements/{agreement}")
        page.screenshot(path=screenshot_path("web-agreement"), full_page=True)

        # a reconciliation from the page: progress while it runs, then its result
        page.goto(f"{served.url}/reconcile")
        page.fill("input[name=as_of]", "1405/09/04")
        page.click("form[action='/reconcile'] button[type=submit]")
        # the page refreshes itself until the job ends; a failed job ends the wait at once, showing why
        page.wait_for_selector(".job-done, .job-failed", timeout=90_000)
        assert page.locator(".job-failed").count() == 0, page.locator(".job-failed").inner_text()
        assert "یافته" in page.locator(".job-done").inner_text()
        page.screenshot(path=screenshot_path("web-reconcile-done"), full_page=True)

        page.goto(f"{served.url}/")
        page.screenshot(path=screenshot_path("web-overview"), full_page=True)
        page.goto(f"{served.url}/runs")
        page.screenshot(path=screenshot_path("web-runs"), full_page=True)
        page.locator("table tbody tr td a").first.click()
        page.wait_for_url(re.compile(r"/runs/\d+$"))
        page.screenshot(path=screenshot_path("web-run"), full_page=True)
        assert errors == []


def test_the_console_on_a_phone(served, browser):
    with browser_page(width=390, height=844, browser=browser) as (page, errors):
        _sign_in(page, served, "social")
        page.screenshot(path=screenshot_path("web-phone-deviations"), full_page=True)
        page.screenshot(path=screenshot_path("web-phone-deviations-screen"))  # what the phone shows first
        # nothing but the wide tables' own scrollers may be wider than the phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto(f"{served.url}/")
        page.screenshot(path=screenshot_path("web-phone-overview"), full_page=True)
        page.goto(f"{served.url}/deviations?status=open&group=social")  # one the expert may acknowledge
        page.locator("table.devs tbody tr td:nth-child(2) a").first.click()
        page.wait_for_url(re.compile(r"/deviations/\d+$"))
        page.screenshot(path=screenshot_path("web-phone-deviation"), full_page=True)
        page.screenshot(path=screenshot_path("web-phone-deviation-screen"))
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # a reason of one long word (a pasted address) breaks instead of widening the page
        page.fill("form[action$='/acknowledge'] textarea", "https://intranet.example/" + "ب" * 300)
        page.click("form[action$='/acknowledge'] button[type=submit]")
        page.wait_for_selector("text=بررسی ثبت شد")
        page.screenshot(path=screenshot_path("web-phone-deviation-long-reason"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # a project's and an agreement's page (a new user found them 545 px and 500 px wide)
        with served.engine.connect() as conn:
            project = conn.execute(sa.text("SELECT code FROM project ORDER BY id LIMIT 1")).scalar_one()
            agreement = conn.execute(sa.select(ExpenseAgreement.__table__.c.agreement_no).limit(1)).scalar_one()
        for name, path in (("project", f"/projects/{project}"), ("agreement", f"/agreements/{agreement}")):
            page.goto(f"{served.url}{path}")
            page.screenshot(path=screenshot_path(f"web-phone-{name}"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, name
        # every label of the S-curves lies inside its drawing (the last quarter's was cut off)
        page.goto(f"{served.url}/projects/{project}")
        overflow = page.evaluate("""() => [...document.querySelectorAll('figure.curve svg')].flatMap(svg => {
            const box = svg.getBoundingClientRect();
            return [...svg.querySelectorAll('text')].map(t => { const r = t.getBoundingClientRect();
                return Math.max(box.left - r.left, r.right - box.right); }); })""")
        assert overflow and max(overflow) <= 0.5, overflow
        assert errors == []


def test_the_admins_users_page(served, browser):
    with browser_page(browser=browser) as (page, errors):
        _sign_in_from_login(page, served, "admin")
        page.goto(f"{served.url}/users")
        assert page.locator("table tbody tr").count() >= 4
        page.screenshot(path=screenshot_path("web-users"), full_page=True)
        assert errors == []


# where the content of each table row's last cell lies, and the box that shows it (the viewport,
# narrowed by the table's scroller): a column scrolled out of sight lies outside the box
LAST_CELLS = """() => [...document.querySelectorAll('main table tbody tr')].map(row => {
    const cell = row.cells[row.cells.length - 1], range = document.createRange();
    range.selectNodeContents(cell);
    const r = range.getBoundingClientRect(), scroller = row.closest('.scroll')?.getBoundingClientRect();
    const left = Math.max(0, scroller ? scroller.left : 0);
    const right = Math.min(document.documentElement.clientWidth, scroller ? scroller.right : Infinity);
    return {text: cell.innerText.trim(), left: r.left, right: r.right, width: r.width, box: [left, right]};
})"""


def _misfits_on_a_phone(page, name: str) -> list:
    """What sticks out of a phone: the page scrolling sideways, a table's last column out of sight."""
    misfits = []
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > 390:
        misfits.append((name, "page width", width))
    for cell in page.evaluate(LAST_CELLS):
        left, right = cell["box"]
        if not (cell["width"] > 0 and cell["left"] >= left - 0.5 and cell["right"] <= right + 0.5):
            misfits.append((name, "last column out of sight", cell))
    return misfits


def test_the_users_and_runs_pages_on_a_phone(served, browser):
    """A phone shows every column of the users and runs tables, each row a card of labelled cells
    (they scrolled sideways, hiding the last columns: enabling a user, the rejected rows)."""
    with served.engine.begin() as conn:  # a rejected row as a portal's page gives one, its locator long
        run_id = conn.execute(sa.text("SELECT min(id) FROM sync_run")).scalar_one()
        conn.execute(sa.insert(RejectedRecord.__table__).values(
            run_id=run_id, source="nezarat4", locator="ProjectList year=1405 page 1 row 2",
            field="approved_credit", raw="۲۳۸٬۷۳", key="1301034555-003",
            reason="thousands separator not between groups of three digits"))
    with browser_page(width=390, height=844, browser=browser) as (page, errors):
        _sign_in_from_login(page, served, "admin")
        misfits = []
        for name, path in (("users", "/users"), ("runs", "/runs"), ("run", f"/runs/{run_id}")):
            page.goto(f"{served.url}{path}")
            page.screenshot(path=screenshot_path(f"web-phone-{name}"), full_page=True)
            page.screenshot(path=screenshot_path(f"web-phone-{name}-screen"))
            # each cell names its column: on a phone, the card's only heading
            if not page.locator("main table tbody td[data-label]").count():
                misfits.append((name, "no cell names its column"))
            misfits += _misfits_on_a_phone(page, name)
        assert not misfits, "\n".join(map(str, misfits))
        assert errors == []


def test_a_deviation_a_run_resolved_says_why_in_persian(served, browser):
    """A progress lag whose report is corrected: the next run resolves it, and its page's history says
    why in Persian (it showed the run's code, 'not found')."""
    dev, reports = Deviation.__table__, sa.table("progress_report", sa.column("id"), sa.column("progress"))
    with served.engine.begin() as conn:
        lag = conn.execute(sa.select(dev.c.id, dev.c.evidence_id).where(
            dev.c.rule == "progress_lag", dev.c.status == "open").order_by(dev.c.id).limit(1)).one()
        conn.execute(sa.update(reports).where(reports.c.id == lag.evidence_id).values(progress=100))
    reconcile.run(served.engine, served.reconcile, as_of=CLOCK.date())
    with served.engine.connect() as conn:
        assert conn.execute(sa.select(dev.c.status).where(dev.c.id == lag.id)).scalar_one() == "resolved"
    with browser_page(browser=browser) as (page, errors):
        _sign_in(page, served, "tolfiq")
        page.goto(f"{served.url}/deviations/{lag.id}")
        history = page.locator("section:has(h2:text('سرگذشت')) tbody tr")
        assert history.last.locator("td.why").inner_text() == "در اجرای تطبیق یافت نشد"
        assert "not found" not in page.content()
        page.screenshot(path=screenshot_path("web-deviation-resolved"), full_page=True)
        assert errors == []


def test_the_page_a_person_sees_when_the_store_fails_under_it(served, browser):
    # the store failing under a page (a table gone for a moment): the console's own Persian page,
    # right to left, saying to try again later; nothing of the database's words reaches the person
    with browser_page(browser=browser) as (page, errors):
        _sign_in(page, served, "social")
        with served.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE deviation RENAME TO deviation_gone")
        try:
            response = page.goto(f"{served.url}/deviations")
            page.screenshot(path=screenshot_path("web-store-unavailable"), full_page=True)
            text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
        finally:
            with served.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE deviation_gone RENAME TO deviation")
        assert response.status == 503
        assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
        assert "پایگاه داده اکنون پاسخ نمی‌دهد" in text and "بازگشت به نمای کلی" in text
        assert page.inner_text("h1") == "پایگاه داده در دسترس نیست"
        assert "no such table" not in page.content() and "deviation_gone" not in page.content()
        assert page.locator("nav").count() >= 1  # the console's page, its menu included
        page.click("text=بازگشت به نمای کلی")  # and once the store answers, the way back works
        page.wait_for_url(re.compile(r"/$"))
        assert [e for e in errors if "503" not in e] == []


def test_an_agreements_unit_costs_and_a_projects_long_remarks(served, browser):
    """Found by a new user: an operation's heading said «بهای واحد ۲» without its unit; a visit's
    remarks of 5,000 characters overflowed the project's visits table; the S-curves' quarters read
    «سه‌ماهه ۱» where presentation.md says «سه‌ماهه اول»."""
    with served.engine.connect() as conn:
        project = conn.execute(sa.text("SELECT code FROM project ORDER BY id LIMIT 1")).scalar_one()
        agreement = conn.execute(sa.select(ExpenseAgreement.__table__.c.agreement_no).limit(1)).scalar_one()
    with served.engine.begin() as conn:  # as a file or the CLI may store them: one long word, and prose
        for day, remarks in ((date(2026, 10, 1), "https://intranet.example/" + "ب" * 1200),
                             (date(2026, 10, 2), "کارگاه فعال بود و " * 280)):
            conn.execute(sa.insert(FieldInspection.__table__).values(
                project_code=project, visited_on=day, observed_progress=30, inspector="بازرس",
                inspector_key="بازرس", remarks=remarks, source_file="long.csv"))
    with browser_page(browser=browser) as (page, errors):
        _sign_in(page, served, "tolfiq")
        page.goto(f"{served.url}/agreements/{agreement}")
        headings = page.locator(".operation h4 small").all_inner_texts()
        assert headings and all("میلیون ریال" in h.split("بهای واحد")[1] for h in headings), headings[:3]
        page.goto(f"{served.url}/projects/{project}")
        labels = page.locator("figure.curve svg text[text-anchor=middle]").all_text_contents()
        assert labels[:5] == ["آغاز سال", "سه‌ماهه اول", "سه‌ماهه دوم", "سه‌ماهه سوم", "سه‌ماهه چهارم"]
        page.locator("figure.curve").last.screenshot(path=screenshot_path("web-project-curve"))
        visits = page.locator("section:has(h2:text('بازدیدهای میدانی')) .scroll")
        page.screenshot(path=screenshot_path("web-project-long-remarks"), full_page=True)
        # the table wraps the remarks within the page: nothing to scroll sideways
        assert visits.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), visits.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        assert errors == []


def test_what_a_persian_reading_user_found_in_a_trial(served, browser):
    """An agreement's S-curve with nothing reported in the first quarter and 399 of 1,000 in the
    second (the demo store's 1405-161-15004: its line was one point at the year's start), drawn in the
    printed report's colours; the agency's code after its name; a run's raw values left to right
    and its reasons in Persian; the log of acts naming people and the command line."""
    from reports.charts import PLANNED, REPORTED
    from store.models import Agency, SyncRun

    with served.engine.begin() as conn:
        water = {"name": "شرکت آب و فاضلاب استان خوزستان", "name_key": "شرکت آب و فاضلاب استان خوزستان"}
        agencies = Agency.__table__
        if not conn.execute(sa.update(agencies).where(agencies.c.code == "161").values(**water)).rowcount:
            conn.execute(sa.insert(agencies).values(code="161", **water))
        add_dredging(conn, "1405-161-95004", "161", "15004")
        run_id = conn.execute(sa.select(sa.func.max(SyncRun.__table__.c.id))).scalar_one()
        conn.execute(sa.insert(RejectedRecord.__table__), [
            {"run_id": run_id, "source": "saba", "locator": f"agreement id=9{i}", "field": field, "raw": raw,
             "reason": reason} for i, (field, raw, reason) in enumerate((
                ("quarterlyTargets", '[24, "24.0", "24.0"]', "3 quarters, not 4"),
                ("credits[].approved", '"10000"', "expected number or null, found string"),
                ("credits[].chapter", "9", "not a expense chapter (1..7)"),
                ("exchangedOn", "1405/13/01", "no such Jalali day (month must be in 1..12)")))])
    with browser_page(browser=browser) as (page, errors):
        _sign_in(page, served, "tolfiq")
        page.goto(f"{served.url}/agreements/1405-161-95004")
        assert "شرکت آب و فاضلاب استان خوزستان (کد 161)" in page.inner_text("dl")
        curve = page.locator("figure.curve").first
        reported = curve.locator(f'svg path[stroke="{REPORTED}"]').get_attribute("d")
        assert reported.count("L") == 2, reported  # the year's start, the first quarter (0), the second
        assert curve.locator(f'svg path[stroke="{PLANNED}"][stroke-dasharray]').count() == 1
        curve.screenshot(path=screenshot_path("web-agreement-curve"))
        page.goto(f"{served.url}/runs/{run_id}")
        raws = page.locator("td[data-label='مقدار خام'] bdi.raw")
        assert raws.first.evaluate("e => getComputedStyle(e).direction") == "ltr"
        assert "not a expense chapter" not in page.inner_text("main")
        page.screenshot(path=screenshot_path("web-run-rejections"), full_page=True)
        errors_seen = list(errors)
    with browser_page(browser=browser) as (page, errors):
        _sign_in_from_login(page, served, "admin")
        page.goto(f"{served.url}/users")
        who = page.locator("td[data-label='کاربر']").all_inner_texts()
        assert "خط فرمان" in who and "cli" not in who, who
        page.locator("section:has(h2:text('کارهای اخیر'))").screenshot(path=screenshot_path("web-users-acts"))
        assert errors_seen == [] and errors == []


def test_the_console_is_set_in_vazirmatn_served_from_the_package(served, browser):
    # a presentation trial: the stylesheet named Vazirmatn and served none, so every page fell back
    import httpx

    from foundation import fonts

    with browser_page(browser=browser) as (page, errors):
        page.goto(f"{served.url}/login")
        loaded = page.evaluate("""async () => {
            await document.fonts.ready;
            await document.fonts.load('700 15px Vazirmatn', 'ورود');
            return [...document.fonts].filter(f => f.family.replace(/"/g, '') === 'Vazirmatn' && f.status === 'loaded')
                                      .map(f => f.weight).sort();
        }""")
        assert loaded == ["400", "700"], loaded
        assert errors == []
    for name in fonts.FILES.values():  # served without a session, as the sign-in page needs them
        answer = httpx.get(f"{served.url}/static/fonts/{name}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "font/woff2"
        assert answer.content == (fonts.DIRECTORY / name).read_bytes()
    for name in ("__init__.py", "OFL.txt", "..%2F__init__.py"):  # the folder's other files are not
        assert httpx.get(f"{served.url}/static/fonts/{name}").status_code == 404
