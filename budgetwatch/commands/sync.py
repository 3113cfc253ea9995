"""Commands that move data: sync, runs, export; and the simulator and demo that feed them."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from budgetwatch.app import UserError, app, console, context, err_console
from budgetwatch.config import Config
from budgetwatch.jalali import TEHRAN, format_jalali
from store.db import make_engine, open_store, safe_url, upgrade
from store.export import export_agreements, export_projects, recent_runs, run_rejections
from sync.engine import SOURCES, SourceOutcome, SyncObserver, run_sync


class SourceChoice(str, Enum):
    nezarat4 = "nezarat4"
    saba = "saba"
    all = "all"


class ExportKind(str, Enum):
    projects = "projects"
    agreements = "agreements"


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
    engine = open_store(config.database_url)
    try:
        with _progress() as progress:
            return run_sync(engine, config, sources, full=full, years=years, observer=RichObserver(progress))
    finally:
        engine.dispose()


def print_outcomes(outcomes: list[SourceOutcome]) -> None:
    table = Table(title="sync", show_header=True, header_style="bold")
    for col in ("source", "run", "status", "mode", "years", "announced", "read", "new", "changed", "unchanged",
                "gone", "rejected", "requests"):
        table.add_column(col, justify="right" if col not in ("source", "status", "mode", "years") else "left")
    colour = {"success": "green", "incomplete": "yellow", "failed": "red", "locked": "red", "disabled": "dim"}
    for o in outcomes:
        table.add_row(o.source, str(o.run_id or "-"), f"[{colour.get(o.status, 'white')}]{o.status}[/]", o.mode,
                      ",".join(map(str, o.years)), str(o.announced), str(o.read), str(o.inserted), str(o.updated),
                      str(o.unchanged), str(o.gone), str(o.rejected), str(o.requests))
    console.print(table)
    for o in outcomes:
        if o.error:
            err_console.print(f"{o.source}: {o.status}: {o.error}", markup=False, highlight=False)
        if o.rejected:
            console.print(f"{o.source}: {o.rejected} rows rejected; see `budgetwatch runs --rejected {o.run_id}`")


@app.command()
def sync(
    source: SourceChoice = typer.Option(SourceChoice.all, "--source", "-s", help="Which portal to sync."),
    full: bool = typer.Option(False, "--full", help="Re-read everything and mark what is no longer listed as gone."),
    year: list[int] = typer.Option(None, "--year", "-y", help="Fiscal year (Jalali); repeat for several. Default: config."),
) -> None:
    """Pull agreements and performance from the portals into the store (incremental by default)."""
    config = context().config
    sources = list(SOURCES) if source is SourceChoice.all else [source.value]
    outcomes = sync_with_progress(config, sources, full=full, years=year or None)
    print_outcomes(outcomes)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


@app.command()
def runs(
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs to list."),
    source: SourceChoice = typer.Option(SourceChoice.all, "--source", "-s"),
    rejected: int = typer.Option(None, "--rejected", help="Show the rejected records of this run instead."),
) -> None:
    """List recent sync runs (or the rows one run rejected, with their reasons)."""
    engine = context().engine
    with engine.connect() as conn:
        if rejected is not None:
            rows = run_rejections(conn, rejected, limit=max(limit, 50))
            table = Table(title=f"rejected by run {rejected}", show_header=True, header_style="bold")
            for col in ("where", "key", "field", "raw", "reason"):
                table.add_column(col, overflow="fold")
            for r in rows:
                table.add_row(r["locator"], r["key"] or "", r["field"] or "", r["raw"] or "", r["reason"])
            console.print(table)
            return
        rows = recent_runs(conn, limit, None if source is SourceChoice.all else source.value)
    table = Table(title="sync runs", show_header=True, header_style="bold")
    for col in ("run", "source", "mode", "started (Tehran)", "took", "status", "announced", "read", "new",
                "changed", "gone", "rejected", "error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        took = f"{(r['finished_at'] - r['started_at']).total_seconds():.0f}s" if r["finished_at"] else "-"
        table.add_row(str(r["id"]), r["source"], r["mode"], format_jalali(r["started_at"].astimezone(TEHRAN), with_time=True),
                      took, r["status"], str(r["announced"]), str(r["read"]), str(r["inserted"]), str(r["updated"]),
                      str(r["gone"]), str(r["rejected"]), r["error"] or "")
    console.print(table)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {type(value).__name__}")


def write_jsonl(rows: Any, out: Any) -> int:
    n = 0
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False, default=_json_default) + "\n")
        n += 1
    return n


@app.command()
def export(
    kind: ExportKind = typer.Argument(..., help="projects (Nezarat-4) or agreements (SABA)."),
    year: int = typer.Option(None, "--year", "-y", help="Only this fiscal year."),
    fmt: str = typer.Option("jsonl", "--format", help="Output format (jsonl)."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write the normalised store, one JSON object per line."""
    if fmt != "jsonl":
        raise UserError(f"--format {fmt}: only jsonl is supported")
    engine = context().engine
    reader = export_projects if kind is ExportKind.projects else export_agreements
    with engine.connect() as conn:
        if output:
            with open(output, "w", encoding="utf-8") as out:
                n = write_jsonl(reader(conn, year), out)
            err_console.print(f"wrote {n} {kind.value} to {output}")
        else:
            write_jsonl(reader(conn, year), sys.stdout)


@app.command()
def simulator(
    seed: int = typer.Option(7, help="Seed of the generated province (same seed, same data)."),
    projects: int = typer.Option(600, help="Capital projects to generate."),
    agreements: int = typer.Option(300, help="Expense agreements to generate."),
    nezarat_port: int = typer.Option(8401, help="Port of the Nezarat-4 simulator (0: any free port)."),
    saba_port: int = typer.Option(8402, help="Port of the SABA simulator (0: any free port)."),
    clock: str = typer.Option(None, help="The simulated now, Jalali or ISO day (default: today in Tehran)."),
    latency_ms: int = typer.Option(0, help="Latency added to every answer."),
    session_idle_seconds: float = typer.Option(1200, help="Nezarat-4 session idle expiry."),
    error_rate: float = typer.Option(0.0, help="Share of answers that are server errors (500 / error pages)."),
    maintenance_rate: float = typer.Option(0.0, help="Share of answers that are maintenance pages (503)."),
    reset_rate: float = typer.Option(0.0, help="Share of connections reset without an answer."),
    malformed: bool = typer.Option(False, help="Plant a few malformed rows and items."),
    shift_while_paging: bool = typer.Option(False, help="Edit and insert items while a client pages."),
    layout_change: str = typer.Option(None, help="Simulate drift: list_header | detail_span | saba_field."),
) -> None:
    """Serve simulated Nezarat-4 and SABA portals on loopback (for demos, tests and benchmarks)."""
    from simulator import Faults  # the product never imports the simulator; this command is its front door
    from simulator.cli import serve

    faults = Faults(error500_rate=error_rate, maintenance_rate=maintenance_rate, reset_rate=reset_rate,
                    malformed=malformed, shift_while_paging=shift_while_paging, layout_change=layout_change,
                    latency_ms=latency_ms)
    serve(seed=seed, projects=projects, agreements=agreements, nezarat_port=nezarat_port, saba_port=saba_port,
          clock=_clock(clock), faults=faults, latency_ms=latency_ms, session_idle_seconds=session_idle_seconds)


def _clock(raw: str | None) -> datetime | None:
    if not raw:
        return None
    from budgetwatch.jalali import parse_day

    day = parse_day(raw)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=TEHRAN)


DEMO_PASSWORD_ENV = {"nezarat4": "BUDGETWATCH_DEMO_NEZARAT4_PASSWORD", "saba": "BUDGETWATCH_DEMO_SABA_PASSWORD"}


def demo_config(base: Config, sim: Any, database_url: str) -> Config:
    """The configuration pointed at a running simulator, with its demo users."""
    sources = {}
    for name, url in (("nezarat4", sim.nezarat_url), ("saba", sim.saba_url)):
        user, password = sim.credentials[name]
        os.environ[DEMO_PASSWORD_ENV[name]] = password  # this process only; never written anywhere
        current = getattr(base.sources, name)
        sources[name] = current.model_copy(update=dict(
            enabled=True, base_url=url, username=user, password_env=DEMO_PASSWORD_ENV[name], password_file=None,
            fiscal_years=[], backoff_initial_seconds=0.05, backoff_max_seconds=1.0,
            # the simulated portals are on loopback and this process's own: the demo need not wait
            # out the politeness meant for shared government servers
            **({"page_pause_seconds": 0.0} if name == "nezarat4" else {"rate_limit_per_second": 200.0}),
        ))
    return base.model_copy(update=dict(
        sources=base.sources.model_copy(update=sources),
        database=base.database.model_copy(update={"url": database_url}),
    ))


@app.command()
def demo(
    seed: int = typer.Option(7, help="Seed of the simulated province."),
    projects: int = typer.Option(600, help="Capital projects to simulate."),
    agreements: int = typer.Option(300, help="Expense agreements to simulate."),
    database: str = typer.Option(None, help="Store URL (default: SQLite at <data_dir>/demo.db)."),
) -> None:
    """The main job end to end on the embedded default: simulator -> sync -> reconcile, no network."""
    from simulator import Simulator, SimulatorConfig

    ctx = context()
    base = ctx.config
    url = database or f"sqlite:///{(base.data_dir / 'demo.db').as_posix()}"
    if database is None:  # the demo's own store, made by an older budgetwatch: bring it up to date
        base.data_dir.mkdir(parents=True, exist_ok=True)
        demo_store = make_engine(url)
        upgrade(demo_store)
        demo_store.dispose()
    console.print(f"[bold]budgetwatch demo[/bold]: simulated portals on 127.0.0.1, store {safe_url(url)}")
    sim_config = SimulatorConfig(seed=seed, projects=projects, agreements=agreements, rate_limit_per_second=250,
                                 clock=datetime.now(TEHRAN).replace(second=0, microsecond=0))
    with Simulator(sim_config) as sim:
        console.print(f"  Nezarat-4 at {sim.nezarat_url}, SABA at {sim.saba_url}")
        config = demo_config(base, sim, url)
        ctx.use_config(config, "demo")
        outcomes = sync_with_progress(config, list(SOURCES), full=False, years=None)
        print_outcomes(outcomes)
        visits = _demo_visits(sim, base.data_dir)
    reconciled = _demo_reconcile(ctx, visits)
    console.print(
        "\nExplore the demo store with the same commands, e.g. "
        f"`BUDGETWATCH_DATABASE_URL={url} budgetwatch runs` (or `export projects`, `deviations list`)."
    )
    if not all(o.ok for o in outcomes) or not reconciled:
        raise typer.Exit(1)


def _demo_visits(sim: Any, data_dir: Path) -> Path:
    """The simulated province's field visits as the CSV an expert would import."""
    import csv

    path = data_dir / "demo-inspections.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, ["project_code", "date", "observed_progress", "inspector", "remarks"])
        writer.writeheader()
        writer.writerows(sim.world.inspections())
    return path


def _demo_reconcile(ctx: Any, visits: Path) -> bool:
    from budgetwatch.commands.reconcile import reconcile_command
    from reconcile.inspections import import_file

    result = import_file(ctx.engine, visits)
    console.print(f"field visits from {visits}: {result.inserted} new, {result.updated} changed, "
                  f"{result.unchanged} unchanged")
    reconcile_command(year=None, as_of=None, county=None, agency=None, group=None, rule=None, min_severity=None,
                      fmt="table", output=None, include_dismissed=False)
    return True
