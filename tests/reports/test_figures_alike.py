"""The page and the workbook show each figure alike (docs/reports.md: one model, so their figures cannot
differ): every cell of the workbook, read through its number format, is the page's text of the same
figure. Found by a new user: an operation flagged at 84.994 % («تحقق کمتر از ۸۵٪») read delivered ۸۵۰
and ۸۵٪ on the page and 849.94 and 85.0 % in the workbook; a unit cost read ۲٫۰۰ and 2."""

from __future__ import annotations

import io
import re
from decimal import Decimal

import openpyxl
import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup

from foundation import present
from foundation.persian import sort_key
from reconcile.settings import RoutingConfig
from reports import excel, html
from reports.model import Selection, build
from tests.reports.builders import Province
from tests.reports.conftest import AS_OF

NUMBER_FORMAT = re.compile(r"(#,##)?0(?:\.(0+))?(%?)")


def as_excel_shows(cell) -> str:
    """A workbook cell as Excel shows it, in the page's digits: its number through its number format."""
    if cell.value is None:
        return present.NOTHING
    if isinstance(cell.value, str):
        return cell.value
    form = NUMBER_FORMAT.fullmatch(cell.number_format)
    assert form, f"{cell.coordinate}: a number format the report does not use: {cell.number_format!r}"
    grouped, places, percent = form[1], len(form[2] or ""), form[3]
    value = Decimal(repr(cell.value)) * (100 if percent else 1)
    return present.number(value, places=places, grouped=bool(grouped)) + ("٪" if percent else "")


def _page_rows(page: BeautifulSoup, selector: str) -> list[list[str]]:
    return [[" ".join(td.get_text().split()) for td in tr.find_all("td", recursive=False)]
            for tr in page.select(selector)]


def _sheet_rows(sheet, headers: list[str]) -> list[list[str]]:
    columns = [[c.value for c in sheet[1]].index(h) + 1 for h in headers]
    return [[as_excel_shows(sheet.cell(r, c)) for c in columns] for r in range(2, sheet.max_row + 1)]


def _column_letter(sheet, header: str) -> str:
    return openpyxl.utils.get_column_letter([c.value for c in sheet[1]].index(header) + 1)


def _both(report) -> tuple[BeautifulSoup, openpyxl.Workbook]:
    return (BeautifulSoup(html.render(report), "html.parser"),
            openpyxl.load_workbook(io.BytesIO(excel.render(report))))


OPERATION_FIGURES = {  # the page's column -> the workbook's header of the same figure
    4: "مقدار برنامه‌ای (تجمعی)", 5: "مقدار تحقق‌یافته (تجمعی)", 6: "نسبت تحقق",
    7: f"هزینه (تجمعی، {present.AMOUNT_UNIT})", 8: f"بهای واحد مصوب ({present.AMOUNT_UNIT})",
    9: f"بهای واحد واقعی ({present.AMOUNT_UNIT})",
    10: "نسبت بهای واقعی به مصوب",
}
PROJECT_FIGURES = {4: "سه‌ماهه", 5: "پیشرفت برنامه‌ای", 6: "پیشرفت گزارش‌شده", 7: "فاصله از برنامه (واحد درصد)"}


def test_an_operation_flagged_below_its_threshold_never_reads_as_at_it(engine):
    province = Province(engine)
    agreement = province.agreement("A-85", agency="118", county="دزفول")
    operation = province.operation(agreement, "op-85", targets=(500, 500, 500, 500), unit_cost=2)
    province.performance(operation, 1, 400, 800)
    province.performance(operation, 2, "449.94", "899.88")  # 849.94 of 1,000: 84.994 %
    with engine.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig())
    page, book = _both(report)
    [row] = [r for r in _page_rows(page, "#agreements tbody tr") if "op-85" in r[1]]
    shown = {header: row[i] for i, header in OPERATION_FIGURES.items()}
    assert shown == {
        "مقدار برنامه‌ای (تجمعی)": "۱٬۰۰۰", "مقدار تحقق‌یافته (تجمعی)": "۸۴۹٫۹۴",
        "نسبت تحقق": "۸۴٫۹۹٪",  # not ۸۵٪: below the 85 % it was flagged for not reaching
        # million rials to two places, as a finding writes an amount (reports/precision.py): was «۱٬۷۰۰»
        f"هزینه (تجمعی، {present.AMOUNT_UNIT})": "۱٬۶۹۹٫۸۸",
        f"بهای واحد مصوب ({present.AMOUNT_UNIT})": "۲٫۰۰", f"بهای واحد واقعی ({present.AMOUNT_UNIT})": "۲٫۰۰",
        "نسبت بهای واقعی به مصوب": "۱۰۰٪"}
    sheet = book["موافقتنامه‌ها"]
    [cells] = [r for r, code in zip(_sheet_rows(sheet, list(OPERATION_FIGURES.values())),
                                    _sheet_rows(sheet, ["کد فعالیت"])) if code == ["op-85"]]
    assert dict(zip(OPERATION_FIGURES.values(), cells)) == shown
    delivered = [c for c in sheet[_column_letter(sheet, "مقدار تحقق‌یافته (تجمعی)")] if c.value == 849.94]
    assert delivered  # the number itself stays exact


@pytest.fixture(scope="module")
def both(simulated):
    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig(agencies={"305": "infrastructure"}))
    return _both(report)


@pytest.mark.slow_on_postgresql  # what it shows or keeps, not the database: its SQLite variant stays in the default run
def test_every_operations_figures_read_alike(both):
    page, book = both
    on_page = [[row[i] for i in OPERATION_FIGURES] for row in _page_rows(page, "#agreements tbody tr")]
    in_book = _sheet_rows(book["موافقتنامه‌ها"], list(OPERATION_FIGURES.values()))
    assert on_page and on_page == in_book


def test_every_projects_quarter_and_progress_read_alike(both):
    page, book = both
    on_page = [[row[i] for i in PROJECT_FIGURES] for row in _page_rows(page, "#projects tbody tr")]
    in_book = _sheet_rows(book["پروژه‌ها"], list(PROJECT_FIGURES.values()))
    assert on_page and on_page == in_book


def test_every_summary_figure_reads_alike(both):
    page, book = both
    tables = page.select("#summary > table")[:3]
    for table, name in zip(tables, ("شهرستان‌ها", "دستگاه‌ها", "گروه‌ها")):
        sheet = book[name]
        headers = [c.value for c in sheet[1]][1:10]  # counts, credits, absorption, planned, reported
        on_page = [row[1:10] for row in _page_rows(table, "tbody tr")]
        assert on_page and on_page == _sheet_rows(sheet, headers), name


def test_a_projects_gap_is_written_in_percentage_points(both, simulated):
    # trial: the gap read «۱٫۲٪» (Excel 0.0%) while sentences, e-mails, the console and the workbook's
    # pace column say «واحد درصد»: a difference of two percentages is in points, the column says so
    page, book = both
    headers = [th.get_text() for th in page.select("#projects thead th")]
    assert headers[7] == "فاصله (واحد درصد)"
    gaps = [row[7] for row in _page_rows(page, "#projects tbody tr")]
    assert gaps and not [g for g in gaps if "٪" in g]
    assert [g for g in gaps if re.fullmatch(r"-?[۰-۹]+(٫[۰-۹]+)?", g) and g != "۰"]
    sheet = book["پروژه‌ها"]
    column = _column_letter(sheet, "فاصله از برنامه (واحد درصد)")
    cells = [c for c in sheet[column][1:] if c.value is not None]
    assert cells and all("%" not in c.number_format for c in cells)
    targets = [c.value for c in sheet[_column_letter(sheet, "پیشرفت برنامه‌ای")][1:]]
    reported = [c.value for c in sheet[_column_letter(sheet, "پیشرفت گزارش‌شده")][1:]]
    points = [c.value for c in sheet[column][1:]]
    for target, actual, gap in zip(targets, reported, points):  # progress is a fraction, the gap points
        if gap is not None:
            assert gap == pytest.approx((target - actual) * 100, abs=1e-9)
    # and on a project's own page, below its S-curve
    with simulated.connect() as conn:
        code = conn.execute(sa.text(
            "SELECT p.code FROM project p JOIN project_year py ON py.project_id = p.id "
            "JOIN progress_report r ON r.project_year_id = py.id GROUP BY p.code ORDER BY COUNT(*) DESC, p.code"
        )).scalars().first()
        project = BeautifulSoup(html.render_project(conn, code), "html.parser")
    assert [th.get_text() for th in project.select("thead th")][3] == "فاصله (واحد درصد)"
    shown = [row[3] for row in _page_rows(project, "tbody tr")]
    assert [g for g in shown if g != present.NOTHING] and not [g for g in shown if "٪" in g]


def test_open_deviations_by_rule_are_in_the_persian_order_of_the_rules_names(both):
    # trial: the cover's table listed rules by their English ids (approval_overdue, completion_overdue,
    # credit_…); the console lists them by their Persian names (foundation.persian.sort_key), each kind's
    page, book = both
    on_page = [row[:2] for row in _page_rows(page, "#summary > table:last-of-type tbody tr")]
    sheet = book["گزارش"]
    first = next(r for r in range(1, sheet.max_row + 1) if sheet.cell(r, 2).value == "قاعده")
    in_book = [[sheet.cell(r, 1).value, sheet.cell(r, 2).value] for r in range(first + 1, sheet.max_row + 1)]
    kinds = [present.kind(k) for k in ("capital", "expense")]
    assert len(on_page) > 4 and on_page == in_book
    assert on_page == sorted(on_page, key=lambda row: (kinds.index(row[0]), sort_key(row[1])))
    assert {present.rule("approval_overdue"), present.rule("completion_overdue")} <= {row[1] for row in on_page}
