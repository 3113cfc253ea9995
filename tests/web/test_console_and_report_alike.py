"""The console and the monitoring report show one project or agreement alike. Found by a trial:

- a credit stage read with the portal's decimals in the console («۵۹۹٫۸», «۶۰۰٫۴») and whole in the
  report («۶۰۰» beside «۶۰۰»), where credit_inconsistency flags allocated 600.4 for exceeding a
  notified 599.8 by more than 0.5 million rials: the report hid the break it listed. One form now
  (reports/precision.py, credit_stages), in the console's tables, the report's page and its workbook;
- a project's S-curve began at the first quarter in the report and at the year's start in the
  console: both now draw the points of reports.model.curve_year, from the year's start at `start`.
"""

from __future__ import annotations

import io
from decimal import Decimal
import re

import openpyxl
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from fastapi.testclient import TestClient

import reconcile
from reconcile.settings import RoutingConfig
from reports import excel, html
from reports.charts import PLANNED, REPORTED
from reports.model import Selection, build
from store.models import Deviation, ProjectYear
from tests.browser import browser_page, chromium, screenshot_path
from tests.reports.builders import Province
from tests.reports.conftest import AS_OF
from tests.reports.test_figures_alike import as_excel_shows
from tests.web.conftest import PASSWORD, SECRET, add_users, console_config, login, serving
from web import create_app

# the console and the report read alike from either database (test_model.py, the console's own tests): PostgreSQL with -m slow
pytestmark = pytest.mark.slow_on_postgresql

STAGES = ("اعتبار مصوب", "اعتبار ابلاغی", "تخصیص", "جذب")
# county -> (what it holds, its four stages as every table must write them)
BROKEN = {
    # allocated 600.4 over a notified 599.8: 0.6 more, flagged; whole, both read «۶۰۰»
    "هندیجان": ("project B-1", ("۱٬۲۵۰٫۵", "۵۹۹٫۸", "۶۰۰٫۴", "۳۰۰")),
    # 600.5001 over 600: flagged for more than 0.5; at two places it read «۶۰۰٫۵», at the limit
    "رامشیر": ("project B-2", ("۷۰۰", "۶۰۰", "۶۰۰٫۵۰۰۱", "۰")),
    # an agreement's chapter: allocated 600.4 over a notified 599.8, spent standing for absorbed
    "هفتکل": ("agreement B-3", ("۱٬۲۵۰٫۵", "۵۹۹٫۸", "۶۰۰٫۴", "۱۰۰")),
}


@pytest.fixture
def broken(engine, tmp_path):
    """Two projects and an agreement whose credit stages credit_inconsistency flags, each alone in
    its county (so the report's county row holds its figures), reconciled; the console over them."""
    province = Province(engine)
    one = province.project("B-1", agency="771", county="هندیجان", credits=(("1250.5", "599.8", "600.4", 300),))
    two = province.project("B-2", agency="772", county="رامشیر", credits=((700, 600, "600.5001", 0),))
    province.agreement("B-3", agency="773", county="هفتکل", chapters=(("1250.5", "599.8", "600.4", 100),))
    with engine.begin() as conn:  # the portal's total row as it writes it: the source row's figures
        for py, (approved, notified, allocated, absorbed) in ((one, ("1250.5", "599.8", "600.4", 300)),
                                                               (two, (700, 600, "600.5001", 0))):
            conn.execute(sa.update(ProjectYear.__table__).where(ProjectYear.__table__.c.id == py.id).values(
                total_approved=approved, total_notified=notified, total_allocated=allocated,
                total_absorbed=absorbed))
    config = console_config(tmp_path)
    reconcile.run(engine, config.reconcile, as_of=AS_OF)
    add_users(engine)
    return engine, config


def _cells(row) -> list[str]:
    return [" ".join(cell.get_text().split()) for cell in row.find_all(["td", "th"], recursive=False)]


def _console_credits(client, path: str) -> list[list[str]]:
    """The rows of a console page's credit table, its four stages each."""
    page = BeautifulSoup(client.get(path).text, "html.parser")
    heading = next(h for h in page.select("h3") if h.get_text().startswith("اعتبارات"))
    return [_cells(tr)[-4:] for tr in heading.find_next("table").select("tbody tr")]


def test_a_credit_break_the_rule_flagged_reads_alike_in_the_console_the_page_and_the_workbook(broken):
    engine, config = broken
    with engine.connect() as conn:
        flagged = set(conn.execute(sa.select(Deviation.__table__.c.subject).where(
            Deviation.__table__.c.rule == "credit_inconsistency")).scalars())
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig(),
                       rules=config.reconcile.rules)
    assert {"B-1", "B-2", "B-3"} <= flagged  # the rule flags each of them

    client = TestClient(create_app(engine, config, secret=SECRET))
    login(client, "tolfiq")
    in_console = {
        "هندیجان": _console_credits(client, "/projects/B-1"),  # the source row, then the portal's total
        "رامشیر": _console_credits(client, "/projects/B-2"),
        "هفتکل": _console_credits(client, "/agreements/B-3"),
    }

    page = BeautifulSoup(html.render(report), "html.parser")
    by_county = page.select("#summary > table")[0]
    on_page = {row[0]: row[3:7] for row in map(_cells, by_county.select("tbody tr"))}

    book = openpyxl.load_workbook(io.BytesIO(excel.render(report)))
    sheet = book["شهرستان‌ها"]
    header = [c.value for c in sheet[1]]
    columns = [next(i for i, h in enumerate(header, start=1) if h.startswith(stage)) for stage in STAGES]
    in_book = {sheet.cell(r, 1).value: [as_excel_shows(sheet.cell(r, c)) for c in columns]
               for r in range(2, sheet.max_row + 1)}

    # and the evidence row of each deviation's page (a trial: «جذب ۶۰۰٫۵ میلیون ریال» under a card
    # saying ۶۰۰٫۵۰۰۱, read as a break of exactly the tolerance), its stages in the unit they are in
    evidence = {}
    with engine.connect() as conn:
        for subject, county in (("B-1", "هندیجان"), ("B-2", "رامشیر"), ("B-3", "هفتکل")):
            deviation_id = conn.execute(sa.select(Deviation.__table__.c.id).where(
                Deviation.__table__.c.rule == "credit_inconsistency", Deviation.__table__.c.subject == subject)).scalar_one()
            page_html = BeautifulSoup(client.get(f"/deviations/{deviation_id}").text, "html.parser")
            table = next(h for h in page_html.select("h2") if h.get_text().startswith("ردیف شاهد")).find_next("table")
            cells = [" ".join(td.get_text().split()) for td in table.select("td")]
            stages = [c for c in cells if c.endswith(" میلیون ریال")]
            evidence[county] = [c.removesuffix(" میلیون ریال") for c in stages]

    for county, (what, shown) in BROKEN.items():
        expected = list(shown)
        assert evidence[county] == expected, (what, evidence[county])
        assert all(row == expected for row in in_console[county]) and in_console[county], (what, in_console[county])
        assert on_page[county] == expected, (what, on_page[county])
        assert in_book[county] == expected, (what, in_book[county])
    # the cell holds the figure as stored; only its format rounds what is seen
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 1).value == "رامشیر")
    assert sheet.cell(row, columns[2]).value == 600.5001 and sheet.cell(row, columns[2]).number_format == "#,##0.0000"
    row = next(r for r in range(2, sheet.max_row + 1) if sheet.cell(r, 1).value == "هندیجان")
    assert [sheet.cell(row, c).number_format for c in columns] == ["#,##0.0", "#,##0.0", "#,##0.0", "#,##0"]


# --- the S-curve -------------------------------------------------------------------------------------

def _grid(svg) -> tuple[float, float, float, float]:
    """(left, right, y of 0 %, y of 100 %) from a chart's horizontal grid lines."""
    lines = [line for line in svg.find_all("line") if line.get("y1") == line.get("y2")]
    ys = [float(line["y1"]) for line in lines]
    return float(lines[0]["x1"]), float(lines[0]["x2"]), max(ys), min(ys)


def _as_read(svg, xys: list[tuple[float, float]], places: int) -> list[tuple[int, float]]:
    """Drawn points as (place along the time axis, percent): ``places`` is how many steps the axis has."""
    left, right, zero, hundred = _grid(svg)
    return [(round((x - left) / (right - left) * places), round((zero - y) / (zero - hundred) * 100, 1))
            for x, y in xys]


def _console_curves(client, code: str) -> dict[int, dict[str, list[tuple[int, float]]]]:
    """Each year's S-curve on the console's project page: {year: {stroke: [(quarter, percent)]}}."""
    page = BeautifulSoup(client.get(f"/projects/{code}").text, "html.parser")
    curves = {}
    for section in page.select("section.year"):
        year = int(re.sub(r"\D", "", section.h2.get_text().translate(str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789"))))
        svg = section.select_one("figure.curve svg")
        curves[year] = {path["stroke"]: _as_read(svg, [tuple(map(float, xy.split(",")))
                                                       for xy in re.findall(r"[ML]([0-9.]+,[0-9.]+)", path["d"])], 4)
                        for path in svg.find_all("path")}
    return curves


def test_a_projects_s_curve_has_the_same_points_in_the_console_and_the_report(engine, tmp_path):
    province = Province(engine)
    # 1404 from 0 to 38 of a planned 40; 1405 from its start, 38: a first report of 35 is a regression
    # progress_regression flags against `start`, which a curve beginning at the first quarter hid
    last = province.project("S-1", year=1404, agency="771", targets=(10, 20, 30, 40), start=0)
    for q, progress in enumerate((10, 20, 30, 38), start=1):
        province.report(last, q, progress)
    this = province.project("S-1", year=1405, agency="771", targets=(45, 55, 70, 90), start=38)
    province.report(this, 1, 35)
    province.report(this, 2, 50)
    add_users(engine)
    client = TestClient(create_app(engine, console_config(tmp_path), secret=SECRET))
    login(client, "tolfiq")
    console = _console_curves(client, "S-1")
    assert console == {
        1404: {PLANNED: [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)],
               REPORTED: [(0, 0), (1, 10), (2, 20), (3, 30), (4, 38)]},
        1405: {PLANNED: [(0, 38), (1, 45), (2, 55), (3, 70), (4, 90)], REPORTED: [(0, 38), (1, 35), (2, 50)]},
    }
    with engine.connect() as conn:
        svg = BeautifulSoup(html.render_project(conn, "S-1"), "html.parser").select_one("figure.chart svg")
    drawn = {}
    for line in svg.find_all("polyline"):
        xys = [tuple(map(float, xy.split(","))) for xy in line["points"].split()]
        drawn[line["stroke"]] = _as_read(svg, xys, 8)  # two years: 1405's start is 1404's end
    # the report's line across both years: each year's points as the console draws them, 1405's
    # four quarters after 1404's (its start where 1404's fourth quarter ends)
    for stroke in (PLANNED, REPORTED):
        assert drawn[stroke] == [(q + 4 * i, v) for i, year in enumerate((1404, 1405)) for q, v in console[year][stroke]]


def test_the_break_and_the_curve_as_a_person_sees_them(broken, tmp_path):
    """Screenshots for a person to look at: the console's credits table of a flagged project, its
    S-curve from the year's start, and the report's county table beside it (right to left)."""
    engine, config = broken
    if engine.dialect.name != "sqlite":
        pytest.skip("what a person sees does not depend on the database")
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig(), rules=config.reconcile.rules)
        project = html.render_project(conn, "B-1")
    (tmp_path / "report.html").write_text(html.render(report), encoding="utf-8")
    (tmp_path / "project.html").write_text(project, encoding="utf-8")
    with chromium() as running, serving(create_app(engine, config, secret=SECRET)) as port, \
            browser_page(browser=running) as (page, errors):
        page.goto(f"http://127.0.0.1:{port}/login")
        page.fill("input[name=username]", "tolfiq")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/$"))
        page.goto(f"http://127.0.0.1:{port}/projects/B-1")
        page.locator("section.year").first.screenshot(path=screenshot_path("web-project-credit-break"))
        cells = page.locator("section.year table").last.locator("tbody tr").first.locator("td").all_inner_texts()
        assert cells[1:] == list(BROKEN["هندیجان"][1])
        page.goto(f"http://127.0.0.1:{port}/agreements/B-3")
        page.locator("section.year").first.screenshot(path=screenshot_path("web-agreement-credit-break"))
        page.goto((tmp_path / "report.html").as_uri())
        page.locator("#summary > table").first.screenshot(path=screenshot_path("report-credit-break"))
        page.goto((tmp_path / "project.html").as_uri())
        page.locator("figure.chart").first.screenshot(path=screenshot_path("report-project-from-year-start"))
        assert errors == []


def test_the_consoles_other_amounts_are_written_as_the_reports():
    # a quarter's absorbed credit and an operation's spending, outside the credit tables, went through
    # present.amount with every stored place («۶۰۰٫۵۰۰۰۵»); the report writes up to two (precision.amount)
    from reports import precision
    from web.common import templates

    amount = templates().filters["amount"]
    for value in ("600.50005", "1699.88", "600.00", "0.004"):
        assert amount(Decimal(value)) == precision.amount(Decimal(value)).text()
    assert amount(Decimal("600.50005")) == "۶۰۰٫۵"
    assert amount(Decimal(2), unit=True, places=2) == "۲٫۰۰ میلیون ریال"  # a unit cost's two places, as asked
