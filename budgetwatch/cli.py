"""Entry point of the `budgetwatch` command: loads every command module and runs the app.

Ctrl-C and SIGTERM stop a command alike (README, "Exit codes"): SIGTERM is turned into the
KeyboardInterrupt Ctrl-C raises — through the SIGINT handler in place, so a sync's event loop
(asyncio.Runner's) cancels its work as at Ctrl-C and records the run ``interrupted`` — and the command
ends with one line, ``interrupted`` (exit 130) or ``interrupted (SIGTERM)`` (exit 143). A command with
a stop of its own (``serve``, ``web``, the simulator) installs its own handlers over this one.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import signal
import sys
import threading
import traceback
from typing import Any

import typer

from budgetwatch.app import Interrupted, ReaderGone, UserError, app, context, err_console, interruption, received
from budgetwatch.config import ConfigError
from store.db import StoreError, error_line

# each module registers its commands on `app`
from budgetwatch.commands import (  # noqa: E402,F401
    alerts,
    base,
    demo,
    export,
    reconcile,
    reports,
    service,
    simulator,
    sync,
    web,
)


def _reflow(text: str) -> str:
    """A docstring's paragraphs each on one line. Typer keeps the single line breaks of every paragraph
    after the first, so a docstring wrapped at the source's width printed as lines broken mid-sentence
    at any other width. A paragraph that starts with a list item or an indented line keeps its breaks."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(p if re.match(r"\s|[-*] |\x08", p) else " ".join(p.split("\n")) for p in paragraphs)


def _reflow_help(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        doc = command.help or inspect.getdoc(command.callback)
        if doc:
            command.help = _reflow(doc)
    for group in typer_app.registered_groups:
        _reflow_help(group.typer_instance)


_reflow_help(app)


def main(argv: list[str] | None = None) -> int:
    received.clear()
    previous = _stop_on_sigterm()
    try:
        return _run(argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _stop_on_sigterm() -> Any:
    """SIGTERM as Ctrl-C while a command runs (a manual sync died by the signal, its run left
    ``running``: a trial); the handler it replaces, or None where none was replaced (a thread, or a
    handler someone else set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    return previous


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    received.append(signum)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):  # Python's (raises KeyboardInterrupt) or asyncio.Runner's (cancels its task first)
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt  # SIGINT ignored (started in the background): SIGTERM still stops it


def _run(argv: list[str] | None) -> int:
    try:
        # not standalone: click's usage errors reach us (to be said in one line, not typer's boxed panel);
        # --help, --version and typer.Exit(n) come back as their exit code; commands return None
        code = app(args=argv, prog_name="budgetwatch", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except typer.TyperException as exc:  # click's, in typer's copy: an unknown command or option, a bad value
        return _usage_error(exc)
    except Interrupted as exc:  # Ctrl-C or SIGTERM while a command ran (the app's group raises it)
        return _interrupted(exc)
    except typer.Abort as exc:  # click's for Ctrl-C or end of input at a prompt (users add)
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            return _interrupted(interruption())
        _say("aborted")
        return 1
    except ConfigError as exc:
        if len(exc.problems) == 1 or context().log_format == "json":
            _fail(f"configuration error in {exc.path}: {'; '.join(exc.problems)}", exc)
        else:
            _fail(f"configuration error in {exc.path}:", exc)
            for line in exc.problems:
                err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except (StoreError, UserError) as exc:
        _fail(f"error: {exc}", exc)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:  # outside a command (parsing the arguments)
        return _interrupted(interruption())
    except (ReaderGone, BrokenPipeError):  # `… | head -1`: the reader has what it wanted
        _reader_gone()
        return 0
    except Exception as exc:  # the last line of defence: one line, the traceback with --debug
        if context().debug:
            _fail(f"error: {error_line(exc)}", exc)
            return 1
        _say(f"error: {error_line(exc)} (run with --debug for details)")
        return 1
    # --help, --version and typer.Exit(n) return their code; a command returns None (a value is no code)
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def _reader_gone() -> None:
    """Standard output's reader went away: what is still buffered for it goes nowhere, so that the
    interpreter's flush at exit does not fail again ("Exception ignored … BrokenPipeError")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no file descriptor (a test's captured stdout): nothing to redirect
        pass


def _interrupted(exc: Interrupted) -> int:
    """The one line of an interrupted command, and its exit code (130 Ctrl-C, 143 SIGTERM)."""
    _say(exc.line)
    return exc.exit_code


def _usage_error(exc: typer.TyperException) -> int:
    """Click's message in one line, where typer would draw a panel under the usage line."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `budgetwatch`: the help, exit code 2
        if exc.format_message().strip():  # typer's rich help is printed as it is made, leaving this empty
            print(exc.format_message(), file=sys.stderr)
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)  # a usage error knows its command: point at that command's --help
    hint = f" (try '{ctx.command_path if ctx is not None else 'budgetwatch'} --help')"
    _say(f"error: {exc.format_message()}{hint}")
    return exc.exit_code


def _fail(message: str, exc: BaseException) -> None:
    """Say `message`; with --debug, the traceback first. The exit code is the same either way
    (README, "Exit codes"): --debug adds the traceback, it changes nothing else."""
    if context().debug and context().log_format == "json":  # the traceback inside the line's object
        # (``exc_info``): printed plainly it broke the stream of one JSON object a line (a trial)
        logging.getLogger("budgetwatch").error(message, exc_info=(type(exc), exc, exc.__traceback__))
        return
    if context().debug:
        sys.stderr.flush()
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()
    _say(message)


def _say(message: str) -> None:
    """A command's last line on stderr; with ``--log-format json`` a JSON object like every log line
    (a journal read through jq stopped at the first plain line: docs/deploy.md, "Logs")."""
    if context().log_format == "json":
        logging.getLogger("budgetwatch").error(message)
        return
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
