"""The Excel report read back with openpyxl: sheets, right to left, formats, text kept as text, and
totals equal to sums a plain SQL query computes over the store (not the report code)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from decimal import Decimal

import openpyxl
import pytest
import sqlalchemy as sa

from foundation import present
from reconcile.settings import RoutingConfig
from reports import excel
from reports.model import Selection, build
from tests.reports.conftest import AS_OF, FORMULA_TITLE

# the workbook is written from the report model, read on both databases by test_model.py: PostgreSQL with -m slow
pytestmark = pytest.mark.slow_on_postgresql


SHEETS = ["گزارش", "شهرستان‌ها", "دستگاه‌ها", "گروه‌ها", "پروژه‌ها", "موافقتنامه‌ها", "انحرافات", "چرخه نظارت"]
JALALI = re.compile(r"^[۰-۹]{4}/[۰-۹]{2}/[۰-۹]{2}$")

CREDITS_BY_COUNTY = """
SELECT county, SUM(approved), SUM(notified), SUM(allocated), SUM(absorbed), SUM(projects), SUM(agreements) FROM (
  SELECT COALESCE(c.name, 'نامشخص') AS county, pc.approved, pc.notified, pc.allocated, pc.absorbed,
         0 AS projects, 0 AS agreements
    FROM project_credit pc JOIN project_year py ON py.id = pc.project_year_id LEFT JOIN county c ON c.id = py.county_id
   WHERE py.fiscal_year = 1405 AND NOT py.gone
  UNION ALL
  SELECT COALESCE(c.name, 'نامشخص'), ec.approved, ec.notified, ec.allocated, ec.spent, 0, 0
    FROM expense_credit ec JOIN expense_agreement ea ON ea.id = ec.agreement_id LEFT JOIN county c ON c.id = ea.county_id
   WHERE ea.fiscal_year = 1405 AND NOT ea.gone
  UNION ALL
  SELECT COALESCE(c.name, 'نامشخص'), 0, 0, 0, 0, 1, 0
    FROM project_year py LEFT JOIN county c ON c.id = py.county_id WHERE py.fiscal_year = 1405 AND NOT py.gone
  UNION ALL
  SELECT COALESCE(c.name, 'نامشخص'), 0, 0, 0, 0, 0, 1
    FROM expense_agreement ea LEFT JOIN county c ON c.id = ea.county_id WHERE ea.fiscal_year = 1405 AND NOT ea.gone
) AS figures GROUP BY county
"""
STANDING = ("SELECT id, kind, rule, subject, numbers, severity FROM deviation "
            "WHERE fiscal_year = 1405 AND quarter <= 2 "
            "AND status IN ('open', 'acknowledged')")


@pytest.fixture(scope="module")
def workbook(simulated):
    """The store's workbook, built once for the module's tests of that store: they only read it."""
    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig())
    data = excel.render(report)
    return openpyxl.load_workbook(io.BytesIO(data)), data, simulated


def _rows(sheet) -> list[dict]:
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, row)) for row in sheet.iter_rows(min_row=2, values_only=True)]


def _column(sheet, header: str) -> int:
    return [c.value for c in sheet[1]].index(header) + 1


def test_every_sheet_reads_right_to_left_with_a_frozen_filtered_header(workbook):
    book, _, _ = workbook
    assert book.sheetnames == SHEETS
    for sheet in book.worksheets:
        assert sheet.sheet_view.rightToLeft, sheet.title
        assert sheet.auto_filter.ref, sheet.title
        if sheet.title != "گزارش":
            assert sheet.freeze_panes == "A2", sheet.title
            assert sheet.cell(1, 1).font.b, sheet.title


def test_county_totals_equal_a_plain_sql_sum_over_the_store(workbook):
    book, _, engine = workbook
    with engine.connect() as conn:
        expected = {row[0]: [float(v or 0) for v in row[1:]] for row in conn.execute(sa.text(CREDITS_BY_COUNTY))}
    sheet = book["شهرستان‌ها"]
    columns = ["اعتبار مصوب (میلیون ریال)", "اعتبار ابلاغی (میلیون ریال)", "تخصیص (میلیون ریال)",
               "جذب (میلیون ریال)", "پروژه‌ها", "موافقتنامه‌ها"]
    found = {row["شهرستان"]: [row[c] for c in columns] for row in _rows(sheet) if row["شهرستان"]}
    total = found.pop("جمع")
    assert set(found) == set(expected)
    for county, figures in expected.items():
        assert found[county] == pytest.approx(figures, rel=1e-12), county
    assert total == pytest.approx([sum(f[i] for f in expected.values()) for i in range(6)], rel=1e-12)
    assert total[0] > 0 and total[4] >= 40 and total[5] >= 25


def test_amounts_and_percentages_are_numbers_with_formats(workbook):
    book, _, _ = workbook
    counties = book["شهرستان‌ها"]
    amount = counties.cell(2, _column(counties, "جذب (میلیون ریال)"))
    ratio = counties.cell(2, _column(counties, "نسبت جذب به تخصیص"))
    # million rials to the places a finding writes them (up to two, trailing zeros dropped), never whole
    places = -Decimal(repr(amount.value)).quantize(Decimal("0.01")).normalize().as_tuple().exponent
    assert isinstance(amount.value, (int, float))
    assert amount.number_format == ("#,##0." + "0" * places if places > 0 else "#,##0"), amount.value
    assert isinstance(ratio.value, float) and 0 <= ratio.value <= 1.5 and ratio.number_format in ("0.0%", "0%")
    projects = book["پروژه‌ها"]
    target = next(c for c in projects.iter_cols(min_col=_column(projects, "پیشرفت برنامه‌ای"), max_col=_column(
        projects, "پیشرفت برنامه‌ای"), min_row=2) for c in c if c.value is not None)
    # points written as a fraction; one place, or none where it is 0 (as the page and present.percent)
    assert target.number_format in ("0.0%", "0%") and 0 <= target.value <= 1


def test_figures_with_decimals_keep_them_and_whole_ones_show_no_point(workbook):
    # found by a new user: '#,##0' showed a planned 99.9 as 100 and a unit cost of 0.67 as 1; then a
    # unit cost of 2 read '2' in the workbook and '۲٫۰۰' on the page: unit costs have two places in both
    book, _, _ = workbook
    sheet = book["موافقتنامه‌ها"]

    def cells(header: str) -> list:
        return [c for c in (sheet.cell(r, _column(sheet, header)) for r in range(2, sheet.max_row + 1))
                if isinstance(c.value, (int, float))]

    costs = cells(f"بهای واحد مصوب ({present.AMOUNT_UNIT})") + cells(f"بهای واحد واقعی ({present.AMOUNT_UNIT})")
    assert costs and all(c.number_format == "#,##0.00" for c in costs)
    quantities = cells("مقدار برنامه‌ای (تجمعی)") + cells("مقدار تحقق‌یافته (تجمعی)")
    fractional = [c for c in quantities if c.value != int(c.value)]
    assert fractional and len(fractional) < len(quantities)  # both kinds are in the simulated store
    # up to two places, as many as the figure has: 849.94 '#,##0.00', 849.5 '#,##0.0', 850 '#,##0'
    for c in quantities:
        places = -Decimal(repr(c.value)).quantize(Decimal("0.01")).normalize().as_tuple().exponent
        assert c.number_format == ("#,##0." + "0" * places if places > 0 else "#,##0"), (c.value, c.number_format)


def test_a_deviations_planned_and_actual_are_in_its_rules_unit(workbook):
    # found in review: points (55), shares (0.45), money and quantities shared one bare number format
    book, _, _ = workbook
    sheet = book["انحرافات"]
    rule, planned, actual = (_column(sheet, h) for h in ("قاعده", "برنامه", "عملکرد"))
    units = {}
    for r in range(2, sheet.max_row + 1):
        for c in (planned, actual):
            cell = sheet.cell(r, c)
            if isinstance(cell.value, (int, float)):
                units.setdefault(sheet.cell(r, rule).value, set()).add(cell.number_format)
    # points written as a fraction, to the places the page and the e-mails write them (present.figure:
    # up to two, trailing zeros dropped; more where needed: below)
    assert all(re.fullmatch(r"0(\.0+)?%", f) for f in units[present.rule("progress_lag")])
    assert all(re.fullmatch(r"#,##0(\.0+)?", f) for f in units[present.rule("operation_shortfall")])  # quantities
    assert all(0 <= sheet.cell(r, planned).value <= 1.5 for r in range(2, sheet.max_row + 1)
               if sheet.cell(r, rule).value == present.rule("progress_lag") and sheet.cell(r, planned).value is not None)


def test_a_figure_is_never_shown_as_the_one_it_was_compared_with(simulated):
    # review: '0.0%' showed a latest progress of 99.996 — flagged for being below 100 — as 100.0%
    from dataclasses import replace

    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig())
    first = replace(report.deviations[0], kind="capital", rule="completion_overdue",
                    planned=Decimal(100), actual=Decimal("99.996"))
    cost = replace(report.deviations[0], kind="expense", rule="unit_cost_overrun",
                   planned=Decimal("2.5"), actual=Decimal("2.504"))
    book = openpyxl.load_workbook(io.BytesIO(excel.render(replace(report, deviations=[first, cost]))))
    sheet = book["انحرافات"]
    planned, actual = _column(sheet, "برنامه"), _column(sheet, "عملکرد")
    # as the page writes them: «۱۰۰٪» beside «۹۹٫۹۹۶٪»
    assert (sheet.cell(2, planned).number_format, sheet.cell(2, actual).number_format) == ("0%", "0.000%")
    assert sheet.cell(2, actual).value == pytest.approx(0.99996)  # the number itself, exact
    assert sheet.cell(3, actual).number_format == "#,##0.000"  # 2.504 beside 2.5, not 2.5 twice


def test_figures_flagged_for_differing_by_more_than_the_limit_show_more_than_it_apart(simulated):
    # trial: 600.50005 beside a ceiling of 600, flagged for exceeding it by more than 0.5, read
    # '600.50' (#,##0.0#) — an excess of exactly 0.5 to the reader
    from dataclasses import replace

    with simulated.connect() as conn:
        report = build(conn, Selection(1405, 2, AS_OF), routing=RoutingConfig())
    credit = replace(report.deviations[0], kind="capital", rule="credit_inconsistency",
                     planned=Decimal(600), actual=Decimal("600.50005"), bounds=(Decimal("0.5"),))
    book = openpyxl.load_workbook(io.BytesIO(excel.render(replace(report, deviations=[credit]))))
    sheet = book["انحرافات"]
    planned, actual = _column(sheet, "برنامه"), _column(sheet, "عملکرد")
    assert sheet.cell(2, actual).number_format == "#,##0.0000"  # 600.5001, as the page writes it
    assert sheet.cell(2, planned).number_format == "#,##0" and sheet.cell(2, actual).value == 600.50005


def test_jalali_dates_are_text_beside_an_iso_column(workbook):
    book, _, _ = workbook
    projects = book["پروژه‌ها"]
    jalali, iso = _column(projects, "تاریخ ثبت گزارش"), _column(projects, "تاریخ ثبت (ISO)")
    dated = [(projects.cell(r, jalali).value, projects.cell(r, iso).value) for r in range(2, projects.max_row + 1)
             if projects.cell(r, jalali).value]
    assert dated
    for shown, sortable in dated:
        assert JALALI.match(shown) and re.match(r"^\d{4}-\d{2}-\d{2}$", sortable)
    # the latest visit is the quarter's (trial: a deviation of the same report cited a later visit
    # while this column stood empty, saying nothing of where it stops)
    visited = _column(projects, "آخرین بازدید تا پایان سه‌ماهه")
    assert projects.cell(1, visited + 1).value == "بازدید (ISO)"


def test_a_formula_looking_title_stays_text(workbook):
    book, _, _ = workbook
    projects = book["پروژه‌ها"]
    title = _column(projects, "عنوان")
    cells = [projects.cell(r, title) for r in range(2, projects.max_row + 1)
             if projects.cell(r, 1).value == "X-FORMULA"]
    assert cells and all(c.value == FORMULA_TITLE and c.data_type == "s" for c in cells)
    # and quote-prefixed, so that editing the cell in Excel (F2, Enter) does not make it a formula
    assert all(c.quotePrefix for c in cells)
    plain = [projects.cell(r, title) for r in range(2, projects.max_row + 1) if projects.cell(r, 1).value != "X-FORMULA"]
    assert plain and not any(c.quotePrefix for c in plain)


def test_deviations_listed_are_those_standing_in_the_store(workbook):
    book, _, engine = workbook
    with engine.connect() as conn:
        standing = conn.execute(sa.text(
            "SELECT COUNT(*) FROM deviation WHERE fiscal_year = 1405 AND quarter <= 2 "
            "AND status IN ('open', 'acknowledged')")).scalar_one()
    assert standing > 0
    assert len(_rows(book["انحرافات"])) == standing


def _standing(engine) -> dict:
    with engine.connect() as conn:
        return {row.id: row for row in conn.execute(sa.text(STANDING))}


def test_the_deviation_sheet_leads_with_each_deviations_id_as_a_whole_number(workbook):
    # found by a new user: the e-mails say to act on a deviation by its id (`budgetwatch deviations ack ID`,
    # the console's /deviations/ID), and the report's deviations had none
    book, _, engine = workbook
    standing = _standing(engine)
    sheet = book["انحرافات"]
    assert sheet.cell(1, 1).value == "شناسه"  # column A: the first a right-to-left reader sees
    ids = [sheet.cell(r, 1) for r in range(2, sheet.max_row + 1)]
    assert all(isinstance(c.value, int) and c.number_format == "0" for c in ids)  # no '1,024' to retype
    assert sorted(c.value for c in ids) == sorted(standing)
    rule, subject = _column(sheet, "قاعده"), _column(sheet, "موضوع")
    for c in ids:  # each id on its own deviation's row
        d = standing[c.value]
        assert (sheet.cell(c.row, rule).value, sheet.cell(c.row, subject).value) == (present.rule(d.rule),
                                                                                     d.subject)


def test_each_deviations_figures_are_named_as_its_rule_names_them(workbook):
    # found by a new user: every rule's figures were headed «برنامه» / «عملکرد» alone, while the e-mails
    # and the console name them by rule (a spending share against a progress share, a ceiling and a sum)
    book, _, engine = workbook
    standing = _standing(engine)
    sheet = book["انحرافات"]
    planned, actual = _column(sheet, "برنامه"), _column(sheet, "عملکرد")
    # each name stands just before (right of) its figure: «name | figure», as the e-mail's «name: figure»
    assert (_column(sheet, "نام رقم برنامه"), _column(sheet, "نام رقم عملکرد")) == (planned - 1, actual - 1)
    named, quantities = set(), set()
    for r in range(2, sheet.max_row + 1):
        d = standing[sheet.cell(r, 1).value]
        names = (sheet.cell(r, planned - 1).value, sheet.cell(r, actual - 1).value)
        unit = present.measure_of(json.loads(d.numbers) if isinstance(d.numbers, str) else d.numbers)
        expected = present.figure_names(d.kind, d.rule)
        if unit and present.figure_unit(d.kind, d.rule) == present.QUANTITY:  # a quantity names its unit
            expected = tuple(f"{name} ({unit})" for name in expected)
            quantities.add(names)
        if present.figure_unit(d.kind, d.rule) == present.AMOUNT:  # and an amount its (a trial: «سقف» alone)
            expected = tuple(f"{name} (میلیون ریال)" for name in expected)
        assert names == expected, (d.kind, d.rule)
        assert all(sheet.cell(r, c).data_type == "s" for c in (planned - 1, actual - 1))
        figures = [sheet.cell(r, c) for c in (planned, actual)]
        assert all(c.value is None or c.data_type == "n" for c in figures)  # numbers stay numbers
        named.add((d.kind, d.rule, names))
    assert ("capital", "spend_progress_gap", ("سهم جذب اعتبار", "سهم پیشرفت فیزیکی")) in named
    assert ("expense", "unit_cost_overrun", ("بهای واحد مصوب (میلیون ریال)", "بهای واحد واقعی (میلیون ریال)")) in named
    assert ("capital", "progress_lag", ("برنامه", "عملکرد")) in named
    # an operation's quantities are counted in its unit of measure, named beside the number
    assert quantities and all(a.startswith("برنامه (") and b.startswith("عملکرد (") for a, b in quantities)


def test_each_deviation_says_the_threshold_its_rule_flagged_it_by(workbook):
    # presentation.md: every figure a rule compared travels with the deviation, the threshold included
    book, _, engine = workbook
    standing = _standing(engine)
    sheet = book["انحرافات"]
    column = _column(sheet, "آستانه")
    said = {}
    for r in range(2, sheet.max_row + 1):
        d = standing[sheet.cell(r, 1).value]
        numbers = json.loads(d.numbers) if isinstance(d.numbers, str) else d.numbers
        assert sheet.cell(r, column).value == present.threshold(d.rule, numbers, d.severity), (d.rule, d.subject)
        said[(d.rule, d.severity)] = sheet.cell(r, column).value
    assert said[("progress_lag", "minor")] == "عقب‌ماندگی ۵ واحد درصد یا بیشتر"  # the catalogue's default limit
    # a severe one says where its band begins: why it is critical
    assert said[("progress_lag", "critical")] == "عقب‌ماندگی ۵ واحد درصد یا بیشتر؛ بحرانی از ۳۰ واحد درصد"
    assert said[("missing_report", "major")].startswith("ثبت گزارش تا ۱۴۰۵/")


def test_native_charts_are_in_the_workbook(workbook):
    _, data, _ = workbook
    charts = [n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.startswith("xl/charts/chart")]
    assert len(charts) == 3


def test_a_forecast_after_the_planned_end_stands_out_and_stays_a_year(workbook):
    book, _, _ = workbook
    projects = book["پروژه‌ها"]
    forecast, end = _column(projects, "سال پیش‌بینی اتمام"), _column(projects, "سال پایان برنامه‌ای")
    late = [projects.cell(r, forecast) for r in range(2, projects.max_row + 1)
            if projects.cell(r, forecast).value and projects.cell(r, forecast).value > projects.cell(r, end).value]
    on_time = [projects.cell(r, forecast) for r in range(2, projects.max_row + 1)
               if projects.cell(r, forecast).value and projects.cell(r, forecast).value <= projects.cell(r, end).value]
    assert late and on_time
    assert all(c.number_format == "0" and c.font.color.rgb.endswith("B71C1C") for c in late)
    assert all(c.number_format == "0" and not c.font.b for c in on_time)
    # beside the year, how it was come to: not «پیش‌بینی» under a header «پیش‌بینی» (a trial)
    basis = _column(projects, "مبنای سال اتمام")
    said = {projects.cell(r, basis).value for r in range(2, projects.max_row + 1)}
    assert "برآورد با سرعت اخیر" in said and said <= {"برآورد با سرعت اخیر", "تکمیل‌شده", "بدون پیشرفت", "نامعلوم"}
    assert all(projects.cell(r, basis).value == "برآورد با سرعت اخیر" for r in range(2, projects.max_row + 1)
               if projects.cell(r, forecast).value and projects.cell(r, basis).value != "تکمیل‌شده")


def test_late_cycle_steps_stand_out(workbook):
    book, _, _ = workbook
    cycle = book["چرخه نظارت"]
    days, state = _column(cycle, "روزهای بررسی گروه تلفیق"), _column(cycle, "وضعیت بررسی گروه تلفیق")
    rows = range(2, cycle.max_row + 1)
    late = [r for r in rows if (cycle.cell(r, state).value or "").endswith("(دیرکرد)")]
    assert late  # nothing of 1405 is signed off in this store: every approved report waits past ten days
    assert all(cycle.cell(r, days).value > 10 and cycle.cell(r, days).font.b for r in late)


def test_each_deviations_severity_is_coloured_as_the_page_and_the_emails_colour_it(workbook):
    # trial: the deviations sheet's severity column had no colour; presentation.md: severity by colour
    # and by word, critical red, major orange, minor grey (the page and the e-mails: SEVERITY_COLOURS)
    book, _, _ = workbook
    sheet = book["انحرافات"]
    column = _column(sheet, "شدت")
    codes = {present.severity(code): code for code in present.SEVERITY_COLOURS}
    seen = set()
    for r in range(2, sheet.max_row + 1):
        cell = sheet.cell(r, column)
        code = codes[cell.value]  # the word stays
        assert cell.font.color is not None and cell.font.b, (cell.coordinate, cell.value)
        assert cell.font.color.rgb.upper().endswith(present.SEVERITY_COLOURS[code][1:].upper()), cell.value
        seen.add(code)
    assert seen == {"critical", "major", "minor"}
    others = [sheet.cell(r, column + 1) for r in range(2, sheet.max_row + 1)]  # the rule beside: plain
    assert all(c.font.color is None or c.font.color.type == "theme" for c in others)  # the sheet's own
    # the page colours its severities alike
    from reports import html

    css = (html.TEMPLATES / "base.html.j2").read_text(encoding="utf-8")
    for code, colour in present.SEVERITY_COLOURS.items():
        assert f".sev-{code} {{ color: {colour}; }}" in css


def test_unit_costs_say_their_unit(workbook, simulated):
    # trial: the unit-cost columns carried no unit; they hold million rials per unit of measure, as the
    # spending beside them (spent / delivered) and the console's «بهای واحد … میلیون ریال»
    book, _, _ = workbook
    sheet = book["موافقتنامه‌ها"]
    headers = [c.value for c in sheet[1]]
    assert f"بهای واحد مصوب ({present.AMOUNT_UNIT})" in headers
    assert f"بهای واحد واقعی ({present.AMOUNT_UNIT})" in headers
    with simulated.connect() as conn:
        stored = {(row[0], row[1]): float(row[2]) for row in conn.execute(sa.text(
            "SELECT a.agreement_no, o.code, o.unit_cost FROM operation o "
            "JOIN expense_agreement a ON a.id = o.agreement_id "
            "WHERE a.fiscal_year = 1405 AND o.unit_cost IS NOT NULL"))}
    rows = _rows(sheet)
    cost = [(stored.get((row["شماره موافقتنامه"], row["کد فعالیت"])), row[f"بهای واحد مصوب ({present.AMOUNT_UNIT})"])
            for row in rows]
    assert cost and all(a == pytest.approx(b) for a, b in cost if a is not None)  # as stored: million rials


def test_the_workbooks_charts_are_in_the_pages_colours(workbook):
    # the report's palette (reports/charts.py): planned grey, reported blue, absorption green; Excel's
    # own palette drew planned blue and reported orange beside the page's grey and blue
    from reports import charts

    _, data, _ = workbook
    archive = zipfile.ZipFile(io.BytesIO(data))
    drawn = [archive.read(n).decode() for n in sorted(archive.namelist()) if n.startswith("xl/charts/chart")]
    colours = [re.findall(r'<a:srgbClr val="([0-9A-F]{6})"', xml) for xml in drawn]
    progress = [c for c, xml in zip(colours, drawn) if "پیشرفت برنامه‌ای" in xml]
    assert len(progress) == 2
    assert all(c[:2] == [charts.PLANNED[1:].upper(), charts.REPORTED[1:].upper()] for c in progress), progress
    assert [c for c in colours if c[:1] == [charts.SINGLE[1:].upper()]]
