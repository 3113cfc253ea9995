"""Commands of the alerts: `alerts send [--dry-run DIR]`, `alerts list [--pending|--failed]`, `alerts preview`,
`alerts retry ID`.

Exit codes of `alerts send`: 0 every due message was sent (or none was due); 1 some message was
refused for good or given up (see `alerts list --failed`), or some expert's digest could not be
built as a message (said, with why; the others are queued and sent); 3 some message is deferred to
a later try, or the SMTP session failed (connect, TLS, login) and the rest waits; 2 a usage or
configuration error (alerts off, no sender, a login password that cannot be read), said before
anything is queued.
The digests, the outbox and SMTP live in alerts/; this module parses options and prints.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

import alerts
from alerts.recipients import coverage, find_expert
from budgetwatch.app import ID_MAX, UserError, app, check_output, console, context, open_output, terminal_text
from foundation.jalali import format_jalali
from foundation.settings import ConfigError
from store import alerts as store_alerts

alerts_app = typer.Typer(help="Deviation alert e-mails: send the digests, list the outbox, preview one.",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")

log = logging.getLogger(__name__)

SEND_FAILED, SEND_DEFERRED = 1, 3


def refuse_unready_smtp(config: Any, config_source: str) -> None:
    """Before any work (`alerts send`, and `serve` before it schedules anything, while alerts are on):
    SMTP settings that cannot work — a login's password that cannot be read, a ca_file that is no
    certificate — are a configuration error naming their keys. Queued, such digests would only wait,
    each send trying them against a session that must fail."""
    problems = config.alerts.smtp.setup_problems() if config.alerts.enabled else []
    if problems:
        raise ConfigError(config_source, problems)


@alerts_app.command("send")
def send(
    dry_run: Path = typer.Option(None, "--dry-run", metavar="DIR",
                                 help="Write each message that would be sent as an .eml file in DIR; "
                                      "send nothing and change nothing in the store."),
) -> None:
    """Queue every expert's due digest, then send what the outbox holds."""
    ctx = context()
    cfg = ctx.config
    if dry_run is not None:
        _dry_run(dry_run)
        return
    if not cfg.alerts.enabled:
        raise UserError("alerts are off: set alerts.enabled: true (and alerts.sender) in the configuration")
    refuse_unready_smtp(cfg, ctx.config_source)
    if not cfg.experts:
        console.print("no experts configured (experts: in the configuration): nothing to queue")
    engine = ctx.writing_engine
    queued = alerts.queue_digests(engine, cfg.alerts, cfg.experts, cfg.routing)
    for recipient, _, news, resolved in queued.queued:
        console.print(f"queued for {recipient}: {news} deviations, {resolved} resolved", highlight=False)
    for recipient, why in queued.not_built:
        console.print(f"not queued for {recipient}: the message could not be built ({why}); its deviations "
                      "stay news for the next send", markup=False, highlight=False)
    report = alerts.dispatch(engine, cfg.alerts)
    for message_id, outcome, detail in report.outcomes:
        console.print(f"{outcome:8} {message_id}" + (f": {detail}" if detail else ""), markup=False, highlight=False)
    experts = "expert" if queued.no_news == 1 else "experts"
    not_built = f", {queued.failed} not built" if queued.failed else ""
    console.print(f"{queued.messages} queued ({queued.no_news} {experts} without news{not_built}); "
                  f"{report.sent} sent, {report.deferred} deferred, {report.failed} failed", highlight=False)
    _say_coverage(engine)
    if report.stopped:
        with engine.connect() as conn:
            waiting = store_alerts.outbox_summary(conn).pending
        waits = "1 message waits" if waiting == 1 else f"{waiting} messages wait"
        console.print(f"stopped: {report.stopped}; {waits} for the next send", markup=False, highlight=False)
    with engine.connect() as conn:  # held by another dispatcher, or by one killed mid-send (trial)
        held = store_alerts.held_count(conn)
    if held:
        console.print(f"{held} message{'s' if held > 1 else ''} held by a dispatcher, not sent by this one: "
                      "`budgetwatch alerts list` says by whom and until when", highlight=False)
    if report.failed or queued.failed:
        raise typer.Exit(SEND_FAILED)
    if report.deferred or report.stopped:
        raise typer.Exit(SEND_DEFERRED)


def _say_coverage(engine) -> None:
    """How many open deviations reached no one for want of an expert of their group (a line after the
    counts; while alerts are off, none reaches anyone: not said), and a WARNING naming the codes of
    routing.agencies no agency in the store has."""
    cfg = context().config
    with engine.connect() as conn:
        found = coverage(conn, cfg.experts, cfg.routing, cfg.alerts.min_severity)
    if cfg.alerts.enabled and (line := found.unreached_line()) is not None:
        console.print(line, markup=False, highlight=False)
    if (line := found.unknown_codes_line()) is not None:
        log.warning("%s", line)


def _dry_run(out_dir: Path) -> None:
    ctx = context()
    cfg = ctx.config
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--dry-run {out_dir}: not a directory")
    # as every output's folder: one that does not exist is not made (a typo made a tree at /, a trial),
    # and one holding an earlier dry run's messages would mix them with these
    if not out_dir.exists() and not out_dir.parent.is_dir():
        raise UserError(f"--dry-run {out_dir}: folder {out_dir.parent} does not exist")
    if out_dir.is_dir() and any(out_dir.glob("*.eml")):
        raise UserError(f"--dry-run {out_dir}: holds .eml files already (an earlier dry run?): give a new or "
                        "empty folder")
    from alerts.outbox import eml_name, write_eml  # the mail templates load only for the commands that write
    from alerts.sending import lease

    with ctx.engine.connect() as conn:
        pending = store_alerts.pending_messages(conn)
    # a message a live dispatcher holds is that dispatcher's to send, not this send's (a trial: written
    # as one that would be sent); a lapsed hold is sent by the next send
    held_for, now = lease(cfg.alerts), datetime.now(UTC)
    held = {row.id for row in pending if row.claimed_by and _holds_until(row, held_for) > now}
    pending = [row for row in pending if row.id not in held]
    paths = [write_eml(out_dir, eml_name(i, row.recipient), row.raw) for i, row in enumerate(pending, 1)]
    paths += alerts.write_digests(ctx.engine, cfg.alerts, cfg.experts, cfg.routing, out_dir, first=len(paths) + 1)
    for path in paths:
        console.print(str(path), markup=False, highlight=False)
    due = len(paths) - len(pending)
    console.print(f"dry run: {_count(len(paths), 'message')} written to {out_dir} ({len(pending)} already in the "
                  f"outbox, {_count(due, 'digest')} due); nothing sent, nothing queued", markup=False, highlight=False)
    if held:
        console.print(f"{_count(len(held), 'message')} held by a dispatcher, not written: `budgetwatch alerts list` "
                      "says by whom and until when", markup=False, highlight=False)
    _say_coverage(ctx.engine)  # what a setup checked by a dry run would leave unsent, as a send says it (a trial)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@alerts_app.command("list")
def list_outbox(
    pending: bool = typer.Option(False, "--pending", help="Only messages still owed."),
    failed: bool = typer.Option(False, "--failed", help="Only messages refused or given up, with the reason."),
    limit: int = typer.Option(50, "--limit", min=1, max=ID_MAX, help="At most this many, newest first."),
) -> None:
    """Show the outbox: each digest's recipient, state, tries and last error."""
    if pending and failed:
        raise UserError("--pending and --failed exclude each other: give one")
    status = store_alerts.PENDING if pending else store_alerts.FAILED if failed else None
    with context().engine.connect() as conn:
        summary = store_alerts.outbox_summary(conn)
        rows = store_alerts.list_outbox(conn, status, limit)
    console.print(f"outbox: {summary.pending} pending (oldest queued {_when(summary.oldest_pending_at)}), "
                  f"{summary.failed} failed; last sent {_when(summary.last_sent_at)}", highlight=False)
    if not rows:
        console.print("no messages" + (f" {status}" if status else ""))
        return
    from alerts.sending import lease

    held_for, now = lease(context().config.alerts), datetime.now(UTC)
    table = Table(show_header=True, header_style="bold")
    for column in ("id", "recipient", "status", "queued", "deviations", "tries", "sent / next try", "last error"):
        table.add_column(column, overflow="fold")
    for row in rows:
        when = row.sent_at if row.status == store_alerts.SENT else (
            row.failed_at if row.status == store_alerts.FAILED else row.next_attempt_at)
        status = row.status
        if status == store_alerts.PENDING and row.claimed_by:  # a dispatcher's, maybe one that died
            status += f" ({_held(row, held_for, now)})"
        table.add_row(str(row.id), row.recipient, Text(status), _when(row.created_at),
                      f"{row.deviations} (+{row.resolved} resolved)", str(row.attempts), _when(when),
                      terminal_text(_error_of(row)))
    console.print(table)


def _holds_until(row, held_for) -> datetime:
    """When the claim on a pending message lapses (a claim is a lease: store/alerts.py)."""
    return row.claimed_at + held_for


def _held(row, held_for, now: datetime) -> str:
    """A pending message a dispatcher claimed, as `list` and `preview` say it: by whom, until when."""
    until = _holds_until(row, held_for)
    if until > now:
        return f"held by {row.claimed_by} until {_when(until)}"
    return f"held by {row.claimed_by}; the hold lapsed at {_when(until)}: the next send sends it"


def _error_of(row) -> str:
    """A message's last error as the list shows it: for one sent in the end, as what happened before
    (a sent row showed «refused the login …» as if it had failed — found by a new user)."""
    if not row.last_error:
        return ""
    return f"(before it was sent) {row.last_error}" if row.status == store_alerts.SENT else row.last_error


@alerts_app.command("retry")
def retry(
    outbox_id: int = typer.Argument(..., metavar="ID", min=1, max=ID_MAX, help="The message's id in `alerts list`."),
) -> None:
    """Send a failed or waiting message at the next send, as it is (same Message-ID): its cause is fixed."""
    from alerts.sending import ALREADY_SENT, BEING_SENT, DUE_NOW, REQUEUED  # SMTP: only commands that send

    ctx = context()
    outcome = alerts.retry_now(ctx.engine, ctx.config.alerts, outbox_id)
    if outcome == REQUEUED:
        console.print(f"message {outbox_id} is pending again: `budgetwatch alerts send` sends it",
                      highlight=False)
    elif outcome == DUE_NOW:
        console.print(f"message {outbox_id} is due now (no more waiting for its next try): "
                      "`budgetwatch alerts send` sends it", highlight=False)
    elif outcome == ALREADY_SENT:
        raise UserError(f"message {outbox_id} was sent: nothing to retry (see `budgetwatch alerts list`)")
    elif outcome == BEING_SENT:
        # trial: said of a message held by a dispatcher killed minutes before, with no word of when
        # the hold lapses
        raise UserError(f"message {outbox_id} is held by a dispatcher (see `budgetwatch alerts list`: by whom and "
                        "until when); if that dispatcher is gone, the hold lapses then and the next send sends it")
    else:
        raise UserError(f"no message {outbox_id} in the outbox (see `budgetwatch alerts list`)")


def _when(moment) -> str:
    """A moment as the terminal writes it: Tehran time, Jalali with ASCII digits (docs/decisions.md)."""
    return format_jalali(moment, with_time=True, persian_digits=False) if moment else "-"


@alerts_app.command("preview")
def preview(
    expert: str = typer.Option(..., "--expert", metavar="EMAIL", help="The expert's address as in experts:."),
    html: Path = typer.Option(None, "--html", metavar="FILE", help="Also write the HTML part to FILE."),
) -> None:
    """Show what an expert's next digest would hold, without queuing it or marking anything."""
    if html is not None:
        check_output(html, "--html")  # before any work; no folder is made
    ctx = context()
    cfg = ctx.config
    found = find_expert(cfg.experts, expert)
    if found is None:
        known = ", ".join(e.address for e in cfg.experts) or "none configured"
        raise UserError(f"--expert {expert!r}: no such expert in experts: ({known})")
    try:
        shown = alerts.preview(ctx.engine, cfg.alerts, found, cfg.routing)
    except alerts.NotBuilt as exc:
        raise UserError(str(exc), exit_code=1) from None
    with ctx.engine.connect() as conn:
        waiting = [row for row in store_alerts.list_outbox(conn, store_alerts.PENDING)
                   if row.recipient == found.address]
    if shown is None:
        after = "no further digest would be queued" if waiting else "no digest would be sent"
        console.print(f"nothing new for {found.address}: {after}", highlight=False)
        _say_waiting(waiting)
        _say_coverage(ctx.engine)
        return
    rendered = shown[1]
    console.print(f"To: {found.name} <{found.address}>\nSubject: {rendered.subject}\n", markup=False, highlight=False)
    console.print(rendered.body_text, markup=False, highlight=False, soft_wrap=True)
    if html is not None:
        with open_output(html, option="--html") as out:
            out.write(rendered.body_html)
        console.print(f"HTML written to {html}", markup=False, highlight=False)
    _say_waiting(waiting)
    _say_coverage(ctx.engine)


def _say_waiting(waiting: list) -> None:
    """The expert's digests already queued and not sent yet: a preview shows only what is news beyond them."""
    from alerts.sending import lease

    held_for, now = lease(context().config.alerts), datetime.now(UTC)
    for row in reversed(waiting):  # oldest first: the order they go in
        what = f"message {row.id} ({row.deviations} deviations, {row.resolved} resolved)"
        if row.claimed_by:  # retry refuses it: said as `list` says it (a trial: "retry makes it due now")
            console.print(f"{what} waits in the outbox, {_held(row, held_for, now)}", markup=False, highlight=False)
            continue
        console.print(f"{what} waits in the outbox, next try {_when(row.next_attempt_at)}: `budgetwatch alerts "
                      f"retry {row.id}` makes it due now", markup=False, highlight=False)
