"""Commands of the unattended service: ``budgetwatch serve`` and ``budgetwatch status``.

Exit codes of ``serve``: 0 stopped by SIGTERM/Ctrl-C, 1 its jobs did not stop within
``schedule.stop_timeout_seconds`` (or an unexpected error), 2 configuration error, 3 another serve
runs on this store. ``status`` exits with the code of its verdict (service/status.py: 0 healthy,
3 a source is stale, 4 the reconciliation is stale, 5 the outbox is stuck, 6 serve is not running).
"""

from __future__ import annotations

import json
import logging

import typer

from budgetwatch.app import UserError, app, console, context
from budgetwatch.commands.alerts import refuse_unready_smtp
from budgetwatch.commands.sync import refuse_unready
from foundation.vocabulary import SOURCES
from service import logs
from service import status as health
from store.db import StoreUnreachable, open_store, safe_url
from store.locks import LockHeld
from store.service import identified_url

SERVE_LOCKED = 3
# the store's server did not answer at start (sysexits' EX_TEMPFAIL): deploy/budgetwatch.service
# restarts serve on it, where exit 2 (a configuration error) it does not (an operator's trial: a
# PostgreSQL up after this machine's reboot left the service down for good)
SERVE_STORE_UNREACHABLE = 75
log = logging.getLogger("budgetwatch.service")


@app.command("serve")
def serve() -> None:
    """Run sync, reconciliation, alerts and housekeeping on the `schedule` of config.yaml until stopped."""
    ctx = context()
    config = ctx.config
    # what `sync` refuses, refused before anything is scheduled: a service whose every sync must fail
    # would otherwise run for days, logging one failure a night
    refuse_unready(config, list(SOURCES), ctx.config_source)
    refuse_unready_smtp(config, ctx.config_source)  # and alerts that could never be sent
    logs.configure(ctx.log_format, logging.DEBUG if ctx.debug else logging.INFO)
    logs.REDACTOR.update(logs.secrets_of(config))
    log.info("configuration %s, store %s", ctx.config_source, safe_url(config.database_url))
    # its own engine: on PostgreSQL its sessions name this host and pid, which a second serve reports
    try:
        engine = open_store(identified_url(config.database_url))
    except StoreUnreachable as exc:  # not a configuration error: the unit starts serve again (RestartSec)
        raise UserError(f"{exc}; the service is started again later", exit_code=SERVE_STORE_UNREACHABLE) from None
    from service import scheduler  # APScheduler and every job's module load only for `serve`

    try:
        code = scheduler.serve(config, engine)
    except LockHeld as exc:
        raise UserError(f"{exc}; not starting a second one", exit_code=SERVE_LOCKED) from None
    finally:
        engine.dispose()
    raise typer.Exit(code)


@app.command("status")
def status(fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """The service's health: sources, reconciliation, next runs, open deviations, outbox; exit code per cause."""
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r}: use table or json")
    ctx = context()
    found = health.gather(ctx.config, ctx.engine)
    if fmt == "json":
        typer.echo(json.dumps(found.as_json(), ensure_ascii=False, indent=2))
    else:
        for line in health.render(found):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(found.exit_code)
