"""A large run (a full one, or an incremental one after a large change) judges the
year-to-date expense rules in a helper process (reconcile/helper.py): a copy of the run's process
from a process of one thread, else a new interpreter. Whatever judged them, the store must end the
same: the same deviations with the same ids, figures, sentences and fingerprints, the same events,
the same counts per rule. Two real stores built alike (SQLite, PostgreSQL), one run with a real helper process,
one without; the helper's size thresholds are lowered for these small stores (HELP_FROM,
HELP_CHANGED_FROM: constants of the module, not mocks) and BUDGETWATCH_HELPER_FORK=0 chooses the
new interpreter."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

import reconcile
from reconcile import changes, helper
from reconcile.judge import enabled_rules
from reconcile.lifecycle import Found
from store.db import open_store
from store.models import Deviation, OperationPerformance, ProgressReport, ReconcileRun
from reconcile_builders import config, day, recorded, sync_run, varied_store

HELPED = set(helper.HELPED)


def _store(_migrated, path: Path, seed: int = 11):
    engine = open_store(_migrated.sqlite_copy(path))
    varied_store(engine, random.Random(seed))
    return engine


def _change(engine) -> None:
    """Other figures for the helper's rules and the run's own: an operation's quantities and a report."""
    perf, pr = OperationPerformance.__table__, ProgressReport.__table__
    with engine.begin() as conn:
        conn.execute(sa.update(perf).where(perf.c.id % 3 == 0).values(quantity=perf.c.quantity * Decimal("0.5")))
        conn.execute(sa.update(pr).where(pr.c.id % 4 == 0).values(progress=Decimal(5)))


def _helper_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("budgetwatch-helper-*"))


def _synced_change(engine) -> None:
    """Another operation's quantities and another report, written as a sync writes them (marked with
    a new sync run: what an incremental run judges)."""
    perf, pr = OperationPerformance.__table__, ProgressReport.__table__
    with engine.begin() as conn:
        run = sync_run(conn)
        conn.execute(sa.update(perf).where(perf.c.id % 5 == 1).values(quantity=perf.c.quantity * Decimal("0.4"),
                                                                      last_run_id=run))
        conn.execute(sa.update(pr).where(pr.c.id % 6 == 1).values(progress=Decimal(3), last_run_id=run))


def _aside_names(engine, *, full: bool) -> list[str]:
    """The rules a helper judges in a run of `engine`'s store (helper.aside), by name."""
    names = [rule.name for rule, _ in enabled_rules(config())]
    at = helper.aside(names, full=full, dialect=engine.dialect.name)
    if engine.dialect.name == "sqlite" and full:  # the year-to-date rules and more
        assert set(at) > {names.index(name) for name in helper.HELPED}
    else:
        assert [names[i] for i in at] == list(helper.HELPED)
    return [names[i] for i in at]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_stores(request, tmp_path):
    """Two stores built alike on the parametrised database (on PostgreSQL the helper reads the run's
    exported snapshot)."""
    if request.param == "sqlite":
        urls = [request.getfixturevalue("_migrated").sqlite_copy(tmp_path / name) for name in ("a.db", "b.db")]
    else:
        urls = [request.getfixturevalue("pg_store_url"), request.getfixturevalue("other_pg_store_url")]
    engines = [open_store(url) for url in urls]
    for engine in engines:
        varied_store(engine, random.Random(11))
    yield engines
    for engine in engines:
        engine.dispose()


# A run in a process of its own, of one thread, as the `reconcile` command runs (a test runner's
# worker has threads of its own: from there the helper is never a copy). Starting a new interpreter
# fails it, so that it is known the helper was a copy of the run.
_ALONE = """
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from reconcile import helper
helper.HELP_FROM, helper.HELP_CHANGED_FROM = 0, 1
def started(*args, **kwargs):
    raise AssertionError("a new interpreter was started")
subprocess.Popen = started
import datetime
import reconcile
import reconcile.engine
reconcile.engine._today = lambda: datetime.date(2099, 3, 20)  # the tests' calendar (tests/conftest.py)
from reconcile_builders import config, day
from store.db import open_store
request = json.loads(sys.argv[2])
engine = open_store(request["url"])
forkable = helper.forkable()
said = []
result = reconcile.run(engine, config(), as_of=day(request["when"]), keep=False, incremental=request["incremental"],
                       on_progress=said.append)
print(json.dumps({"scope": result.scope, "said": said, "forkable": forkable}))
"""


def _run_helped(engine, when: str, *, fork: bool, incremental: bool, tmp: Path) -> tuple[str, list[str]]:
    """A run of `engine`'s store that keeps nothing: in a process of one thread (`fork`: its helper
    a copy of it), else here (its helper a new interpreter); its scope and what it said."""
    if not fork:
        said: list[str] = []
        result = reconcile.run(engine, config(), as_of=day(when), keep=False, incremental=incremental,
                               on_progress=said.append)
        return result.scope, said
    request = {"url": engine.url.render_as_string(hide_password=False), "when": when, "incremental": incremental}
    done = subprocess.run([sys.executable, "-c", _ALONE, str(Path(__file__).parent), json.dumps(request)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "TMPDIR": str(tmp)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # nothing of the copy's reaches the run's output
    said_then = json.loads(done.stdout)
    assert said_then["forkable"]
    return said_then["scope"], said_then["said"]


@pytest.mark.slow_on_postgresql
@pytest.mark.parametrize("fork", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["a copy of the run's process", "a new interpreter"])
def test_a_run_with_a_helper_records_exactly_what_a_run_alone_records(two_stores, tmp_path, monkeypatch, fork):
    alone, helped = two_stores
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 1)
    if not fork:  # here, as from the service: a new interpreter, never a copy
        monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")

        def copied(*args, **kwargs):
            raise AssertionError("the helper was a copy of the run's process")

        monkeypatch.setattr(helper, "_fork", copied)
    # this test's own temporary folder: another test's helper may come and go in the shared one
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    folders = _helper_folders()
    assert not folders
    said: list[str] = []
    full_said: list[str] = []
    for when, change in (("1405/09/02", False), ("1405/09/20", True)):
        if change:  # a full run after a change: the comparison with stored deviations, helped too
            _change(alone)
            _change(helped)
        reconcile.run(alone, config(), as_of=day(when), keep=True)  # kept findings: never helped
        scope, run_said = _run_helped(helped, when, fork=fork, incremental=False, tmp=tmp_path / "tmp")
        assert scope == "full"
        # a full run on SQLite gives its helper more rules than the two year-to-date ones
        assert f"judging {', '.join(_aside_names(helped, full=True))} in a helper process" in run_said
        said += run_said
        full_said += run_said
    # an incremental run after a sync changed agreements with operations (HELP_CHANGED_FROM: 1)
    _synced_change(alone)
    _synced_change(helped)
    reconcile.run(alone, config(), as_of=day("1405/09/21"), keep=True, incremental=True)
    scope, run_said = _run_helped(helped, "1405/09/21", fork=fork, incremental=True, tmp=tmp_path / "tmp")
    assert scope == "incremental"
    assert f"judging {', '.join(_aside_names(helped, full=False))} in a helper process" in run_said
    said += run_said
    assert sum("in a helper process" in line for line in said) == 3  # the helper judged in each run
    names = [rule.name for rule, _ in enabled_rules(config())]
    aside = {names.index(name) for name in _aside_names(helped, full=True)}
    # the full runs judged none of the helper's rules themselves (said as the run says each it judges)
    assert not any(line == f"judging {i + 1}/{len(names)}: {names[i]}" for line in full_said for i in aside)
    assert f"judging 1/{len(names)}: {names[0]}" in full_said
    a, b = recorded(alone), recorded(helped)
    assert b[0] == a[0] and b[1] == a[1] and b[2] == a[2]
    assert {row.rule for row in a[0]} >= {"operation_shortfall", "unit_cost_overrun", "progress_lag"}
    assert any(event.event == "updated" or event.event == "resolved" for event in a[1])
    last_rules = a[2][-1][0]  # the change made findings of the helper's rules, judged by it in the other store
    assert last_rules["expense.operation_shortfall"]["findings"] + last_rules["expense.unit_cost_overrun"]["findings"] > 0
    assert _helper_folders() == folders  # its file is gone with it


@pytest.mark.slow_on_postgresql
def test_the_helpers_rules_are_taken_between_the_runs_own_and_opened_in_their_place(two_stores, tmp_path,
                                                                                    monkeypatch):
    """Once every rule before the helper's is staged and opened, the run takes what its helper has
    written between its own rules, without waiting, and opens each of the helper's rules it has
    taken whole; its own rules after them are opened only once those are. The two orders made
    certain, no sleep: the helper ahead (the run waits for its process to end at the first such
    moment: all its rules are taken between the run's own, none at the end), one of its rules ahead
    (the run is shown what it said up to its first rule's end then, nothing more until the end: the
    second rule taken at the end, from where the first ended) or behind (it is seen to have written
    nothing until the run's own rules are all judged: all taken at the end, the run's last rules
    staged and waiting for them): one way for each of a first run, a full run after a change and an
    incremental one (a helper is a new interpreter here: three runs, not nine). The store ends as a
    run alone leaves it, ids included."""
    alone, helped = two_stores
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 1)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")  # a new interpreter: this worker has threads
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    ended_between: list[int] = []
    ended_at_the_end: list[int] = []
    take_ready, finish = helper.Helper.take_ready, helper.Helper.finish
    ahead = ""  # each run's way, set below

    shown: list[bool] = []

    def between(self, take, done):
        if ahead == "none" or (ahead == "one" and shown):
            return  # nothing (more) seen written yet
        self.process.wait(timeout=60)  # its pipe holds a few short lines: it never waits for the run

        def noted(i: int) -> None:
            ended_between.append(i)
            done(i)

        if ahead == "one":  # what it said up to its first rule's end; the rest left to the pipe's reader
            lines, said = self._said.ready(), self._said
            cut = next(k for k, line in enumerate(lines) if "done" in line) + 1
            said.buffer = b"".join(json.dumps(line).encode() + b"\n" for line in lines[cut:]) + said.buffer
            said.ended = False  # as if the rest were still to come (the next read finds the pipe's end)
            self._heard(lines[:cut], take, noted)
            shown.append(True)
            return
        take_ready(self, take, noted)

    def finishing(self, take, done=None):
        def noted(i: int) -> None:
            ended_at_the_end.append(i)
            done(i)

        return finish(self, take, noted)

    monkeypatch.setattr(helper.Helper, "take_ready", between)
    monkeypatch.setattr(helper.Helper, "finish", finishing)
    names = [rule.name for rule, _ in enabled_rules(config())]
    dialect = helped.dialect.name
    carried_from: list[int | None] = []
    carried = Found._carried

    def counted_carried(self, active_before, resolved):
        carried_from.append(active_before)
        return carried(self, active_before, resolved)

    monkeypatch.setattr(Found, "_carried", counted_carried)
    for when, change, incremental, ahead in (("1405/09/02", None, False, "none"), ("1405/09/20", _change, False, "one"),
                                             ("1405/09/21", _synced_change, True, "all")):
        if change is not None:
            change(alone)
            change(helped)
        reconcile.run(alone, config(), as_of=day(when), keep=True, incremental=incremental)  # never helped
        said: list[str] = []
        with monkeypatch.context() as patched:
            if dialect == "sqlite":  # the helper counted what was active at the run's moment: no scan
                patched.setattr(Found, "_carry", lambda *args, **kwargs: pytest.fail("the deviations scanned"))
            reconcile.run(helped, config(), as_of=day(when), keep=False, incremental=incremental,
                          on_progress=said.append)
        assert any("in a helper process" in line for line in said)
        indices = helper.aside(names, full=not incremental, dialect=dialect)  # more in a full run on SQLite
        # the run's own rules before the helper's first and after it: the order of opening is tested
        assert 0 < min(indices) and any(i not in indices for i in range(min(indices), len(names)))
        assert (ended_between, ended_at_the_end) == {"all": (indices, []), "one": (indices[:1], indices[1:]),
                                                     "none": ([], indices)}[ahead]
        # the carried counted from the helper's count of what was active (SQLite), else by a scan
        assert carried_from == ([] if dialect != "sqlite" or not incremental else [carried_from[0]])
        assert all(n is not None and n > 0 for n in carried_from)
        ended_between.clear()
        ended_at_the_end.clear()
        shown.clear()
        carried_from.clear()
    a, b = recorded(alone), recorded(helped)
    assert b[0] == a[0] and b[1] == a[1] and b[2] == a[2]
    assert {row.rule for row in a[0]} >= {"operation_shortfall", "unit_cost_overrun", "progress_lag"}
    life = a[2][-1][1]  # the incremental run paired, resolved and carried: every term of the count matters
    assert life["resolved"] > 0 and life["unchanged"] > 0 and life["updated"] + life["escalated"] + life["lowered"] > 0
    assert not _helper_folders()


def test_the_helpers_lines_are_read_as_far_as_they_are_said_without_waiting():
    """Between the run's rules its helper's pipe is read without waiting: half a line is kept until
    its end comes, nothing said is nothing read, and the pipe's end is noticed (a real pipe)."""
    read, write = os.pipe()
    lines = helper._Lines(read)
    try:
        assert lines.ready() == [] and not lines.ended  # nothing said yet: no wait
        os.write(write, b'{"upto": 10}\n{"done": 8, "up')
        assert lines.ready() == [{"upto": 10}]  # the half line waits for its end
        assert lines.ready() == []
        os.write(write, b'to": 20}\n')
        assert lines.ready() == [{"done": 8, "upto": 20}]
        os.write(write, b'{"counts": {}}\n')
        os.close(write)
        write = -1
        assert list(lines.rest()) == [{"counts": {}}] and lines.ended
        assert lines.ready() == []
    finally:
        os.close(read)
        if write >= 0:
            os.close(write)


def test_a_helpers_pipe_above_descriptor_1023_is_read_too():
    """A long-running service may hold over a thousand descriptors: select() refuses those above
    1023, so the pipe is polled (a real pipe moved to descriptor 1500)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1500:
        pytest.skip(f"this process may open only {hard} descriptors")
    read, write = os.pipe()
    high = 1500
    try:
        if soft != resource.RLIM_INFINITY and soft <= high:
            resource.setrlimit(resource.RLIMIT_NOFILE, (high + 1, hard))
        os.dup2(read, high)
        lines = helper._Lines(high)
        assert lines.ready() == []
        os.write(write, b'{"upto": 5}\n')
        assert lines.ready() == [{"upto": 5}]
    finally:
        for fd in (read, write, high):
            with contextlib.suppress(OSError):
                os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_only_a_large_run_that_keeps_nothing_is_helped(_migrated, tmp_path, monkeypatch):
    engine = _store(_migrated, tmp_path / "store.db")
    names = [rule.name for rule, _ in enabled_rules(config())]
    assert helper.helped(engine, names, keep=False) == []  # 120 performance rows: not worth a process
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    assert [names[i] for i in helper.helped(engine, names, keep=False)] == list(helper.HELPED)
    assert helper.helped(engine, names, keep=True) == []
    assert helper.helped(engine, [n for n in names if n not in HELPED], keep=False) == []
    said: list[str] = []
    # a what-if holds no write lock: a helper could read another moment of the store than the run's
    reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False, dry_run=True, on_progress=said.append)
    reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    _synced_change(engine)  # an incremental run whose changed agreements have fewer operations than…
    monkeypatch.setattr(helper, "HELP_CHANGED_FROM", 10_000)
    reconcile.run(engine, config(), as_of=day("1405/09/03"), keep=False, incremental=True, on_progress=said.append)
    assert not any("helper" in line for line in said)  # …pays for a helper judges them itself
    monkeypatch.setattr(helper, "HELP_CHANGED_FROM", 1)  # a new interpreter costs more: its own threshold
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 10_000)
    assert not helper.worth_helping(9_999, quick=False) and helper.worth_helping(10_000, quick=False)
    assert helper.worth_helping(1, quick=True) and not helper.worth_helping(0, quick=True)
    assert helper.worth_helping(None, quick=False) and helper.worth_helping(None, quick=True)  # a full run
    engine.dispose()


def test_a_helper_is_a_copy_of_the_run_only_from_a_process_of_one_thread(monkeypatch):
    """A lock another thread held at a fork would stay held in the copy for ever: from the service
    (a scheduler's threads) or a test runner's worker the helper is a new interpreter. Threads are
    counted by the kernel: a thread no Python module started counts too. One new process (this one
    has pytest's threads), asked in turn: alone; told not to fork; with SIGCHLD ignored, so that the
    kernel would reap a copy; alone again; with a thread the threading module does not know of."""
    states = ("import _thread, os, signal, time; from reconcile import helper; said = [helper.forkable()]; "
              "os.environ['BUDGETWATCH_HELPER_FORK'] = '0'; said.append(helper.forkable()); "
              "del os.environ['BUDGETWATCH_HELPER_FORK']; "
              "signal.signal(signal.SIGCHLD, signal.SIG_IGN); said.append(helper.forkable()); "
              "signal.signal(signal.SIGCHLD, signal.SIG_DFL); said.append(helper.forkable()); "
              "_thread.start_new_thread(time.sleep, (5,)); time.sleep(0.2); said.append(helper.forkable()); "
              "print(said)")
    env = {k: v for k, v in os.environ.items() if k != "BUDGETWATCH_HELPER_FORK"}
    said = subprocess.run([sys.executable, "-c", states], capture_output=True, text=True, env=env, timeout=60)
    assert said.stdout.strip() == "[True, False, False, True, False]", said.stderr


def test_a_copy_whose_run_is_gone_stops_and_removes_its_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the store it would open, were it to open one, is not the project's
    folder = tmp_path / "budgetwatch-helper-x"
    folder.mkdir()
    request = {"url": "sqlite:///unused.db", "settings": config().model_dump(mode="json"), "day": "1405-09-02",
               "years": [1405], "rules": [8], "path": str(folder / "found.pickle"), "parent": 1, "only": None}
    copy = helper._fork(request, folder / "stderr.txt")  # its parent is this process, not process 1
    assert not set(helper._SIGNALS) & signal.pthread_sigmask(signal.SIG_BLOCK, ())  # held back only across the fork
    copy.communicate()
    assert copy.returncode == 1 and copy.stdout.closed
    assert not folder.exists()  # no run is left to remove its file: it did
    assert not (tmp_path / "unused.db").exists()  # it stopped before opening anything


def test_the_folder_of_a_run_killed_after_its_helper_ended_goes_with_the_next_run(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # a process id no process can have
    left = tmp_path / f"budgetwatch-helper-{gone}-abc"
    left.mkdir()
    (left / "found.pickle").write_bytes(b"findings")
    alive = tmp_path / f"budgetwatch-helper-{os.getpid()}-def"  # a run that is still running
    alive.mkdir()
    other = tmp_path / "budgetwatch-helper-xyz"  # not named by a process: not the sweep's
    other.mkdir()
    odd = [tmp_path / "budgetwatch-helper-²-a", tmp_path / f"budgetwatch-helper-{10 ** 30}-b"]
    for folder in odd:  # digits that are not a process id: left, and no error
        folder.mkdir()
    assert helper.sweep_folders() == [left]
    assert not left.exists() and alive.exists() and other.exists() and all(f.exists() for f in odd)


def test_a_helper_whose_pipe_breaks_takes_its_run_for_gone(tmp_path, monkeypatch):
    """The run closes the pipe only once the helper has ended; broken, the run was killed (and its
    process may not yet be reparented): the helper removes its folder."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "budgetwatch-helper-y"
    folder.mkdir()
    request = {"url": "sqlite:///unused.db", "settings": config().model_dump(mode="json"), "day": "1405-09-02",
               "years": [1405], "rules": [], "path": str(folder / "found.pickle"), "parent": os.getppid(),
               "only": None}
    read, write = os.pipe()
    os.close(read)
    err = io.StringIO()
    out = open(write, "w", encoding="utf-8")  # noqa: SIM115 - closed below, where the pipe breaks again
    assert helper.serve(request, out, err) == 1
    with contextlib.suppress(BrokenPipeError):
        out.close()
    assert err.getvalue().startswith("BrokenPipeError") and not folder.exists()


@pytest.mark.parametrize("fork", [True, False], ids=["a copy of the run's process", "a new interpreter"])
def test_a_helper_that_fails_fails_the_run_saying_so_and_records_nothing(_migrated, tmp_path, monkeypatch, fork):
    engine = _store(_migrated, tmp_path / "store.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    perf = OperationPerformance.__table__
    with engine.begin() as conn:  # a figure no reader can read, in a row only the helper's rules read
        conn.execute(sa.update(perf).where(perf.c.id == 3).values(quantity=sa.literal_column("'x'")))
    failed = (r"the helper process judging (.*, )?expense\.operation_shortfall, expense\.unit_cost_overrun(, .*)? "
              r"failed: InvalidOperation")
    if fork:  # as the command runs it: in a process of one thread
        with pytest.raises(AssertionError, match=failed):
            _run_helped(engine, "1405/09/02", fork=True, incremental=False, tmp=tmp_path)
    else:
        monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")
        with pytest.raises(RuntimeError, match=failed):
            reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Deviation.__table__)).scalar() == 0
        run = conn.execute(sa.select(ReconcileRun.__table__)).one()
    assert run.status == "failed" and "the helper process judging" in run.stats["error"]
    engine.dispose()


def test_a_helper_that_failed_is_noticed_between_the_runs_rules(_migrated, tmp_path, monkeypatch):
    """A helper that ended without its counts fails the run at the next moment the run looks between
    its rules, not once its last rule is judged (the run waits there for the helper's process to
    end: the order made certain)."""
    engine = _store(_migrated, tmp_path / "store.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")
    perf = OperationPerformance.__table__
    with engine.begin() as conn:  # a figure no reader can read, in a row only the helper's rules read
        conn.execute(sa.update(perf).where(perf.c.id == 3).values(quantity=sa.literal_column("'x'")))
    take_ready = helper.Helper.take_ready

    def after_the_helper(self, take, done):
        self.process.wait(timeout=60)
        take_ready(self, take, done)

    monkeypatch.setattr(helper.Helper, "take_ready", after_the_helper)
    said: list[str] = []
    with pytest.raises(RuntimeError, match=r"the helper process judging .* failed: InvalidOperation"):
        reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False, on_progress=said.append)
    names = [rule.name for rule, _ in enabled_rules(config())]
    first = min(helper.aside(names, full=True, dialect="sqlite"))
    # the run looks once every rule before the helper's first is opened: after the last of them (said
    # as "judging <its position + 1>/…"), and judges none after it
    judged = [int(m[1]) for line in said if (m := re.match(r"judging (\d+)/", line))]
    assert max(judged) == first
    engine.dispose()


def test_a_run_that_fails_after_its_helper_started_stops_it_and_removes_its_folder(_migrated, tmp_path, monkeypatch):
    """A failure between the helper's start and the run's judging (naming the changed subjects for
    resolving, reconcile.changes ``name_judged``: a database error, Ctrl-C) ends the helper and
    removes its folder, as a failure while judging does: in the service, whose process lives on,
    nothing else would."""
    engine = _store(_migrated, tmp_path / "store.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 1)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")  # a new interpreter, as the service's
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    reconcile.run(engine, config(), as_of=day("1405/09/02"), keep=False)
    _synced_change(engine)  # an incremental run after it, helped (its changed agreements have operations)
    started: list[helper.Helper] = []
    real_init = helper.Helper.__init__

    def noting(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append(self)

    # the one stand-in of this test: a database that fails at exactly this step cannot be arranged
    # with a real store (the same queries succeed a moment before, in plan()), so the step raises
    def failing(*args, **kwargs):
        raise RuntimeError("the store went away")

    monkeypatch.setattr(helper.Helper, "__init__", noting)
    monkeypatch.setattr(changes, "name_judged", failing)
    with pytest.raises(RuntimeError, match="the store went away"):
        reconcile.run(engine, config(), as_of=day("1405/09/03"), keep=False, incremental=True)
    assert len(started) == 1 and started[0].process.poll() is not None  # ended, not left judging
    assert not started[0].folder.exists() and _helper_folders() == set()
    with engine.connect() as conn:
        runs = conn.execute(sa.select(ReconcileRun.__table__.c.status).order_by(ReconcileRun.__table__.c.id)).scalars()
        assert list(runs) == ["success", "failed"]
    engine.dispose()


def test_a_helper_whose_run_is_gone_stops(_migrated, tmp_path):
    engine = _store(_migrated, tmp_path / "store.db")
    settings = config()
    folder = tmp_path / "budgetwatch-helper-x"
    folder.mkdir()
    request = {"url": str(engine.url), "settings": settings.model_dump(mode="json"), "day": "1405-09-02",
               "years": [1405], "rules": [8], "path": str(folder / "found.pickle"), "parent": 1}  # not its parent
    done = subprocess.run([sys.executable, "-m", "reconcile.helper"], input=json.dumps(request), text=True,
                          capture_output=True, timeout=60)
    assert done.returncode != 0 and "the run that started this helper is gone" in done.stderr
    assert not folder.exists()  # no run is left to remove its file: it did
    engine.dispose()


def test_the_helper_reads_the_run_settings_as_the_run_does():
    settings = config(rules={"operation_shortfall": {"threshold": 0.9}, "unit_cost_overrun": {"enabled": False}})
    again = type(settings).model_validate(json.loads(json.dumps(settings.model_dump(mode="json"))))
    assert [(r.name, lim) for r, lim in enabled_rules(again)] == [(r.name, lim) for r, lim in enabled_rules(settings)]
    assert dict((r.name, lim) for r, lim in enabled_rules(again))["expense.operation_shortfall"].threshold == \
        Decimal("0.9")


@pytest.mark.slow
def test_a_spare_interpreter_serves_the_next_run_and_goes_when_let_go(_migrated, tmp_path, monkeypatch):
    """The service keeps a helper interpreter waiting, its modules imported, for its next run
    (its process has a scheduler's threads: no copy); the run takes it instead of starting one, and
    while one waits an incremental run is helped from HELP_CHANGED_FROM operations, as a copy is."""
    alone, helped = _store(_migrated, tmp_path / "alone.db"), _store(_migrated, tmp_path / "helped.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setattr(helper, "HELP_CHANGED_FROM", 1)
    monkeypatch.setattr(helper, "HELP_CHANGED_STARTED_FROM", 10 ** 9)  # a new interpreter: never, here
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")  # as in the service
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    real_start = helper._start_interpreter

    def started(*args, **kwargs):
        raise AssertionError("a new interpreter was started while a spare waited")

    try:
        assert not helper.spare_ready()
        assert helper.keep_spare(helped, config()) and helper.spare_ready()
        assert helper.keep_spare(helped, config())  # one at a time: the same one
        [folder] = _helper_folders()
        assert folder.name.startswith(f"budgetwatch-helper-{os.getpid()}-")
        monkeypatch.setattr(helper, "_start_interpreter", started)
        said: list[str] = []
        reconcile.run(alone, config(), as_of=day("1405/09/02"), keep=True)
        reconcile.run(helped, config(), as_of=day("1405/09/02"), keep=False, on_progress=said.append)
        assert any("in a helper process" in line for line in said) and not helper.spare_ready()
        assert not _helper_folders()  # the run removed the spare's folder with its findings
        monkeypatch.setattr(helper, "_start_interpreter", real_start)
        assert helper.keep_spare(helped, config())  # as the service does after each run
        monkeypatch.setattr(helper, "_start_interpreter", started)
        _synced_change(alone)
        _synced_change(helped)
        said.clear()
        reconcile.run(alone, config(), as_of=day("1405/09/21"), keep=True, incremental=True)
        result = reconcile.run(helped, config(), as_of=day("1405/09/21"), keep=False, incremental=True,
                               on_progress=said.append)
        assert result.scope == "incremental" and any("in a helper process" in line for line in said)
        assert recorded(helped) == recorded(alone)
        monkeypatch.setattr(helper, "_start_interpreter", real_start)
        assert helper.keep_spare(helped, config())
        spare = helper._spare
        helper.let_go_spare()
        assert spare.process.returncode == 0 and not spare.folder.exists() and not helper.spare_ready()
        monkeypatch.setattr(helper, "HELP_FROM", 10 ** 9)  # a small store: no spare is worth its memory
        assert not helper.keep_spare(helped, config()) and not _helper_folders()
    finally:
        helper.let_go_spare()  # none left for the worker's later tests
        alone.dispose()
        helped.dispose()


def test_a_spare_whose_process_is_gone_removes_its_folder(_migrated, tmp_path):
    url = _migrated.sqlite_copy(tmp_path / "store.db")
    script = ("import os, sys; sys.path.insert(0, sys.argv[1])\n"
              "from reconcile import helper\nfrom reconcile_builders import config\nfrom store.db import open_store\n"
              "helper.HELP_FROM = 0\n"
              "assert helper.keep_spare(open_store(sys.argv[2]), config())\n"
              "print(helper._spare.folder, flush=True)\nos._exit(0)  # killed, as it were: nothing let it go\n")
    done = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), url], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "TMPDIR": str(tmp_path),
                                                      "BUDGETWATCH_HELPER_FORK": "0"})
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder.parent == tmp_path
    deadline = time.monotonic() + 30  # the spare, reading its request, finds the pipe closed
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not folder.exists()


def test_a_spare_that_ended_unasked_is_said_and_replaced(_migrated, tmp_path, monkeypatch, caplog):
    engine = _store(_migrated, tmp_path / "store.db")
    monkeypatch.setattr(helper, "HELP_FROM", 0)
    monkeypatch.setenv("BUDGETWATCH_HELPER_FORK", "0")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        assert helper.keep_spare(engine, config())
        first = helper._spare
        first.process.kill()
        first.process.wait()
        with caplog.at_level(logging.WARNING, logger="budgetwatch.reconcile"):
            assert helper.keep_spare(engine, config())
        assert helper._spare is not first and helper.spare_ready() and not first.folder.exists()
        assert any("the spare reconciliation helper had ended (exit code -9" in r.getMessage() for r in caplog.records)
    finally:
        helper.let_go_spare()
        engine.dispose()
