"""The `budgetwatch` script's entry point, importing nothing until it runs.

Worker processes (the connectors' page readers, foundation/workers.py) start by importing the
parent's ``__main__`` — the installed ``budgetwatch`` script — as ``__mp_main__``. The script
imports the module named in pyproject.toml's ``[project.scripts]``; were it budgetwatch.cli, every
worker would import every command, the store's models and SQLAlchemy (0.9 s of CPU and ~40 MB
each) before reading a page. This module defers that to :func:`main`, which a worker never calls.

Ctrl-C is an interruption (exit 130, one line: README, "Exit codes") at every moment of the
command's life, and SIGTERM one too (exit 143, ``interrupted (SIGTERM)``): budgetwatch.cli catches
them while a command runs, and this module while the commands load (up to a second or two: a
KeyboardInterrupt out of an import was a traceback and a death by SIGINT) and while the interpreter
shuts down after the command.

An interrupted command does not wait for a thread of its own that is stuck: one waiting for a
database server that stopped answering held the exit for as long as the server did (a trial: Ctrl-C
twice did nothing). After :data:`GRACE_SECONDS` the process leaves without it; the database rolls
back the unfinished transaction of that thread's connection when the connection goes.
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 130
TERMINATED = 128 + signal.SIGTERM  # 143

# how long an interrupted command's own threads get to end before the process exits without them
GRACE_SECONDS = 1.0


def main() -> int:
    """Run the `budgetwatch` command (budgetwatch.cli.main)."""
    try:
        from budgetwatch.cli import main as run
    except KeyboardInterrupt:
        return _interrupted()
    code = run()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        # the command is done; what is left is the interpreter's shutdown (its threads joined, files
        # closed), where a KeyboardInterrupt would be a traceback
        signal.signal(signal.SIGINT, _interrupted_at_exit)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupted_at_exit)
    if code in (INTERRUPTED, TERMINATED):
        _leave_stuck_threads(code)
    return code


def _leave_stuck_threads(code: int) -> None:
    """An interrupted command's threads that outlive :data:`GRACE_SECONDS` are left: the process exits
    now (the interpreter would join them, for ever if a database server stopped answering them)."""
    import threading
    import time

    deadline = time.monotonic() + GRACE_SECONDS
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(deadline - time.monotonic(), 0))
        if thread.is_alive():
            _flush()
            os._exit(code)


def _interrupted(signum: int = signal.SIGINT) -> int:
    line = "interrupted" if signum == signal.SIGINT else f"interrupted ({signal.Signals(signum).name})"
    print(line, file=sys.stderr, flush=True)
    return 128 + signum


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or its reader gone: nothing more can be said there
            pass


def _interrupted_at_exit(signum: int, _frame: object) -> None:
    _flush()
    os._exit(_interrupted(signum))
