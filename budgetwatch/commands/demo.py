"""`budgetwatch demo`: the main job end to end on the embedded default, no network, no credentials."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from budgetwatch.app import UserError, app, console, context
from budgetwatch.commands.sync import print_outcomes, sync_with_progress
from budgetwatch.config import DATABASE_ENV, Config
from foundation.jalali import TEHRAN
from foundation.vocabulary import SOURCES
from reconcile import deviations as dv
from reconcile.settings import RoutingConfig
from store.db import make_engine, safe_url, upgrade


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
    # the simulated province's agencies, routed to the expert group that owns each (as an operator
    # would write routing.agencies for the real province)
    routing = RoutingConfig(default="consolidation", agencies={a.code: a.group for a in sim.world.agencies})
    return base.model_copy(update=dict(
        sources=base.sources.model_copy(update=sources),
        database=base.database.model_copy(update={"url": database_url}),
        routing=routing,
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

    if os.environ.get(DATABASE_ENV):  # it wins over any configured store: the demo would fill that one
        raise UserError(f"{DATABASE_ENV} is set: the demo would write a simulated province (and a demo console "
                        f"user) into that store; unset it (the demo uses its own store, or --database URL)")
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
    _demo_reconcile(ctx, visits)
    mails = _demo_digests(ctx, config, base.data_dir / "demo-mail")
    from web import demo_user  # the console's stack loads only here, not with every command

    name, password = demo_user(ctx.writing_engine)
    exe = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "budgetwatch" else "budgetwatch"
    explore = _demo_config_file(base, config, own_store=database is None)
    # a --database URL may hold a password: never printed nor written, the user sets it again
    prefix = f"{exe} --config {explore}" if database is None else \
        f"BUDGETWATCH_DATABASE_URL='<the --database URL>' {exe} --config {explore}"
    console.print(
        f"\nE-mail digests the sample experts would receive: {len(mails)} .eml file(s) in {mails[0].parent if mails else '-'}"
        f"\nExplore the demo store with the same commands and the demo's routing of agencies to groups, e.g.\n"
        f"  {prefix} deviations list\n"
        f"  {prefix} report --output {base.data_dir / 'demo-report.html'}\n"
        f"  {prefix} alerts preview --expert social.expert@demo.mpo-kz.ir\n"
        f"The web console on the demo store:\n"
        f"  {prefix} web\n"
        f"  then open http://127.0.0.1:8080/ and sign in as {name} with the password {password}",
        markup=False, highlight=False, soft_wrap=True,
    )
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


def _demo_config_file(base: Config, config: Config, *, own_store: bool) -> Path:
    """<data_dir>/demo-config.yaml: the store and the routing the demo used, for the commands it
    suggests (with config.yaml's routing, every simulated agency would fall to the default group,
    and the lists and the console would not match what the demo printed)."""
    import yaml

    path = base.data_dir / "demo-config.yaml"
    content: dict[str, Any] = {"data_dir": str(base.data_dir.resolve())}
    if own_store:
        content["database"] = {"url": f"sqlite:///{(base.data_dir / 'demo.db').resolve().as_posix()}"}
    content["routing"] = {"default": config.routing.default, "agencies": dict(config.routing.agencies)}
    # the sample experts the demo wrote digests for, so that `alerts preview --expert …` works on it
    import alerts

    content["experts"] = [{"name": e.name, "email": e.email, "groups": list(e.groups)} for e in alerts.DEMO_EXPERTS]
    path.write_text("# written by `budgetwatch demo`, again at each run: its store and its routing\n"
                    + yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _demo_digests(ctx: Any, config: Config, out_dir: Path) -> list[Path]:
    """What the sample experts would be sent, as .eml files a new user can open (nothing is sent)."""
    import alerts

    return alerts.write_demo_digests(ctx.writing_engine, config.alerts, list(alerts.DEMO_EXPERTS), config.routing, out_dir)


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


def _demo_reconcile(ctx: Any, visits: Path) -> None:
    from budgetwatch.commands.reconcile import reconcile_and_show
    from reconcile.inspections import import_file

    result = import_file(ctx.writing_engine, visits)
    console.print(f"field visits from {visits}: {result.inserted} new, {result.updated} changed, "
                  f"{result.unchanged} unchanged")
    reconcile_and_show(years=(), day=None, view=dv.View(), fmt="table", output=None, worst=10)
