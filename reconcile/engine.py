"""A reconciliation run: each enabled rule asked of the store set-wise, deviations compared in the database.

    result = reconcile.run(engine, config.reconcile, as_of=date(2026, 11, 23), years=[1405])

1. The as-of day is the argument, else ``reconcile.as_of`` of config.yaml, else today in Tehran;
   the years are the argument, else every fiscal year in the store.
2. **What-if.** A run with ``dry_run``, or judging a day earlier than the last recorded run, records
   nothing: it judges and reports, and leaves every deviation as it was (issue 12: the life of
   deviations moves only forward; a past day's view must not resolve today's deviations, nor the
   next scheduled run reopen them, nor anyone get mail for it). ``RunResult.what_if`` says why.
3. Otherwise a ``reconcile_run`` row is opened (status ``running``, store/reconcile_runs.py).
4. **Scope** (reconcile/scope.py, reconcile/changes.py): every subject of the years, or — when
   ``incremental`` is asked and the last recorded run judged the same years, rules, thresholds and
   calendar — only the subjects whose facts changed since it, plus the time-driven rules on every
   subject whose finding is not recorded yet; a time-driven rule whose clock (``Rule.clock``: the
   quarters now late, the approval cut-off, the years begun) is the last run's judges only the
   changed subjects too, and one whose clock moved reads on the others only what the move can have
   reached where it says so (``Rule.moved``: the approvals overdue since). Both give the same
   deviations (tests/reconcile/test_incremental.py).
5. **Judging.** Each rule's query returns the rows that may break it (reconcile/rules/); Python
   judges those rows exactly and words them; findings stream into a temporary table of the run's
   writing connection (reconcile/lifecycle.py), never held whole in memory. On PostgreSQL a thread
   reads the rules' rows on the run's reader while the run words the rows before
   (reconcile/judge.py, ``Answers``); on a large store a helper process judges the two
   year-to-date rules meanwhile (in a full run on SQLite four more), in a full run or after a large
   change (reconcile/helper.py).
6. **Life.** The findings are compared with the stored deviations set-wise, the changes written and
   the run closed with its statistics, in one transaction. A recording run compares and opens each
   rule's new deviations once the rules up to it are staged (``Found.open_through``), where those
   writes overlap other work: on PostgreSQL in a writing thread while it judges the next rules, on
   SQLite beside its helper, between its rules and while it waits for the helper
   (``OPEN_AS_JUDGED``). A failure rolls every deviation change back and marks the run ``failed``.
7. **Output.** A caller's ``show`` receives, after the commit, a function that streams the findings
   from the database (``Found.rows`` of reconcile/lifecycle.py, bound to the run: ``where`` for a
   view, ``raw_figures`` for JSON) in the order people read them (most severe first), each with its
   deviation's id and status.

Evaluation always covers whole years: filters (county, agency, group, rule, severity) apply to what
is shown afterwards, so a filtered view never resolves what it did not look at.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from foundation.jalali import terminal_day, today_tehran
from reconcile import changes, helper, wording
from reconcile import scope as scope_tables
from reconcile.facts import AsOf
from reconcile.findings import Finding
from reconcile.judge import Answers, Asked, RuleStats, enabled_rules, fewer_collections, rule_stats
from reconcile.lifecycle import Found, LifeCounts, dev, event_table, kept_of, load_years
from reconcile.rules import Rule
from reconcile.scope import Scope
from reconcile.settings import ReconcileConfig
from store import locks, reconcile_runs, reporting
from store.db import StoreError, checkpoint_wal, refresh_statistics
from store.driver import (defer_checkpoint, export_snapshot, large_page_cache, reads_alike_beside, snapshot_reader,
                          write_lock_first, written_behind)
from store.models import utcnow

Progress = Callable[[str], None]
Show = Callable[[Callable[..., Iterator[Any]], "RunResult"], None]  # (Found.rows of the run, the run)


@dataclass
class RunResult:
    run_id: int | None  # None: a what-if, recorded nowhere
    as_of: date
    years: list[int]
    findings: list[Finding]  # kept only when the caller asked (keep=True); else empty
    stats: dict[str, RuleStats]  # by 'kind.rule'
    deviations: dict[tuple, tuple[int, str]] = field(default_factory=dict)  # identity -> (id, status), with keep
    life: LifeCounts = field(default_factory=LifeCounts)  # for a what-if: what a recorded run would do
    seconds: float = 0.0
    found: int = 0  # findings made
    what_if: str | None = None  # why nothing was recorded
    what_if_reason: str | None = None  # the same as a code: dry_run | past | future
    scope: str = "full"  # full | incremental (what was judged; see reconcile/changes.py)

    def status(self, finding: Finding) -> str:
        return self.deviations.get(finding.key, (0, "open"))[1]

    def deviation_id(self, finding: Finding) -> int | None:
        return self.deviations.get(finding.key, (None, ""))[0]


@fewer_collections()
def run(engine: Engine, settings: ReconcileConfig, *, as_of: date | None = None, years: list[int] | None = None,
        on_progress: Progress | None = None, incremental: bool = False, dry_run: bool = False,
        keep: bool = True, show: Show | None = None) -> RunResult:
    """Reconcile the store as of a day; see the module docstring.

    ``settings`` is the ``reconcile`` section of config.yaml. ``incremental`` judges only what
    changed since the last recorded run when that run allows it (step 4; else the whole store).
    ``keep`` returns the findings made in the result (tests, small tools; an incremental run makes
    findings only where it judged); commands pass ``show`` instead and hold none.
    """
    started = time.perf_counter()
    say = on_progress or _quiet
    day = as_of or settings.as_of or today_tehran()
    rules = enabled_rules(settings)
    stats = rule_stats(rules)
    calendar = AsOf(day, settings.report_due_days, settings.approval_due_days)
    # PostgreSQL plans the run on the tables' statistics: brought up to date first (a store
    # restored, copied or written by an older budgetwatch may describe the deviations as none: 30 s
    # instead of 0.1 s for one query at 100k, docs/benchmarks.md session 13; a first sync
    # interrupted before its closing ANALYZE left the facts so, and a run took minutes instead of a
    # second), and the deviations' after a recording run. Fresh ones cost one catalogue query.
    refresh_statistics(engine, (*_FACT_TABLES, *_DEVIATION_TABLES))
    with engine.connect() as conn:
        chosen = sorted(set(years)) if years else store_years(conn)
        last = reconcile_runs.last_recorded(conn)
    today = _today()
    # A run records only the present: a day to come would make every later run a what-if until then.
    # A run dated after today that an older budgetwatch recorded does not hold later runs back.
    reason = ("dry_run" if dry_run else "future" if day > today else
              "past" if last is not None and day < last.as_of <= today else None)
    on, last_day = terminal_day(day), terminal_day(last.as_of if last else day)
    what_if = {"dry_run": "--dry-run: nothing is recorded",
               "future": f"as of {on}, after today {terminal_day(today)}: a what-if, nothing is recorded",
               "past": f"as of {on}, before the last recorded run's day {last_day}: a what-if, nothing is recorded"
               }.get(reason or "")
    basis = _basis(settings, calendar, chosen, rules)
    names = [rule.name for rule, _ in rules]
    help_at = helper.helped(engine, names, keep=keep)  # a large run: step 5
    if not what_if:  # runs killed before they ended, still marked running: said so
        reconcile_runs.close_abandoned(engine)
    run_id = None if what_if else reconcile_runs.open_run(engine, day, chosen)
    label = f"run {run_id}" if run_id is not None else "what-if"
    say(f"{label}: judging years {', '.join(map(str, chosen)) or '(none)'} as of {day.isoformat()}")
    kept: list[Finding] = []
    recorded = False
    refreshing: _Beside | None = None
    checkpointing: _Beside | None = None
    resume: Callable[[], None] | None = None  # SQLite: a large run's commit leaves its log to checkpointing
    try:
        with engine.connect() as conn:
            with conn.begin(), contextlib.ExitStack() as stack:
                reader = stack.enter_context(_reader(engine, conn, writes=run_id is not None))
                stack.enter_context(large_page_cache(conn))
                if run_id is not None:  # before the reader's first read: it sees the run it follows
                    last = _following(conn, last, day)
                # the reader's snapshot, with no sync run half-registered (a what-if keeps no watermark)
                with locks.sync_runs_settled(engine) if run_id is not None else contextlib.nullcontext():
                    mark = changes.watermark(reader)
                plan = changes.plan(reader, conn, last=last, basis=basis, full=not incremental or what_if is not None,
                                    as_of=day)
                now = utcnow()  # the moment of the run's writes
                fork = bool(help_at) and helper.forkable()  # decided once, before any thread of the run starts
                helped = (bool(help_at) and run_id is not None  # a what-if: on SQLite no lock keeps its moment
                          and helper.worth_helping(None if plan.only is None else changes.operations_changed(reader),
                                                   quick=fork or helper.spare_ready()))
                # A recording run opens each rule's new deviations once the rules up to it are staged
                # (Found.open_through) where the writes then overlap other work: on PostgreSQL in a
                # writing thread while the run judges on; on SQLite beside a helper, between its rules
                # and while it waits for the helper. Elsewhere (SQLite without a helper) all at the
                # end: the same work in fewer statements.
                behind = OPEN_AS_JUDGED and run_id is not None and conn.dialect.name == "postgresql"
                opening = functools.partial(Found.open_through, run_id=run_id, as_of=day, now=now) \
                    if OPEN_AS_JUDGED and run_id is not None and (behind or helped) else None
                found = Found(conn, [(rule.kind, rule.id) for rule, _ in rules], behind=behind)
                if opening is not None:  # the lock waited for here, not in the writing thread
                    found.hold()
                scope = Scope(reader, calendar, tuple(chosen), only=plan.only)
                clocks = {rule.name: rule.clock(scope) for rule, _ in rules if rule.time_driven}
                then = (last.stats or {}).get("clocks", {}) if plan.only is not None else {}
                steady = {name for name, clock in clocks.items() if plan.only is not None and then.get(name) == clock}
                skip = _Recorded(plan, chosen, then)
                at = helper.aside(names, full=plan.only is None, dialect=conn.dialect.name) if helped else []
                aside = helper.Helper(engine.url.render_as_string(hide_password=False), settings, day, chosen,
                                      at, [names[i] for i in at], fork=fork,
                                      only=None if plan.only is None else changes.changed_ids(reader),
                                      snapshot=export_snapshot(reader),
                                      # SQLite: the run holds the write lock, so what was active at its
                                      # moment is what was before its writes (Found.apply)
                                      # (asked where the run will carry: Plan.carried)
                                      count_active=(plan.only is not None and conn.dialect.name == "sqlite"
                                                    and any(not rule.whole for rule, _ in rules))) \
                    if helped else None
                try:
                    changes.name_judged(plan, reader, conn)  # for resolving: after the helper has started
                    _judge(rules, reader=reader, ahead=reader is not conn, found=found, stats=stats, scope=scope,
                           steady=steady, skip=skip, aside=aside, opening=opening, kept=kept if keep else None,
                           say=say, beside=engine if run_id is not None and counts_beside(engine, conn) else None)
                finally:
                    if aside is not None:
                        aside.close()
                scope.close()
                changes.clean(reader)
                found.compare()
                judged = [(r.kind, r.id) for r, _ in rules]
                partial = [(r.kind, r.id) for r, _ in rules if not r.whole]  # resolved only where judged
                resolvable = plan.resolvable(load_years(chosen), judged, partial)
                carried = plan.carried(conn, partial, run_id)
                if carried is not None:
                    carried = sa.and_(load_years(chosen), carried)
                if what_if:
                    counts = found.counts()
                    counts.resolved = found.unfound(resolvable)
                else:
                    say("recording deviations")
                    counts = found.apply(run_id=run_id, as_of=day, now=now, resolvable=resolvable,
                                         years=chosen, rules=judged, kept=None if carried is None else kept_of(chosen, judged),
                                         active_before=None if aside is None else aside.active_before)
                    seconds = time.perf_counter() - started
                    reconcile_runs.close_run(conn, run_id, {
                        "rules": {name: s.as_dict() for name, s in stats.items()}, "life": counts.as_dict(),
                        "findings": found.count, "seconds": round(seconds, 3), "scope": plan.kind,
                        "basis": basis, "watermark": mark, "clocks": clocks})
                    if found.count >= CLOSE_FROM:  # SQLite: the log copied into the store beside `show`
                        resume = defer_checkpoint(conn)
            recorded = run_id is not None  # committed: a failure in `show` leaves the run recorded
            if resume is not None:  # committed: nothing after this may fail the run (the next
                # commit's autocheckpoint does what a failed checkpoint left)
                with contextlib.suppress(Exception):
                    resume()
                resume = None
                checkpointing = _Beside(checkpoint_wal, engine, thread=True)
            if recorded:  # a first run's 250,000 new deviations: the next run plans on them. Analyzed
                # on a connection of its own while the caller's show reads (PostgreSQL: 0.35 s at 100k)
                refreshing = _Beside(refresh_statistics, engine, _DEVIATION_TABLES)
            kept.sort(key=lambda f: f.key)
            result = RunResult(run_id=run_id, as_of=day, years=chosen, findings=kept, stats=stats,
                               deviations=_identities(found) if keep else {}, life=counts,
                               seconds=time.perf_counter() - started, found=found.count, what_if=what_if,
                               what_if_reason=reason, scope=plan.kind)
            say(f"{label} done: {found.count} findings, {counts.opened} opened, {counts.resolved} resolved")
            try:
                if show is not None:
                    show(functools.partial(found.rows, carried), result)
            finally:  # a show that failed half-way must not leave a stream holding the connection
                found.close_streams()
            if found.count >= CLOSE_FROM:
                # the connection closed, not its temporary tables emptied: SQLite deletes 250,000
                # staged findings page by page (0.48 s) but discards the file of a closed connection
                # (0.04 s); PostgreSQL drops them after the session, not while the caller waits.
                # The pool opens a new connection for the next run.
                conn.invalidate()
            else:
                found.drop()
                changes.clean_judged(conn)
                conn.commit()
    except BaseException as exc:
        if resume is not None:  # the commit failed: the connection's setting back all the same
            with contextlib.suppress(Exception):
                resume()
        for beside in (refreshing, checkpointing):
            if beside is not None:
                beside.wait(quietly=True)
        if run_id is not None and not recorded:
            reconcile_runs.fail_run(engine, run_id, exc)
        raise
    if refreshing is not None:
        refreshing.wait()
    if checkpointing is not None:
        checkpointing.wait(quietly=True)  # logged by checkpoint_wal: the run is recorded whatever it did
    return result


class RunOvertaken(StoreError):
    """Another run was recorded, for a later day, while this one waited to record: said in one line."""

    exit_code = 1


def _following(conn: sa.Connection, last: Any, day: date) -> Any:
    """The last recorded run, read again once the run holds the reconciliation's lock (SQLite: the
    write lock its transaction took first; PostgreSQL: the lock every recording run takes, here
    before its reader's snapshot) and before it plans on it. A run that waited for another follows
    it: it judges what changed since that one (an incremental run reads only what changed since its
    last run, and of a rule whose clock moved only what the move reached since that run's day,
    Rule.moved), not since the run both had found last when they started. A run for a day before
    the other's records nothing (a past day is a what-if) and says so."""
    locks.hold_for_transaction(conn, "reconcile")
    latest = reconcile_runs.last_recorded(conn)
    if latest is not None and (last is None or latest.id != last.id) and latest.as_of > day:
        raise RunOvertaken(f"reconciliation run {latest.id} was recorded as of {terminal_day(latest.as_of)} while "
                           f"this run, as of {terminal_day(day)}, waited for it; a day before the last recorded run's "
                           "is a what-if, so this run records nothing (--dry-run shows that day)")
    return latest


def _today() -> date:
    """Today in Tehran, after which no run is recorded (the tests' calendar moves it: tests/conftest.py)."""
    return today_tehran()


class _Beside:
    """`work(*args)` in a thread of its own (PostgreSQL: statements on a connection of its own),
    beside what the caller does meanwhile; :meth:`wait` for it. On SQLite it runs at once, unless
    asked for a `thread` (work that is SQLite's own, done in C with the GIL given back: a checkpoint)."""

    def __init__(self, work: Callable[..., Any], engine: Engine, *args: Any, thread: bool = False) -> None:
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if engine.dialect.name != "postgresql" and not thread:
            work(engine, *args)
            return
        self._thread = threading.Thread(target=self._run, args=(work, engine, *args), name="reconcile-beside",
                                        daemon=True)
        self._thread.start()

    def _run(self, work: Callable[..., Any], *args: Any) -> None:
        try:
            work(*args)
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread by wait()
            self._error = exc

    def wait(self, *, quietly: bool = False) -> None:
        """Until the work is done; then its error, if it failed (not `quietly`: on the way out of another)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and not quietly:
            raise error


_DEVIATION_TABLES = (dev, event_table)
# what the rules read (reconcile.scope)
_FACT_TABLES = (scope_tables.pj, scope_tables.py, scope_tables.ag, scope_tables.ct, scope_tables.pr, scope_tables.pc,
                scope_tables.fi, scope_tables.ea, scope_tables.ec, scope_tables.op, scope_tables.perf)
# A recording run opens each rule's new deviations while it judges the next rules (Found.open_through), on
# PostgreSQL and on SQLite with a helper: PostgreSQL 100k first run 17.3–20.0 s → 14.5–15.0 s, run after a
# 1 % change 2.40–2.58 → 2.20–2.29 s (docs/benchmarks.md, session 15). Off: all at the end.
OPEN_AS_JUDGED = True
# staged findings from which a run closes its connection rather than empty its temporary tables
CLOSE_FROM = 20_000


def store_years(conn: sa.Connection) -> list[int]:
    """Every fiscal year the store holds a project year or an expense agreement of (listed or not)."""
    return reporting.fiscal_years(conn, listed_only=False)


def _quiet(_message: str) -> None:
    """No one watches the run's progress."""


class _Recorded:
    """In an incremental run, the findings of time-driven rules already recorded on subjects whose
    facts did not change: the same facts give the same finding, so they are carried, not judged
    again. Left out in the database (a rule's select with NOT EXISTS of its deviation), so that
    the rows of a re-run on unchanged data never reach Python. Of a rule whose clock has moved
    since the last recorded run's (`then`, by rule name), only the rows the move can have reached
    are asked for on those subjects (``Rule.moved``: the entries whose approval became overdue
    since, not each of the ~40,000 pending reports and items of a 100k store, ~33,000 of them
    recorded, each looked up among the deviations: the two rules' selects in a SQLite nightly run
    ~0.18–0.20 → ~0.13–0.15 s; docs/benchmarks.md, session 27)."""

    def __init__(self, plan: changes.Plan, years: list[int], then: dict[str, str]) -> None:
        self.active = plan.only is not None
        self.years = years
        self.then = then

    def unrecorded(self, rule: Rule, statement: sa.Select, scope: Scope) -> sa.Select:
        if not self.active:
            return statement
        c = statement.selected_columns
        subject, year, quarter = rule.identity(c)
        recorded = sa.exists().where(
            dev.c.kind == rule.kind, dev.c.rule == rule.id, dev.c.subject == subject, dev.c.fiscal_year == year,
            dev.c.quarter == quarter, load_years(self.years), dev.c.status.in_(("open", "acknowledged", "dismissed")))
        fresh = ~recorded
        then = self.then.get(rule.name)
        moved = rule.moved(scope, then) if then is not None else None
        if moved is not None:
            fresh = sa.and_(moved, fresh)
        return statement.where(sa.or_(c.id.in_(changes.changed_subjects(rule.kind)), fresh))


def _judge(rules: list[tuple[Rule, Any]], *, reader: sa.Connection, ahead: bool, found: Found,
           stats: dict[str, RuleStats], scope: Scope, steady: set[str], skip: _Recorded,
           aside: helper.Helper | None, opening: Callable[..., None] | None, kept: list[Finding] | None,
           say: Progress, beside: Engine | None = None) -> None:
    """Step 5: each rule's rows judged, worded and staged in `found`, in the rules' order of
    production; the rules of a helper process (`aside`) judged there and copied in their places.
    `opening` (Found.open_through, bound to the run) opens a rule's new deviations once it and
    every rule before it are staged: the run's own as they end, the helper's as the run takes their
    last findings (between its own rules, without waiting, then while it waits for the helper), and
    the run's own after the helper's once those are; on PostgreSQL in the writing thread, while the
    run judges on. `beside`: the SQLite store's engine, whose connections count what rules checked
    beside the run (Answers)."""
    mine = [i for i in range(len(rules)) if aside is None or i not in aside.indices]
    first_aside = min(aside.indices) if aside is not None else len(rules)
    if aside is not None:
        say(f"judging {', '.join(aside.names)} in a helper process")
    # the rules whose findings are all staged, and the first not yet: every rule below it is opened
    staged: set[int] = set()
    opened_below = 0

    def ended(i: int) -> None:  # rule i's findings are all staged (judged here, or taken from the helper)
        nonlocal opened_below
        staged.add(i)
        below = opened_below
        while below in staged:
            below += 1
        if opening is not None and below > opened_below:
            opening(found, below - 1)
            opened_below = below

    scopes, asked = [], []
    for i in mine:
        rule, limits = rules[i]
        every = rule.whole or (rule.time_driven and rule.name not in steady)
        rule_scope = scope.every() if every else scope
        scopes.append(rule_scope)
        asked.append(Asked(select=functools.partial(_statement, rule, limits, rule_scope, skip if every else None),
                           checked=functools.partial(rule.checked, rule_scope, limits), name=rule.name))
    try:
        answers = Answers(reader, asked, ahead=ahead, beside=beside)
        try:
            for k, (i, rule_scope) in enumerate(zip(mine, scopes)):
                rule, limits = rules[i]
                say(f"judging {i + 1}/{len(rules)}: {rule.name}")
                try:
                    found.add(_counted(rule.findings(answers.rows(k), rule_scope, limits), stats[rule.name], kept),
                              rule_index=i)
                    if not ahead and not answers.counted_beside(k):  # SQLite: counted in the run's
                        stats[rule.name].checked = answers.checked(k)  # thread while its helper judges
                except ValueError as exc:  # a stored value the rule could not read: say which rule
                    if written_behind(exc):  # a write of an earlier batch failed, not this rule's reading
                        raise
                    raise ValueError(f"{rule.name}: {exc}") from exc
                ended(i)
                if aside is not None and opening is not None and opened_below >= first_aside:
                    # what the helper has written, taken (and each rule it ended opened) between the
                    # run's rules once every rule before the helper's is opened; taken before, it would
                    # wait staged for those anyway, and its copying compete with both processes' judging
                    aside.take_ready(found.take, ended)
            if aside is not None:  # on PostgreSQL the reader counts what the run's rules checked meanwhile
                say("copying the helper process's findings")
                for i, counted in aside.finish(found.take, ended).items():
                    rule_stats = stats[rules[i][0].name]
                    rule_stats.checked, rule_stats.flagged, rule_stats.findings = (counted.checked, counted.flagged,
                                                                                   counted.findings)
            for k, i in enumerate(mine):  # Answers: the counts read once every rule's rows are, or beside
                if ahead or answers.counted_beside(k):
                    stats[rules[i][0].name].checked = answers.checked(k)
        finally:
            answers.close()
        found.written()
    except BaseException:
        found.close_writer()  # the connection is the caller's again, to roll back
        raise


def counts_beside(engine: Engine, conn: sa.Connection) -> bool:
    """Whether a recording run on `conn` (it holds SQLite's write lock: ``_reader``) counts what its
    rules checked on another connection (Answers' ``beside``): where that connection reads the store
    as the run does (store.driver ``reads_alike_beside``). PostgreSQL's reader counts in a thread of
    its own already."""
    return reads_alike_beside(engine, conn)


def _statement(rule: Rule, limits: Any, scope: Scope, skip: _Recorded | None) -> sa.Select:
    """The rule's select in `scope`; for a time-driven rule asked of every subject (`skip`), without
    the rows whose finding is recorded already."""
    statement = rule.select(scope, limits)
    return skip.unrecorded(rule, statement, scope) if skip is not None and rule.time_driven else statement


def _counted(findings: Iterable[Finding], stats: RuleStats, kept: list[Finding] | None) -> Iterator[Finding]:
    """`findings` passed on, counted in `stats` (findings, subjects flagged) and kept when asked."""
    flagged: set[tuple[str, int]] = set()
    for f in findings:
        stats.findings += 1
        flagged.add((f.subject, f.fiscal_year))
        if kept is not None:
            kept.append(f)
        yield f
    stats.flagged = len(flagged)


def _identities(found: Found) -> dict[tuple, tuple[int, str]]:
    with contextlib.closing(found.rows()) as rows:
        return {(r.kind, r.rule, r.subject, r.fiscal_year, r.quarter): (r.deviation_id, r.status) for r in rows}


def _basis(settings: ReconcileConfig, calendar: AsOf, years: list[int], rules: list[tuple[Rule, Any]]) -> str:
    """A digest of what a run's verdicts depend on besides the facts: years, rules and thresholds,
    deadlines, which quarters are closed and how sentences are worded. Two runs of equal basis judge
    unchanged facts alike (except time-driven rules, which every run judges whole)."""
    content = {"years": years, "closed": {y: calendar.closed_quarters(y) for y in years},
               "wording": wording.VERSION,
               "rules": [[rule.name, repr(limits)] for rule, limits in rules],
               "deadlines": [settings.report_due_days, settings.approval_due_days]}
    return hashlib.blake2b(json.dumps(content, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


@contextlib.contextmanager
def _reader(engine: Engine, conn: sa.Connection, *, writes: bool) -> Iterator[sa.Connection]:
    """Where a run reads the store: one snapshot for the whole run. Call before anything else runs in `conn`.

    SQLite: the run's own transaction; a run that records takes the write lock at once
    (`store.driver.write_lock_first`: an expert acknowledging a deviation meanwhile waits for the run
    instead of failing it). PostgreSQL: a REPEATABLE READ transaction of its own, so that a sync
    committing meanwhile is not seen half-way, while the run's writing transaction stays READ
    COMMITTED (a person acknowledging a deviation meanwhile must not make the run fail).
    """
    if engine.dialect.name != "postgresql":
        if writes:
            write_lock_first(conn)
        yield conn
        return
    with snapshot_reader(engine) as reader:
        yield reader
