"""The monitoring report as one self-contained HTML page, and one project's S-curve page.

Jinja2 with autoescaping renders templates/ (portal text is untrusted); the charts are inline SVG
drawn from reports/charts.py's geometry; styles are inline, with print rules for A4 landscape; no
script, font or image is fetched from anywhere. Every figure and date goes through
foundation.present (Persian digits, ``٬`` separators, Jalali days), each figure to the places the
workbook shows it with (reports/precision.py), in a left-to-right ``<bdi>`` (a minus left of its
digits in the right-to-left page). A code keeps its ASCII digits, left to right and unbroken, in a
``<bdi>``, inside a finding's sentence too; an agency's after its name: «… (کد 150)», as the e-mails.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import jinja2
from markupsafe import Markup, escape
from sqlalchemy.engine import Connection

from foundation import fonts, present
from reports import charts, precision
from reports.cycle import Step
from reports.forecast import Forecast, Point, forecast
from reports.model import Limits, Report, ReportError, curve_year
from reports.text import (
    FORECAST_WORDS,
    PROJECT_TITLE,
    REPORT_TITLE,
    STEP_WORDS,
    period_text,
    scope_parts,
)
from store import reporting

TEMPLATES = Path(__file__).parent / "templates"


def _step(step: Step) -> Markup:
    if step.days is None:
        return _ltr(STEP_WORDS["none"])
    text = f"{present.number(step.days)} روز"
    if not step.done:
        text += f" — {STEP_WORDS['pending']}"
    return _ltr(text + (" (دیرکرد)" if step.late else ""))


def _forecast(outlook: Forecast) -> str:
    if outlook.outlook == "forecast":
        return present.digits(outlook.year)
    if outlook.outlook == "complete":
        return f"{FORECAST_WORDS['complete']} ({present.digits(outlook.year)})"
    return FORECAST_WORDS[outlook.outlook]


# a number as present writes it: a minus, Persian digits and separators, a percent sign
_NUMBER = re.compile("-?[۰-۹][۰-۹٬٫]*٪?")


def _ltr(text: str) -> Markup:
    """A figure's text, escaped, each number in it in a left-to-right ``<bdi>``: in the right-to-left
    page a number keeps its own direction (presentation.md), so a minus stays left of its digits
    («-۱٫۴٪», not «۱٫۴٪-»); the words beside it (a unit: «میلیون ریال», «روز») read right to left."""
    return Markup(_NUMBER.sub(lambda m: f'<bdi dir="ltr">{m[0]}</bdi>', str(escape(text))))


def _shown(how: Callable[..., precision.Shown | None]) -> Callable[..., Markup]:
    """A template filter writing a figure as precision.`how` decides (the workbook's places);
    ``limits``, where given, are the thresholds the figure is told apart from."""

    def write(value, *limits: Iterable[Decimal]) -> Markup:
        shown = how(value, *limits)
        return _ltr(shown.text() if shown is not None else present.NOTHING)
    return write


def _credits(row, limits: Iterable[Decimal]) -> list[Markup]:
    """A summary row's four credit stages, each to the places precision.credit_stages gives it beside
    the others (credit_inconsistency's ``limits``), as the workbook's cells and the console show them."""
    stages = precision.credit_stages((row.approved, row.notified, row.allocated, row.absorbed), limits)
    return [_ltr(s.text() if s is not None else present.NOTHING) for s in stages]


_ISOLATED = re.compile("\u2066([^\u2066\u2069]*)\u2069")  # a code as a finding's sentence isolates it


def _sentence(text: str) -> Markup:
    """A finding's sentence, escaped, each code or negative figure it isolates (U+2066…U+2069,
    decisions.md) in a left-to-right ``<bdi>``, a code never broken at its hyphen (``1405-150-11005``)."""
    return Markup(_ISOLATED.sub(lambda m: f'<bdi dir="ltr">{m[1]}</bdi>', str(escape(text))))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters.update(
        num=lambda v: _ltr(present.number(v, places=0) if v is not None else present.NOTHING),
        amount=_shown(precision.amount),
        pct=_shown(precision.points), ratio=_shown(precision.ratio), quantity=_shown(precision.quantity),
        gap=_shown(precision.point_gap),
        unit_cost=_shown(precision.unit_cost), sentence=_sentence, day=present.day, moment=present.moment,
        year=lambda v: _ltr(present.digits(v) if v is not None else present.NOTHING),
        quarter=lambda q, year: present.quarter(year, q), severity=present.severity, rule=present.rule,
        group=present.group, status=present.status, kind=present.kind,
        comptroller=lambda c: present.COMPTROLLER_NAMES.get(c, c) if c else "گزارش ثبت نشده",
        step=_step, forecast=_forecast,
    )
    env.globals.update(credits=_credits,
                       figure=lambda d, value, other=None: _ltr(present.figure(
                           d.kind, d.rule, value, measure=d.unit, other=other, bounds=d.bounds)),
                       figure_names=present.figure_names, dash=present.PLANNED_DASH,
                       # the typeface inside the file: a report is mailed and archived, nothing is served to it
                       font_faces=Markup(fonts.embedded()))
    return env


_ENV = _environment()


def _charts(report: Report) -> SimpleNamespace:
    progress = (("پیشرفت برنامه‌ای", charts.PLANNED), ("پیشرفت گزارش‌شده", charts.REPORTED))

    def progress_chart(title: str, rows: list) -> list[charts.Chart]:
        return charts.bars_in_parts(title, [t.name for t in rows],
                                    [(progress[0][0], progress[0][1], [t.planned_progress for t in rows]),
                                     (progress[1][0], progress[1][1], [t.reported_progress for t in rows])])

    counties = [t for t in report.counties if t.weight]
    agencies = [t for t in report.agencies if t.weight]
    absorbing = [t for t in report.counties if t.allocated]
    return SimpleNamespace(  # each a list: a chart of many names is drawn in parts a printed page holds
        progress_by_county=progress_chart("پیشرفت برنامه‌ای و گزارش‌شده به تفکیک شهرستان", counties),
        progress_by_agency=progress_chart("پیشرفت برنامه‌ای و گزارش‌شده به تفکیک دستگاه اجرایی", agencies),
        absorption_by_county=charts.bars_in_parts("نسبت جذب به تخصیص به تفکیک شهرستان", [t.name for t in absorbing],
                                                  [("نسبت جذب", charts.SINGLE, [t.absorption for t in absorbing])],
                                                  ratio=True),
    )


def render(report: Report) -> str:
    """The report as one HTML page."""
    return _ENV.get_template("report.html.j2").render(
        r=report, title=REPORT_TITLE, period=period_text(report.selection), scope=scope_parts(report.matched),
        unit=present.AMOUNT_UNIT, charts=_charts(report))


def render_project(conn: Connection, code: str, limits: Limits | None = None) -> str:
    """One project's S-curve across its years: planned against reported progress, quarter by quarter;
    a gap near one of ``limits.gap`` (progress_lag's, the report's Limits) with the places it takes."""
    years, reports = reporting.project_history(conn, code)
    if not years:
        raise ReportError(f"unknown project {code!r}: no project of that code in the store")
    reported = {(r.fiscal_year, r.quarter): r.progress for r in reports}
    # each year from its start, at its `start`, as the console draws it (reports.model.curve_year says why)
    curve = [curve_year(y.fiscal_year, y.progress_at_year_start, [getattr(y, f"target_q{q}") for q in range(1, 5)],
                        {q: v for (fy, q), v in reported.items() if fy == y.fiscal_year}) for y in years]
    rows = [((c.fiscal_year, q), c.planned[q], c.reported.get(q)) for c in curve for q in range(1, 5)]
    latest = years[-1]
    points = [Point(y, q, v) for (y, q), v in reported.items() if v is not None]
    points += [Point(y.fiscal_year, 0, y.progress_at_year_start) for y in years if y.progress_at_year_start is not None]
    chart = charts.s_curve(f"{PROJECT_TITLE}: {latest.title}", curve)
    return _ENV.get_template("project.html.j2").render(
        title=PROJECT_TITLE, code=code, name=latest.title, agency=latest.agency_name,
        county=latest.county_name or present.NO_COUNTY, end_year=latest.end_year, outlook=forecast(points, latest.end_year),
        chart=chart, rows=rows, gap_limits=(limits or Limits.of()).gap)
