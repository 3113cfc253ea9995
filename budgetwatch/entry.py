"""The `budgetwatch` script's entry point, importing nothing until it runs.

Worker processes (the connectors' page readers, foundation/workers.py) start by importing the
parent's ``__main__`` — the installed ``budgetwatch`` script — as ``__mp_main__``. The script
imports the module named in pyproject.toml's ``[project.scripts]``; were it budgetwatch.cli, every
worker would import every command, the store's models and SQLAlchemy (0.9 s of CPU and ~40 MB
each) before reading a page. This module defers that to :func:`main`, which a worker never calls.

Ctrl-C is an interruption (exit 130, one line: README, "Exit codes") at every moment of the
command's life: budgetwatch.cli catches it while a command runs, and this module while the commands
load (up to a second or two: a KeyboardInterrupt out of an import was a traceback and a death by
SIGINT) and while the interpreter shuts down after the command.
"""

from __future__ import annotations

import os
import signal
import sys

INTERRUPTED = 130


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
    return code


def _interrupted() -> int:
    print("interrupted", file=sys.stderr, flush=True)
    return INTERRUPTED


def _interrupted_at_exit(_signum: int, _frame: object) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or its reader gone: nothing more can be said there
            pass
    _interrupted()
    os._exit(INTERRUPTED)
