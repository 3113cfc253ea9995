"""Commands that move data from the portals into the store: sync and runs."""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from budgetwatch.app import ID_MAX, UserError, app, console, context, err_console, fiscal_year, terminal_text
from budgetwatch.config import Config, ConfigError
from foundation.jalali import TEHRAN, format_jalali
from store.db import open_store
from store.export import recent_runs, run_exists, run_rejections
from foundation.vocabulary import SOURCES
from sync.outcome import SourceOutcome, SyncObserver, mode_text


class SourceChoice(str, Enum):
    nezarat4 = "nezarat4"
    saba = "saba"
    all = "all"


class RichObserver(SyncObserver):
    """Shows pages, details and rejections per source while a sync runs."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}
        self.pages: dict[str, int] = {}
        self.rejections: dict[str, int] = {}

    def _task(self, source: str) -> Any:
        if source not in self.tasks:
            self.tasks[source] = self.progress.add_task(source, total=0, info="")
            self.pages[source] = 0
            self.rejections[source] = 0
        return self.tasks[source]

    def _info(self, source: str) -> None:
        self.progress.update(self._task(source), info=f"{self.pages[source]} pages, {self.rejections[source]} rejected")

    def started(self, source, run_id, years, mode):  # noqa: ANN001
        self.progress.update(self._task(source), description=f"{source} #{run_id} {mode} {','.join(map(str, years))}")

    def page(self, source, year, page_no, rows, announced):  # noqa: ANN001
        self._task(source)
        self.pages[source] += 1
        self._info(source)

    def details_queued(self, source, n):  # noqa: ANN001
        task = self._task(source)
        self.progress.update(task, total=(self.progress.tasks[task].total or 0) + n)

    def detail_done(self, source):  # noqa: ANN001
        self.progress.advance(self._task(source))

    def rejected(self, source, n):  # noqa: ANN001
        self._task(source)
        self.rejections[source] += n
        self._info(source)

    def note(self, source, text):  # noqa: ANN001
        self.progress.console.print(f"[yellow]{source}[/yellow]: {text}", highlight=False)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=err_console, transient=False, disable=not err_console.is_terminal,
    )


def sync_with_progress(config: Config, sources: list[str], *, full: bool, years: list[int] | None) -> list[SourceOutcome]:
    from sync import run_sync  # the connectors load only for a sync (start-up of the other commands)

    engine = open_store(config.database_url, create=True)
    try:
        with _progress() as progress:
            return run_sync(engine, config.sources, sources, full=full, years=years, observer=RichObserver(progress))
    finally:
        engine.dispose()


def print_outcomes(outcomes: list[SourceOutcome]) -> None:
    table = Table(title="sync", show_header=True, header_style="bold")
    for col in ("source", "run", "status", "mode", "years", "announced", "read", "new", "changed", "unchanged",
                "gone", "rejected", "requests"):
        table.add_column(col, justify="right" if col not in ("source", "status", "mode", "years") else "left")
    colour = {"success": "green", "incomplete": "yellow", "failed": "red", "locked": "red", "disabled": "dim"}
    for o in outcomes:
        counts = (o.announced, o.read, o.inserted, o.updated, o.unchanged, o.gone, o.rejected, o.requests)
        # a source that did not run (locked by another process, disabled) has no counts: zeros read
        # like a run that found nothing (a trial)
        table.add_row(o.source, str(o.run_id or "-"), f"[{colour.get(o.status, 'white')}]{o.status}[/]",
                      o.mode_text,
                      ",".join(map(str, o.years)), *(str(c) if o.run_id is not None else "-" for c in counts))
    console.print(table)
    for o in outcomes:
        if o.error:
            err_console.print(f"{o.source}: {o.status}: {o.error}", markup=False, highlight=False)
        if o.rejected:
            console.print(f"{o.source}: {o.rejected} rows rejected; see `budgetwatch runs --rejected {o.run_id}`")


def refuse_unready(config: Any, sources: list[str], config_source: str) -> None:
    """Before the first request (`sync`, and `serve` before it schedules anything): an enabled source
    whose login cannot succeed — no user name, a password that cannot be read — is a configuration
    error naming its keys; a login that cannot succeed is never tried (failed logins lead the portal
    to captcha and lock)."""
    problems = [line for name in sources if getattr(config.sources, name).enabled
                for line in getattr(config.sources, name).credential_problems(name)]
    if problems:
        raise ConfigError(config_source, problems)


@app.command()
def sync(
    source: SourceChoice = typer.Option(SourceChoice.all, "--source", "-s", help="Which portal to sync."),
    full: bool = typer.Option(False, "--full", help="Re-read everything and mark what is no longer listed as gone."),
    year: list[str] = typer.Option(None, "--year", "-y", help="Fiscal year (Jalali); repeat for several. Default: config."),
) -> None:
    """Pull agreements and performance from the portals into the store (incremental by default)."""
    years = [fiscal_year(y, "--year")
             for y in year or ()]
    ctx = context()
    config = ctx.config
    sources = list(SOURCES) if source is SourceChoice.all else [source.value]
    refuse_unready(config, sources, ctx.config_source)
    outcomes = sync_with_progress(config, sources, full=full, years=years or None)
    print_outcomes(outcomes)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command()
def runs(
    limit: int = typer.Option(20, "--limit", "-n", min=1, max=ID_MAX, help="How many runs to list."),
    source: SourceChoice = typer.Option(SourceChoice.all, "--source", "-s"),
    rejected: int = typer.Option(None, "--rejected", min=1, max=ID_MAX, help="Show the rejected records of this run instead."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List recent sync runs (or the rows one run rejected, with their reasons)."""
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt}: use table or json")
    engine = context().engine
    with engine.connect() as conn:
        if rejected is not None:
            if not run_exists(conn, rejected):
                raise UserError(f"--rejected {rejected}: there is no sync run {rejected} (`budgetwatch runs` lists them)")
            rows = run_rejections(conn, rejected, limit=max(limit, 50))
            if fmt == "json":
                _json_out([{k: r[k] for k in ("locator", "key", "field", "raw", "reason")} for r in rows])
                return
            table = Table(title=f"rejected by run {rejected}", show_header=True, header_style="bold")
            for col in ("where", "key", "field", "raw", "reason"):
                table.add_column(col, overflow="fold")
            for r in rows:
                # portal text: never read as markup (a status of "[/]" stopped the command; a "[link=…]"
                # became a hidden hyperlink in the operator's terminal: a security review)
                table.add_row(*(terminal_text(r[k]) for k in ("locator", "key", "field", "raw", "reason")))
            console.print(table)
            return
        rows = recent_runs(conn, limit, None if source is SourceChoice.all else source.value)
    if fmt == "json":
        _json_out([_run_json(r) for r in rows])
        return
    table = Table(title="sync runs", show_header=True, header_style="bold")
    for col in ("run", "source", "mode", "started (Tehran)", "took", "status", "announced", "read", "new",
                "changed", "gone", "rejected", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.0f}s" if r["finished_at"] else "-"
        table.add_row(str(r["id"]), r["source"], _mode(r), format_jalali(r["started_at"].astimezone(TEHRAN), with_time=True, persian_digits=False),
                      took, r["status"], str(r["announced"]), str(r["read"]), str(r["inserted"]), str(r["updated"]),
                      str(r["gone"]), str(r["rejected"]), terminal_text(r["error"]))  # may quote a portal
    console.print(table)


def _mode(r: dict) -> str:
    """A run's mode as `runs` shows it (sync.outcome.mode_text): 'incremental (+ full 1404, owed)'."""
    return mode_text(r["mode"], (r.get("stats") or {}).get("completing_full") or [])


_RUN_FIELDS = ("id", "source", "mode", "fiscal_years", "status", "announced", "read", "inserted", "updated",
               "unchanged", "gone", "rejected", "requests", "error")


def _run_json(r: dict) -> dict:
    """A sync run for scripts: times in ISO (UTC) with their Jalali twin in Tehran time."""
    out = {k: r.get(k) for k in _RUN_FIELDS}
    out["completing_full"] = (r.get("stats") or {}).get("completing_full") or []
    for key in ("started_at", "finished_at"):
        when = r.get(key)
        out[key] = when.isoformat() if when else None
        out[f"{key}_jalali"] = format_jalali(when.astimezone(TEHRAN), with_time=True, persian_digits=False) if when else None
    return out


def _json_out(items: list) -> None:
    typer.echo(json.dumps(items, ensure_ascii=False, indent=2))
