"""A sign-off killed at any moment: the store stays as it was, and the next `review approve` of the
period finishes the job. Hand-made province (tests/reports/builders.py) on each backend.

A kill trial: `review approve` killed with -9 just after the archive folder appeared (between the
rename into place and the sign-off's commit) left a complete, read-only folder whose manifest named
the approver, `review list` showed the period open, and every later approval stopped with
"… already exists though the store records no approval: move it away first": a person had to step
in. The approvals here are killed by a real SIGKILL, sent by the approving process to itself at the
instant named (tests/reports/killed_approval.py), so the moment is exact on every run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from reports import archive
from reports.archive import ReviewError
from reports.files import write_whole
from store.reviews import all_signoffs
from tests.reports.builders import make_province
from tests.reports.test_archive import NOW, digests, settings

ROOT = Path(__file__).resolve().parents[2]
LATER = NOW + timedelta(hours=1)
SET_ASIDE = ".1405-Q2.unrecorded-20261125T073000Z"  # the killed approval's moment (NOW), in UTC


def _child(store_url: str, data_dir: Path, at: str, by: str = "tester", **popen) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    return subprocess.Popen([sys.executable, "-m", "tests.reports.killed_approval", store_url, str(data_dir), by, at],
                            cwd=ROOT, env=env, text=True, **popen)


def _killed(store_url: str, data_dir: Path, at: str) -> None:
    child = _child(store_url, data_dir, at, stderr=subprocess.PIPE)
    _, err = child.communicate(timeout=120)
    assert child.returncode == -signal.SIGKILL, err


def _state(engine) -> str:
    return {(p.fiscal_year, p.quarter): p for p in archive.periods(engine, today=NOW.date())}[(1405, 2)]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_bytes())


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "budgetwatch.reports"]


def test_an_approval_killed_after_placing_its_folder_is_finished_by_the_next(engine, store_url, tmp_path, caplog):
    make_province(engine)
    _killed(store_url, tmp_path, "placed")
    target = archive.folder(tmp_path, 1405, 2)
    # what the trial found: the whole folder in place, naming its approver, and no sign-off
    assert _manifest(target)["approved_by"] == "tester"
    with engine.connect() as conn:
        assert all_signoffs(conn) == []
    assert _state(engine).state == "open"  # review list: never shown as an approval
    with pytest.raises(ReviewError, match="not approved"):
        archive.diff(engine, 1405, 2, settings=settings(tmp_path))

    with caplog.at_level(logging.WARNING, logger="budgetwatch.reports"):
        entry = archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=LATER)
    [line] = _warnings(caplog)  # one line says what was set aside, whose, and where it went
    assert "approval by tester" in line and "never recorded" in line and SET_ASIDE in line

    assert _manifest(target)["approved_by"] == "مریم احمدی"  # the archive is the new approval's
    assert Path(entry.archive_path) == target and archive.intact(entry)
    period = _state(engine)
    assert (period.state, period.intact, period.signoff) == ("approved", True, entry)
    assert archive.diff(engine, 1405, 2, settings=settings(tmp_path))[1] == []
    # the killed run's folder kept beside it, hidden, for a person to look at or delete
    assert sorted(p.name for p in archive.root(tmp_path).iterdir()) == [SET_ASIDE, "1405-Q2"]
    assert _manifest(archive.root(tmp_path) / SET_ASIDE)["approved_by"] == "tester"


def test_an_approval_killed_while_writing_leaves_nothing_the_next_keeps(engine, store_url, tmp_path, caplog):
    make_province(engine)
    _killed(store_url, tmp_path, "writing")
    [partial] = archive.root(tmp_path).iterdir()
    assert partial.name.startswith(".1405-Q2.partial-")
    with engine.connect() as conn:
        assert all_signoffs(conn) == []
    with caplog.at_level(logging.WARNING, logger="budgetwatch.reports"):
        entry = archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=LATER)
    assert _warnings(caplog) == []  # nothing was set aside: a temporary folder is no approval
    assert [p.name for p in archive.root(tmp_path).iterdir()] == ["1405-Q2"]
    assert archive.intact(entry)


def test_a_temporary_folder_left_under_this_runs_pid_is_no_obstacle(engine, tmp_path):
    # a container's command often has the same pid each run: a killed run's temporary folder then
    # has the very name this run writes to (it stopped the approval with FileExistsError)
    make_province(engine)
    leftover = archive.root(tmp_path) / f".1405-Q2.partial-{os.getpid()}"
    leftover.mkdir(parents=True)
    (leftover / "report.xlsx").write_bytes(b"half")
    entry = archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=NOW)
    assert [p.name for p in archive.root(tmp_path).iterdir()] == ["1405-Q2"] and archive.intact(entry)


@pytest.mark.slow_on_postgresql  # a folder on disk, not the store
def test_a_live_approvals_folder_is_not_taken_for_a_killed_ones(engine, store_url, tmp_path):
    # Another approval has placed its folder and not committed yet: this one must not set it aside.
    # It waits at the claim (the sign-off's row) and then loses to the unique key, as in a race.
    make_province(engine)
    first = _child(store_url, tmp_path, "hold", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE)
    try:
        assert first.stdout.readline() == "placed\n", first.stderr.read()
        outcome: list[BaseException] = []

        def second() -> None:
            try:
                archive.approve(engine, 1405, 2, by="دیگری", note=None, settings=settings(tmp_path), now=LATER)
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                outcome.append(exc)

        racer = threading.Thread(target=second)
        racer.start()
        time.sleep(1)
        assert racer.is_alive() and not outcome  # waiting for the first to commit or die
        first.stdin.write("\n")
        first.stdin.flush()
        assert first.wait(timeout=120) == 0, first.stderr.read()
        racer.join(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    [error] = outcome
    assert isinstance(error, ReviewError) and "someone else meanwhile" in str(error)
    [period] = [p for p in archive.periods(engine, today=NOW.date()) if p.state == "approved"]
    assert period.signoff.approved_by == "tester" and period.intact
    assert [p.name for p in archive.root(tmp_path).iterdir()] == ["1405-Q2"]


def test_an_approved_periods_archive_is_never_set_aside(engine, tmp_path, caplog):
    make_province(engine)
    entry = archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=NOW)
    before = digests(Path(entry.archive_path))
    with caplog.at_level(logging.WARNING, logger="budgetwatch.reports"), \
            pytest.raises(ReviewError, match="approved by مریم احمدی"):
        archive.approve(engine, 1405, 2, by="tester", note=None, settings=settings(tmp_path), now=LATER)
    assert _warnings(caplog) == []
    assert digests(Path(entry.archive_path)) == before
    assert [p.name for p in archive.root(tmp_path).iterdir()] == ["1405-Q2"] and archive.intact(entry)


@pytest.mark.parametrize("how", ["another period's archive", "a file added", "no manifest"])
def test_a_folder_no_approval_of_the_period_left_is_refused_and_left_as_it_is(engine, tmp_path, how):
    make_province(engine)
    q1 = archive.approve(engine, 1405, 1, by="مریم احمدی", note=None, settings=settings(tmp_path / "b"), now=NOW)
    target = archive.folder(tmp_path, 1405, 2)
    target.mkdir(parents=True)
    for source in Path(q1.archive_path).iterdir():
        (target / source.name).write_bytes(source.read_bytes())
    if how == "a file added":  # an unrecorded approval's folder someone has put a file of theirs into
        manifest = _manifest(target) | {"quarter": 2}
        (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (target / "notes.txt").write_text("keep", encoding="utf-8")
    if how == "no manifest":
        (target / "manifest.json").unlink()
    before = digests(target)
    with pytest.raises(ReviewError, match="already exists though the store records no approval") as err:
        archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=NOW)
    assert err.value.exit_code == 3
    assert digests(target) == before and [p.name for p in archive.root(tmp_path).iterdir()] == ["1405-Q2"]
    with engine.connect() as conn:
        assert [(s.fiscal_year, s.quarter) for s in all_signoffs(conn)] == [(1405, 1)]


# `report --output X` killed while writing left `.X.<pid>.<hex>.partial` beside X, never removed.

def test_a_report_write_killed_midway_is_cleared_by_the_next_write_to_that_name(tmp_path):
    target = tmp_path / "r.html"
    code = ("import os, signal, sys; from pathlib import Path; from reports import files; "
            "os.replace = lambda source, destination: os.kill(os.getpid(), signal.SIGKILL); "
            "files.write_whole(Path(sys.argv[1]), b'half')")
    child = subprocess.run([sys.executable, "-c", code, str(target)], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    [killed] = tmp_path.iterdir()
    assert killed.name.startswith(".r.html.") and killed.name.endswith(".partial")
    live = tmp_path / f".r.html.{os.getppid()}.0123abcd.partial"  # a process still running: maybe writing
    other = tmp_path / f".other.html.{killed.name.split('.')[3]}.0123abcd.partial"  # another file's
    for path in (live, other):
        path.write_bytes(b"")
    write_whole(target, b"whole")
    assert target.read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "r.html"])
