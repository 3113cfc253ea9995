"""Commands of the unattended service: ``budgetwatch serve`` and ``budgetwatch status``.

Exit codes of ``serve``: 0 stopped by SIGTERM/Ctrl-C (while it waits for the database at start too),
1 its jobs did not stop within ``schedule.stop_timeout_seconds`` (or an unexpected error),
2 configuration error, 3 another serve runs on this store, 75 the database server did not answer for
:data:`STORE_PATIENCE_SECONDS` at start. ``status`` exits with the code of its verdict (service/status.py: 0 healthy,
3 a source is stale, 4 the reconciliation is stale, 5 the outbox is stuck, 6 serve is not running,
7 a job's run never ended: serve died during it, 8 a job runs too long); before any verdict, 2 when
there is no store to read (a database that holds none is refused, not created: store.db.NoStore).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import typer

from budgetwatch.app import UserError, app, console, context, interruption
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
# how long serve waits at its start for a database server that does not answer (or is starting up),
# trying every STORE_RETRY_SECONDS: past it exit 75, which the unit restarts 30 s later for as long
# as the server stays away (a refused database, user or password is exit 2 at once: store.db)
STORE_PATIENCE_SECONDS = 300.0
STORE_RETRY_SECONDS = 10.0
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
    engine = _open_when_it_answers(identified_url(config.database_url))
    from service import scheduler  # APScheduler and every job's module load only for `serve`

    try:
        code = scheduler.serve(config, engine)
    except LockHeld as exc:
        raise UserError(f"{exc}; not starting a second one", exit_code=SERVE_LOCKED) from None
    finally:
        engine.dispose()
    raise typer.Exit(code)


def _open_when_it_answers(url: str):
    """The store, waiting up to STORE_PATIENCE_SECONDS for a database server that does not answer
    (one line when it first does not): after this machine's reboot PostgreSQL may come up later than
    serve. Past that, exit 75, which the unit restarts (exit 2, a configuration error, it does not).

    SIGTERM or Ctrl-C meanwhile stops serve as at any other moment: exit 0 and one line (an operator's
    trial: `systemctl stop` during the wait was ``interrupted (SIGTERM)``, exit 143, a failure to the
    unit). Nothing has started yet, so there is nothing to cancel."""
    deadline = time.monotonic() + STORE_PATIENCE_SECONDS
    said = False
    try:
        while True:
            try:
                return open_store(url, create=True)
            except StoreUnreachable as exc:
                if time.monotonic() + STORE_RETRY_SECONDS > deadline:
                    raise UserError(f"{exc}; waited {STORE_PATIENCE_SECONDS:.0f} s: the service is started again "
                                    "later", exit_code=SERVE_STORE_UNREACHABLE) from None
                if not said:
                    log.warning("%s; trying again every %.0f s for up to %.0f s", exc, STORE_RETRY_SECONDS,
                                STORE_PATIENCE_SECONDS)
                    said = True
                time.sleep(STORE_RETRY_SECONDS)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as budgetwatch.cli turns it into one
        signum = interruption().signum
        log.info("%s received while waiting for the database: stopped (nothing had started)",
                 signal.Signals(signum).name)
        raise typer.Exit(0) from None


@app.command("status")
def status(fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """The service's health: sources, reconciliation, next runs, open deviations, outbox; exit code per cause."""
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r}: use table or json")
    ctx = context()
    found = health.gather(ctx.config, ctx.engine)
    try:
        if fmt == "json":
            typer.echo(json.dumps(found.as_json(), ensure_ascii=False, indent=2))
        else:
            for line in health.render(found):
                console.print(line, markup=False, highlight=False, soft_wrap=True)
        sys.stdout.flush()
    except BrokenPipeError:  # `status | head -1`: the reader has what it wanted; the verdict is the exit code
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
    except SystemExit:  # Rich's own answer to a broken pipe (Console.on_broken_pipe: exit 1, stdout to devnull)
        pass
    raise typer.Exit(found.exit_code)
