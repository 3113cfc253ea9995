"""The monitoring report as an Excel workbook (XlsxWriter), rendered from the one report model.

Every sheet reads right to left, has Persian headers, a frozen header row and a filter. Numbers
stay numbers with formats that show each figure to the places the HTML page shows it
(reports/precision.py: million rials up to two places, ``#,##0.0`` or ``#,##0``, and more in a row of
credit stages where credit_inconsistency's tolerance needs them; unit costs ``#,##0.00``, percentages
``0.0%`` and more places near a threshold, a project's gap in percentage points under a header that
says so); Jalali dates and quarters' names are text, each beside an ISO date or the quarter's number
for sorting. A
deviation's severity is written in its colour (present.SEVERITY_COLOURS, as the page and the
e-mails), the charts in the page's (reports/charts.py). Every text cell, portal text above all, is
written with ``write_string``: a title such as ``=HYPERLINK(...)`` stays text and never becomes a
formula; one that starts as a formula would (``= + - @``) is also marked quote-prefixed, so that
editing the cell in Excel (F2, Enter) keeps it text.
Native charts sit beside the summaries. The workbook's creation date is the report's
``generated_at`` and XlsxWriter stamps its zip entries with a fixed date, so the same report gives
the same bytes (the sign-off's archive depends on it).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date
from decimal import Decimal
from typing import Any

import xlsxwriter

from foundation import present
from foundation.vocabulary import SEVERITIES
from reports import charts, precision
from reports.cycle import Step
from reports.model import Report, Totals
from reports.precision import Shown
from reports.text import (
    FORECAST_WORDS,
    REPORT_TITLE,
    STEP_WORDS,
    period_text,
    scope_text,
)

FONT = "Tahoma"  # on the experts' Windows machines; Excel substitutes where missing
FORMULA_START = present.FORMULA_START  # a text cell starting so is quote-prefixed


@dataclass(frozen=True)
class Col:
    header: str
    kind: str  # text | id | int | shown (a precision.Shown: amounts among them) | pace | day | iso | year
    value: Callable[[Any], Any]
    width: int = 14


class _Book:
    def __init__(self, report: Report) -> None:
        self.buffer = io.BytesIO()
        self.book = xlsxwriter.Workbook(self.buffer, {"in_memory": True, "strings_to_formulas": False,
                                                      "strings_to_urls": False, "strings_to_numbers": False})
        created = report.generated_at.astimezone(UTC).replace(tzinfo=None)
        self.book.set_properties({"title": REPORT_TITLE, "subject": period_text(report.selection),
                                  "author": "budgetwatch", "created": created})
        base = {"font_name": FONT, "font_size": 10, "valign": "top"}
        late = {"bold": True, "font_color": "#b71c1c", "bg_color": "#fde0dc"}
        total = {"bold": True, "top": 2}
        props = {
            "header": {**base, "bold": True, "bg_color": "#dfe7ef", "border": 1, "text_wrap": True, "align": "center"},
            "text": {**base, "text_wrap": True},
            "int": {**base, "num_format": "#,##0"},
            "year": {**base, "num_format": "0"},
            "id": {**base, "num_format": "0"},  # a deviation's id, typed as it shows: 1024, not 1,024
            "pace": {**base, "num_format": "0.0"},
            "title": {**base, "bold": True, "font_size": 14},
            "label": {**base, "bold": True},
            # a late step or forecast: red, and still the number format of its column
            "late_int": {**base, **late, "num_format": "#,##0"},
            "late_year": {**base, **late, "num_format": "0"},
            "total": {**base, **total},
            # a deviation's severity by colour and by word (presentation.md), in the page's and e-mails' colours
            **{f"severity_{code}": {**base, "bold": True, "font_color": colour}
               for code, colour in present.SEVERITY_COLOURS.items()},
            "total_int": {**base, **total, "num_format": "#,##0"},
        }
        self.f = {name: self.book.add_format(p) for name, p in props.items()}
        self._base, self._variants = base, {"late": late, "total": total}
        self._shown: dict[tuple[str, str | None], Any] = {}
        # the same styles quote-prefixed, for text that starts as a formula would
        self.quoted = {name: self.book.add_format({**p, "quote_prefix": True}) for name, p in props.items()
                       if "num_format" not in p}

    def _shown_style(self, shown: Shown, variant: str | None) -> Any:
        """The style that shows a figure to its places (precision.Shown), plain, late or in a total row."""
        key = (shown.number_format(), variant)
        if key not in self._shown:
            self._shown[key] = self.book.add_format({**self._base, **self._variants.get(variant or "", {}),
                                                     "num_format": key[0]})
        return self._shown[key]

    def sheet(self, name: str):
        sheet = self.book.add_worksheet(name)
        sheet.right_to_left()
        return sheet

    def cell(self, sheet, row: int, col: int, kind: str, value: Any, fmt: str | None = None) -> None:
        if kind == "shown":  # a figure to the places the page shows it (reports/precision.py)
            variant = (fmt or "").partition("_")[0] or None  # late_shown, total_shown
            if value is None:
                sheet.write_blank(row, col, None, self.f["total" if variant == "total" else "text"])
            else:
                sheet.write_number(row, col, value.cell_value(), self._shown_style(value, variant))
            return
        name = fmt or kind if (fmt or kind) in self.f else "text"
        style = self.f[name]
        if value is None:
            sheet.write_blank(row, col, None, style)
        elif kind in ("int", "year", "pace"):
            sheet.write_number(row, col, float(value), style)
        elif kind == "id":
            sheet.write_number(row, col, int(value), style)
        elif kind == "day":
            sheet.write_string(row, col, present.day(value), style)
        elif kind == "iso":
            sheet.write_string(row, col, value.isoformat() if isinstance(value, date) else str(value), style)
        else:
            text = str(value)
            quoted = text.startswith(FORMULA_START)
            sheet.write_string(row, col, text, self.quoted.get(name, style) if quoted else style)

    def table(self, sheet, columns: Sequence[Col], rows: Sequence[Any], *, first_row: int = 0,
              late: Callable[[Any, int], bool] | None = None,
              style: Callable[[Any, int], str | None] | None = None) -> int:
        """Header, rows, frozen header, filter; returns the row after the last. ``late`` marks a cell
        late (red, in its column's number format); ``style`` names another style of a cell, or None."""
        for c, col in enumerate(columns):
            sheet.write_string(first_row, c, col.header, self.f["header"])
            sheet.set_column(c, c, col.width)
        for r, item in enumerate(rows, start=first_row + 1):
            for c, col in enumerate(columns):
                flagged = late is not None and late(item, c)
                fmt = f"late_{col.kind}" if flagged else (style(item, c) if style is not None else None)
                self.cell(sheet, r, c, col.kind, col.value(item), fmt)
        sheet.freeze_panes(first_row + 1, 0)
        sheet.autofilter(first_row, 0, first_row + max(len(rows), 1), len(columns) - 1)
        return first_row + 1 + len(rows)

    def close(self) -> bytes:
        self.book.close()
        return self.buffer.getvalue()


def _credit(stage: int, limits: Sequence[Decimal]) -> Callable[[Totals], Shown | None]:
    """A summary row's credit stage (0 approved … 3 absorbed) to the places precision.credit_stages
    gives it beside the row's other stages, as the page and the console show it."""
    return lambda t: precision.credit_stages((t.approved, t.notified, t.allocated, t.absorbed), limits)[stage]


def _totals_columns(name_header: str, report: Report) -> list[Col]:
    unit = f" ({present.AMOUNT_UNIT})"
    limits = report.limits.credit
    return [
        Col(name_header, "text", lambda t: t.name, 34),
        Col("پروژه‌ها", "int", lambda t: t.projects, 9), Col("موافقتنامه‌ها", "int", lambda t: t.agreements, 11),
        Col("اعتبار مصوب" + unit, "shown", _credit(0, limits), 16),
        Col("اعتبار ابلاغی" + unit, "shown", _credit(1, limits), 16),
        Col("تخصیص" + unit, "shown", _credit(2, limits), 16),
        Col("جذب" + unit, "shown", _credit(3, limits), 16),
        Col("نسبت جذب به تخصیص", "shown", lambda t: precision.ratio(t.absorption), 12),
        Col("پیشرفت برنامه‌ای (وزنی)", "shown", lambda t: precision.points(t.planned_progress), 12),
        Col("پیشرفت گزارش‌شده (وزنی)", "shown", lambda t: precision.points(t.reported_progress), 12),
        Col("گزارش‌های مقرر", "int", lambda t: t.reports_due, 10),
        Col("ثبت‌شده", "int", lambda t: t.reports_entered, 9),
        Col("تأییدشده ذیحساب", "int", lambda t: t.reports_approved, 10),
        Col("معوق", "int", lambda t: t.reports_overdue, 8),
        *(Col(f"انحراف {present.severity(s)}", "int", lambda t, s=s: t.deviations[s], 9)
          for s in reversed(SEVERITIES)),
    ]


def _summary_sheet(b: _Book, report: Report, name: str, header: str, rows: list[Totals],
                   drawn: Sequence[tuple]) -> None:
    sheet = b.sheet(name)
    total = report.total
    columns = _totals_columns(header, report)
    end = b.table(sheet, columns, rows)
    for c, col in enumerate(columns):
        kind = col.kind if col.kind != "text" else None
        value = col.value(total)
        style = f"total_{kind}" if kind else "total"
        b.cell(sheet, end, c, col.kind if kind else "text", value, style)
    place = end + 3
    for title, series in drawn:  # series: (name, colour, column index) drawn against the names column
        chart = b.book.add_chart({"type": "column"})
        for label, colour, column in series:  # in the page's colours (reports/charts.py)
            chart.add_series({"name": label, "categories": [name, 1, 0, max(len(rows), 1), 0],
                              "values": [name, 1, column, max(len(rows), 1), column], "gap": 60,
                              "fill": {"color": colour}, "border": {"none": True}})
        chart.set_title({"name": title, "name_font": {"name": FONT, "size": 11}})
        chart.set_x_axis({"num_font": {"name": FONT, "rotation": -45}, "reverse": True})
        chart.set_y_axis({"num_format": "0%", "num_font": {"name": FONT}})
        chart.set_legend({"position": "bottom", "font": {"name": FONT}})
        chart.set_size({"width": 900, "height": 360})
        sheet.insert_chart(place, 0, chart)
        place += 20


def _cover(b: _Book, report: Report) -> None:
    sheet = b.sheet("گزارش")
    sheet.set_column(0, 0, 28)
    sheet.set_column(1, 1, 60)
    sheet.write_string(0, 0, REPORT_TITLE, b.f["title"])
    lines = [("دوره", period_text(report.selection)), ("تاریخ مبنا", present.day(report.selection.as_of)),
             ("دامنه", scope_text(report.matched)), ("تهیه‌شده در", present.moment(report.generated_at)),
             ("زمان خدمت هر مرحله", f"{present.number(report.service_days)} روز"),
             ("بررسی نهایی گروه تلفیق", present.day(report.reviewed_on) if report.reviewed_on else "انجام نشده"),
             ("واحد مبالغ", present.AMOUNT_UNIT)]
    for r, (label, value) in enumerate(lines, start=2):
        sheet.write_string(r, 0, label, b.f["label"])
        b.cell(sheet, r, 1, "text", value)  # the scope names counties and agencies: portal text
    first = len(lines) + 4
    sheet.write_string(first - 1, 0, "انحراف‌های باز به تفکیک قاعده و شدت", b.f["label"])
    columns = [Col("نوع", "text", lambda rc: present.kind(rc[0]), 28), Col("قاعده", "text", lambda rc: present.rule(rc[1]), 60),
               *(Col(present.severity(s), "int", lambda rc, s=s: rc[2][s], 10) for s in reversed(SEVERITIES)),
               Col("جمع", "int", lambda rc: sum(rc[2].values()), 10)]
    b.table(sheet, columns, report.rule_counts, first_row=first)


def _quarter_cols(year: int, quarter: Callable[[Any], int | None]) -> list[Col]:
    """A quarter by its name, as every output writes it («سه‌ماهه دوم ۱۴۰۵»; «سال ۱۴۰۵» for none), and
    its number beside it to sort by."""
    return [Col("سه‌ماهه", "text", lambda row: present.quarter(year, quarter(row)), 16),
            Col("سه‌ماهه (شماره)", "int", quarter, 7)]


FORECAST_HEADER = "سال پیش‌بینی اتمام"  # the column marked when a forecast is late
# a gap from the target is a difference of percentages: in points, as the sentences and e-mails say it
GAP_HEADER = "فاصله از برنامه (واحد درصد)"


def _project_columns(report: Report) -> list[Col]:
    gap_limits = report.limits.gap
    return [
        Col("کد پروژه", "text", lambda p: p.code, 16), Col("عنوان", "text", lambda p: p.title, 40),
        Col("کد دستگاه", "text", lambda p: p.agency_code, 9), Col("دستگاه اجرایی", "text", lambda p: p.agency_name, 34),
        Col("شهرستان", "text", lambda p: p.county, 14), Col("گروه کارشناسی", "text", lambda p: present.group(p.group), 16),
        *_quarter_cols(report.selection.year, lambda p: p.quarter),
        Col("پیشرفت برنامه‌ای", "shown", lambda p: precision.points(p.target), 11),
        Col("پیشرفت گزارش‌شده", "shown", lambda p: precision.points(p.reported), 11),
        Col(GAP_HEADER, "shown", lambda p: precision.point_gap(p.gap, gap_limits), 10),
        Col("وضعیت ذیحساب", "text", lambda p: present.COMPTROLLER_NAMES.get(p.comptroller or "", "گزارش ثبت نشده"), 14),
        Col("تاریخ ثبت گزارش", "day", lambda p: p.reported_on, 12), Col("تاریخ ثبت (ISO)", "iso", lambda p: p.reported_on, 11),
        Col("آخرین بازدید تا پایان سه‌ماهه", "day", lambda p: p.visited_on, 12),
        Col("بازدید (ISO)", "iso", lambda p: p.visited_on, 11),
        Col("پیشرفت مشاهده‌شده", "shown", lambda p: precision.points(p.observed), 11),
        Col(FORECAST_HEADER, "year", lambda p: p.forecast.year, 10),
        Col("مبنای سال اتمام", "text", lambda p: FORECAST_WORDS[p.forecast.outlook], 16),
        Col("سال پایان برنامه‌ای", "year", lambda p: p.forecast.end_year, 10),
        Col("سرعت پیشرفت در سه‌ماهه (واحد درصد)", "pace", lambda p: p.forecast.pace, 12),
    ]


def _operation_columns(report: Report) -> list[Col]:
    limits = report.limits
    return [
        Col("شماره موافقتنامه", "text", lambda o: o.agreement_no, 18), Col("برنامه", "text", lambda o: o.program, 28),
        Col("کد فعالیت", "text", lambda o: o.code, 12), Col("فعالیت", "text", lambda o: o.title, 34),
        Col("واحد سنجش", "text", lambda o: o.unit, 10), Col("کد دستگاه", "text", lambda o: o.agency_code, 9),
        Col("دستگاه اجرایی", "text", lambda o: o.agency_name, 34), Col("شهرستان", "text", lambda o: o.county, 14),
        Col("گروه کارشناسی", "text", lambda o: present.group(o.group), 16),
        Col("مقدار برنامه‌ای (تجمعی)", "shown", lambda o: precision.quantity(o.planned), 12),
        Col("مقدار تحقق‌یافته (تجمعی)", "shown", lambda o: precision.quantity(o.delivered), 12),
        Col("نسبت تحقق", "shown", lambda o: precision.ratio(o.achievement, limits.achievement), 10),
        Col(f"هزینه (تجمعی، {present.AMOUNT_UNIT})", "shown", lambda o: precision.amount(o.spent), 14),
        Col(f"بهای واحد مصوب ({present.AMOUNT_UNIT})", "shown", lambda o: precision.unit_cost(o.unit_cost), 12),
        Col(f"بهای واحد واقعی ({present.AMOUNT_UNIT})", "shown", lambda o: precision.unit_cost(o.actual_unit_cost), 12),
        Col("نسبت بهای واقعی به مصوب", "shown", lambda o: precision.ratio(o.cost_ratio, limits.cost_ratio), 12),
    ]


def _figure_name(d: Any, i: int) -> str:
    """The name of a deviation's planned (0) or actual (1) figure, with its unit where the cell beside
    it, a number, cannot show one: an operation's unit of measure for a quantity, «برنامه (نفر-ساعت)»,
    million rials for an amount, «سقف (میلیون ریال)» (a trial: «سقف» alone, beside quantities named in
    theirs); shares and percentages show theirs in the cell's format."""
    name = present.figure_names(d.kind, d.rule)[i]
    unit = present.figure_unit(d.kind, d.rule)
    if d.unit and unit == present.QUANTITY:
        return f"{name} ({d.unit})"
    if unit == present.AMOUNT:
        return f"{name} ({present.AMOUNT_UNIT})"
    return name


# One table for every rule, so that a reader can filter and sort it (a sheet has one filter): the id
# first, the one a reader acts on (`budgetwatch deviations ack ID`, the console's /deviations/ID);
# the planned and actual figures keep their generic headers, each beside a narrow text column naming
# it as its rule does in the e-mails and the console (present.figure_names): «سهم جذب اعتبار | ۴۵٪».
SEVERITY_HEADER = "شدت"  # its cells in the severity's colour


def _deviation_columns(report: Report) -> list[Col]:
    return [
        Col("شناسه", "id", lambda d: d.id, 8),
        Col(SEVERITY_HEADER, "text", lambda d: present.severity(d.severity), 9),
        Col("قاعده", "text", lambda d: present.rule(d.rule), 30),
        Col("نوع", "text", lambda d: present.kind(d.kind), 20), Col("موضوع", "text", lambda d: d.subject, 22),
        *_quarter_cols(report.selection.year, lambda d: d.quarter),
        Col("وضعیت", "text", lambda d: present.status(d.status), 12),
        Col("کد دستگاه", "text", lambda d: d.agency_code, 9),
        Col("دستگاه اجرایی", "text", lambda d: d.agency_name, 30),
        Col("شهرستان", "text", lambda d: d.county, 14),
        Col("گروه کارشناسی", "text", lambda d: present.group(d.group), 16),
        Col("نام رقم برنامه", "text", lambda d: _figure_name(d, 0), 13),
        Col("برنامه", "shown", lambda d: precision.rule_figure(d.kind, d.rule, d.planned, d.actual, d.bounds), 10),
        Col("نام رقم عملکرد", "text", lambda d: _figure_name(d, 1), 13),
        Col("عملکرد", "shown", lambda d: precision.rule_figure(d.kind, d.rule, d.actual, d.planned, d.bounds), 10),
        Col("آستانه", "text", lambda d: d.threshold, 26),  # the condition the rule flagged it by, with its limit
        Col("شرح", "text", lambda d: d.message, 80),
    ]


def _step_cols(label: str, attr: str, day_attr: str | None) -> list[Col]:
    cols = [Col(f"روزهای {label}", "int", lambda c: getattr(c, attr).days, 10),
            Col(f"وضعیت {label}", "text", lambda c: _step_word(getattr(c, attr)), 12)]
    if day_attr:
        cols[:0] = [Col(f"تاریخ {label}", "day", lambda c: getattr(c, day_attr), 12),
                    Col(f"تاریخ {label} (ISO)", "iso", lambda c: getattr(c, day_attr), 11)]
    return cols


def _step_word(step: Step) -> str:
    key = "none" if step.days is None else ("done" if step.done else "pending")
    return STEP_WORDS[key] + (" (دیرکرد)" if step.late else "")


def _cycle_columns(report: Report) -> list[Col]:
    return [
        Col("کد دستگاه", "text", lambda c: c.agency_code, 9), Col("دستگاه اجرایی", "text", lambda c: c.agency_name, 34),
        Col("گروه کارشناسی", "text", lambda c: present.group(c.group), 16),
        *_quarter_cols(report.selection.year, lambda c: c.quarter),
        Col("پایان سه‌ماهه", "day", lambda c: c.quarter_end, 12), Col("پایان (ISO)", "iso", lambda c: c.quarter_end, 11),
        Col("موارد مقرر", "int", lambda c: c.due, 8), Col("ثبت‌شده", "int", lambda c: c.entered, 8),
        Col("تأییدشده", "int", lambda c: c.approved, 8),
        *_step_cols("ثبت گزارش", "report", "reported_on"), *_step_cols("تأیید ذیحساب", "approval", "approved_on"),
        *_step_cols("بررسی گروه تلفیق", "review", "reviewed_on"),
    ]


_STEP_HEADERS = {"report": "ثبت گزارش", "approval": "تأیید ذیحساب", "review": "بررسی گروه تلفیق"}


def render(report: Report) -> bytes:
    """The report as .xlsx bytes."""
    b = _Book(report)
    _cover(b, report)
    progress = ("پیشرفت برنامه‌ای و گزارش‌شده", (("پیشرفت برنامه‌ای", charts.PLANNED, 8),
                                                 ("پیشرفت گزارش‌شده", charts.REPORTED, 9)))
    _summary_sheet(b, report, "شهرستان‌ها", "شهرستان", report.counties,
                   [(progress[0] + " به تفکیک شهرستان", progress[1]),
                    ("نسبت جذب به تخصیص به تفکیک شهرستان", (("نسبت جذب", charts.SINGLE, 7),))])
    _summary_sheet(b, report, "دستگاه‌ها", "دستگاه اجرایی", report.agencies,
                   [(progress[0] + " به تفکیک دستگاه", progress[1])])
    _summary_sheet(b, report, "گروه‌ها", "گروه کارشناسی", report.groups, [])
    projects = _project_columns(report)
    forecast = next(c for c, col in enumerate(projects) if col.header == FORECAST_HEADER)
    b.table(b.sheet("پروژه‌ها"), projects, report.projects, late=lambda p, c: c == forecast and p.forecast.late)
    b.table(b.sheet("موافقتنامه‌ها"), _operation_columns(report), report.operations)
    deviations = _deviation_columns(report)
    severity = next(c for c, col in enumerate(deviations) if col.header == SEVERITY_HEADER)
    b.table(b.sheet("انحرافات"), deviations, report.deviations,
            style=lambda d, c: f"severity_{d.severity}" if c == severity else None)
    cycle = _cycle_columns(report)
    steps = {c: step for step, label in _STEP_HEADERS.items() for c, col in enumerate(cycle)
             if col.header == f"روزهای {label}"}
    b.table(b.sheet("چرخه نظارت"), cycle, report.cycle,
            late=lambda row, c: c in steps and getattr(row, steps[c]).late)
    return b.close()
