"""A helper process for a large run: the two rules that sum expense operations year to date (and, in
a full run on SQLite, four more: :data:`ALSO_IN_A_FULL_SQLITE_RUN`) judged beside the run, on the
machine's other core.

A run reads, judges and words its thirteen rules one after another in one Python thread (on SQLite
the queries too). The two rules read through Scope.operation_quarters (``expense.operation_shortfall``,
``expense.unit_cost_overrun``) are half of that work at 100k (their findings: 130,720 of 242,741).
On a store large enough to pay for a second process (:data:`HELP_FROM` performance rows) a
recording run that keeps no findings in memory (a command, the service; not a what-if) and judges
every subject, or incrementally agreements with many operations (a large sync's change), has a
helper judge them: a copy of the run's process (``os.fork``, from a process of one thread: the
``reconcile`` command; :func:`forkable`), from :data:`HELP_CHANGED_FROM` changed operations; or
else a new interpreter running this module (the service, whose process has a scheduler's threads:
a spare it keeps waiting, :func:`keep_spare`, from :data:`HELP_CHANGED_FROM` too; one started for
the run from :data:`HELP_CHANGED_STARTED_FROM`). The helper reads the same moment of the store,
judges its rules exactly as the run would, on the same subjects, and appends their findings to a
file of its own, as pickled batches of the rows the run's staging table takes
(``reconcile.lifecycle.driver_rows``; a file, not a pipe: the run reads it only between its own
rules and once they are judged, and a pipe would stall the helper meanwhile), saying on its stdout
how far it has written; the run judges the other rules meanwhile, inserting into its staging table
what the helper has written between them (once every rule before the helper's is opened, without
waiting for more) and the rest once its own are judged, each in its rule's place of the order of
production (``seq``), and goes on as if it had judged them itself: same deviations, same ids, same
events (tests/reconcile/test_helper.py). docs/benchmarks.md, sessions 12, 20, 23 and 24, has the
figures.

The same moment: on SQLite the run holds the store's write lock (BEGIN IMMEDIATE) from before it
starts the helper until it commits, and judging writes nothing to the store, so no commit can come
between the run's first read and the helper's; on PostgreSQL the helper reads in the snapshot the
run's reader exported (its REPEATABLE READ transaction stays open until the helper has ended). The
helper only reads the store, on a connection of its own; its file lies in a temporary folder that
the run removes. It exits when the run's process is gone (its parent changed, or its pipe broken),
removing the folder itself; a folder whose run was killed after its helper had ended is removed by
the next helped run (:func:`sweep_folders`: the folder's name carries the run's process id). The run
unpickles only what its own helper wrote there (the folder is mkdtemp's, readable and writable by
the run's user alone), up to the length the helper said it had written.

    python -m reconcile.helper FOLDER   # a JSON request on stdin (what Helper sends); never by hand
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import json
import logging
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from store.db import error_line
from store.models import OperationPerformance

log = logging.getLogger("budgetwatch.reconcile")

HELPED = ("expense.operation_shortfall", "expense.unit_cost_overrun")
# A full run on SQLite gives its helper these too: the run's queries, writes and Python all take its
# one thread there, and at 100k its own rules took 9 s against the helper's 5.6 s; with them, 7.5 s
# each (docs/benchmarks.md, session 24). Not on PostgreSQL, where the helper is the longer already,
# nor in an incremental run: the helper judges every rule of its own on the changed subjects only,
# where the run asks a time-driven rule whose clock moved of every subject but what it recorded
# (reconcile.engine ``_judge``: ``every``, ``steady``, ``_Recorded``); none of these is ``whole``.
ALSO_IN_A_FULL_SQLITE_RUN = ("capital.completion_overdue", "expense.missing_report", "expense.approval_overdue",
                             "expense.credit_inconsistency")
# From this many performance rows (the largest id: no count of a million rows) a helper pays for
# itself in a full run (a new interpreter's start-up is ~0.5–1 s of imports; a copy's next to
# nothing, but its findings are copied over): at 100k projects there are 1,000,000.
HELP_FROM = 200_000
# An incremental run is helped from this many operations of changed agreements (the year-to-date
# rules' subjects in it) by a copy of its process, which costs next to nothing to start, or by a
# spare interpreter already waiting (keep_spare: the service); by a new interpreter (~0.5–1 s of
# imports on the other core) from STARTED_FROM. At 100k projects, 1 % or
# 5 % of the agreements changed (2,500 or 12,500 operations), with and without new findings, a copy
# was as fast or faster every time, a new interpreter up to 0.4 s slower when there was little to
# find (docs/benchmarks.md, session 23).
HELP_CHANGED_FROM = 2_000
HELP_CHANGED_STARTED_FROM = 10_000
_BATCH = 5000
# findings the helper writes before it says so, for the run to copy between its rules or while it waits
_SAID_EVERY = 20_000


def helped(engine: Engine, names: list[str], *, keep: bool) -> list[int]:
    """Whether a helper may judge beside a run (non-empty) — a run that keeps no findings in memory, on
    a store of :data:`HELP_FROM` performance rows or more, judging the year-to-date rules — as the
    positions of those rules in `names` (the run's rules); which rules the helper then judges is
    :func:`aside`'s answer."""
    if keep:
        return []
    chosen = [i for i, name in enumerate(names) if name in HELPED]
    if not chosen:
        return []
    with engine.connect() as conn:
        largest = conn.execute(sa.select(sa.func.max(OperationPerformance.__table__.c.id))).scalar()
    return chosen if (largest or 0) >= HELP_FROM else []


def aside(names: list[str], *, full: bool, dialect: str) -> list[int]:
    """The positions in `names` (the run's rules) of those a helper judges in a run that has one:
    :data:`HELPED`, and in a `full` run on SQLite :data:`ALSO_IN_A_FULL_SQLITE_RUN`."""
    chosen = HELPED + (ALSO_IN_A_FULL_SQLITE_RUN if full and dialect == "sqlite" else ())
    return [i for i, name in enumerate(names) if name in chosen]


def worth_helping(changed_operations: int | None, *, quick: bool) -> bool:
    """Whether a run the size gate admits (:func:`helped`) pays for a helper: a full run
    (`changed_operations` None) always; an incremental one when its changed agreements have
    :data:`HELP_CHANGED_FROM` operations or more (reconcile.changes ``operations_changed``) where the
    helper starts at once (`quick`: a copy of the run's process, or a spare interpreter waiting),
    :data:`HELP_CHANGED_STARTED_FROM` where it would be a new interpreter."""
    if changed_operations is None:
        return True
    return changed_operations >= (HELP_CHANGED_FROM if quick else HELP_CHANGED_STARTED_FROM)


_FOLDER = "budgetwatch-helper-"  # then the run's process id: budgetwatch-helper-<pid>-<random>


def sweep_folders() -> list[Path]:
    """Remove the helper folders of runs that are gone (killed once their helper had ended: neither
    removed the folder); the ones removed. A folder of a live process, or another user's, is left."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER}*-*"):
        pid = folder.name[len(_FOLDER):].split("-", 1)[0]
        if not (pid.isascii() and pid.isdigit()) or folder.is_symlink():
            continue
        try:
            if folder.lstat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:  # that run is gone
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except (OSError, OverflowError):  # alive (PermissionError: another user's), gone meanwhile, no pid
            continue
    return removed


@dataclass
class Counted:
    """What the helper made of one rule (the run's RuleStats)."""

    checked: int
    flagged: int
    findings: int


class Helper:
    """A helper process judging some of a run's rules (the parent's side)."""

    def __init__(self, url: str, settings: Any, day: date, years: list[int], indices: list[int],
                 names: list[str], *, fork: bool, only: dict[str, list[int]] | None = None,
                 snapshot: str | None = None, count_active: bool = False) -> None:
        """`fork`: a copy of this process (:func:`forkable`), else a new interpreter. `only`: an
        incremental run's changed subjects (reconcile.changes ``changed_ids``), which the helper
        judges as the run would; None: every subject. `snapshot`: on PostgreSQL, the run reader's
        (store.driver ``export_snapshot``), which the helper reads in. `count_active`: the helper
        also counts the active deviations of the run's years and rules (:func:`active_deviations`:
        :attr:`active_before` once it has ended)."""
        self.indices, self.names = indices, names
        self._read = 0  # bytes of its file handed to the run
        self._counts: dict[str, list[int]] | None = None
        # the deviations of the run's years and rules active at its moment, when asked (`count_active`)
        self.active_before: int | None = None
        asked = {"url": url, "settings": settings.model_dump(mode="json"), "day": day.isoformat(),
                 "years": years, "rules": indices, "parent": os.getpid(), "only": only, "snapshot": snapshot,
                 "count_active": count_active}
        if fork:  # a copy of this process: no start-up (docs/benchmarks.md, session 23)
            self.folder = _new_folder()
            self.path = self.folder / "found.pickle"
            err_path = self.folder / "stderr.txt"
            err_path.write_text("", encoding="utf-8")
            try:
                self.process: subprocess.Popen[str] | _Forked = _fork({**asked, "path": str(self.path)}, err_path)
            except BaseException:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise
            return
        # a spare started ahead, its modules imported (keep_spare), else one now; taken last: nothing
        # that may fail comes between it and its request
        spare = _take_spare() or _started()
        self.folder, self.process = spare.folder, spare.process
        self.path = self.folder / "found.pickle"
        request = {**asked, "path": str(self.path)}
        # the request goes on stdin, never in the arguments (a process list shows those)
        stdin, self.process.stdin = self.process.stdin, None  # communicate() reads what it says at the end
        assert stdin is not None
        try:
            with stdin:
                stdin.write(json.dumps(request))
        except BaseException:  # a helper that died at once (BrokenPipeError): no process, no folder left
            self.close()
            raise

    def take_ready(self, take: Callable[[Iterable[list[tuple]]], int], done: Callable[[int], None]) -> None:
        """Hand `take` what the helper has written so far, without waiting for more (between the run's
        own rules); `done` is told the position of each rule whose findings are now all taken. A
        helper that has ended without its counts (it failed, or was killed) fails the run at once."""
        self._heard(self._said.ready(), take, done)
        if self._said.ended and self._counts is None:
            self.finish(take, done)  # raises, with the helper's own last line

    def finish(self, take: Callable[[Iterable[list[tuple]]], int],
               done: Callable[[int], None] | None = None) -> dict[int, Counted]:
        """Hand the helper's findings to `take` (Found.take) as it writes them — while the run would
        otherwise wait for it — and the rest when it ends; its counts by rule position. `done` is
        told the position of each rule whose findings are all taken, as soon as they are (the run
        opens its deviations while the helper judges the next). What :meth:`take_ready` took is not
        taken again. A helper that failed fails the run, with the helper's own last line."""
        self._heard(self._said.rest(), take, done)
        self.process.communicate()
        if self.process.returncode != 0 or self._counts is None:
            said = (self.folder / "stderr.txt").read_text(encoding="utf-8", errors="replace").strip()
            last = (said.splitlines() or [f"exit code {self.process.returncode}"])[-1]
            raise RuntimeError(f"the helper process judging {', '.join(self.names)} failed: {last}")
        return {int(i): Counted(*c) for i, c in self._counts.items()}

    def _heard(self, lines: Iterable[dict[str, Any]], take: Callable[[Iterable[list[tuple]]], int],
               done: Callable[[int], None] | None) -> None:
        """What the helper said: a line per batch of findings written and per rule ended, then (when
        asked) the active deviations it counted, then its counts."""
        for said in lines:
            if "counts" in said:
                self._counts = said["counts"]
                continue
            if "active" in said:
                self.active_before = int(said["active"])
                continue
            self._read = self._copy(take, self._read, int(said["upto"]))
            if "done" in said and done is not None:  # a rule ended: everything it found is written
                done(int(said["done"]))

    @functools.cached_property
    def _said(self) -> _Lines:
        assert self.process.stdout is not None
        return _Lines(self.process.stdout.fileno())

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


class _Lines:
    """The JSON lines a helper says on its pipe, read from the pipe itself (never through the file
    object's buffer): those there already without waiting (:meth:`ready`), or every one up to its
    end, each as it comes (:meth:`rest`)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""
        self.ended = False

    def _read(self) -> None:
        chunk = os.read(self.fd, 1 << 16)
        self.ended = not chunk
        self.buffer += chunk

    def _whole(self) -> list[dict[str, Any]]:
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def ready(self) -> list[dict[str, Any]]:
        polled = select.poll()  # not select.select: it refuses a descriptor above 1023 (a busy service)
        polled.register(self.fd, select.POLLIN)
        while not self.ended and polled.poll(0):  # readable, or its other end closed (POLLHUP)
            self._read()
        return self._whole()

    def rest(self) -> Iterator[dict[str, Any]]:
        yield from self._whole()
        while not self.ended:
            self._read()
            yield from self._whole()


def _new_folder() -> Path:
    """A helper's folder, named by this process's id, once the folders of runs gone are swept."""
    sweep_folders()
    return Path(tempfile.mkdtemp(prefix=f"{_FOLDER}{os.getpid()}-"))


def _started() -> _Spare:
    """A new interpreter for a helper, in a folder of its own (removed if it cannot start)."""
    folder = _new_folder()
    try:
        return _Spare(folder, _start_interpreter(folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _start_interpreter(folder: Path) -> subprocess.Popen[str]:
    """A new interpreter running this module for a helper whose folder is `folder` (named in its
    arguments: a spare let go removes it); its stderr goes to a file there."""
    with open(folder / "stderr.txt", "w", encoding="utf-8") as err:
        return subprocess.Popen([sys.executable, "-m", "reconcile.helper", str(folder)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True)


# --- a spare interpreter, started ahead of the next run (the service) -----------------------------


@dataclass
class _Spare:
    """A helper interpreter and its folder."""

    folder: Path
    process: subprocess.Popen[str]


_spare_lock = threading.Lock()
_spare: _Spare | None = None


def keep_spare(engine: Engine, settings: Any) -> bool:
    """Have a helper interpreter wait for this process's next run, its modules already imported (~0.5–1 s
    of start-up the run then does not wait for; ~60 MB while it waits): for a long-running process
    whose helper cannot be a copy of it (the service: :func:`forkable` is false), on a store where a
    run would be helped (:func:`helped`). One at a time; its folder is named like a helper's. Whether
    one is waiting."""
    global _spare
    from reconcile.judge import enabled_rules  # the run's own import

    if forkable() or not helped(engine, [rule.name for rule, _ in enabled_rules(settings)], keep=False):
        return False
    with _spare_lock:
        if _spare is not None and _spare.process.poll() is None:
            return True
        if _spare is not None:
            _said_dead(_spare)
        _let_go(_spare)
        _spare = None
        _spare = _started()
        return True


def spare_ready() -> bool:
    """Whether a spare interpreter waits (:func:`keep_spare`)."""
    with _spare_lock:
        return _spare is not None and _spare.process.poll() is None


def let_go_spare() -> None:
    """Stop the waiting spare interpreter, if any (the service stopping), and remove its folder."""
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    _let_go(spare)


def _take_spare() -> _Spare | None:
    global _spare
    with _spare_lock:
        spare, _spare = _spare, None
    if spare is not None and spare.process.poll() is not None:  # it ended meanwhile
        _said_dead(spare)
        _let_go(spare)
        return None
    return spare


def _said_dead(spare: _Spare) -> None:
    """Log why a spare ended before it was asked anything (its exit code, its last line)."""
    said = (spare.folder / "stderr.txt").read_text(encoding="utf-8", errors="replace").strip() \
        if (spare.folder / "stderr.txt").exists() else ""
    log.warning("the spare reconciliation helper had ended (exit code %s%s); the run starts its own",
                spare.process.returncode, f": {said.splitlines()[-1]}" if said else "")


def _let_go(spare: _Spare | None) -> None:
    if spare is None:
        return
    stdin, spare.process.stdin = spare.process.stdin, None
    if stdin is not None:  # an empty request: it ends
        with contextlib.suppress(OSError):
            stdin.close()
    try:
        spare.process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        spare.process.kill()
        spare.process.communicate()
    shutil.rmtree(spare.folder, ignore_errors=True)


# --- the helper process ---------------------------------------------------------------------------


def judge(request: dict[str, Any], say: TextIO) -> dict[int, tuple[int, int, int]]:
    """Judge the requested rules of the run as the run would, staging their findings in the
    request's file and saying on `say` how far it has written; the counts by rule position."""
    from reconcile.judge import fewer_collections

    with fewer_collections():  # as the run collects (a forked helper has its pace already)
        return _judge_rules(request, say)


def _judge_rules(request: dict[str, Any], say: TextIO) -> dict[int, tuple[int, int, int]]:
    from reconcile.changes import changed_tables  # the run's imports, in the helper only
    from reconcile.facts import AsOf
    from reconcile.judge import enabled_rules, rule_rows
    from reconcile.lifecycle import driver_rows, first_seq, stage
    from reconcile.scope import Scope
    from reconcile.settings import ReconcileConfig
    from store.db import make_engine

    parent = int(request["parent"])
    folder = Path(request["path"]).parent
    _check(parent, folder)  # before anything is opened, too
    settings = ReconcileConfig.model_validate(request["settings"])
    rules = enabled_rules(settings)
    day = date.fromisoformat(request["day"])
    calendar = AsOf(day, settings.report_due_days, settings.approval_due_days)
    store = make_engine(request["url"])
    counts: dict[int, tuple[int, int, int]] = {}
    try:
        with open(request["path"], "ab") as out, _the_runs_moment(store, request.get("snapshot")) as conn:
            def write(batch: list[tuple]) -> None:
                pickle.dump(driver_rows(conn.dialect, batch), out, protocol=pickle.HIGHEST_PROTOCOL)

            only = changed_tables(conn, request["only"]) if request.get("only") is not None else None
            scope = Scope(conn, calendar, tuple(request["years"]), only=only)
            for index in request["rules"]:
                rule, limits = rules[index]
                if rule.whole or (rule.time_driven and only is not None):  # the run's alone (ALSO_IN_…)
                    raise ValueError(f"{rule.name} is judged by the run itself in this run, not by a helper")
                flagged: set[tuple[str, int]] = set()
                _check(parent, folder)  # before the rule's query, too
                findings = 0
                try:
                    rows = _while_parent(parent, folder, rule_rows(conn, rule.select(scope, limits)))
                    made = _flagging(rule.findings(rows, scope, limits), flagged)
                    while chunk := list(itertools.islice(made, _SAID_EVERY)):  # written and said as it goes
                        findings += stage(write, chunk, first_seq(index) + findings)
                        out.flush()
                        print(json.dumps({"upto": out.tell()}), file=say, flush=True)
                except ValueError as exc:  # as the run says it: which rule could not read a stored value
                    raise ValueError(f"{rule.name}: {exc}") from exc
                except sa.exc.SQLAlchemyError as exc:  # the run says the helper's line: which rule's rows
                    exc.add_note(f"reading the rows of {rule.name}")
                    raise
                try:
                    checked = int(conn.execute(rule.checked(scope, limits)).scalar_one())
                except sa.exc.SQLAlchemyError as exc:
                    exc.add_note(f"counting what {rule.name} checked")
                    raise
                counts[index] = (checked, len(flagged), findings)
                print(json.dumps({"done": index, "upto": out.tell()}), file=say, flush=True)
            scope.close()
            if request.get("count_active"):  # the run's carried deviations counted without its scan
                _check(parent, folder)
                print(json.dumps({"active": active_deviations(conn, tuple(request["years"]), rules)}), file=say,
                      flush=True)
    finally:
        store.dispose()
    return counts


@contextlib.contextmanager
def _the_runs_moment(store: Engine, snapshot: str | None) -> Iterator[sa.Connection]:
    """A read transaction on the moment of the store the run reads. PostgreSQL: the run's exported
    snapshot (its reader's REPEATABLE READ transaction stays open until the helper has ended).
    SQLite: one read transaction for every rule (the driver would begin none for a SELECT), while
    the run holds the write lock, so that no commit comes between the run's reads and the helper's."""
    if store.dialect.name == "postgresql":
        from store.driver import snapshot_reader

        with snapshot_reader(store, snapshot) as conn:
            yield conn
        return
    with store.connect() as conn, conn.begin():
        conn.exec_driver_sql("BEGIN")
        yield conn


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


def active_deviations(conn: sa.Connection, years: tuple[int, ...], rules: list[tuple[Any, Any]]) -> int:
    """How many deviations of `years` and of the run's `rules` are active (open or acknowledged) at
    the run's moment, which the helper reads: the run's carried count then needs no scan of the
    deviations of its own (reconcile.lifecycle ``Found.apply``, ``active_before``)."""
    from reconcile.lifecycle import active_count, kept_of

    return active_count(conn, kept_of(years, [(rule.kind, rule.id) for rule, _ in rules]))


def _check(parent: int, folder: Path | None = None) -> None:
    if os.getppid() != parent:
        if folder is not None:  # nobody is left to remove it
            shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit("the run that started this helper is gone")


def serve(request: dict[str, Any], out: TextIO, err: TextIO) -> int:
    """The helper's whole work for `request`: lines on `out` as it writes (then its counts), one line
    on `err` if it fails, no traceback (it may name a path); its exit code. A helper whose run is
    gone (killed: its pipe broken, or found gone between batches) removes its folder: nobody else will."""
    try:
        counts = judge(request, out)
        print(json.dumps({"counts": counts}), file=out, flush=True)
    except BaseException as exc:
        # only the run reads the pipe, and it closes it only once the helper has ended: broken,
        # the run is gone (its process may not be reparented yet)
        if isinstance(exc, BrokenPipeError) or os.getppid() != int(request["parent"]):
            shutil.rmtree(Path(request["path"]).parent, ignore_errors=True)
        if isinstance(exc, SystemExit):  # _check: the run is gone
            said = str(exc)
        else:  # one line for the run to repeat (a database error in the driver's own words)
            said = error_line(exc)
        with contextlib.suppress(OSError):
            print(said, file=err, flush=True)
        return 1
    return 0


# --- a helper forked rather than started -------------------------------------------------------


def forkable() -> bool:
    """Whether the helper may be a fork of this process: on Linux, from a process of one thread
    (the ``reconcile`` command; counted by the kernel, /proc/self/task, so that a thread no Python
    module knows of counts too). A copy of the run's process has every module the helper needs
    loaded, where a new interpreter spends ~0.5–1 s importing them. Not from a process of several
    threads (the service's scheduler, a test runner's worker): a lock another thread held at the
    fork would stay held in the copy for ever. ``BUDGETWATCH_HELPER_FORK=0`` always starts a new
    interpreter."""
    if not sys.platform.startswith("linux") or os.environ.get("BUDGETWATCH_HELPER_FORK", "1") == "0":
        return False
    if signal.getsignal(signal.SIGCHLD) is signal.SIG_IGN:  # the kernel would reap the copy: no exit code
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: not known to be alone
        return False


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _fork(request: dict[str, Any], err_path: Path) -> _Forked:
    """The helper as a copy of this process, serving `request` at once.

    The copy opens a connection of its own and never touches the run's (SQLite's rule: no connection
    is used across a fork). What it reads is the run's moment as a started helper reads it: on
    PostgreSQL the run's exported snapshot; on SQLite a read transaction while the run holds the
    write lock (the store is in WAL mode: a reader never blocks the run, nor the run it). The copy
    inherits SQLite's per-process record of the run's file locks, so its reads take no lock of their
    own: safe while the run holds its locks, i.e. while it lives, and the copy stops when it is gone.
    Objects the run's process holds are frozen out of the copy's garbage collection (a connection
    collected there would be closed there), and the copy ends with ``os._exit``: no finalizer,
    ``atexit`` handler or buffered output of the run's runs in it. Interrupting signals are held
    back across the fork, so that a Ctrl-C at that moment cannot unwind the copy through the run's
    code; the copy then takes them as a started helper would (one the run ignores stays ignored)."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, ())  # the mask as it is (a pending Ctrl-C: raised here)
    fds: list[int] = []
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        fds.extend(os.pipe())
        gc.freeze()  # before the fork: in the copy, what the run held is never collected
        pid = os.fork()
    except BaseException:
        gc.unfreeze()
        for fd in fds:
            os.close(fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # last: a held-back Ctrl-C is raised here
        raise
    read, write = fds
    if pid == 0:  # the copy
        code = 1
        try:
            os.close(read)
            if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
            with open(write, "w", encoding="utf-8") as out, open(err_path, "w", encoding="utf-8") as err:
                # whatever else it would say (a library's warning) goes where a started helper's
                # goes, not to the run's own output
                os.dup2(err.fileno(), 2)
                with open(os.devnull, "wb") as nothing:
                    os.dup2(nothing.fileno(), 1)
                code = serve(request, out, err)
        finally:
            os._exit(code)
    forked = _Forked(pid, None)
    try:
        gc.unfreeze()
        os.close(write)
        forked.stdout = open(read, encoding="utf-8")
    except BaseException:  # the copy is stopped and reaped, not left behind; the mask given back last
        forked.kill()
        forked.communicate()
        if forked.stdout is None:
            os.close(read)
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)  # a Ctrl-C held back is raised here
    except BaseException:
        forked.kill()
        forked.communicate()
        raise
    return forked


class _Forked:
    """A forked helper, as the parent's side uses a started one (subprocess.Popen's few methods)."""

    def __init__(self, pid: int, stdout: TextIO | None) -> None:
        self.pid, self.stdout = pid, stdout
        self.stdin: TextIO | None = None  # the request is in the copy already
        self.returncode: int | None = None

    def _reaped(self, status: int) -> None:
        self.returncode = os.waitstatus_to_exitcode(status)

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: ended, its code unknown
                self.returncode = -1
                return self.returncode
            if pid:
                self._reaped(status)
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def communicate(self) -> None:
        """Read what it still says, and wait for it to end."""
        if self.stdout is not None and not self.stdout.closed:
            self.stdout.read()
            self.stdout.close()
        if self.returncode is None:
            try:
                self._reaped(os.waitpid(self.pid, 0)[1])
            except ChildProcessError:
                self.returncode = -1


def main() -> None:
    # what a request needs, imported before it is waited for: a spare waits with it loaded
    import reconcile.changes, reconcile.facts, reconcile.judge, reconcile.lifecycle, reconcile.scope  # noqa: E401,F401
    import reconcile.settings, store.db  # noqa: E401,F401

    said = sys.stdin.read()
    if not said.strip():  # a spare let go, or its process gone: nobody else removes its folder
        folder = Path(sys.argv[1]) if len(sys.argv) > 1 else None
        if folder is not None and folder.name.startswith(_FOLDER):
            shutil.rmtree(folder, ignore_errors=True)
        raise SystemExit(0)
    raise SystemExit(serve(json.loads(said), sys.stdout, sys.stderr))


if __name__ == "__main__":
    main()
