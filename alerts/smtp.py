"""Talking to the SMTP server: one session per dispatch, and what each failure means for a message.

Failures form a small hierarchy a dispatcher acts on (docs/operations.md, "E-mail alerts"):

- :class:`Transient` — try again later: a 4xx answer, a refused or dropped connection, a timeout;
- :class:`SessionFailure` (a Transient) — the session itself failed (connect, TLS, login): every
  message would fail alike, so the dispatcher stops and leaves the rest for the next run;
- :class:`Permanent` — the server refused this message for good (5xx to MAIL, RCPT or DATA): it is
  recorded with the server's answer and never retried.

The password is read only at login (SmtpConfig.password) and never appears in an error: smtplib's
errors carry the server's answer, not what the client sent.
"""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
import threading

from alerts.settings import SmtpConfig
from foundation.settings import ConfigError


class SmtpFailure(Exception):
    """Sending failed; ``reply`` is the server's answer (or the connection error), one line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class Transient(SmtpFailure):
    pass


class SessionFailure(Transient):
    pass


class LoginRefused(SessionFailure):
    """The server refused the login itself (a 5xx to AUTH): the same password will be refused again."""


class Permanent(SmtpFailure):
    pass


def _reply(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {' '.join(text.split())}"


HIDDEN = "[hidden]"
_AUTH_LINE = re.compile(r"(?i)\b(AUTH\s+[A-Z0-9_-]+)\s+\S+")


def _hidden(text: str, username: str, password: str) -> str:
    """A server's answer to the login without the password in any form the client sent it: as it is,
    and in base64 as AUTH PLAIN («\\0user\\0password») and AUTH LOGIN (the password alone) send it, and
    whatever follows an echoed «AUTH <mechanism>». A server answering «535 Authentication failed for
    AUTH PLAIN AG1h…» put the password, base64-encoded, in the log, the outbox and `alerts list`
    (a security trial)."""
    forms = [password, *(base64.b64encode(raw.encode("utf-8")).decode("ascii")
                         for raw in (f"\0{username}\0{password}", password))]
    for form in sorted({f for f in forms if f}, key=len, reverse=True):
        text = text.replace(form, HIDDEN)
    return _AUTH_LINE.sub(rf"\1 {HIDDEN}", text)


def _by_code(code: int, message: bytes | str) -> SmtpFailure:
    return Permanent(_reply(code, message)) if 500 <= code < 600 else Transient(_reply(code, message))


def _why(exc: BaseException) -> str:
    """An OS or TLS error's own words, without errno, library tags or source lines: 'connection refused'."""
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", re.sub(r"^\[[^\]]*\]\s*", "", " ".join(text.split())))
    return (text[:1].lower() + text[1:]).rstrip(".") or "no reason given"


# smtplib's order of preference (no password in clear first)
_MECHANISMS = ("CRAM-MD5", "PLAIN", "LOGIN")


def _login_once(smtp: smtplib.SMTP, username: str, password: str) -> None:
    """One refused password at most a session: the mechanisms the server offers of
    :data:`_MECHANISMS` are tried in turn only while the server says a mechanism cannot be used
    (504, 534, 538); a refusal of the credentials (535, or any other answer) ends the login.
    smtplib's ``login`` tries every mechanism after a 535 as well: a wrong password was refused two
    or three times a session (found by a new user), each counting against an account's lockout."""
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn("auth"):
        raise smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    offered = smtp.esmtp_features["auth"].upper().split()
    mechanisms = [m for m in _MECHANISMS if m in offered]
    if not mechanisms:
        raise smtplib.SMTPException(f"no login mechanism budgetwatch knows among {' '.join(offered)}")
    if not (username.isascii() and password.isascii()):
        _login_in_utf8(smtp, username, password, offered)
        return
    smtp.user, smtp.password = username, password
    for mechanism in mechanisms:
        try:
            smtp.auth(mechanism, getattr(smtp, "auth_" + mechanism.lower().replace("-", "_")))
            return
        except smtplib.SMTPAuthenticationError as exc:
            if exc.smtp_code not in _MECHANISM_UNUSABLE or mechanism == mechanisms[-1]:
                raise


_MECHANISM_UNUSABLE = frozenset({504, 534, 538})  # not the credentials: the mechanism (RFC 4954)


def _login_in_utf8(smtp: smtplib.SMTP, username: str, password: str, offered: list[str]) -> None:
    """A login with a letter beyond ASCII (a Persian one, say): smtplib sends credentials as ASCII,
    and failed with an error naming a character of the password and its place (a security review).
    PLAIN's are UTF-8 (RFC 4616): the one mechanism that carries them."""
    if "PLAIN" not in offered:
        raise smtplib.SMTPException("the login has characters beyond ASCII, which only AUTH PLAIN carries; "
                                    f"the server offers {' '.join(offered)}")
    response = base64.b64encode(f"\0{username}\0{password}".encode("utf-8")).decode("ascii")
    code, answer = smtp.docmd("AUTH", "PLAIN " + response)
    if code not in (235, 503):  # 503: already logged in
        raise smtplib.SMTPAuthenticationError(code, answer)


def _connection_error(exc: BaseException, where: str, timeout: float, *, connecting: bool) -> str:
    """A failure below the SMTP answers (socket, TLS, a closed connection) as one line people read,
    naming the server: 'cannot connect to mail.example:587 (connection refused)'."""
    cause = exc
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, OSError):
        cause = exc.__context__  # smtplib turns a timeout while reading an answer into "unexpectedly closed"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (f"TLS with {where} failed: its certificate is not trusted ({cause.verify_message}); "
                "a private CA's certificate goes in alerts.smtp.ca_file")
    if isinstance(cause, ssl.SSLError):
        return f"TLS with {where} failed ({_why(cause)})"
    if isinstance(cause, TimeoutError):
        return f"{where} did not answer within {timeout:g} s"
    if isinstance(cause, smtplib.SMTPServerDisconnected):
        return f"{where} closed the connection"
    if isinstance(cause, smtplib.SMTPNotSupportedError):  # STARTTLS or AUTH not offered
        return f"{where} does not offer {'STARTTLS' if 'STARTTLS' in str(cause) else 'a login (SMTP AUTH)'}"
    if isinstance(cause, socket.gaierror):
        return f"cannot connect to {where} (unknown host: {_why(cause)})"
    if isinstance(cause, OSError):
        return f"{'cannot connect to' if connecting else 'lost the connection to'} {where} ({_why(cause)})"
    return f"{where}: {_why(cause)}"


# what a message or a session that :meth:`SmtpSession.abort` cut short is deferred with: the service's
# stop, or Ctrl-C / SIGTERM of `alerts send` (alerts.sending)
STOPPED = "the service stopped before the mail server answered; the next send tries again"
INTERRUPTED = "the send was interrupted (Ctrl-C or SIGTERM) before the mail server answered; the next send tries again"


class _Abortable:
    """smtplib's connection, telling its session of its socket as soon as it has one (before the
    greeting is awaited), so that :meth:`SmtpSession.abort` can shut it."""

    session: SmtpSession

    def _get_socket(self, host, port, timeout):
        return self.session._opened(super()._get_socket(host, port, timeout))


class _Plain(_Abortable, smtplib.SMTP):
    pass


class _Tls(_Abortable, smtplib.SMTP_SSL):
    pass


class SmtpSession:
    """A connection opened at the first message and reused; any failure closes it (the next try reconnects).

    :meth:`abort`, from another thread, ends it at once: a server that stalls (no greeting, no answer
    to a message) held the service's stop for ``timeout_seconds`` a step before (docs/deploy.md).
    """

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._live: smtplib.SMTP | None = None  # the connection being opened or used
        self._sock: socket.socket | None = None  # its socket, known before smtplib's own attribute is set
        self._aborted = False
        self._why_aborted = STOPPED
        self._lock = threading.Lock()

    def abort(self, why: str = STOPPED) -> None:
        """End the session now, from any thread: its socket is shut, so a step waiting for the server
        fails at once (the message is deferred with :data:`STOPPED`), and no connection is opened again.
        A TCP connect or TLS handshake under way still waits its timeout: there is no socket to shut yet.
        A message the server took before it could answer may arrive twice."""
        with self._lock:
            self._aborted, self._why_aborted = True, why
            sock = getattr(self._live, "sock", None) or self._sock  # after STARTTLS smtplib's is the TLS one
        if sock is not None:
            try:  # the plain socket's shutdown, under TLS too: it wakes a read blocked in another thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def where(self) -> str:
        return f"{self.config.host}:{self.config.port}"

    def _opened(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            if self._aborted:
                sock.close()
                raise OSError("the session was aborted")
            self._sock = sock
            return sock

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        smtp: smtplib.SMTP | None = None
        step = "the connection"  # what the server refused, if it answers with an error
        if self._aborted:
            raise SessionFailure(self._why_aborted)
        try:
            # made without a host and connected below, once it knows its session (_Abortable)
            if cfg.security == "ssl":
                smtp = _Tls(timeout=cfg.timeout_seconds, context=cfg.tls_context())
            else:
                smtp = _Plain(timeout=cfg.timeout_seconds)
            smtp.session = self
            smtp._host = cfg.host  # as a host given to the constructor sets it: TLS checks the certificate by it
            self._live = smtp
            code, greeting = smtp.connect(cfg.host, cfg.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, greeting)
            smtp.ehlo()
            if cfg.security == "starttls":
                step = "STARTTLS"
                smtp.starttls(context=cfg.tls_context())
                smtp.ehlo()
            if cfg.username:
                step = f"the login of {cfg.username!r}"
                _login_once(smtp, cfg.username, cfg.password().get_secret_value())
            return smtp
        except smtplib.SMTPResponseException as exc:  # an answer to the greeting, STARTTLS or AUTH
            self._drop(smtp)
            if self._aborted:
                raise SessionFailure(self._why_aborted) from None
            answer = _reply(exc.smtp_code, exc.smtp_error)
            if cfg.username and step.startswith("the login"):  # its words may echo what the client sent
                answer = _hidden(answer, cfg.username, cfg.password().get_secret_value())
            refused = LoginRefused if cfg.username and step.startswith("the login") and exc.smtp_code >= 500 \
                else SessionFailure
            raise refused(f"{self.where} refused {step}: {answer}") from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS, STARTTLS not offered
            self._drop(smtp)
            if self._aborted:
                raise SessionFailure(self._why_aborted) from None
            why = _connection_error(exc, self.where, cfg.timeout_seconds, connecting=True)
            raise SessionFailure(why) from None
        except ConfigError as exc:  # no password where the config says to find one
            self._drop(smtp)
            raise SessionFailure("; ".join(exc.problems)) from None

    def send(self, sender: str, recipient: str, raw: bytes) -> None:
        """Send `raw` as it is to `recipient`; raises Transient, SessionFailure or Permanent."""
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.sendmail(sender, [recipient], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, message = next(iter(exc.recipients.values()))
            self._reset()
            raise _by_code(code, message) from None
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            raise Transient(self._lost(exc)) from None
        except smtplib.SMTPResponseException as exc:  # SMTPSenderRefused, SMTPDataError, ...
            self._reset()
            raise _by_code(exc.smtp_code, exc.smtp_error) from None
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise Transient(self._lost(exc)) from None

    def _lost(self, exc: BaseException) -> str:
        if self._aborted:
            return self._why_aborted
        return _connection_error(exc, self.where, self.config.timeout_seconds, connecting=False)

    def _reset(self) -> None:
        """After a refused message the session goes on with the next one (RSET), or reconnects."""
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    @staticmethod
    def _drop(smtp: smtplib.SMTP | None) -> None:
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        if self._aborted:  # no QUIT: a server that stalled would hold the stop for its timeout (a trial: 31.5 s)
            self._drop(smtp)
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._drop(smtp)
