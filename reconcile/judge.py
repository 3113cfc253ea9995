"""The rules a run judges and how often each fired: the enabled rules with their limits, their
statistics (:class:`RuleStats`), their questions to the store and the answers read ahead
(:class:`Answers`), one rule judged set-wise in a scope (:func:`judge_setwise`), and the
collector's pace while a run judges (:func:`fewer_collections`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import util as sql_util

from reconcile.findings import Finding, round4
from reconcile.rules import RULES, Rule
from reconcile.settings import ReconcileConfig
from store.driver import interrupter, named_row_type, serial_plans

log = logging.getLogger("budgetwatch.reconcile")

_BATCH = 2000

# Allocations between two collections of the young generation while a run judges (CPython: 700).
# A run makes millions of short-lived objects that hold no cycles (rows, figures, findings); at 700
# a 100k first run collected ~650–780 times, and every tenth collection of the young generations
# traverses what the read-ahead queues and batches hold by then: 0.4–1.0 s of the run's process
# (docs/benchmarks.md, session 26). At 10,000, ~20–40 times.
YOUNG_COLLECTIONS_EVERY = 10_000
_pace = threading.Lock()
_paced = 0  # runs judging now in this process, under fewer_collections
_saved: tuple[int, ...] = ()  # the thresholds before the first of them
_set: tuple[int, ...] = ()  # the thresholds it set


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """The cyclic garbage collector's young generation collected every
    :data:`YOUNG_COLLECTIONS_EVERY` allocations rather than every 700 while the block runs (a
    decorator too). Process-wide: the first of runs judging at once sets it, the last restores it,
    unless something else changed the thresholds meanwhile; a collector turned off (threshold 0)
    stays off. A helper forked from a run inherits the run's count and pace (it ends with its work)."""
    global _paced, _saved, _set
    counted = False
    try:
        with _pace:
            if not _paced:
                _saved = _set = gc.get_threshold()
                if _saved[0]:
                    _set = (max(_saved[0], YOUNG_COLLECTIONS_EVERY), *_saved[1:])
                    gc.set_threshold(*_set)
            _paced += 1
            counted = True
        yield
    finally:
        if counted:
            with _pace:
                _paced -= 1
                if not _paced and gc.get_threshold() == _set:
                    gc.set_threshold(*_saved)


@dataclass
class RuleStats:
    """How often one rule fired: subjects it judged, subjects it flagged, findings it made."""

    kind: str
    rule: str
    checked: int = 0
    flagged: int = 0
    findings: int = 0

    @property
    def share(self) -> Decimal:
        return round4(Decimal(self.flagged) / self.checked) if self.checked else Decimal(0)

    @property
    def mis_tuned(self) -> bool:
        """More than half of what it checked flagged: its threshold may be mis-tuned."""
        return 2 * self.flagged > self.checked

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "checked": self.checked, "flagged": self.flagged,
                "findings": self.findings, "share": float(self.share), "mis_tuned": self.mis_tuned}


def rule_stats(rules: list[tuple[Rule, Any]]) -> dict[str, RuleStats]:
    """Zero counts for each of `rules`, by 'kind.rule'."""
    return {rule.name: RuleStats(rule.kind, rule.id) for rule, _ in rules}


def enabled_rules(settings: ReconcileConfig) -> list[tuple[Rule, Any]]:
    """(rule, its limits) for every rule the ``reconcile`` section leaves on."""
    chosen = []
    for rule in RULES:
        rule_settings = getattr(settings.rules, rule.id)
        if rule_settings.enabled:
            chosen.append((rule, rule.limits_from(rule_settings)))
    return chosen


def judge_setwise(scope: Any, rule: Rule, limits: Any) -> tuple[list[Finding], int]:
    """One rule stated set-wise, judged in `scope` (reconcile/scope.py): its findings and the number
    of subjects it checked."""
    rows = rule_rows(scope.conn, rule.select(scope, limits))
    found = list(rule.findings(rows, scope, limits))
    checked = scope.conn.execute(rule.checked(scope, limits)).scalar_one()
    return found, int(checked)


def rule_rows(conn: Connection, statement: sa.Select) -> Iterable[Any]:
    """A rule's rows, streamed, as named tuples of the select's columns.

    A rule reads a row's columns by name a dozen times; a named tuple answers that in a tenth of
    the time of SQLAlchemy's Row (0.6 µs an access, measured: about a second of a 100k first run)."""
    # per statement: Connection.execution_options would set streaming for every later statement
    result = conn.execute(statement.execution_options(yield_per=_BATCH))
    return map(named_row_type(tuple(result.keys()))._make, result)


@dataclass(frozen=True)
class Asked:
    """What a run asks the store of one rule: its rows (``select``) and how many subjects it checked
    (``checked``), each built when it is asked (a select may fill a per-run table on the reader)."""

    select: Callable[[], sa.Select]
    checked: Callable[[], sa.Select]
    name: str = "a rule"  # the rule's, said with an error in reading its answers


class Answers:
    """The answers to a run's rules (:class:`Asked`), in their order, read on `reader`.

    Ask every rule's ``rows(i)`` in order, then their ``checked(i)`` in order. With ``ahead``
    (PostgreSQL, whose reader is a connection and a server process of its own: reconcile/engine.py
    ``_reader``) a thread reads them, a few thousand rows ahead of the caller, while the caller judges,
    words and stages the rows before: the server's work and the run's Python overlap, where one
    waited for the other (docs/benchmarks.md, session 12); it counts what each rule checked once
    every rule's rows are read, while the run does what comes after its rules (waits for its helper,
    copies its findings): a count of every subject costs PostgreSQL up to ~0.4 s at 100k, which the
    run waited for between its rules in a nightly run (docs/benchmarks.md, session 27); they are
    planned without parallel workers (``serial_plans``, session 29). Without it (SQLite, whose
    queries run in the run's own thread and connection) each is read when asked; given ``beside``
    (a SQLite store's engine, for a run that holds the store's write lock: nothing can commit
    before it ends, so every connection reads the same facts), the counts that read none of the
    run's temporary tables are made by a thread on a connection of its own meanwhile
    (:meth:`counted_beside`): the counts of every subject of the time-driven rules, 0.17 s of the
    run's thread in a nightly run at 100k, while its helper process had left a core idle
    (docs/benchmarks.md, session 30).
    Either way the rows and counts are the same, in the same order; an error reading rule i is
    raised where rule i is asked, noted with the rule's name and what was read (``error_line`` says
    it). :meth:`close` stops the threads (after the statement each is running) and must be called.
    """

    def __init__(self, reader: Connection, asked: list[Asked], *, ahead: bool, beside: Engine | None = None) -> None:
        self.reader, self.asked = reader, asked
        self._answers: queue.Queue[tuple[str, int, Any]] = queue.Queue(maxsize=4)  # batches, not rows
        self._stop = threading.Event()
        self._checked: dict[int, int] = {}
        self._rows_asked = -1  # the last rule whose rows were asked
        self._thread: threading.Thread | None = None
        if ahead and asked:
            self._thread = threading.Thread(target=self._read_all, name="reconcile-reader", daemon=True)
            self._thread.start()
        self._beside = _Counter(beside, asked) if beside is not None and not ahead and asked else None

    def counted_beside(self, index: int) -> bool:
        """Whether rule `index`'s count is made beside the run (ask it once every rule's rows are read:
        asked earlier, the run would wait for it)."""
        return self._beside is not None and index in self._beside.statements

    def rows(self, index: int) -> Iterator[Any]:
        """Rule `index`'s rows, as named tuples of its select's columns."""
        self._rows_asked = max(self._rows_asked, index)  # asked now, however far the caller reads them
        return self._rows(index)

    def _rows(self, index: int) -> Iterator[Any]:
        if self._thread is None:
            with _noted(f"reading the rows of {self.asked[index].name}"):
                yield from rule_rows(self.reader, self.asked[index].select())
            return
        while True:
            kind, i, value = self._next()
            if i < index:  # the rest of an earlier rule its caller did not read to the end
                continue
            if kind == "end":
                return
            yield from value

    def checked(self, index: int) -> int:
        """How many subjects rule `index` checked (after every rule's rows)."""
        if self._beside is not None and index in self._beside.statements:
            value = self._beside.result(index)
            if value is not None:
                return value
        if self._thread is None:
            with _noted(f"counting what {self.asked[index].name} checked"):
                return int(self.reader.execute(self.asked[index].checked()).scalar_one())
        while index not in self._checked:
            kind, i, value = self._next()
            if kind == "checked":
                self._checked[i] = value
            elif i > self._rows_asked:  # read past, they would be lost to rows(i)
                raise RuntimeError(f"Answers: rule {index}'s count asked before rule {i}'s rows")
        return self._checked.pop(index)

    def close(self) -> None:
        """Stop reading ahead and counting beside, and wait for the threads: the reader is the caller's again."""
        if self._beside is not None:
            self._beside.close()
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            try:  # a thread waiting to hand over a batch is let go
                self._answers.get(timeout=0.05)
            except queue.Empty:
                pass
        self._thread = None

    def _next(self) -> tuple[str, int, Any]:
        kind, i, value = self._answers.get()
        if kind == "error":
            raise value
        return kind, i, value

    def _read_all(self) -> None:
        """The thread: every rule's rows in batches, each rule's ended by an "end"; then each rule's
        count; an error ends it, handed over."""
        index, doing = 0, "reading the rows of {}"
        try:
            for index, asked in enumerate(self.asked):
                result = self.reader.execute(asked.select().execution_options(yield_per=_BATCH))
                try:
                    make = named_row_type(tuple(result.keys()))._make
                    for batch in result.partitions():
                        self._hand_over(("rows", index, list(map(make, batch))))
                finally:
                    result.close()
                self._hand_over(("end", index, None))
            with _noted("planning the rules' counts"):  # not any one rule's
                serial_plans(self.reader)  # one process a count: quicker, and the writer and helper keep their cores
            doing = "counting what {} checked"
            for index, asked in enumerate(self.asked):
                self._hand_over(("checked", index, int(self.reader.execute(asked.checked()).scalar_one())))
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            if isinstance(exc, Exception) and index < len(self.asked) and not getattr(exc, "__notes__", None):
                exc.add_note(doing.format(self.asked[index].name))
            try:
                self._hand_over(("error", index, exc))
            except _Stopped:
                return

    def _hand_over(self, answer: tuple[str, int, Any]) -> None:
        while not self._stop.is_set():
            try:
                self._answers.put(answer, timeout=0.05)
                return
            except queue.Full:
                continue
        raise _Stopped


class _Counter:
    """The counts of :class:`Answers` that read none of the run's temporary tables (built now, in
    the run's thread: a count's statement may build a per-run table on the reader), made in their
    order by a thread at the lowest priority on a connection of its own to `engine`.

    Only an offer: what the thread has not counted when the run asks (:meth:`result` None), the run
    counts itself. At that moment the thread is stopped, its statement interrupted: on a machine
    whose every core is busy at normal priority a thread at the lowest one gets ~1.5 % of a core,
    and the run must never wait on it. A failure of the thread (its connection, a count's error)
    ends it and leaves the rest to the run, whose own count then says a count's error as it would."""

    def __init__(self, engine: Engine, asked: list[Asked]) -> None:
        self.statements: dict[int, sa.Select] = {}
        for i, one in enumerate(asked):
            statement = one.checked()
            if not _reads_temporary(statement):
                self.statements[i] = statement
        self.done: dict[int, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.interrupt: Callable[[], None] | None = None  # set while a statement may run
        self.thread: threading.Thread | None = None
        if self.statements:
            self.thread = threading.Thread(target=self._count_all, args=(engine,), name="reconcile-counter",
                                           daemon=True)
            self.thread.start()

    def _count_all(self, engine: Engine) -> None:
        _lowest_priority()
        try:
            with engine.connect() as conn:
                for index, statement in self.statements.items():
                    with self.lock:
                        if self.stop.is_set():
                            return
                        self.interrupt = interrupter(conn)
                    try:
                        value = int(conn.execute(statement).scalar_one())
                    finally:
                        with self.lock:
                            self.interrupt = None
                    with self.lock:
                        self.done[index] = value
        except Exception:  # noqa: BLE001 - what is not counted here, the run counts itself
            log.debug("counting beside the run stopped", exc_info=True)

    def result(self, index: int) -> int | None:
        """Rule `index`'s count if the thread has made it; else None, the thread stopped (the run
        counts the rest itself)."""
        with self.lock:
            if index in self.done:
                return self.done[index]
        self.close()
        return self.done.get(index)

    def close(self) -> None:
        """Stop the thread: its statement interrupted (store.driver ``interrupter``), again until the
        thread ends (SQLite forgets an interrupt that comes before a statement's first step)."""
        self.stop.set()
        while self.thread is not None:
            with self.lock:
                if self.interrupt is not None:
                    self.interrupt()
            self.thread.join(0.05)
            if not self.thread.is_alive():
                self.thread = None


def _lowest_priority() -> None:
    """The calling thread at the lowest scheduling priority (Linux: a thread's own nice value, by its
    id): it takes the cores the run and its helper leave idle, not theirs. Counting at the run's own
    priority from the start, the run's first rule took twice as long (0.17 → 0.33-0.35 s at 100k)
    beside its helper process. Where that cannot be set, as it is."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def _reads_temporary(statement: sa.Select) -> bool:
    """Whether `statement` reads a temporary table (one that only the run's connection sees)."""
    return any(isinstance(table, sa.Table) and "TEMPORARY" in (table._prefixes or ())
               for table in sql_util.find_tables(statement, check_columns=True, include_aliases=True,
                                                 include_joins=True, include_selects=True))


@contextlib.contextmanager
def _noted(doing: str) -> Iterator[None]:
    """An error raised inside noted with what was being done (PEP 678; store.db ``error_line``)."""
    try:
        yield
    except Exception as exc:
        exc.add_note(doing)
        raise


class _Stopped(Exception):
    """The caller closed the Answers: the thread stops reading."""
