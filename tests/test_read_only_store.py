"""A command that only reads (or acts on what a store holds) refuses a database that holds no store,
and creates nothing there.

An operator's typo in the store's URL (a new SQLite path, an empty PostgreSQL schema) made `status`,
`export` and the other readers create every table and then report on the empty store as if it were
real: `status` said the sources were merely stale. Each reader now says, in one line naming the
database (never its password), that it holds no budgetwatch store, exit 2, and leaves it as it was:
on SQLite not even the file. The commands that write make the store as before.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.db import StoreError, make_engine, open_store, safe_url
from tests.cli import command_line, one_line

PASSWORD = "s3cret-8812"
EXPERT = "a@mpo-kz.ir"

READERS = [
    ("status",),
    ("status", "--format", "json"),
    ("export", "projects"),
    ("export", "agreements", "--format", "csv", "-o", "agreements.csv"),
    ("runs",),
    ("runs", "--rejected", "1"),
    ("deviations", "list"),
    ("deviations", "show", "1"),
    ("report", "--as-of", "1405/09/04", "--output", "report.html"),
    ("report", "project", "P-1", "--output", "project.html"),
    ("review", "list"),
    ("review", "diff", "--year", "1405", "--quarter", "2"),
    ("alerts", "list"),
    ("alerts", "preview", "--expert", EXPERT),
    ("alerts", "send", "--dry-run", "mail"),
    ("users", "list"),
    ("reconcile", "--dry-run"),
    # commands that act on what a store holds: nothing to act on, nothing made to say "not found" in
    ("deviations", "ack", "1", "--by", "کارشناس", "--reason", "دیده شد"),
    ("deviations", "dismiss", "1", "--by", "کارشناس", "--reason", "نادرست"),
    ("users", "passwd", "someone"),
    ("users", "disable", "someone"),
    ("users", "enable", "someone"),
    ("alerts", "retry", "1"),
    ("review", "approve", "--year", "1405", "--quarter", "2", "--by", "گروه تلفیق"),
]


@pytest.fixture
def empty_url(store_url: str) -> str:
    """An empty database on each backend (SQLite: a file that does not exist yet); on PostgreSQL
    with a password in its URL, which no message may show (the test server trusts any)."""
    if store_url.startswith("sqlite"):
        return store_url
    return sa.engine.make_url(store_url).set(password=PASSWORD).render_as_string(hide_password=False)


def config(url: str) -> str:
    return (f'data_dir: data\ndatabase:\n  url: "{url}"\n'
            f"experts:\n  - name: کارشناس\n    email: {EXPERT}\n    groups: [social]\n")


def tables(url: str) -> int:
    """How many tables the database holds (SQLite: asked only of a file that exists)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return conn.exec_driver_sql("SELECT count(*) FROM pg_class WHERE relnamespace = "
                                            "current_schema()::regnamespace").scalar()
            return len(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def left_as_it_was(url: str, tmp_path) -> None:
    if url.startswith("sqlite"):  # not the file, nor its -wal, -shm or creating lock, nor an output
        assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"], list(tmp_path.iterdir())
    else:
        assert tables(url) == 0


@pytest.mark.parametrize("argv", READERS, ids=" ".join)
def test_a_reader_refuses_a_database_without_a_store_and_creates_nothing(empty_url, tmp_path, capsys, monkeypatch,
                                                                        argv):
    run = command_line(tmp_path, capsys, monkeypatch)
    code, out, err = run(*argv, config=config(empty_url))
    line = one_line(err)
    assert code == 2, err
    assert line.startswith(f"error: no budgetwatch store at {safe_url(empty_url)} ("), line
    assert "nothing was created" in line and "budgetwatch db upgrade" in line
    assert PASSWORD not in err
    assert out == ""  # status: no verdict read from an empty database (it said "stale", exit 6)
    left_as_it_was(empty_url, tmp_path)


def test_the_store_a_writer_makes_is_then_read(empty_url, tmp_path, capsys, monkeypatch):
    run = command_line(tmp_path, capsys, monkeypatch)
    assert run("runs", config=config(empty_url))[0] == 2
    left_as_it_was(empty_url, tmp_path)
    code, _, err = run("reconcile", "--format", "json", config=config(empty_url))  # writes: makes the store
    assert code == 0, err
    code, out, err = run("runs", "--format", "json", config=config(empty_url))
    assert (code, out.strip()) == (0, "[]"), err


def test_db_current_on_a_missing_file_says_behind_and_makes_no_file(tmp_path, capsys, monkeypatch):
    run = command_line(tmp_path, capsys, monkeypatch)
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    code, out, err = run("db", "current", config=config(url))
    assert code == 1, err  # behind, as the README says of `db current`
    assert "schema none" in out and "no such file" in out and "budgetwatch db upgrade" in out
    left_as_it_was(url, tmp_path)


def test_open_store_creates_only_when_asked(store_url, tmp_path):
    with pytest.raises(StoreError, match="no budgetwatch store at"):  # store.db.NoStore
        open_store(store_url, create=False)
    if store_url.startswith("sqlite"):
        assert not any(tmp_path.iterdir())
    else:
        assert tables(store_url) == 0
    open_store(store_url).dispose()  # a writer's: made
    open_store(store_url, create=False).dispose()  # now read as it is
