"""Entry point of the `budgetwatch` command: loads every command module and runs the app."""

from __future__ import annotations

import sys

from budgetwatch.app import UserError, app, context, err_console
from budgetwatch.config import ConfigError
from store.db import StoreError

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


def main(argv: list[str] | None = None) -> int:
    try:
        # standalone mode: usage errors, --help and typer.Exit end in SystemExit with their code
        app(args=argv, prog_name="budgetwatch")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            _fail(f"configuration error in {exc.path}: {exc.problems[0]}", exc)
        else:
            _fail(f"configuration error in {exc.path}:", exc)
            for line in exc.problems:
                err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except (StoreError, UserError) as exc:
        _fail(f"error: {exc}", exc)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        return 130
    except Exception as exc:  # the last line of defence: one line, the traceback with --debug
        if context().debug:
            raise
        err_console.print(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", markup=False,
                          soft_wrap=True)
        return 1
    return 0


def _fail(message: str, exc: BaseException) -> None:
    if context().debug:
        raise exc
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    sys.exit(main())
