"""Commands of the monitoring report and the sign-off: `report`, `report project`, `review approve|list|diff`.

The commands parse options, call reports/ and print; the report model, its renderers and the
archive live in the reports package. Exit codes: 0 done; 2 bad input (an unknown county, agency,
group or file extension, a malformed year or day, a year the store does not hold, an --output inside
the signed archive); 3 a period in the wrong state (not closed yet, already approved, not approved,
approved with an archive that fails its check); 4 `review diff` found figures the store now holds
differently; 1 `review approve` gave up waiting for another approval of the period (reports.archive,
"A kill"), recording nothing. A report file is written whole or not at all (reports.files).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from budgetwatch.app import (UserError, app, check_output, console, context, err_console, fiscal_year, option_values,
                             terminal_text)
from budgetwatch.commands.reconcile import _day
from foundation.jalali import (
    format_jalali,
    is_quarter_closed,
    quarter_of,
    terminal_day,
    today_tehran,
)
from foundation.persian import to_ascii_digits
from foundation.vocabulary import GROUPS

# reports/ (XlsxWriter, Jinja2, the report model) is imported by the commands that use it, not when
# the CLI starts: every other command starts faster and keeps working where the package cannot be
# imported (an editable install made before reports/ existed does not map it).

report_app = typer.Typer(help="The monitoring report (گزارش نظارتی) as Excel or HTML; `report project CODE` "
                              "draws one project's S-curve.", invoke_without_command=True)
review_app = typer.Typer(help="The consolidation group's sign-off of a period: approve, list, diff.",
                         no_args_is_help=True)
app.add_typer(report_app, name="report")
app.add_typer(review_app, name="review")

DIFF_FOUND = 4


def _reports_config():
    return context().config.reports


def _settings():
    from reports import archive

    config = context().config
    return archive.Settings(config.data_dir, config.routing, config.reconcile.report_due_days,
                            _reports_config().service_days, config.reconcile.rules)


def _year(raw: str | None) -> int | None:
    """`--year` checked as every command checks it: a year a portal can hold."""
    return None if raw is None else fiscal_year(raw, "--year")


def _number(raw: str | None, option: str, low: int, high: int) -> int | None:
    if raw is None:
        return None
    text = to_ascii_digits(raw).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise UserError(f"{option} {raw!r}: use a number from {low} to {high}")
    return int(text)


def _period(year: int | None, quarter: int | None, as_of: date) -> tuple[int, int]:
    """The period asked for; by default the latest quarter closed on the as-of day."""
    if year is None or quarter is None:
        current_year, current_q = quarter_of(as_of)
        last_year, last_q = (current_year, current_q - 1) if current_q > 1 else (current_year - 1, 4)
        if year is None:
            year = last_year if quarter is None else current_year
        if quarter is None:
            quarter = last_q if year == last_year else 4
    if not is_quarter_closed(year, quarter, as_of):
        from reports.archive import not_closed  # as `review approve` says it

        raise UserError(not_closed(year, quarter, as_of), exit_code=3)
    return year, quarter


def _come(day: date, given_by: str) -> None:
    """A report's as-of day must have come: the monitoring cycle as of a later day would count every
    report not in yet as overdue, in a report that reads as a real one (a trial: `report --as-of
    1406/02/01` wrote one without a word). A what-if of a later day is `reconcile --as-of DAY --dry-run`."""
    today = today_tehran()
    if day > today:
        raise UserError(f"{given_by} {terminal_day(day)} is after today, {terminal_day(today)}: a report judges the "
                        "monitoring cycle on a day that has come (for a later day's findings: reconcile --as-of DAY "
                        "--dry-run)")


def _output(output: Path | None, allowed: tuple[str, ...]) -> Path:
    if output is None:
        raise UserError(f"say where to write it: --output FILE{'|FILE'.join(allowed)}")
    if output.suffix.lower() not in allowed:
        raise UserError(f"--output {output}: unknown extension {output.suffix or '(none)'!r}, use {' or '.join(allowed)}")
    check_output(output)  # before the report is built (the signed archive refused); written whole after
    return output


def _write(output: Path, content: bytes | str) -> None:
    from reports import files

    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        files.write_whole(output, data)  # a failed write leaves no truncated report
    except OSError as exc:
        raise UserError(f"--output {output}: cannot write there ({exc.strerror or exc})") from None
    err_console.print(f"written to {output}", markup=False)


@report_app.callback()
def report_command(
    ctx: typer.Context,
    year: str = typer.Option(None, "--year", help="Fiscal year (default: that of the latest closed quarter)."),
    quarter: str = typer.Option(None, "--quarter", help="Quarter 1-4 the report runs through (default: the latest closed)."),
    as_of: str = typer.Option(None, "--as-of", help="As of this day: Jalali 1405/09/02 or ISO (default: reconcile.as_of of config.yaml, else today)."),
    county: list[str] = typer.Option(None, "--county", help="Only this county (name or code); repeatable."),
    agency: list[str] = typer.Option(None, "--agency", help="Only this agency code; repeatable."),
    group: list[str] = typer.Option(None, "--group", help="Only agencies of this expert group; repeatable."),
    output: Path = typer.Option(None, "--output", "-o", help="FILE.xlsx or FILE.html."),
) -> None:
    """Write the monitoring report of a period: summaries, projects, agreements, deviations, the cycle."""
    if ctx.invoked_subcommand is not None:
        return
    from reports import archive, excel, html
    from reports.model import ReportError, Selection, build

    output = _output(output, (".xlsx", ".html"))
    config = context().config
    day = _day(as_of, "--as-of") or config.reconcile.as_of or today_tehran()
    _come(day, "--as-of" if as_of is not None else "reconcile.as_of")
    fiscal_year, q = _period(_year(year), _number(quarter, "--quarter", 1, 4), day)
    groups = option_values(group, "--group")
    for g in groups:
        if g not in GROUPS:
            raise UserError(f"--group {g!r}: use one of {', '.join(GROUPS)}")
    selection = Selection(fiscal_year, q, day, option_values(county, "--county"),
                          tuple(to_ascii_digits(a) for a in option_values(agency, "--agency")),
                          groups)
    with context().engine.connect() as conn:
        try:
            report = build(conn, selection, routing=config.routing, report_due_days=config.reconcile.report_due_days,
                           service_days=_reports_config().service_days, reviews=archive.review_days(conn, fiscal_year),
                           rules=config.reconcile.rules)
        except ReportError as exc:
            raise UserError(str(exc)) from None
    _write(output, excel.render(report) if output.suffix.lower() == ".xlsx" else html.render(report))


@report_app.command("project")
def report_project(
    code: str = typer.Argument(..., metavar="CODE", help="The project's code."),
    output: Path = typer.Option(None, "--output", "-o", help="FILE.html"),
) -> None:
    """One project's S-curve: planned against reported progress, quarter by quarter, across its years."""
    from reports import html
    from reports.model import Limits, ReportError

    output = _output(output, (".html",))
    with context().engine.connect() as conn:
        try:
            page = html.render_project(conn, to_ascii_digits(code).strip(), Limits.of(context().config.reconcile.rules))
        except ReportError as exc:
            raise UserError(str(exc)) from None
    _write(output, page)


def _review(call):
    from reports.archive import ReviewError
    from reports.model import ReportError

    try:
        return call()
    except ReviewError as exc:
        raise UserError(str(exc), exit_code=exc.exit_code) from None
    except ReportError as exc:  # a period the report cannot be built for (a year the store lacks): bad input,
        raise UserError(str(exc)) from None  # as `report` says it (an expert's trial: exit 1, "unexpected")


@review_app.command("approve")
def review_approve(
    year: str = typer.Option(..., "--year", help="Fiscal year."),
    quarter: str = typer.Option(..., "--quarter", help="Quarter 1-4."),
    by: str = typer.Option(..., "--by", help="Who approves (the consolidation group's reviewer)."),
    note: str = typer.Option(None, "--note", help="A note kept with the sign-off."),
) -> None:
    """Approve a closed period: archive its Excel and HTML reports with a SHA-256 manifest; never rewritten."""
    from reports import archive

    fiscal_year, q = _year(year), _number(quarter, "--quarter", 1, 4)
    entry = _review(lambda: archive.approve(context().engine, fiscal_year, q, by=by, note=note, settings=_settings()))
    console.print(f"{fiscal_year} Q{q} approved by {entry.approved_by}; archive {entry.archive_path} "
                  f"(manifest sha256 {entry.manifest_sha256})", markup=False, soft_wrap=True)


@review_app.command("list")
def review_list() -> None:
    """Every period of the store and its state: approved (by whom, when, archive intact), open, not closed."""
    from reports import archive

    rows = archive.periods(context().engine)
    table = Table(title="monitoring periods", header_style="bold")
    for name in ("year", "quarter", "state", "approved by", "approved at", "archive", "manifest sha256"):
        table.add_column(name)
    for p in rows:
        s = p.signoff
        table.add_row(str(p.fiscal_year), f"Q{p.quarter}", p.state.replace("_", " "),
                      terminal_text(s.approved_by if s else ""),
                      format_jalali(s.approved_at, persian_digits=False, with_time=True) if s else "",
                      ("intact" if p.intact else "ALTERED OR MISSING") if s else "", s.manifest_sha256[:16] if s else "")
    console.print(table)


@review_app.command("diff")
def review_diff(
    year: str = typer.Option(..., "--year", help="Fiscal year."),
    quarter: str = typer.Option(..., "--quarter", help="Quarter 1-4."),
) -> None:
    """Which figures of an approved period the store now holds differently (the archive is not touched)."""
    from reports import archive

    fiscal_year, q = _year(year), _number(quarter, "--quarter", 1, 4)
    entry, changes = _review(lambda: archive.diff(context().engine, fiscal_year, q, settings=_settings()))
    if not changes:
        console.print(f"{fiscal_year} Q{q}: the store agrees with the archive approved by {entry.approved_by}",
                      markup=False)
        return
    # each figure named by what it belongs to and what it is, shown as the report shows it
    # (reports.archive.Change): figures.json's keys and exact values are for comparing, not reading
    table = Table(title=f"{fiscal_year} Q{q}: {len(changes)} figures differ from the archive", header_style="bold")
    table.add_column("subject", overflow="fold")
    table.add_column("figure", overflow="fold")
    for name in ("archived", "store now"):
        table.add_column(name, justify="right", overflow="fold")
    for c in changes:  # names of counties and agencies are portal text: never markup
        table.add_row(terminal_text(c.subject), terminal_text(c.figure), terminal_text(c.archived_text),
                      terminal_text(c.now_text + (" *" if c.finer else "")))
    console.print(table)
    if any(c.finer for c in changes):
        console.print("* the report rounds both to the same figure: shown with the places it takes to see "
                      "the change", markup=False)
    raise typer.Exit(code=DIFF_FOUND)
