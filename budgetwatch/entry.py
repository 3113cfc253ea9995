"""The `budgetwatch` script's entry point, importing nothing until it runs.

Worker processes (the connectors' page readers, foundation/workers.py) start by importing the
parent's ``__main__`` — the installed ``budgetwatch`` script — as ``__mp_main__``. The script
imports the module named in pyproject.toml's ``[project.scripts]``; were it budgetwatch.cli, every
worker would import every command, the store's models and SQLAlchemy (0.9 s of CPU and ~40 MB
each) before reading a page. This module defers that to :func:`main`, which a worker never calls.
"""

from __future__ import annotations


def main() -> int:
    """Run the `budgetwatch` command (budgetwatch.cli.main)."""
    from budgetwatch.cli import main as run

    return run()
