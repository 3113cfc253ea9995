"""Commands about budgetwatch itself: the configuration and the store's schema."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from budgetwatch.app import app, console, context
from budgetwatch.config import data_dir_unwritable
from store.db import (
    check_current,
    current_revision,
    head_revision,
    make_engine,
    missing_file,
    reaching,
    safe_url,
    upgrade,
)

db_app = typer.Typer(help="The store: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command("check-config")
def check_config() -> None:
    """Validate config.yaml and explain what it sets (passwords are never shown)."""
    ctx = context()
    cfg = ctx.config
    # the store's URL first: reading it makes the embedded default's data_dir, which may fail (a
    # folder under /proc), and that must not follow "configuration OK"
    database = safe_url(cfg.database_url)
    console.print(f"[green]configuration OK[/green]: {ctx.config_source}", soft_wrap=True)
    table = Table(show_header=True, header_style="bold")
    table.add_column("setting")
    table.add_column("value")
    table.add_row("database", database)
    unwritable = data_dir_unwritable(cfg.data_dir)  # the embedded store's is refused before this
    if unwritable is None:
        table.add_row("data directory", str(cfg.data_dir))
    else:
        table.add_row("data directory", f"[yellow]{unwritable} — {_refusing(cfg.data_dir)} will refuse[/yellow]")
    for name in ("nezarat4", "saba"):
        src = getattr(cfg.sources, name)
        where = f"${src.password_env}" if src.password_env else str(src.password_file)
        years = ", ".join(map(str, src.fiscal_years)) or "current and previous"
        state = "on" if src.enabled else "off"
        table.add_row(
            f"source {name}",
            f"{state}; {src.base_url}; user {src.username or '(none)'}; password from {where}; "
            f"years {years}; {src.concurrency} in flight",
        )
    for name in ("nezarat4", "saba"):
        src = getattr(cfg.sources, name)
        if src.enabled:
            problems = src.credential_problems(name)
            table.add_row(f"credentials {name}", "ready (user and password readable)" if not problems else
                          "[yellow]" + "; ".join(problems) + " — sync will refuse to start[/yellow]")
    s = cfg.schedule
    table.add_row("schedule", f"sync '{s.sync}', full sync '{s.full_sync}', reconcile '{s.reconcile}', "
                  f"alerts '{s.alerts}', dispatch '{s.dispatch}', housekeeping '{s.housekeeping}' "
                  f"({s.timezone})")
    rules = cfg.reconcile.rules
    on = [name for name in type(rules).model_fields if getattr(rules, name).enabled]
    table.add_row("rules on", ", ".join(on))
    table.add_row("reconcile as of", str(cfg.reconcile.as_of or "today (Asia/Tehran)"))
    smtp = cfg.alerts.smtp
    login = "no login"
    if smtp.username:
        where = (f"${smtp.password_env}" if smtp.password_env else str(smtp.password_file) if smtp.password_file
                 else "nowhere (set password_env or password_file)")
        login = f"user {smtp.username}, password from {where}"
    sender = f"{cfg.alerts.sender_name} <{cfg.alerts.sender}>" if cfg.alerts.sender else "-"  # as the From header
    table.add_row("alerts", f"{'on' if cfg.alerts.enabled else 'off'}; from {sender}; "
                  f"min severity {cfg.alerts.min_severity}; SMTP {smtp.host}:{smtp.port} ({smtp.security}; {login}"
                  f"{f'; CA {smtp.ca_file}' if smtp.ca_file else ''}); given up after "
                  f"{_duration(cfg.alerts.give_up_after)}")
    if cfg.alerts.enabled:  # what `alerts send` and `serve` would refuse, said here first
        smtp_problems = cfg.alerts.smtp.setup_problems()
        table.add_row("mail server settings", "ready (nothing read is missing)" if not smtp_problems else
                      "[yellow]" + "; ".join(smtp_problems) + " — alerts send and serve will refuse[/yellow]")
    table.add_row("reports", f"each step of the monitoring cycle may take {cfg.reports.service_days} days")
    table.add_row("experts", str(len(cfg.experts)))
    table.add_row("routing", f"{len(cfg.routing.agencies)} agencies routed; default group {cfg.routing.default}")
    console.print(table)


def _refusing(data_dir) -> str:
    """What needs to write in a data_dir this user may not write: the signed archive always; the
    console's session secret unless the environment gives it or its file is there to read (web.auth)."""
    from web.auth import SECRET_ENV, SECRET_FILE  # the console's, loaded only here

    if os.environ.get(SECRET_ENV, "").strip() or os.access(data_dir / SECRET_FILE, os.R_OK):
        return "review approve (the archive)"
    return "web (its session secret) and review approve (the archive)"


def _duration(value) -> str:
    """A timedelta as config.yaml writes one: 2d, 36h, 90m, or seconds."""
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the store's schema migrations (safe to run again)."""
    url = context().config.database_url
    engine = make_engine(url)
    with reaching(url):  # the store's connection only: a failing migration says so itself
        before = current_revision(engine)
        if before is not None and before > head_revision():
            # written by a newer release: said as every other command says it (exit 2), not as
            # alembic's "Can't locate revision" (a trial); nothing is changed
            check_current(engine)
    upgrade(engine)
    after = current_revision(engine)
    if before == after:
        console.print(f"store {safe_url(url)} is current (schema {after})")
    else:
        console.print(f"store {safe_url(url)} upgraded: {before or 'empty'} -> {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the store's schema version and whether it is current."""
    url = context().config.database_url
    head = head_revision()
    if missing_file(url):  # said without connecting, which would make the file: this command only reads
        console.print(f"{safe_url(url)}: schema none (no such file; behind: run `budgetwatch db upgrade`, which "
                      f"makes the store there at {head})")
        raise typer.Exit(1)
    with reaching(url):
        current = current_revision(make_engine(url))
    state = ("current" if current == head else
             f"ahead: written by a newer budgetwatch; this one knows {head}" if current and current > head else
             f"behind: run `budgetwatch db upgrade`, which brings it to {head}")
    console.print(f"{safe_url(url)}: schema {current or 'none'} ({state})")
    if current != head:
        raise typer.Exit(1)  # a script can tell: 0 current, 1 behind or ahead (docs/operations.md)
