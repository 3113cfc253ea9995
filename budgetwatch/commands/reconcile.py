"""Commands of the reconciliation: `reconcile`, `deviations list|show|ack|dismiss`, `inspections import`.

The commands parse options, call reconcile/ and print; the judging, the life cycle and the import
logic live in the reconcile package.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from budgetwatch.app import (ID_MAX, UserError, app, console, context, err_console, fiscal_year, open_output,
                             option_values, terminal_safe, terminal_text)
from foundation import present
from foundation.jalali import format_jalali, parse_day, terminal_day
from foundation.persian import NormalizationError, to_ascii_digits
from foundation.vocabulary import DEVIATION_STATUSES, GROUPS, SEVERITIES
from reconcile import deviations as dv
from reconcile import inspections as insp
from reconcile import run as run_reconciliation
from reconcile.engine import RunResult
from reconcile.rules import RULE_IDS

deviations_app = typer.Typer(help="Deviations found by the reconciliation: list, show, acknowledge, dismiss.",
                             no_args_is_help=True)
inspections_app = typer.Typer(help="Field inspections (بازدید میدانی) recorded by budget experts.",
                              no_args_is_help=True)
app.add_typer(deviations_app, name="deviations")
app.add_typer(inspections_app, name="inspections")

FILE_WIDTH = 200  # --output FILE of a table
SEVERITY_STYLE = {"critical": "bold red", "major": "yellow", "minor": "cyan"}

# --- option parsing ---------------------------------------------------------------------------


def _day(raw: str | None, option: str) -> date | None:
    if raw is None:
        return None
    try:
        return parse_day(raw)
    except NormalizationError as exc:
        raise UserError(f"{option} {raw!r}: {exc.reason} (use a Jalali day such as 1405/09/02, or ISO 2026-11-23)")


def _years(values: list[str] | None) -> tuple[int, ...]:
    """The years asked for, each one a portal can hold, checked as every command checks `--year` (a year
    before the portals', `--year 1300`, listed nothing without a word: a trial)."""
    return tuple(sorted({fiscal_year(raw, "--year") for raw in option_values(values, "--year")}))


def _choices(values: tuple[str, ...], allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    for value in values:
        if value not in allowed:
            raise UserError(f"{option} {value!r}: use one of {', '.join(allowed)}")
    return values


def _view(*, years: tuple[int, ...], county: list[str] | None, agency: list[str] | None, group: list[str] | None,
          rule: list[str] | None, min_severity: str | None, status: list[str] | None = None,
          include_dismissed: bool = False) -> dv.View:
    if min_severity is not None:
        _choices((min_severity,), SEVERITIES, "--min-severity")
    return dv.View(
        years=years, counties=option_values(county, "--county"),
        agencies=tuple(to_ascii_digits(a) for a in option_values(agency, "--agency")),
        groups=_choices(option_values(group, "--group"), GROUPS, "--group"),
        rules=_choices(option_values(rule, "--rule"), RULE_IDS, "--rule"),
        min_severity=min_severity, statuses=_choices(option_values(status, "--status"), DEVIATION_STATUSES, "--status"),
        include_dismissed=include_dismissed,
    )


def _format(value: str) -> str:
    if value not in ("table", "json"):
        raise UserError(f"--format {value!r}: use table or json")
    return value


# --- output -----------------------------------------------------------------------------------


def _plain(value) -> str:
    """A figure for a table cell: ASCII digits, no trailing zeros."""
    if value is None:
        return ""
    value = Decimal(value).normalize()
    return format(value if value != 0 else Decimal(0), "f")


# a deviation's measure in its unit, as an operator's table writes it (ASCII: the e-mails, reports and
# the console write them in Persian through foundation.present): a trial read "0.67 / 0.05 / 0.62" for
# a share beside "59 / 29 / 30" for percentages in the same columns
_ASCII_UNITS = {
    present.SHARE: lambda v: f"{_plain(Decimal(v) * 100)}%",
    present.POINT_GAP: lambda v: f"{_plain(v)} pp",
    present.SHARE_GAP: lambda v: f"{_plain(Decimal(v) * 100)} pp",
    present.TIMES: lambda v: f"{_plain(v)}x",
    present.AMOUNT: lambda v: f"{Decimal(v).normalize():,f}",  # million rials (docs/operations.md)
    "years": lambda v: f"{_plain(v)} y",
}


def _figure(kind: str, rule: str, value, other=None, bounds: tuple[Decimal, ...] = ()) -> str:
    """A deviation's planned or actual figure in its rule's unit, beside the `other` and apart from the
    `bounds` it was judged against, to the places the console, the e-mails and the report write it
    (present.figure, in ASCII): '59%', '67%' (a share), '1,250' (million rials), '600.5001' beside 600
    over a tolerance of 0.5 (a trial: the terminal wrote the stored 600.50005 where every other
    output wrote ۶۰۰٫۵۰۰۱, and 33.99995% where they wrote ۳۴٪)."""
    if value is None:
        return ""
    return present.in_ascii(present.figure(kind, rule, Decimal(value), unit=False,
                                           other=None if other is None else Decimal(other), bounds=bounds))


def _measure(rule: str, value) -> str:
    """A deviation's measure as its rule judged it, rounded to four places (reconciliation-rules.md):
    '30 pp', '1.25x', '0.5001' (million rials)."""
    if value is None:
        return ""
    value = present.rounded(Decimal(value), present.JUDGED_PLACES)
    how = present.measure_unit(rule)
    return _ASCII_UNITS[how](value) if how in _ASCII_UNITS else _plain(value)


def _numbers(numbers: dict | None) -> str:
    """A deviation's named figures one a line, 'gap: 30' (as stored: exact, ASCII)."""
    return "\n".join(f"{name}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}"
                     for name, value in (numbers or {}).items()) or "-"


def _figures(r, bounds: tuple[Decimal, ...] | None = None) -> tuple[str, str, str]:
    """Planned, actual and measure of a deviation (a stored row, or a dv.Shown with its ``bounds``)."""
    bounds = r.bounds if bounds is None else bounds
    return (_figure(r.kind, r.rule, r.planned, r.actual, bounds), _figure(r.kind, r.rule, r.actual, r.planned, bounds),
            _measure(r.rule, r.measure))


def _found(r: dv.Shown) -> str:
    """'1405/09/02 – 1405/09/10': the first and last day a run found it (one day when both are the same)."""
    first, last = (format_jalali(d, persian_digits=False) for d in (r.first_found_on, r.last_found_on))
    return first if first == last else f"{first} – {last}"


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


class _Tally:
    """Deviations counted per rule and per expert group, by severity (the summary tables)."""

    def __init__(self) -> None:
        self.by_rule: dict[tuple[str, str], Counter] = {}
        self.by_group: dict[str, Counter] = {}

    def add(self, r: dv.Shown) -> None:
        self.by_rule.setdefault((r.kind, r.rule), Counter())[r.severity] += 1
        self.by_group.setdefault(r.group, Counter())[r.severity] += 1

    def tables(self) -> list[Table]:
        rules = Table(title="deviations per rule", header_style="bold")
        for name in ("kind", "rule", *SEVERITIES, "total"):
            rules.add_column(name, justify="right" if name in SEVERITIES or name == "total" else "left")
        for (kind, rule), counts in sorted(self.by_rule.items()):
            rules.add_row(kind, rule, *(str(counts[s]) for s in SEVERITIES), str(sum(counts.values())))
        groups = Table(title="deviations per expert group", header_style="bold")
        for name in ("group", *SEVERITIES, "total"):
            groups.add_column(name, justify="left" if name == "group" else "right")
        for group, counts in sorted(self.by_group.items()):
            groups.add_row(group, *(str(counts[s]) for s in SEVERITIES), str(sum(counts.values())))
        return [rules, groups]


def _stats_table(result: RunResult) -> Table:
    judged = "whole years judged" if result.scope == "full" else "subjects changed since the last run; time-driven rules on all"
    table = Table(title=f"how often each rule fired ({judged})", header_style="bold")
    for name in ("kind", "rule", "checked", "flagged", "share", "findings", "over half"):
        table.add_column(name, justify="right" if name in ("checked", "flagged", "share", "findings") else "left")
    for stats in result.stats.values():
        table.add_row(stats.kind, stats.rule, f"{stats.checked:,}", f"{stats.flagged:,}",
                      f"{float(stats.share) * 100:.1f}%", f"{stats.findings:,}",
                      "[bold red]⚠[/]" if stats.mis_tuned else "")
    return table


def _mis_tuned_warnings(result: RunResult) -> list[str]:
    return [f"warning: {s.kind}.{s.rule} flagged {s.flagged:,} of the {s.checked:,} subjects it checked "
            f"({float(s.share) * 100:.1f}%, more than half): its threshold may be mis-tuned"
            for s in result.stats.values() if s.mis_tuned]


# --- commands ---------------------------------------------------------------------------------


@app.command("reconcile")
def reconcile_command(
    year: list[str] = typer.Option(None, "--year", help="Fiscal year(s) to judge (default: every year in the store)."),
    as_of: str = typer.Option(None, "--as-of", help="Judge as of this day: Jalali 1405/09/02 (any digits) or ISO."),
    county: list[str] = typer.Option(None, "--county", help="Show only this county (name or code)."),
    agency: list[str] = typer.Option(None, "--agency", help="Show only this agency code."),
    group: list[str] = typer.Option(None, "--group", help="Show only agencies of this expert group."),
    rule: list[str] = typer.Option(None, "--rule", help="Show only this rule id."),
    min_severity: str = typer.Option(None, "--min-severity", help="Show only minor|major|critical and above."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of the terminal."),
    include_dismissed: bool = typer.Option(False, "--include-dismissed", help="Also show dismissed deviations."),
    full: bool = typer.Option(False, "--full", help="Judge every subject, not only what changed since the last run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Judge and show, record nothing (a what-if)."),
) -> None:
    """Judge the store against the rule catalogue; record deviations and show them.

    Filters choose what is shown only: every run judges whole fiscal years. A run judges only what
    changed since the last recorded run unless --full; a day before the last run's, or --dry-run,
    is a what-if that records nothing.
    """
    fmt = _format(fmt)
    view = _view(years=(), county=county, agency=agency, group=group, rule=rule, min_severity=min_severity,
                 include_dismissed=include_dismissed)
    reconcile_and_show(years=_years(year), day=_day(as_of, "--as-of"), view=view, fmt=fmt, output=output,
                       full=full, dry_run=dry_run)


def reconcile_and_show(*, years: tuple[int, ...], day: date | None, view: dv.View, fmt: str,
                       output: Path | None, worst: int | None = None, full: bool = False,
                       dry_run: bool = False) -> None:
    """Run a reconciliation on the context's store and show what it found (reconcile and demo),
    streamed from the database as the run ends: no finding is held in memory.

    ``worst``: show only that many deviations, worst first, and say how to list the rest (the demo).
    """
    ctx = context()
    engine = ctx.engine if dry_run else ctx.writing_engine  # a what-if asked for records nothing: it only reads
    with engine.connect() as conn:  # a bad county or agency fails before the run, not after
        _checked(lambda: dv.check_agencies(conn, view.agencies))
        county_set = _checked(lambda: dv.county_ids(conn, view.counties)) if view.counties else None
    shown_here = dv.view_condition(view, ctx.config.routing, county_set)

    def show(found_rows, result: RunResult) -> None:
        if fmt == "json":
            _stream_json(dv.json_objects(found_rows(where=shown_here, raw_figures=True)), handle or sys.stdout)
        else:
            target = console if handle is None else Console(file=handle, width=FILE_WIDTH, color_system=None)
            _stream_table(dv.shown_rows(found_rows(where=shown_here, numbers=True), ctx.config.routing), result,
                          target, worst)

    with _written(output) as handle:
        result = run_reconciliation(engine, ctx.config.reconcile, as_of=day, years=list(years) or None,
                                    incremental=not full, dry_run=dry_run, keep=False, show=show)
    if result.what_if:
        err_console.print(f"what-if: {result.what_if}", markup=False)


@contextlib.contextmanager
def _written(output: Path | None) -> Iterator[Any]:
    """`--output FILE` for the block's output, opened before its work (one line if it cannot be),
    in place once the block is done, and as it was if the block fails (budgetwatch.app.open_output);
    None: the terminal."""
    if output is None:
        yield None
        return
    with open_output(output) as handle:
        yield handle
    err_console.print(f"written to {output}", markup=False)


_JSON_WRITE = 1 << 20  # bytes of JSON gathered before a write


def _stream_json(objects: Iterable[dict], out) -> None:
    """One JSON array, one object a line, written a megabyte at a time as the rows stream (orjson:
    the standard encoder took most of the output's time at 240,000 deviations; docs/benchmarks.md).
    Each object's text is copied into the pending bytes at once, not kept until a batch is joined:
    2,000 texts kept alive between the driver's rows cost a PostgreSQL run's output of 242,741
    deviations 1.2–1.3 s of its 3.3 s (docs/benchmarks.md, session 36)."""
    out.flush()
    raw = out.buffer if hasattr(out, "buffer") else None
    write = raw.write if raw is not None else (lambda data: out.write(data.decode("utf-8")))
    pending = bytearray(b"[")
    separator = b"\n  "
    for obj in objects:
        pending += separator
        pending += orjson.dumps(obj)
        separator = b",\n  "
        if len(pending) >= _JSON_WRITE:
            write(pending)
            pending = bytearray()
    pending += b"\n]\n"
    write(pending)
    if raw is not None:
        raw.flush()


def _line(r: dv.Shown, *, found: bool = False) -> str:
    """A deviation on one line (`found`: with the first and last day a run found it, a stored one)."""
    period = f"{r.fiscal_year}/Q{r.quarter}" if r.quarter else str(r.fiscal_year)
    planned, actual, measure = _figures(r)
    days = f"{_found(r):<23}  " if found else ""
    return (f"{r.id or '-':>7}  {r.severity:<8} {r.rule:<21} {r.subject:<26} {period:<8} {planned:>12} "
            f"{actual:>12} {measure:>10}  {r.status:<12} {days}{r.message}")


def _line_writer(target: Console) -> Callable[[str], None]:
    """How to write one deviation's line to `target`: to a terminal by Rich; to a file as Rich would
    write it there (no style), at once; either way with its control characters escaped (portal text:
    app.terminal_safe). Rich's print took ~140 µs a line, its stripping of Persian text ~30 µs:
    242,741 lines took 35 s."""
    if target.is_terminal:
        return lambda line: target.print(terminal_safe(line), markup=False, highlight=False, soft_wrap=True)
    write = target.file.write

    def plain(line: str) -> None:
        write(terminal_safe(line) + "\n")

    return plain


def _columns(*, found: bool = False) -> str:
    """The heads of :func:`_line`'s columns."""
    return (f"{'id':>7}  {'severity':<8} {'rule':<21} {'subject':<26} {'year/q':<8} {'planned':>12} "
            f"{'actual':>12} {'measure':>10}  {'status':<12} {'found':<23}  message" if found else
            f"{'id':>7}  {'severity':<8} {'rule':<21} {'subject':<26} {'year/q':<8} {'planned':>12} "
            f"{'actual':>12} {'measure':>10}  {'status':<12} message")


def _stream_table(rows, result: RunResult, target: Console, worst: int | None) -> None:
    """The run's header, its deviations one line each as they come (the demo: the worst few, then how
    to list the rest), the counts per rule and per group, and how often each rule fired."""
    life = result.life
    run = f"reconciliation run {result.run_id}" if result.run_id is not None else "what-if (nothing recorded)"
    target.print(f"{run} as of {terminal_day(result.as_of)}, "
                 f"years {', '.join(map(str, result.years)) or '(none in the store)'} ({result.scope}): "
                 f"{result.found:,} findings; {life.opened:,} opened, {life.reopened:,} reopened, "
                 f"{life.escalated:,} escalated, {life.lowered:,} lowered, {life.updated:,} updated, "
                 f"{life.resolved:,} resolved, {life.unchanged:,} unchanged ({result.seconds:.1f} s)",
                 markup=False, highlight=False)
    tally, listed = _Tally(), []
    columns = _columns()
    print_line = _line_writer(target)
    if worst is None:
        target.print(columns, markup=False, highlight=False, style="bold")
    shown = 0
    for r in rows:
        shown += 1
        tally.add(r)
        if worst is None:
            print_line(_line(r))
        elif len(listed) < worst:
            listed.append(r)
    tables = tally.tables()
    if worst is not None:
        tables.append(Text(columns, style="bold"))
        tables.extend(terminal_text(_line(r)) for r in listed)
        if len(listed) < shown:
            tables.append(Text(f"… and {shown - len(listed):,} more: `budgetwatch deviations list` lists them all"))
    for table in [*tables, _stats_table(result)]:
        target.print(table)
    for line in _mis_tuned_warnings(result):
        target.print(line, style="bold red", markup=False, highlight=False)


def _checked(call):
    try:
        return call()
    except dv.DeviationError as exc:
        raise UserError(str(exc)) from None


@deviations_app.command("list")
def deviations_list(
    year: list[str] = typer.Option(None, "--year", help="Fiscal year(s)."),
    county: list[str] = typer.Option(None, "--county", help="County name or code."),
    agency: list[str] = typer.Option(None, "--agency", help="Agency code."),
    group: list[str] = typer.Option(None, "--group", help="Expert group."),
    rule: list[str] = typer.Option(None, "--rule", help="Rule id."),
    min_severity: str = typer.Option(None, "--min-severity", help="minor|major|critical and above."),
    status: list[str] = typer.Option(None, "--status", help="open|acknowledged|resolved|dismissed (default: all but dismissed)."),
    include_dismissed: bool = typer.Option(False, "--include-dismissed", help="Also list dismissed deviations."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    output: Path = typer.Option(None, "--output", "-o", help="Write to this file instead of the terminal."),
) -> None:
    """List the deviations in the store (no new judging)."""
    fmt = _format(fmt)
    view = _view(years=_years(year), county=county, agency=agency, group=group, rule=rule,
                 min_severity=min_severity, status=status, include_dismissed=include_dismissed)
    ctx = context()
    routing = ctx.config.routing
    with ctx.engine.connect() as conn:  # a bad county or agency fails before the output is opened
        _checked(lambda: dv.check_agencies(conn, view.agencies))
        county_set = _checked(lambda: dv.county_ids(conn, view.counties)) if view.counties else None
        with _written(output) as handle:  # streamed from the database as they are written: none held whole
            rows = dv.stream_deviations(conn, view, routing, county_set, raw_figures=fmt == "json",
                                        numbers=fmt != "json")
            try:
                if fmt == "json":
                    _stream_json(dv.listed_json_objects(rows), handle or sys.stdout)
                else:
                    _stream_list(dv.shown_of(rows, routing), console if handle is None else
                                 Console(file=handle, width=FILE_WIDTH, color_system=None))
            finally:
                rows.close()


def _stream_list(rows: Iterable[dv.Shown], target: Console) -> None:
    """`deviations list` as a table: one line a deviation as it comes, as `reconcile` lists what it
    found, with the first and last day a run found it; then how many, per rule and per group."""
    target.print(_columns(found=True), markup=False, highlight=False, style="bold")
    tally, listed = _Tally(), 0
    print_line = _line_writer(target)
    for r in rows:
        listed += 1
        tally.add(r)
        print_line(_line(r, found=True))
    target.print(f"{listed:,} deviations", markup=False, highlight=False, style="bold")
    for table in tally.tables():
        target.print(table)


@deviations_app.command("show")
def deviations_show(deviation_id: int = typer.Argument(..., metavar="ID", min=1, max=ID_MAX)) -> None:
    """Everything about one deviation: figures, sentence, evidence and its history."""
    ctx = context()
    with ctx.engine.connect() as conn:
        row, history = _checked(lambda: dv.get(conn, deviation_id))
    table = Table(show_header=False, title=f"deviation {row.id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    quarter = str(row.quarter) if row.quarter else "-"
    for name, value in (
        ("rule", f"{row.kind}.{row.rule}"), ("subject", row.subject), ("fiscal year / quarter", f"{row.fiscal_year} / {quarter}"),
        ("severity", row.severity), ("status", row.status), ("alert", row.alert_state),
        ("planned / actual / measure", " / ".join(_figures(row, present.bounds_of(row.numbers)))),
        ("numbers", _numbers(row.numbers)), ("message", row.message),
        ("agency", row.agency_code or "-"),
        ("evidence", f"{row.evidence_table} #{row.evidence_id}" if row.evidence_table else "-"),
        ("sync run", str(row.sync_run_id or "-")), ("reconcile run", str(row.reconcile_run_id or "-")),
        ("first / last found", f"{format_jalali(row.first_found_on, persian_digits=False)} / "
                               f"{format_jalali(row.last_found_on, persian_digits=False)}"),
        ("resolved on", format_jalali(row.resolved_on, persian_digits=False) or "-"),
        ("acted", f"{row.acted_by}: {row.acted_reason} ({format_jalali(row.acted_at, persian_digits=False, with_time=True)})"
         if row.acted_by else "-"),
    ):
        table.add_row(name, terminal_text(value))  # portal text and people's reasons: never read as markup
    console.print(table)
    events = Table(title="history", header_style="bold")
    for name in ("at", "event", "severity", "run", "by", "reason"):
        events.add_column(name)
    for e in history:
        events.add_row(format_jalali(e.at, persian_digits=False, with_time=True), e.event, e.severity or "",
                       str(e.reconcile_run_id or ""), terminal_text(e.by), terminal_text(e.reason))
    console.print(events)


@deviations_app.command("ack")
def deviations_ack(
    deviation_id: int = typer.Argument(..., metavar="ID", min=1, max=ID_MAX),
    by: str = typer.Option(..., "--by", help="Who acknowledges it."),
    reason: str = typer.Option(..., "--reason", help="Why."),
) -> None:
    """Acknowledge an open deviation: no further alerts unless it escalates."""
    row = _checked(lambda: dv.acknowledge(context().engine, deviation_id, by=by, reason=reason))
    console.print(f"deviation {row.id} ({row.rule} {row.subject}) acknowledged by {row.acted_by}", markup=False)


# the help's own word for it, as a user may type it
deviations_app.command("acknowledge", hidden=True)(deviations_ack)


@deviations_app.command("dismiss")
def deviations_dismiss(
    deviation_id: int = typer.Argument(..., metavar="ID", min=1, max=ID_MAX),
    by: str = typer.Option(..., "--by", help="Who dismisses it."),
    reason: str = typer.Option(..., "--reason", help="Why it is a false positive."),
) -> None:
    """Dismiss a deviation as a false positive: never alerted again, hidden unless asked for."""
    row = _checked(lambda: dv.dismiss(context().engine, deviation_id, by=by, reason=reason))
    console.print(f"deviation {row.id} ({row.rule} {row.subject}) dismissed by {row.acted_by}", markup=False)


@inspections_app.command("import")
def inspections_import(file: Path = typer.Argument(..., metavar="FILE.csv|FILE.xlsx", help="CSV (UTF-8) or Excel workbook: project_code,date,observed_progress,inspector,remarks")) -> None:
    """Import field inspections from a CSV file or an .xlsx workbook; nothing is imported if any row is bad."""
    try:
        result = insp.import_file(context().writing_engine, file)
    except insp.InspectionFileError as exc:
        err_console.print(f"error: {exc}" + (":" if exc.problems else ""), markup=False, highlight=False)
        for problem in exc.problems:
            err_console.print(f"  {problem}", markup=False, highlight=False)
        raise typer.Exit(code=2) from None
    console.print(f"{file}: {result.rows} visits read; {result.inserted} imported, {result.updated} updated, "
                  f"{result.unchanged} unchanged", markup=False)
