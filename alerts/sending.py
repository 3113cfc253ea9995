"""Sending what the outbox holds: claim a message, send its stored bytes, mark it — one at a time.

Exactly once where SMTP allows it. A message is claimed before it is sent (store.alerts.claim_next:
two dispatchers never hold one message), sent as stored (its ``Message-ID`` fixed when it was
queued), then marked sent. A dispatcher killed between sending and marking leaves its claim; once
the claim's lease is over, the next dispatch sends the very same message again — a duplicate the
receiving side can recognise by its ``Message-ID``, never a different message, never a lost one.

Transient failures are retried with backoff (tenacity) a few times within one dispatch, then left
for later dispatches with a growing wait, until ``alerts.give_up_after`` from queuing and refused in
two dispatches of its own: then the message is marked failed with the last error. A dispatch claims
each message once (``claim_next(skip=)``), its ``attempts_per_run`` tries and no more, however soon
the wait of a message it deferred ends: so its two sends are two dispatches at least, and a dispatch
ends after one pass over the outbox. A 5xx answer marks it failed at once, with the server's
answer; so does a message that cannot go as stored (an address beyond ASCII), with why: one bad
message never stops the others. A failed session (connect, TLS, login) stops the dispatch at once,
without another try: every message would fail alike, and hammering the server helps no one. It is
not the message's failure either: no message's tries, wait or give-up clock move (the one being
sent keeps the reason as its last error), and the next dispatch tries them all. A configuration
that cannot work (a password that cannot be read: SmtpConfig.setup_problems) stops a dispatch
before it claims anything.

Ctrl-C or SIGTERM of `alerts send` (a KeyboardInterrupt in the dispatching thread: budgetwatch.cli)
ends the dispatch at once, as the service's stop does: the session is cut without a QUIT, the
message being sent is given back at once (its claim released, the try that was cut not counted, due
again at the next send; one waiting between its tries is deferred as its last answer says) and the
interruption goes on to the command. A trial's Ctrl-C waited for the silent server's timeout, then
left the message held by the dead process's claim for the lease's ~7 minutes.

A dispatch that leaves messages another dispatcher holds (a serve sending them now, or one killed
mid-send, whose claim lasts its lease) says so in ``stopped``: how many and until when.

:func:`retry_now` is `alerts retry ID`: a failed or waiting message due at the next dispatch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from alerts.settings import AlertsConfig
from alerts.smtp import INTERRUPTED, STOPPED, LoginRefused, Permanent, SessionFailure, SmtpSession, Transient
from foundation.jalali import format_jalali
from store import alerts as store_alerts

log = logging.getLogger(__name__)


@dataclass
class DispatchReport:
    """What a dispatch did; the counts first (the service logs a report's int fields)."""

    sent: int = 0
    deferred: int = 0  # a transient failure: tried again by a later dispatch
    failed: int = 0  # refused for good (5xx) or given up after alerts.give_up_after
    stopped: str | None = None  # why the dispatch ended before the outbox was empty
    # when each pending message left to another dispatcher's claim is released (its lease's end); not
    # a count of this dispatch's own (the service logs a report's int fields)
    held_until: list[datetime] = field(default_factory=list)
    # Message-ID → (sent|deferred|failed, detail), in the order the dispatch last left each
    _outcomes: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def record(self, message_id: str, outcome: str, detail: str = "") -> None:
        """Count a message once, by how the dispatch left it: an outcome recorded for it before is
        replaced (a trial's send said "5 deferred, 3 failed" of a 5-message outbox)."""
        earlier = self._outcomes.pop(message_id, None)
        if earlier is not None:
            setattr(self, earlier[0], getattr(self, earlier[0]) - 1)
        setattr(self, outcome, getattr(self, outcome) + 1)
        self._outcomes[message_id] = (outcome, detail)

    @property
    def outcomes(self) -> list[tuple[str, str, str]]:
        """(Message-ID, sent|deferred|failed, detail) for each message the dispatch tried."""
        return [(message_id, outcome, detail) for message_id, (outcome, detail) in self._outcomes.items()]

    @property
    def ok(self) -> bool:
        return not (self.failed or self.deferred or self.stopped)


def worker_name() -> str:
    """Who holds a claim: host, process and a random part (one process may run two dispatches)."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease(alerts: AlertsConfig) -> timedelta:
    """How long a claim holds: longer than the slowest dispatch of one message can take (connect,
    TLS, login and data, each up to the timeout, for every try, plus the waits between tries)."""
    retry = alerts.retry
    waits = sum(min(retry.first_wait_seconds * 2 ** k, retry.max_wait_seconds)
                for k in range(retry.attempts_per_run - 1))
    return timedelta(seconds=retry.attempts_per_run * 4 * alerts.smtp.timeout_seconds + waits + 60)


def backoff(alerts: AlertsConfig, attempts: int) -> timedelta:
    """The wait before a later dispatch tries a message `attempts` tries have failed on."""
    retry = alerts.retry
    return timedelta(seconds=min(retry.first_wait_seconds * 2 ** max(attempts - 1, 0), retry.max_wait_seconds))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def dispatch(engine: Engine, alerts: AlertsConfig, *, now: datetime | None = None, worker: str | None = None,
             session: SmtpSession | None = None, stopping: threading.Event | None = None) -> DispatchReport:
    """Send every due message of the outbox (see the module's docstring). ``now`` fixes the clock the
    outbox is read and marked by (tests); the waits between tries are real. ``stopping`` (the
    service's): once set, no further message is claimed, and a message waiting between its tries is
    deferred at once as its last answer says (SIGTERM took up to 30 s, then exited 1 with a message
    held for its lease and sent again after the restart)."""
    report = DispatchReport()
    if not alerts.enabled:
        report.stopped = "alerts are off (alerts.enabled: false): nothing sent"
        return report
    problems = alerts.smtp.setup_problems()
    if problems:  # every session would fail alike: no message is claimed, tried or marked
        report.stopped = "; ".join(problems)
        log.warning("alerts not sent: %s", report.stopped)
        return report
    clock: Callable[[], datetime] = (lambda: now) if now is not None else _utcnow
    paused = _login_paused(alerts, clock())
    if paused:  # the mail account must not be locked by a login refused every few minutes
        report.stopped = paused
        log.info("alerts not sent: %s", paused)
        return report
    worker = worker or worker_name()
    session = session or SmtpSession(alerts.smtp)
    held = lease(alerts)
    # each message once a dispatch: one it deferred is due again when its wait ends, often before the
    # pass over the outbox does, and trying it again would make one dispatch its "two sends of its
    # own" (given up after one greylisting episode) or, while it is young, a dispatch without end
    tried: set[int] = set()
    max_tried: int | None = None  # the largest of them (claim_next: looked for after it first)
    try:
        while True:
            if stopping is not None and stopping.is_set():
                report.stopped = "the service is stopping: the rest is sent by the next send"
                return report
            moment = clock()
            with engine.begin() as conn:
                row = store_alerts.claim_next(conn, worker, moment, moment - held, skip=tried,
                                              last=max_tried)
            if row is None:
                report.held_until = _held_by_others(engine, alerts, worker, clock())
                if report.held_until:
                    held = len(report.held_until)
                    log.warning("%s held by another dispatcher until %s: not sent by this send (a send under "
                                "way, or one that died mid-send: its hold then lapses and the next send sends "
                                "it)", "1 message is" if held == 1 else f"{held} messages are",
                                _when(max(report.held_until)))
                return report
            tried.add(row.id)
            max_tried = max(max_tried or 0, row.id)
            if not _deliver(engine, alerts, session, row, worker, clock, report, stopping):
                return report
    finally:
        session.close()


def _deliver(engine: Engine, alerts: AlertsConfig, session: SmtpSession, row, worker: str,
             clock: Callable[[], datetime], report: DispatchReport, stopping: threading.Event | None = None) -> bool:
    """Send one claimed message and record what became of it; False when the dispatch must stop."""
    retry = alerts.retry
    tries = 0
    unsendable = _unsendable(row)
    if unsendable is not None:  # this message's fault, not the session's: it fails, the rest still go
        with engine.begin() as conn:
            store_alerts.mark_failed(conn, row.id, worker, attempts=row.attempts, error=unsendable, now=clock())
        report.record(row.message_id, "failed", unsendable)
        log.warning("message %s to %s not sent: %s", row.message_id, row.recipient, unsendable)
        return True
    raw = row.raw.encode("ascii")
    answered: list[Transient] = []  # the last answer that asked to try again

    def pause(seconds: float) -> None:
        """The wait between tries; cut short when the service stops, the message then deferred as its
        last answer says (the `except Transient` below)."""
        if stopping is None:
            time.sleep(seconds)
        elif stopping.wait(seconds) and answered:
            raise answered[-1]

    sending = False  # a try under way (not a pause between two)
    try:
        for attempt in Retrying(stop=stop_after_attempt(retry.attempts_per_run), reraise=True, sleep=pause,
                                wait=wait_exponential(multiplier=retry.first_wait_seconds, max=retry.max_wait_seconds),
                                retry=retry_if_exception(_the_message_may_pass)):
            with attempt:
                tries += 1
                sending = True
                try:
                    session.send(row.sender, row.recipient, raw)
                except Transient as exc:
                    answered.append(exc)
                    raise
                finally:
                    sending = False
    except KeyboardInterrupt:
        _give_back(engine, alerts, session, row, worker, clock, report,
                   tries=tries - 1 if sending or not answered else tries, answered=None if sending else answered)
        raise
    except SessionFailure as exc:
        # the server's or the configuration's failure, not the message's: the try that met it does not
        # count, its due time stays (the next dispatch tries it again); the reason shows in `alerts list`
        with engine.begin() as conn:
            store_alerts.mark_deferred(conn, row.id, worker, attempts=row.attempts + tries - 1,
                                       error=exc.reply, next_attempt_at=row.next_attempt_at)
        report.stopped = exc.reply
        if isinstance(exc, LoginRefused):
            _LOGINS_REFUSED[_login_key(alerts)] = (_password_digest(alerts), clock())
        log.warning("SMTP session failed: %s; nothing more is sent until the next send", exc.reply)
        return False
    except Permanent as exc:
        with engine.begin() as conn:
            store_alerts.mark_failed(conn, row.id, worker, attempts=row.attempts + tries, error=exc.reply,
                                     now=clock())
        report.record(row.message_id, "failed", exc.reply)
        log.warning("message %s to %s refused: %s", row.message_id, row.recipient, exc.reply)
        return True
    except Transient as exc:
        moment, attempts = clock(), row.attempts + tries
        if exc.reply == STOPPED:  # cut by the service's stop, not refused: the try does not count (a
            # review: it counted towards give_up_after), and the message is due again at the next start
            with engine.begin() as conn:
                store_alerts.mark_deferred(conn, row.id, worker, attempts=attempts - 1, error=exc.reply,
                                           next_attempt_at=row.next_attempt_at)
            report.record(row.message_id, "deferred", exc.reply)
            return True
        with engine.begin() as conn:
            # given up once old enough and refused in two sends of its own: after an outage that cost it
            # no try, one greylisting answer does not end a message. A dispatch tries a message at most
            # attempts_per_run times (dispatch: `tried`), so these tries span two dispatches at least
            if moment - row.created_at >= alerts.give_up_after and attempts >= 2 * retry.attempts_per_run:
                why = f"gave up after {attempts} tries since {_when(row.created_at)}: {exc.reply}"
                store_alerts.mark_failed(conn, row.id, worker, attempts=attempts, error=why, now=moment)
                report.record(row.message_id, "failed", why)
            else:
                store_alerts.mark_deferred(conn, row.id, worker, attempts=attempts, error=exc.reply,
                                           next_attempt_at=moment + backoff(alerts, attempts))
                report.record(row.message_id, "deferred", exc.reply)
        return True
    with engine.begin() as conn:
        if not store_alerts.mark_sent(conn, row.id, worker, clock(), row.attempts + tries):
            # the lease ran out mid-send and another dispatcher took the message: it may arrive twice
            log.warning("message %s was sent but its claim had passed to another dispatcher", row.message_id)
    report.record(row.message_id, "sent")
    return True


def _unsendable(row) -> str | None:
    """Why a stored message cannot go as it is, or None: SMTP without SMTPUTF8 carries ASCII only, an
    envelope address on one line. The configuration refuses such addresses (alerts.settings); a
    message stored otherwise (by hand, by an earlier release) is failed with this reason rather than
    stopping the dispatch at it, its claim held, and every message after it waiting (a trial)."""
    for what, text in (("its recipient", row.recipient), ("its sender", row.sender)):
        if not text.isascii() or "\r" in text or "\n" in text:
            return f"cannot be sent: {what} {text!r} is not one ASCII address (the relay need not support SMTPUTF8)"
    if not row.raw.isascii():
        return "cannot be sent: the stored message is not ASCII (MIME-encoded) text"
    return None


def _give_back(engine: Engine, alerts: AlertsConfig, session: SmtpSession, row, worker: str,
               clock: Callable[[], datetime], report: DispatchReport, *, tries: int,
               answered: list[Transient] | None) -> None:
    """Ctrl-C or SIGTERM while a message was being sent (or waited between its tries): the session cut
    without waiting for the server, the message's claim released at once. A try cut short does not
    count and the message is due again now (as at the service's stop: STOPPED); one waiting between
    tries keeps the tries made and waits as its last answer says."""
    session.abort(INTERRUPTED)
    attempts = row.attempts + tries
    with engine.begin() as conn:
        if answered:
            store_alerts.mark_deferred(conn, row.id, worker, attempts=attempts, error=answered[-1].reply,
                                       next_attempt_at=clock() + backoff(alerts, attempts))
        else:
            store_alerts.mark_deferred(conn, row.id, worker, attempts=attempts, error=INTERRUPTED,
                                       next_attempt_at=row.next_attempt_at)
    report.record(row.message_id, "deferred", answered[-1].reply if answered else INTERRUPTED)
    log.info("message %s to %s given back: %s", row.message_id, row.recipient, INTERRUPTED)


def _held_by_others(engine: Engine, alerts: AlertsConfig, worker: str, moment: datetime) -> list[datetime]:
    """When each pending message another dispatcher holds is released, once a dispatch found nothing
    more to claim: a serve sending them, or a dispatcher killed mid-send, whose claim lasts its lease
    (a trial's `alerts send` skipped such a message and said all was well)."""
    with engine.connect() as conn:
        if not store_alerts.held_count(conn):
            return []
        rows = store_alerts.list_outbox(conn, store_alerts.PENDING, limit=None)
    held = lease(alerts)
    until = [_aware(row.claimed_at) + held for row in rows if row.claimed_by and row.claimed_by != worker]
    return sorted(u for u in until if u > moment)


def _aware(moment: datetime) -> datetime:
    """SQLite gives back its moments without their zone: they are UTC, as written."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# A login the server refused, per (host, port, user) in this process: (the password's digest, when). A
# long-running serve does not log in again with the same password for LOGIN_PAUSE (dispatch runs every
# few minutes: 288 refused logins a day could lock the mail account, as failed logins lock a portal's);
# a changed password (its file or variable) is tried at the next send. `alerts send` is a new process:
# a person's send always tries.
LOGIN_PAUSE = timedelta(hours=1)
_LOGINS_REFUSED: dict[tuple[str, int, str], tuple[str, datetime]] = {}


def _login_key(alerts: AlertsConfig) -> tuple[str, int, str]:
    return alerts.smtp.host, alerts.smtp.port, alerts.smtp.username or ""


def _password_digest(alerts: AlertsConfig) -> str:
    return hashlib.sha256(alerts.smtp.password().get_secret_value().encode("utf-8")).hexdigest()


def _login_paused(alerts: AlertsConfig, moment: datetime) -> str | None:
    """Why no session is opened now: the same password was refused less than LOGIN_PAUSE ago."""
    refused = _LOGINS_REFUSED.get(_login_key(alerts)) if alerts.smtp.username else None
    if refused is None or _password_digest(alerts) != refused[0] or moment - refused[1] >= LOGIN_PAUSE:
        return None
    again = refused[1] + LOGIN_PAUSE
    return (f"the login of {alerts.smtp.username!r} was refused at {_when(refused[1])}; not tried again "
            f"with the same password before {_when(again)} (a changed password is tried at once)")


def _when(moment: datetime) -> str:
    """A moment as operators read it in a log or `alerts list`: Tehran time, Jalali, ASCII digits
    (these said UTC, where every other line says Tehran — found by a new user)."""
    return format_jalali(moment, with_time=True, persian_digits=False)


def _the_message_may_pass(exc: BaseException) -> bool:
    """Tried again within the dispatch: a transient failure of this message (a 4xx, a dropped
    connection), not a failed session (connect, TLS, login), which stops the dispatch at once."""
    return isinstance(exc, Transient) and not isinstance(exc, SessionFailure)


# what retry_now found: the message was failed (pending again), pending (due now), or neither
REQUEUED, DUE_NOW, ALREADY_SENT = "requeued", "due now", "sent"
BEING_SENT, NOT_FOUND = "being sent", "not found"


def retry_now(engine: Engine, alerts: AlertsConfig, outbox_id: int, *, now: datetime | None = None) -> str:
    """`alerts retry ID`: the message due at the next dispatch, as if just queued — its tries and
    give-up clock restarted, its stored bytes and Message-ID kept. A failed message becomes pending
    again (REQUEUED); a pending one waiting for a later try (a transient failure's backoff) is due now
    (DUE_NOW). Nothing changes for a sent message (ALREADY_SENT), one a live dispatcher holds
    (BEING_SENT) or an unknown id (NOT_FOUND)."""
    now = now or _utcnow()
    with engine.begin() as conn:
        if store_alerts.requeue_failed(conn, outbox_id, now):
            return REQUEUED
        if store_alerts.make_due(conn, outbox_id, now, now - lease(alerts)):
            return DUE_NOW
        status = store_alerts.status_of(conn, outbox_id)
    return NOT_FOUND if status is None else ALREADY_SENT if status == store_alerts.SENT else BEING_SENT
