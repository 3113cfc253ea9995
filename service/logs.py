"""Logging of every budgetwatch command: one line per event, as text or JSON, never a secret.

``configure(fmt, level)`` installs one handler on the root logger (stderr): text for people, or JSON
lines (python-json-logger) for machines, where the fields a caller passes as ``extra`` (``job``,
``source``, ``run_id``) become keys. Secrets are kept out at the source — passwords are SecretStr,
URLs are shown through ``safe_url`` — and :class:`Redactor` is the second line of defence: every
record's message, arguments, extra fields and traceback pass through it before any formatter, and
each known secret in them is replaced by ``***``. The service tells it the secrets of its
configuration (:func:`secrets_of`) and refreshes them before each job, since a password file may
change while the service runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from pythonjsonlogger.json import JsonFormatter

from foundation.jalali import TEHRAN

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
MIN_SECRET = 4  # shorter "secrets" would mask ordinary words and digits, and protect nothing
# the libraries' own chatter: apscheduler's executor repeats our line on a missed run (its
# scheduler's warnings stay: a job store that cannot be read), httpx names every request
QUIET = {"apscheduler": logging.WARNING, "apscheduler.executors": logging.ERROR, "httpx": logging.WARNING,
         "httpcore": logging.WARNING, "alembic": logging.WARNING}  # alembic: 7 'setup plugin' lines a start
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class Redactor(logging.Filter):
    """Replaces each known secret in a record by ``***`` (message, args, extras, traceback)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def update(self, secrets: Iterable[str | None]) -> None:
        found = {s for s in secrets if s and len(s) >= MIN_SECRET}
        with self._lock:
            # longest first: a secret containing another is masked whole
            self._secrets = tuple(sorted(found | set(self._secrets), key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            # formatted now, redacted, and kept as text: both formatters print exc_text
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        for name, value in list(vars(record).items()):
            if name not in _STANDARD and isinstance(value, str):
                setattr(record, name, self.redact(value))
        return True


REDACTOR = Redactor()


_installed: list[logging.Handler] = []


def configure(fmt: str = "text", level: int = logging.WARNING) -> None:
    """One stderr handler on the root logger, in ``fmt``, redacting; replaces our earlier one.

    As logging.basicConfig does, it leaves a root logger someone else has set up alone (a test
    runner capturing logs, an application embedding budgetwatch)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use text or json")
    root = logging.getLogger()
    if any(h not in _installed for h in root.handlers):
        return
    handler = make_handler(fmt)
    for old in _installed:
        root.removeHandler(old)
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(level)
    for name, least in QUIET.items():
        logging.getLogger(name).setLevel(max(level, least))


def _tehran_time(record: logging.LogRecord) -> str:
    """A line's time in Asia/Tehran with its offset, '2026-12-05T23:27:02.123+03:30': the zone the
    service's schedule and next runs are given in (a line in the server's UTC without a zone beside
    'next run … +03:30' read as hours apart)."""
    return datetime.fromtimestamp(record.created, TEHRAN).isoformat(timespec="milliseconds")


class _TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _tehran_time(record)


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _tehran_time(record)


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing ``fmt`` lines to ``stream`` (stderr), redacting with :data:`REDACTOR`."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                                            rename_fields={"asctime": "time", "levelname": "level",
                                                           "name": "logger"},
                                            json_ensure_ascii=False))
    else:
        handler.setFormatter(_TextFormatter(TEXT_FORMAT))
    handler.addFilter(REDACTOR)
    return handler


def secrets_of(config: Any) -> list[str]:
    """The secrets a configuration leads to, read now (what cannot be read is skipped: reading it
    is the job's, and its error names the key, never the value)."""
    found: list[str | None] = []
    for name in ("nezarat4", "saba"):
        source = getattr(config.sources, name, None)
        if source is None:
            continue
        with contextlib.suppress(Exception):  # unreadable now: nothing to hide yet
            found.append(source.password(name).get_secret_value())
    smtp = getattr(getattr(config, "alerts", None), "smtp", None)
    if getattr(smtp, "password_env", None):
        found.append(os.environ.get(smtp.password_env))
    if getattr(smtp, "password_file", None):
        with contextlib.suppress(OSError, UnicodeError):
            found.append(Path(smtp.password_file).expanduser().read_text(encoding="utf-8").strip())
    found.append(os.environ.get("PGPASSWORD"))
    with contextlib.suppress(Exception):  # a malformed URL is refused elsewhere
        found.append(sa.engine.make_url(config.database_url).password)
    return [s for s in found if s]
