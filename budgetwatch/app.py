"""The command-line application object and what every command shares.

Commands live in budgetwatch/commands/, one module per area, and register themselves on ``app``.
``context()`` gives a command the validated configuration and the store, loaded once: ``engine`` for a
command that reads the store or acts on what it holds (an empty database refused, nothing created),
``writing_engine`` for one that fills it (an empty database made a store: sync, reconcile, serve…). Errors meant
for the operator are raised as :class:`UserError` (or ConfigError / StoreError) and printed by
budgetwatch.cli.main as one line; tracebacks appear only with --debug.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup
from sqlalchemy.engine import Engine, make_url

from budgetwatch.config import Config, load_config
from foundation.files import OutputError, WholeFile
from service import logs
from store.db import open_store

class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM stopped a command: one line, ``interrupted`` (``interrupted
    (SIGTERM)``), and exit 130 (143) — README, "Exit codes". Raised by the app's group in place of
    the KeyboardInterrupt out of a command: typer 0.29 turns that into a silent ``Exit(130)``, which
    budgetwatch.cli.main could not tell from a command's own exit code (a trial: Ctrl-C during a
    sync exited 130 with no line)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        self.line = "interrupted" if signum == signal.SIGINT else f"interrupted ({signal.Signals(signum).name})"
        super().__init__(self.line)


# the signal that interrupts the command, once one has: SIGTERM is turned into a KeyboardInterrupt
# (budgetwatch.cli.main), so it is the one place that remembers which signal it was
received: list[int] = []


def interruption() -> Interrupted:
    """The Interrupted a KeyboardInterrupt stands for: SIGTERM's when one was received, else Ctrl-C's."""
    return Interrupted(signal.SIGTERM if signal.SIGTERM in received else signal.SIGINT)


class _Commands(TyperGroup):
    """The app's group: a KeyboardInterrupt out of any command (Ctrl-C, or SIGTERM as
    budgetwatch.cli.main turns it) leaves as :class:`Interrupted`, past typer's handling."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise interruption() from exc
        except BrokenPipeError as exc:  # past click, which makes any EPIPE a silent exit 1
            raise ReaderGone() from exc


class ReaderGone(Exception):
    """Standard output's reader went away (`… | head -1`): the reader has what it wanted, and the
    command ends with exit 0, saying nothing (budgetwatch.cli), as `status` does with its verdict."""


app = typer.Typer(
    cls=_Commands,
    name="budgetwatch",
    help="Reconciles the budget performance Khuzestan's agencies report in Nezarat-4 and SABA.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
class _Console(Console):
    """Rich's console, whose reader going away (`… | head -1`) ends the command as the reader's choice
    (budgetwatch.cli: exit 0, nothing said), not with rich's silent exit 1 (a trial: `set -o pipefail`
    scripts failed on `deviations list | head`)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError("the reader of the output went away")


# piped or logged output (cron, CI) gets wide tables instead of 80 squeezed columns
console = _Console(width=None if sys.stdout.isatty() else 180)
err_console = _Console(stderr=True, width=None if sys.stderr.isatty() else 180)


# the largest id the stores hold (a 64-bit integer): a larger one given to a command is a usage error,
# not an OverflowError from the database driver (a security review)
ID_MAX = 2**63 - 1


class UserError(Exception):
    """An error the operator can act on: printed as one line, exit code ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# C0 controls but the line feed and the tab, DEL and C1: an escape sequence a portal sent in a field (a
# rejected row keeps it raw) retitled and cleared the operator's terminal (a security trial)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """`text` for a terminal: its control characters written as escapes (ESC as «\\x1b», as `--format
    json` writes it «\\u001b»), so that it is seen, not obeyed."""
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text) if _CONTROLS.search(text) else text


def terminal_text(value: str | None) -> Text:
    """Portal text or a person's for a terminal table: never read as rich markup (a status of «[/]»
    stopped a command; «[link=…]» made a hidden hyperlink), its control characters escaped."""
    return Text(terminal_safe(value or ""))


def fiscal_year(raw: str, option: str = "--year") -> int:
    """A year typed as an option, in ASCII or Persian digits (`--year ۱۴۰۵`: typer's integer refused
    it in pydantic's words, a trial), one a portal can hold (foundation.vocabulary FIRST_YEAR..LAST_YEAR);
    else one line naming the option, the same from every command."""
    from foundation.persian import to_ascii_digits
    from foundation.vocabulary import FIRST_YEAR, LAST_YEAR

    text = to_ascii_digits(raw).strip()
    if not text.isascii() or not text.isdigit() or not FIRST_YEAR <= int(text) <= LAST_YEAR:
        raise UserError(f"{option} {raw}: not a Jalali fiscal year a portal can hold ({FIRST_YEAR}-{LAST_YEAR}, "
                        "e.g. 1405)")
    return int(text)


def option_values(values: list[str] | None, option: str) -> tuple[str, ...]:
    """A repeatable option's values, repeated or comma-separated alike (--rule a --rule b, --rule a,b).
    A value with nothing in it is refused: `report --county ""` (a script's empty variable) was taken
    as no filter and wrote the whole province's report (a trial)."""
    out: list[str] = []
    for value in values or ():
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise UserError(f"{option} {value!r}: empty; name one (or leave {option} out for all)")
        out.extend(parts)
    return tuple(out)


def _outside_the_archive(path: Path, option: str = "--output") -> None:
    """Refuse an output inside the sign-off's archive (reports/archive.py): only `review approve`
    writes there. Its files are read-only, which does not stop root; any command's --output is
    checked, by the resolved path (``..``, symlinks)."""
    from reports import archive, files

    signed = archive.root(context().config.data_dir)
    if files.inside(path, signed):
        raise UserError(f"{option} {path}: inside the signed archive {signed}, which only `review approve` "
                        "writes: write it elsewhere")


def _not_our_own_file(path: Path, option: str = "--output") -> None:
    """Refuse an output that is the store's SQLite file (or its write-ahead log) or the configuration
    file the command runs with: `export -o` on the store replaced the whole store with JSON lines (a
    trial). Compared as files (a symbolic link, ``..`` or another spelling of the path is the same)."""
    ctx = context()
    ours: list[tuple[str, str]] = []
    url = make_url(ctx.config.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        ours += [(url.database + suffix, "the store's database") for suffix in ("", "-wal", "-shm")]
    if ctx.config_source and Path(ctx.config_source).is_file():
        ours.append((ctx.config_source, "the configuration file this command runs with"))
    for name, what in ours:
        with contextlib.suppress(OSError):
            if Path(name).exists() and path.exists() and os.path.samefile(path, name):
                raise UserError(f"{option} {path}: is {what} ({name}): write it elsewhere")


def open_output(path: Path, newline: str | None = None, option: str = "--output") -> Any:
    """A command's --output file, opened for writing before any work: a folder that does not exist
    or cannot be written is one line naming the file, not a traceback after the work is done; a file
    in the signed archive is refused. `option`: the option that named the file, as the line says it.

    Written whole or not at all (foundation.files.WholeFile): the file takes its name when the command
    closes it, done; ``discard()`` (or leaving a ``with`` block by an exception) leaves whatever was
    there before. A kill meanwhile leaves that too, and a hidden ``.NAME.PID.HEX.partial`` beside it."""
    _outside_the_archive(path, option)
    _not_our_own_file(path, option)
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder")
    if path.exists() and not os.access(path, os.W_OK):  # replaced by a rename, which would not ask
        raise UserError(f"{option} {path}: cannot write there (permission denied)")
    folder = Path(os.path.realpath(path)).parent
    if path.is_file() or not path.exists():  # the rename happens in its folder (/dev/stdout: written directly)
        if folder.is_dir() and not os.access(folder, os.W_OK):
            raise UserError(f"{option} {path}: cannot write there (folder {folder} may not be written)")
    try:
        handle = WholeFile(path, newline=newline)
    except OSError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    return _said(handle, path, option)


@contextlib.contextmanager
def _said(handle: WholeFile, path: Path, option: str) -> Iterator[WholeFile]:
    """`handle` as a ``with`` block's, a failure to write it or put it in place (a full disk) said as
    the option's one line, exit 2, as `report --output` says it (a trial: `export -o` on a full disk
    ended "error: OSError: [Errno 28] …", exit 1); the old file stays (WholeFile)."""
    try:
        with handle:
            yield handle
    except OutputError as exc:
        raise UserError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None


def check_output(path: Path, option: str = "--output") -> None:
    """An --output file written whole after the work (a report): refuse, before the work, a folder
    that does not exist, a folder in its place or one that may not be written; nothing is created."""
    _outside_the_archive(path, option)
    _not_our_own_file(path, option)
    if not path.parent.is_dir():
        raise UserError(f"{option} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"{option} {path}: is a folder")
    # written whole (reports/files.py): a new file beside it, renamed over it, needs the folder's
    # permission; an existing file that may not be written is not replaced either
    folder = Path(os.path.realpath(path)).parent
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {path}: cannot write there (permission denied)")


def can_listen(host: str, port: int, option: str = "--port", *, any_port: bool = False) -> None:
    """A port out of range, taken or not ours is one line naming ``option`` before a server starts
    (``web``, ``simulator``), not the server's OSError. ``any_port``: 0 is allowed (the system picks)."""
    import socket

    lowest = 0 if any_port else 1
    if not lowest <= port <= 65535:
        raise UserError(f"{option} {port}: use {lowest} to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UserError(f"--host {host}: {exc.strerror or exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn and the simulator bind
        try:
            probe.bind(address)
        except OSError as exc:
            reason = exc.strerror or exc
            raise UserError(f"{option} {port}: cannot listen on {host}:{port} ({reason})") from None


@dataclass
class Context:
    config_path: str | None = None
    debug: bool = False
    log_format: str = "text"
    _config: Config | None = None
    _config_source: str = ""
    _engine: Engine | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            loaded = load_config(self.config_path)
            self._config, self._config_source = loaded.config, loaded.path
        return self._config

    @property
    def config_source(self) -> str:
        self.config  # noqa: B018 - loads it
        return self._config_source

    def use_config(self, config: Config, source: str) -> None:
        """Replace the configuration (the demo runs on its own, pointed at the simulator)."""
        self._config, self._config_source = config, source
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> Engine:
        """The store, for a command that reads it (status, export, report, lists) or acts on what it
        holds (acknowledging a deviation, a user's password, retrying a message, approving a period): a
        database that holds none — a SQLite file that does not exist, an empty PostgreSQL schema, most
        often a mistyped URL — is refused in one line, exit 2 (store.db.NoStore), and left as it was."""
        return self._store(create=False)

    @property
    def writing_engine(self) -> Engine:
        """The store, for a command that fills it (sync, reconcile, an import, serve, web, the first
        user, the demo): an empty database is made a store first."""
        return self._store(create=True)

    def _store(self, *, create: bool) -> Engine:
        if self._engine is None:  # once open, a store is one whichever asked first
            self._engine = open_store(self.config.database_url, create=create)
        return self._engine


_context = Context()


def context() -> Context:
    return _context


def reset_context(config_path: str | None = None, debug: bool = False) -> Context:
    global _context
    if _context._engine is not None:
        _context._engine.dispose()
    _context = Context(config_path=config_path, debug=debug)
    return _context


def _show_version(value: bool) -> None:
    if value:
        from foundation import __version__

        typer.echo(f"budgetwatch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    invoked: typer.Context,
    config: str = typer.Option(
        None, "--config", "-c", envvar="BUDGETWATCH_CONFIG", help="config.yaml to use (default ./config.yaml)"
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    log_format: str = typer.Option("text", "--log-format", envvar="BUDGETWATCH_LOG_FORMAT",
                                   help="Logs on stderr as text or json (one object per line)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Show budgetwatch's version and exit."),
) -> None:
    if log_format not in logs.FORMATS:  # named where it was set: the environment's is not typed (a trial)
        # typer carries its own copy of click: its ParameterSource, compared by name
        from_env = getattr(invoked.get_parameter_source("log_format"), "name", None) == "ENVIRONMENT"
        raise typer.BadParameter(f"{log_format!r}: use text or json",
                                 param_hint="BUDGETWATCH_LOG_FORMAT (--log-format)" if from_env else "--log-format")
    ctx = reset_context(config, debug)
    ctx.log_format = log_format
    logs.configure(log_format, logging.DEBUG if debug else logging.WARNING)
    # validate before any command runs: a bad file stops everything, naming the key
    ctx.config  # noqa: B018
