"""A helper process for a large full run on SQLite: the two rules that sum expense operations year
to date judged beside the run, on the machine's other core.

SQLite runs a rule's query in the run's own thread, so a run's reading, judging and wording of
thirteen rules follow one another on one core. The two rules read through Scope.operation_quarters
(``expense.operation_shortfall``, ``expense.unit_cost_overrun``) are half of that work at 100k
(their findings: 130,720 of 242,741). On a store large enough to pay for a second interpreter
(:data:`HELP_FROM` performance rows) a recording run that judges every subject and keeps no
findings in memory (a command, the service; not a what-if, which holds no write lock) starts this module as a process of its own: it reads the same
moment of the store, judges those two rules exactly as the run would, and appends their findings to
a file of its own, as pickled batches of the rows the run's staging table takes
(``reconcile.lifecycle.driver_rows``; a file, not a pipe: the run reads it only once its own rules
are judged, and a pipe would stall the helper meanwhile); the run judges the other rules meanwhile,
then inserts the helper's findings into its staging table, each in its rule's place of the order of
production (``seq``), and goes on as if it had judged them itself: same deviations, same ids, same
events (tests/reconcile/test_helper.py). docs/benchmarks.md, sessions 12 and 20, has the figures.

The same moment: the run holds the store's write lock (BEGIN IMMEDIATE) from before it starts the
helper until it commits, and judging writes nothing to the store, so no commit can come between
the run's first read and the helper's. The helper only reads the store; its file lies in a
temporary folder that the run removes. It exits when the run's process is gone, removing the
folder itself. The run unpickles only what its own helper wrote there (the folder is mkdtemp's,
readable and writable by the run's user alone), up to the length the helper said it had written.

    python -m reconcile.helper      # a JSON request on stdin (what Helper sends); never by hand
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.models import OperationPerformance

HELPED = ("expense.operation_shortfall", "expense.unit_cost_overrun")
# From this many performance rows (the largest id: no count of a million rows) a helper pays for
# its start-up (~0.5 s of imports): at 100k projects there are 1,000,000.
HELP_FROM = 200_000
_BATCH = 5000
_SAID_EVERY = 20_000  # findings the helper writes before it says so, for the run to copy while it waits


def helped(engine: Engine, names: list[str], *, keep: bool) -> list[int]:
    """The positions in `names` (the run's rules) of the rules a helper would judge: on SQLite, for
    a run that keeps no findings in memory, on a store of :data:`HELP_FROM` performance rows or more."""
    if engine.dialect.name != "sqlite" or keep:
        return []
    chosen = [i for i, name in enumerate(names) if name in HELPED]
    if not chosen:
        return []
    with engine.connect() as conn:
        largest = conn.execute(sa.select(sa.func.max(OperationPerformance.__table__.c.id))).scalar()
    return chosen if (largest or 0) >= HELP_FROM else []


@dataclass
class Counted:
    """What the helper made of one rule (the run's RuleStats)."""

    checked: int
    flagged: int
    findings: int


class Helper:
    """A helper process judging some of a run's rules (the parent's side)."""

    def __init__(self, url: str, settings: Any, day: date, years: list[int], indices: list[int],
                 names: list[str]) -> None:
        self.indices, self.names = indices, names
        self.folder = Path(tempfile.mkdtemp(prefix="budgetwatch-helper-"))
        self.path = self.folder / "found.pickle"
        request = {"url": url, "settings": settings.model_dump(mode="json"), "day": day.isoformat(),
                   "years": years, "rules": indices, "path": str(self.path), "parent": os.getpid()}
        # the request goes on stdin, never in the arguments (a process list shows those); what the
        # helper says on stderr goes to a file, so that no amount of it can fill a pipe and stall both
        try:
            with open(self.folder / "stderr.txt", "w", encoding="utf-8") as err:
                self.process = subprocess.Popen([sys.executable, "-m", "reconcile.helper"], stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, stderr=err, text=True)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        stdin, self.process.stdin = self.process.stdin, None  # communicate() reads what it says at the end
        assert stdin is not None
        try:
            with stdin:
                stdin.write(json.dumps(request))
        except BaseException:  # a helper that died at once (BrokenPipeError): no process, no folder left
            self.close()
            raise

    def finish(self, take: Callable[[Iterable[list[tuple]]], int],
               done: Callable[[int], None] | None = None) -> dict[int, Counted]:
        """Hand the helper's findings to `take` (Found.take) as it writes them — while the run would
        otherwise wait for it — and the rest when it ends; its counts by rule position. `done` is
        told the position of each rule whose findings are all taken, as soon as they are (the run
        opens its deviations while the helper judges the next). A helper that failed fails the run,
        with the helper's own last line."""
        assert self.process.stdout is not None
        counts, read = None, 0
        for line in self.process.stdout:  # a line per batch of findings written and per rule ended, then the counts
            said = json.loads(line)
            if "counts" in said:
                counts = said["counts"]
                continue
            read = self._copy(take, read, int(said["upto"]))
            if "done" in said and done is not None:  # a rule ended: everything it found is written
                done(int(said["done"]))
        self.process.communicate()
        if self.process.returncode != 0 or counts is None:
            said = (self.folder / "stderr.txt").read_text(encoding="utf-8", errors="replace").strip()
            last = (said.splitlines() or [f"exit code {self.process.returncode}"])[-1]
            raise RuntimeError(f"the helper process judging {', '.join(self.names)} failed: {last}")
        return {int(i): Counted(*c) for i, c in counts.items()}

    def _copy(self, take: Callable[[Iterable[list[tuple]]], int], start: int, upto: int) -> int:
        """Hand `take` the batches the helper wrote between byte `start` and byte `upto` of its file;
        `upto`."""
        def batches() -> Iterator[list[tuple]]:
            with open(self.path, "rb") as side:
                side.seek(start)
                while side.tell() < upto:
                    yield pickle.load(side)

        if upto > start:
            take(batches())
        return upto

    def close(self) -> None:
        """Stop the helper if it still runs, and remove its file."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- the helper process ---------------------------------------------------------------------------


def judge(request: dict[str, Any]) -> dict[int, tuple[int, int, int]]:
    """Judge the requested rules of the run as the run would, staging their findings in the
    request's file; the counts by rule position."""
    from reconcile.facts import AsOf  # the run's imports, in the helper only
    from reconcile.judge import enabled_rules, rule_rows
    from reconcile.lifecycle import driver_rows, first_seq, stage
    from reconcile.scope import Scope
    from reconcile.settings import ReconcileConfig
    from store.db import make_engine

    settings = ReconcileConfig.model_validate(request["settings"])
    rules = enabled_rules(settings)
    day = date.fromisoformat(request["day"])
    calendar = AsOf(day, settings.report_due_days, settings.approval_due_days)
    parent = int(request["parent"])
    folder = Path(request["path"]).parent
    store = make_engine(request["url"])
    counts: dict[int, tuple[int, int, int]] = {}
    try:
        with open(request["path"], "ab") as out, store.connect() as conn, conn.begin():
            def write(batch: list[tuple]) -> None:
                pickle.dump(driver_rows(conn.dialect, batch), out, protocol=pickle.HIGHEST_PROTOCOL)

            # one read transaction for every rule (the driver would begin none for a SELECT); the
            # run holds the write lock meanwhile, so it is the run's moment of the store
            conn.exec_driver_sql("BEGIN")
            scope = Scope(conn, calendar, tuple(request["years"]))
            for index in request["rules"]:
                rule, limits = rules[index]
                flagged: set[tuple[str, int]] = set()
                _check(parent, folder)  # before the rule's query, too
                rows = _while_parent(parent, folder, rule_rows(conn, rule.select(scope, limits)))
                made = _flagging(rule.findings(rows, scope, limits), flagged)
                findings = 0
                try:
                    while chunk := list(itertools.islice(made, _SAID_EVERY)):  # written and said as it goes
                        findings += stage(write, chunk, first_seq(index) + findings)
                        out.flush()
                        print(json.dumps({"upto": out.tell()}), flush=True)
                except ValueError as exc:  # as the run says it: which rule could not read a stored value
                    raise ValueError(f"{rule.name}: {exc}") from exc
                checked = int(conn.execute(rule.checked(scope, limits)).scalar_one())
                counts[index] = (checked, len(flagged), findings)
                print(json.dumps({"done": index, "upto": out.tell()}), flush=True)
            scope.close()
    finally:
        store.dispose()
    return counts


def _flagging(findings: Iterable[Any], flagged: set[tuple[str, int]]) -> Iterator[Any]:
    """`findings` passed on, the subjects they flag noted (the run's RuleStats.flagged)."""
    for f in findings:
        flagged.add((f.subject, f.fiscal_year))
        yield f


def _while_parent(parent: int, folder: Path, rows: Iterable[Any]) -> Iterator[Any]:
    """`rows`, until the run's process is gone (killed): then the helper stops too (checked before
    the rule's query and every few thousand rows)."""
    _check(parent, folder)
    for n, row in enumerate(rows, 1):
        if n % _BATCH == 0:
            _check(parent, folder)
        yield row


def _check(parent: int, folder: Path | None = None) -> None:
    if os.getppid() != parent:
        if folder is not None:  # nobody is left to remove it
            shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit("the run that started this helper is gone")


def main() -> None:
    try:
        counts = judge(json.loads(sys.stdin.read()))
    except SystemExit:
        raise
    except BaseException as exc:  # one line for the run to repeat; no traceback (it may name a path)
        orig = getattr(exc, "orig", None)  # a database error: the driver's own words, not SQLAlchemy's lines
        first = (str(orig if orig is not None else exc).strip().splitlines() or [""])[0]
        print(f"{type(orig if orig is not None else exc).__name__}: {first}", file=sys.stderr)
        raise SystemExit(1) from None
    print(json.dumps({"counts": counts}), flush=True)


if __name__ == "__main__":
    main()
