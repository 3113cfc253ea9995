"""A second approval of a period does not wait for ever behind a first that froze mid-approval.

The first approval's claim (its sign-off row, inserted before its files and committed after them)
is held here by a session of the test that inserted it and never commits: a stopped backend, a
client hung mid-transaction. The second approval waited on it without limit; it now gives up after
its wait (PostgreSQL: a lock timeout of its own transaction, shortened here; SQLite: the store's busy
timeout, shortened on the test's engine), says so in one line, and records nothing. On the old code
it hangs: each test runs it in a thread it waits for a bounded time, then lets the first go.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reports import archive
from reports.archive import ReviewError
from store import reviews
from store.db import make_engine
from store.reviews import Signoff
from tests.cli import command_line, one_line
from tests.reports.builders import make_province
from tests.reports.test_archive import NOW, settings

POSTGRESQL_ONLY = pytest.mark.parametrize("store_url", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                                          indirect=True)
SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
WAIT = 0.3  # the second approval's wait, shortened
PATIENCE = 15.0  # how long the test lets the second run before it lets the first go (the old code hangs)


@contextlib.contextmanager
def frozen_first_approval(engine: Engine) -> Iterator[None]:
    """Another approval of 1405 Q2 that took the period's claim and froze before its commit: its
    sign-off row inserted in a transaction left open on a connection of its own (SQLite: holding
    the store's write lock), rolled back at the block's end."""
    with engine.connect() as conn:
        conn.begin()
        reviews.record_signoff(conn, Signoff(1405, 2, "نفر اول", datetime(2026, 11, 25, 7, 0, tzinfo=UTC), None,
                                             NOW.date(), "/elsewhere/1405-Q2", "00" * 32))
        try:
            yield
        finally:
            conn.rollback()


def behind_a_frozen_first(engine: Engine, second) -> tuple[bool, float, object]:
    """Run `second` (an approval) in a thread while the first is frozen: (whether it ended while the
    first was still frozen, how long it took, what it returned or raised)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = second()
        except Exception as exc:  # noqa: BLE001 - what it raised is the test's to look at
            outcome["result"] = exc
        outcome["took"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    with frozen_first_approval(engine):
        thread.start()
        thread.join(PATIENCE)
        ended_while_frozen = not thread.is_alive()
    thread.join()
    return ended_while_frozen, outcome["took"], outcome["result"]


def recorded(engine: Engine) -> reviews.Signoff | None:
    with engine.connect() as conn:
        return reviews.signoff(conn, 1405, 2)


@POSTGRESQL_ONLY
def test_a_second_approval_gives_up_behind_a_frozen_first_and_records_nothing(engine, tmp_path, monkeypatch):
    make_province(engine)
    monkeypatch.setattr(reviews, "CLAIM_WAIT_SECONDS", WAIT, raising=False)  # also run on the code before the bound (it hung)
    folder = tmp_path / "second"
    ended, took, result = behind_a_frozen_first(engine, lambda: archive.approve(
        engine, 1405, 2, by="نفر دوم", note=None, settings=settings(folder), now=NOW))
    assert ended, "the second approval waited on the frozen first without limit"
    assert isinstance(result, ReviewError), result
    assert str(result) == (f"another approval of 1405 Q2 is in progress (waited {WAIT:g} s for it); nothing was "
                           "recorded: try again in a moment")
    assert result.exit_code == 1
    assert WAIT <= took < PATIENCE
    assert recorded(engine) is None  # the frozen one rolled back; the second recorded nothing
    assert not (folder / "archive").exists()  # nor wrote a file
    # once the first is gone, trying again approves
    entry = archive.approve(engine, 1405, 2, by="نفر دوم", note=None, settings=settings(folder), now=NOW)
    assert recorded(engine) == entry and archive.intact(entry)


@SQLITE_ONLY
def test_on_sqlite_a_second_approval_gives_up_after_the_busy_timeout_in_one_clear_error(store_url, engine, tmp_path):
    make_province(engine)
    second = make_engine(store_url)

    @sa.event.listens_for(second, "connect")
    def _shorter_busy_timeout(dbapi_connection, _record):  # the store's 60 s, shortened for the test
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(WAIT * 1000)}")

    folder = tmp_path / "second"
    try:
        ended, took, result = behind_a_frozen_first(engine, lambda: archive.approve(
            second, 1405, 2, by="نفر دوم", note=None, settings=settings(folder), now=NOW))
    finally:
        second.dispose()
    assert ended
    assert isinstance(result, ReviewError), result  # was sqlalchemy's OperationalError "database is locked"
    assert str(result) == (f"the store was busy with another writer for {WAIT:g} s (another approval of 1405 Q2, "
                           "a reconciliation or a sync); nothing was recorded: try again in a moment")
    assert result.exit_code == 1
    assert recorded(engine) is None
    assert not (folder / "archive").exists()


@POSTGRESQL_ONLY
def test_review_approve_behind_a_frozen_approval_is_one_line_and_exit_code_1(engine, store_url, tmp_path, capsys,
                                                                             monkeypatch):
    make_province(engine)
    monkeypatch.setattr(reviews, "CLAIM_WAIT_SECONDS", WAIT, raising=False)  # also run on the code before the bound (it hung)
    run = command_line(tmp_path, capsys, monkeypatch)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    ended, _, result = behind_a_frozen_first(engine, lambda: run(
        "review", "approve", "--year", "1405", "--quarter", "2", "--by", "نفر دوم"))
    assert ended
    code, out, err = result
    assert code == 1, err
    assert one_line(err) == (f"error: another approval of 1405 Q2 is in progress (waited {WAIT:g} s for it); "
                             "nothing was recorded: try again in a moment")
    assert out == ""
    assert recorded(engine) is None
    assert not (tmp_path / "data" / "archive").exists()
