"""The HTML report in headless Chromium: right to left, charts drawn, nothing fetched, no console
errors, portal text shown as text, Persian figures, A4 landscape when printed. Screenshots go to
artifacts/screenshots/ for a person to look at."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from foundation import present

from reconcile.settings import RoutingConfig
from reports import html
from reports.model import Selection, build
from tests.browser import browser_page, chromium, screenshot_path
from tests.reports.conftest import AS_OF, MARKUP_TITLE

# what the page shows, the same from either store: its PostgreSQL variant is `-m slow` (README, "Tests";
# the report's figures are read from PostgreSQL by tests/reports/test_model.py)
pytestmark = pytest.mark.slow_on_postgresql


@pytest.fixture(scope="module")
def browser(simulated):
    """One Chromium for this module's pages of one store: ~1 s of CPU a test less. Stopped before
    the next store is filled (by a sync, on an event loop a running Playwright's would refuse)."""
    with chromium() as running:
        yield running


@pytest.fixture(scope="module")
def page_file(simulated, tmp_path_factory):
    """The store's HTML report, written once for the module's tests of that store: they only read
    it; with the store's name (sqlite, postgresql) for their screenshots."""
    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig(agencies={"305": "infrastructure"}))
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html.render(report), encoding="utf-8")
    return path, simulated.dialect.name


def _open(page, path, fetched: list[str]):
    page.on("request", lambda r: fetched.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")


def test_the_report_draws_its_charts_without_errors_or_fetching_anything(page_file, browser):
    path, backend = page_file
    fetched: list[str] = []
    with browser_page(browser=browser) as (page, errors):
        _open(page, path, fetched)
        assert page.locator("html").get_attribute("dir") == "rtl"
        assert page.locator("html").get_attribute("lang") == "fa"
        charts = page.locator("figure.chart svg")
        assert charts.count() >= 3  # three charts, a long one in parts (test_it_prints_each_chart_whole...)
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100
            bars = charts.nth(i).locator("rect")
            assert bars.count() > 0
            first = bars.first.bounding_box()
            assert first and first["width"] > 0 and first["height"] > 0
        page.screenshot(path=screenshot_path(f"report-summary-{backend}"))
        page.locator("figure.chart").first.screenshot(path=screenshot_path(f"report-chart-progress-{backend}"))
        page.locator("#cycle").screenshot(path=screenshot_path(f"report-cycle-{backend}"))
        assert errors == []
    assert fetched == [path.as_uri()]  # self-contained: the page itself and nothing else


def test_portal_text_is_shown_as_text_never_run(page_file, browser):
    path, _ = page_file
    with browser_page(browser=browser) as (page, errors):
        _open(page, path, [])
        assert page.evaluate("window.__injected") is None
        assert page.locator("img").count() == 0
        assert page.get_by_text(MARKUP_TITLE, exact=True).count() == 2  # one row per quarter
        assert errors == []


def test_figures_use_persian_digits_and_separators(page_file, browser):
    path, _ = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        cells = page.locator("#summary td.n").all_inner_texts()
        assert cells and not any(re.search(r"[0-9]", c) for c in cells)
        total = page.locator("#summary tr.total").first.inner_text()
        assert "٬" in total and "٪" in total


def test_unit_costs_show_two_decimal_places_both_approved_and_actual(page_file, browser):
    # found by a new user: the approved unit cost was rounded to whole ('۲' beside an actual '۱٫۵۰')
    path, _ = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        rows = page.locator("#agreements tbody tr")
        assert rows.count() > 0
        for i in range(rows.count()):
            cells = rows.nth(i).locator("td").all_inner_texts()
            for shown in (cells[8], cells[9]):  # بهای واحد مصوب, بهای واحد واقعی
                assert shown == "—" or re.fullmatch(r"[۰-۹٬]+٫[۰-۹]{2}", shown), shown
        # every money column names its unit, as the workbook's do (a trial: «هزینه (تجمعی)» alone)
        headers = page.locator("#agreements thead th").all_inner_texts()
        money = [h for h in headers if h.startswith(("هزینه", "بهای واحد مصوب", "بهای واحد واقعی"))]
        assert len(money) == 3 and all(h.endswith("میلیون ریال)") for h in money), headers


def test_each_listed_deviation_shows_its_id_to_act_on(page_file, simulated, browser):
    # found by a new user: the e-mails say to act on a deviation by its id (`budgetwatch deviations ack ID`,
    # the console's /deviations/ID), and the report's deviations had none
    path, _ = page_file
    with simulated.connect() as conn:
        standing = conn.execute(sa.text(
            "SELECT id FROM deviation WHERE fiscal_year = 1405 AND quarter <= 2 "
            "AND status IN ('open', 'acknowledged')")).scalars().all()
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        assert page.locator("#deviations thead th").first.inner_text() == "شناسه"
        rows = page.locator("#deviations tbody tr")
        shown = page.locator("#deviations tbody tr td:first-child > bdi").all_inner_texts()
        assert rows.count() == len(standing) > 0
    # as stored, in ASCII digits: what `budgetwatch deviations ack ID` is typed with
    assert all(re.fullmatch(r"[0-9]+", s) for s in shown), shown[:5]
    assert sorted(map(int, shown)) == sorted(standing)


def test_each_listed_deviation_carries_its_figures_and_threshold(page_file, simulated, browser):
    # presentation.md: every figure a rule compared travels with the deviation — planned, actual and
    # the threshold beside its sentence (the report showed the sentence alone)
    path, _ = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        rows = page.locator("#deviations tbody tr")
        texts = [" ".join(t.split()) for t in rows.all_inner_texts()]
    lags = [t for t in texts if present.rule("progress_lag") in t]
    assert lags and all("برنامه: " in t and "عملکرد: " in t for t in lags)
    assert all("آستانه: عقب‌ماندگی ۵ واحد درصد یا بیشتر" in t for t in lags), lags[:2]
    gaps = [t for t in texts if present.rule("spend_progress_gap") in t]
    assert gaps
    gap_limit = "آستانه: فاصلهٔ سهم جذب از سهم پیشرفت ۳۰ واحد درصد یا بیشتر"
    assert all("سهم جذب اعتبار: " in t and gap_limit in t for t in gaps)
    # an operation's quantities in its unit of measure, as its sentence counts them
    with simulated.connect() as conn:
        units = set(conn.execute(sa.text("SELECT DISTINCT unit FROM operation")).scalars())
    shortfalls = [t for t in texts if present.rule("operation_shortfall") in t]
    assert shortfalls
    for t in shortfalls:
        planned = re.search(r"برنامه: [۰-۹٬٫]+ (.+?) \| عملکرد: [۰-۹٬٫]+ (.+?) \| آستانه: تحقق کمتر از ۸۵٪", t)
        assert planned and planned[1] == planned[2] and planned[1] in units, t


def test_codes_never_break_across_lines(page_file, browser):
    # found by a new user: a code wrapped at its hyphen in a narrow column
    path, _ = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        # on more than one line: a number's <bdi> is drawn in several boxes on one line (its digits'
        # and its Arabic separators' bidi runs), a broken one on lines a line's height apart
        broken = page.evaluate("""() => [...document.querySelectorAll('td bdi')]
            .filter(b => { const tops = [...b.getClientRects()].map(r => r.top);
                           return Math.max(...tops) - Math.min(...tops) > 5; }).map(b => b.textContent)""")
        assert page.locator("td bdi").count() > 0 and broken == [], broken[:5]


def test_on_a_phone_the_page_fits_and_its_tables_scroll(page_file, browser):
    # found by a new user: without a viewport the report laid out 1,271 px wide at 31 % zoom
    path, backend = page_file
    with browser_page(width=390, height=844, browser=browser) as (page, _errors):
        _open(page, path, [])
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # a chart keeps its drawn size, scrolling in its own box: shrunk to the phone, its labels
        # were ~4 px high (a trial)
        drawn = page.evaluate("""() => [...document.querySelectorAll('figure.chart svg')]
            .map(s => [s.getBoundingClientRect().width, +s.getAttribute('width')])""")
        assert drawn and all(abs(shown - width) < 1 for shown, width in drawn), drawn
        page.screenshot(path=screenshot_path(f"report-phone-{backend}"))


def test_it_prints_on_a4_landscape(page_file, tmp_path, browser):
    path, _ = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        pdf = page.pdf(prefer_css_page_size=True)
    sizes = {tuple(round(float(v)) for v in m) for m in re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)}
    assert sizes == {(842, 595)}  # A4 landscape in points


def test_a_projects_s_curve_draws_planned_and_reported_lines(simulated, tmp_path, request, browser):
    with simulated.connect() as conn:
        code = conn.execute(sa.text(
            "SELECT p.code FROM project p JOIN project_year py ON py.project_id = p.id "
            "JOIN progress_report r ON r.project_year_id = py.id GROUP BY p.code HAVING COUNT(*) >= 2 "
            "ORDER BY p.code")).scalars().first()
        page_html = html.render_project(conn, code)
    path = tmp_path / "project.html"
    path.write_text(page_html, encoding="utf-8")
    with browser_page(browser=browser) as (page, errors):
        _open(page, path, [])
        lines = page.locator("svg polyline")
        assert lines.count() == 2
        for i in range(2):
            box = lines.nth(i).bounding_box()
            assert box and box["width"] > 100
        assert page.locator("svg circle").count() >= 6  # four targets, two reports at least
        assert code in page.locator("h1").inner_text()
        # quarters by name and the year below, not «۱۴۰۵/۱», which reads as a day (found by a new user)
        axis = page.evaluate("() => [...document.querySelectorAll('svg text')].map(t => t.textContent)")
        assert {"اول", "دوم"} <= set(axis) and not [a for a in axis if re.fullmatch(r"[۰-۹]{4}/[۰-۹]", a)]
        page.screenshot(path=screenshot_path(f"report-project-{request.node.callspec.id}"))
        assert errors == []


def test_figures_flagged_for_differing_by_more_than_the_limit_read_more_than_it_apart(simulated):
    # trial: 600.50005 beside a ceiling of 600 read «۶۰۰٫۵» beside «مازاد بیش از ۰٫۵ میلیون ریال»
    from dataclasses import replace
    from decimal import Decimal

    from bs4 import BeautifulSoup

    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig())
    credit = replace(report.deviations[0], kind="capital", rule="credit_inconsistency", planned=Decimal(600),
                     actual=Decimal("600.50005"), bounds=(Decimal("0.5"),), threshold="مازاد بیش از ۰٫۵ میلیون ریال")
    page = BeautifulSoup(html.render(replace(report, deviations=[credit])), "html.parser")
    text = " ".join(page.select_one("#deviations tbody").get_text().split())
    assert "۶۰۰٫۵۰۰۱ میلیون ریال" in text and "آستانه: مازاد بیش از ۰٫۵ میلیون ریال" in text


def test_a_projects_page_marks_a_completion_forecast_after_its_planned_end(simulated):
    # trial: «پیش‌بینی اتمام: ۱۴۱۰» for a project planned to end in 1407, unmarked (the report marks it)
    from bs4 import BeautifulSoup

    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig())
        marked = {}
        for p in report.projects[:40]:
            page = BeautifulSoup(html.render_project(conn, p.code), "html.parser")
            [span] = [s for s in page.select("p.meta span") if "پیش‌بینی اتمام" in s.get_text()]
            marked[p.code] = ("late" in (span.get("class") or []), p.forecast.late)
    assert any(late for _, late in marked.values()) and any(not late for _, late in marked.values())
    assert all(shown == late for shown, late in marked.values()), marked


def test_a_projects_page_without_a_county_says_so_as_every_output_does(simulated):
    # a review: an empty «<span></span>» where the report, e-mails and console say «نامشخص»
    from bs4 import BeautifulSoup

    with simulated.connect() as conn:
        code = conn.execute(sa.text("SELECT code FROM project ORDER BY code LIMIT 1")).scalar_one()
        years = conn.execute(sa.text("SELECT y.id, y.county_id FROM project_year y JOIN project p ON p.id = y.project_id "
                                     "WHERE p.code = :code"), {"code": code}).all()
    with simulated.begin() as conn:
        conn.execute(sa.text("UPDATE project_year SET county_id = NULL WHERE id = :id"), [{"id": i} for i, _ in years])
    try:
        with simulated.connect() as conn:
            page = BeautifulSoup(html.render_project(conn, code), "html.parser")
        spans = [span.get_text() for span in page.select("p.meta span")]
        assert present.NO_COUNTY in spans and "" not in spans, spans
    finally:  # the package's shared store as the other tests read it
        with simulated.begin() as conn:
            conn.execute(sa.text("UPDATE project_year SET county_id = :county WHERE id = :id"),
                         [{"id": i, "county": county} for i, county in years])


QUARTER_NAME = re.compile(r"سه‌ماهه (اول|دوم|سوم|چهارم) ۱۴۰۵")


def test_quarters_are_named_in_every_table(page_file, browser):
    # found by a new user: the projects, deviations and cycle tables showed a quarter as a bare «۲»
    path, _ = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        shown = {table: page.locator(f"#{table} tbody td.q").all_inner_texts()
                 for table in ("projects", "deviations", "cycle")}
    for table, quarters in shown.items():
        assert quarters, table
        # a finding of the whole year (credit_inconsistency) has no quarter: «سال ۱۴۰۵»
        assert all(QUARTER_NAME.fullmatch(q) or (table == "deviations" and q == "سال ۱۴۰۵") for q in quarters), \
            (table, sorted(set(quarters))[:5])
    assert {"سه‌ماهه اول ۱۴۰۵", "سه‌ماهه دوم ۱۴۰۵"} <= set(shown["projects"])


# a marker at the start of each chart's caption and at the end of its legend: a link, which Chromium's
# PDF keeps as an annotation of the page it is printed on (1 px, inside lines already there: no layout moves)
MARK_CHARTS = """() => document.querySelectorAll('figure.chart').forEach((figure, i) => {
    for (const [where, name] of [[figure.querySelector('figcaption'), 'caption'], [figure.querySelector('.legend'), 'end']]) {
        const mark = document.createElement('a');
        mark.href = `https://marker.invalid/${name}/${i}`;
        mark.style.cssText = 'display: inline-block; width: 1px; height: 1px';
        where.prepend(mark);
    }
})"""


def _pages_of_links(pdf: bytes) -> tuple[int, dict[str, int]]:
    """The PDF's pages (its /Type /Page objects, in the page tree's order) and each link's page number."""
    objects = {int(n): body for n, body in re.findall(rb"(?ms)^(\d+) 0 obj\s*(.*?)endobj", pdf)}

    def refs(text: bytes) -> list[int]:
        return [int(n) for n in re.findall(rb"(\d+) 0 R", text)]

    def pages(number: int) -> list[int]:
        body = objects[number]
        if re.search(rb"/Type\s*/Pages\b", body):
            return [page for kid in refs(re.search(rb"/Kids\s*\[([^\]]*)\]", body)[1]) for page in pages(kid)]
        return [number]

    root = next(n for n, body in objects.items() if re.search(rb"/Type\s*/Pages\b", body) and b"/Parent" not in body)
    ordered = pages(root)
    assert len(ordered) == len(re.findall(rb"/Type\s*/Page\b", pdf))
    links = {}
    for page_number, number in enumerate(ordered, start=1):
        annotations = re.search(rb"/Annots\s*\[([^\]]*)\]", objects[number])
        for annotation in refs(annotations[1]) if annotations else []:
            uri = re.search(rb"/URI\s*\(([^)]*)\)", objects[annotation])
            if uri:
                links[uri[1].decode()] = page_number
    return len(ordered), links


def test_it_prints_each_chart_whole_and_with_its_caption(page_file, browser):
    # found by a new user: printed to PDF, a page held a chart's caption alone (the chart began on the
    # next page) and a county chart was split over two pages: each figure's caption and legend (its
    # first and last lines) must be printed on one page
    path, backend = page_file
    with browser_page(browser=browser) as (page, _errors):
        _open(page, path, [])
        figures = page.locator("figure.chart").count()
        page.evaluate(MARK_CHARTS)
        pdf = page.pdf(prefer_css_page_size=True)
        page.emulate_media(media="print")
        page.locator("figure.chart").first.screenshot(path=screenshot_path(f"report-chart-print-{backend}"))
    count, links = _pages_of_links(pdf)
    assert len(links) == 2 * figures > 0 and count > 1
    split = {i: (links[f"https://marker.invalid/caption/{i}"], links[f"https://marker.invalid/end/{i}"])
             for i in range(figures)}
    assert all(caption == end for caption, end in split.values()), split


def test_codes_in_sentences_never_break_when_printed(page_file, simulated, browser):
    # found by a new user: printed, «1405-150-11005» broke after «1405-» inside a finding's sentence;
    # each code a sentence isolates (U+2066…U+2069) is a <bdi>, which never wraps
    path, _ = page_file
    with simulated.connect() as conn:
        isolated = sum(m.count("\u2066") for m in conn.execute(sa.text(
            "SELECT message FROM deviation WHERE fiscal_year = 1405 AND quarter <= 2 "
            "AND status IN ('open', 'acknowledged')")).scalars())
    with browser_page(width=1040, height=700, browser=browser) as (page, _errors):  # A4 landscape's width
        _open(page, path, [])
        page.emulate_media(media="print")
        codes = page.locator("#deviations tbody td:last-child > bdi")  # the sentence's (its figures' are below)
        broken = page.evaluate("""() => [...document.querySelectorAll('#deviations tbody td:last-child > bdi')]
            .filter(b => b.getClientRects().length > 1).map(b => b.textContent)""")
        assert isolated > 0 and codes.count() == isolated
        assert broken == [], broken[:5]
        assert "\u2066" not in page.locator("#deviations tbody").inner_text()


# each minus sign on the page (before a Persian digit, starting a word: not a hyphen inside one), with
# where the browser drew it and the digit after it, and in which part of the page
MINUS_SIDES = """() => {
    const found = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        for (const m of node.data.matchAll(/(?<![^\\s(\u2066])-(?=[۰-۹])/g)) {
            const box = (start) => {
                const range = document.createRange();
                range.setStart(node, start);
                range.setEnd(node, start + 1);
                return range.getBoundingClientRect();
            };
            const minus = box(m.index), digit = box(m.index + 1);
            const cell = node.parentElement.closest('td, th, p, div');
            found.push({section: node.parentElement.closest('section')?.id ?? '', text: cell.textContent.trim(),
                        minus: minus.left, digit: digit.left, width: minus.width});
        }
    }
    return found;
}"""


def test_a_negative_figure_shows_its_minus_left_of_its_digits(page_file, browser):
    # trial: `<td class="n">-۱٫۴٪</td>` in the projects' gap column read «۱٫۴٪-» in the right-to-left
    # page (376 such cells in a demo report): a number keeps its own direction (presentation.md, <bdi>)
    path, backend = page_file
    with browser_page(width=1920, browser=browser) as (page, _errors):  # the projects' table fits: no scrolling
        _open(page, path, [])
        negatives = page.evaluate(MINUS_SIDES)
        gap = page.locator("#projects tbody td:nth-child(8)").filter(has_text=re.compile("^\u2066?-[۰-۹]")).first
        gap.scroll_into_view_if_needed()
        box = gap.locator("xpath=..").bounding_box()
        page.screenshot(path=screenshot_path(f"report-negative-gap-{backend}"),
                        clip={"x": box["x"], "y": box["y"] - 40, "width": box["width"], "height": box["height"] + 80})
    gaps = [n for n in negatives if n["section"] == "projects"]
    assert gaps and all(n["width"] > 0 for n in negatives)  # a reported progress ahead of its target
    wrong = [n for n in negatives if n["minus"] > n["digit"]]
    assert wrong == [], wrong[:5]


def test_an_agencys_code_follows_its_name_as_the_emails_write_it(page_file):
    # trial: «(150)» in the report, «(کد 161)» in the e-mails; the code stays ASCII digits, left to right
    from bs4 import BeautifulSoup

    path, _ = page_file
    page = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    agencies = page.select("#summary > table")[1].select("tbody tr:not(.total) td:first-child")
    cycle = page.select("#cycle tbody tr td:first-child")
    assert agencies and cycle
    for cell in agencies + cycle:
        assert re.fullmatch(r".+ \(کد [0-9]+\)", cell.get_text()), cell.get_text()
        assert [b.get_text() for b in cell.select("bdi")] == [re.search(r"([0-9]+)\)$", cell.get_text())[1]]


def test_the_report_is_set_in_vazirmatn_carried_inside_the_file(page_file, browser):
    # a presentation trial: the report named Vazirmatn but carried no font, so every reader saw a
    # fallback (DejaVu here); the file travels by mail and to the archive, nothing is served to it
    path, _backend = page_file
    with browser_page(browser=browser) as (page, errors):
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        loaded = page.evaluate("""async () => {
            await document.fonts.ready;
            return [...document.fonts].filter(f => f.family.replace(/"/g, '') === 'Vazirmatn' && f.status === 'loaded')
                                      .map(f => f.weight).sort();
        }""")
        assert loaded == ["400", "700"], loaded
        assert page.evaluate("document.fonts.check('13px Vazirmatn', 'پروژه')")
        assert errors == []
    assert path.read_text(encoding="utf-8").count("data:font/woff2;base64,") == 2


def test_an_s_curves_year_starts_where_the_year_before_it_ends():
    # reports.model.curve_year: each year from its start; one year's start is its previous year's end,
    # one place on the time axis, unless the store holds no figure of the year before
    from reports.charts import curve_slots
    from reports.model import curve_year

    def years(*fiscal_years):
        return [curve_year(y, None, [None] * 4, {}) for y in fiscal_years]

    slots = curve_slots(years(1404, 1405))
    assert slots[(1404, 0)] == 0 and slots[(1404, 4)] == slots[(1405, 0)] == 4 and slots[(1405, 4)] == 8
    slots = curve_slots(years(1403, 1405))  # 1404 not in the store: 1405 starts at a place of its own
    assert slots[(1403, 4)] == 4 and slots[(1405, 0)] == 5 and slots[(1405, 4)] == 9
