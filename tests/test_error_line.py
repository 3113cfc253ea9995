"""A database error as one line (store.db.error_line): the driver's words, what was being done, never
the statement or its parameters; an engine that shows no parameters in any error. Real databases:
the messages are the drivers' own."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from store.db import ERROR_LINE_LENGTH, error_line, make_engine

SECRET = "argon2id$v=19$m=65536,t=3,p=4$not-a-real-hash"


def _raised(engine, statement, params) -> DBAPIError:
    with engine.connect() as conn, pytest.raises(DBAPIError) as raised:
        conn.execute(statement, params)
    return raised.value


def test_a_database_error_is_the_drivers_words_without_the_statement_or_its_parameters(engine):
    error = _raised(engine, sa.text("SELECT :secret AS v FROM no_such_table"), {"secret": SECRET})
    line = error_line(error)
    assert line in ("database error: no such table: no_such_table",  # SQLite
                    'database error: relation "no_such_table" does not exist')  # PostgreSQL
    # the engine hides the parameters even from SQLAlchemy's own message (a log's traceback)
    assert SECRET not in str(error) and "hidden" in str(error)


def test_a_constraint_says_the_servers_message_never_the_row_it_quotes(engine):
    # PostgreSQL's detail would say "Failing row contains (7, argon2id$…)": a password's hash
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE bw_kept (id INTEGER PRIMARY KEY, secret TEXT, other TEXT NOT NULL)"))
    error = _raised(engine, sa.text("INSERT INTO bw_kept (id, secret, other) VALUES (7, :s, NULL)"), {"s": SECRET})
    assert isinstance(error, IntegrityError)
    assert error_line(error) in (
        "database error: NOT NULL constraint failed: bw_kept.other",  # SQLite
        'database error: null value in column "other" of relation "bw_kept" violates not-null constraint')
    assert SECRET in str(error.orig) or engine.dialect.name == "sqlite"  # the driver's words did quote it


def test_what_was_being_done_comes_last_and_a_long_line_is_cut():
    error = RuntimeError("first line\nsecond line")
    error.add_note("reading the rows of capital.progress_lag")
    assert error_line(error) == "RuntimeError: first line (while reading the rows of capital.progress_lag)"
    noted = ValueError("bad")
    noted.add_note("reading\nthe rows")
    assert error_line(noted) == "ValueError: bad (while reading the rows)"  # one line, whatever a note holds

    class Unsayable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no words")

    assert error_line(Unsayable()) == "Unsayable"
    long = error_line(ValueError("x" * 2000))
    assert len(long) == ERROR_LINE_LENGTH and long.endswith("…")
    assert error_line(KeyError()) == "KeyError"


def test_an_engines_statement_log_shows_no_parameters(tmp_path, caplog):
    # what echo would print, through the logger echo turns on (echo itself would leave its handler
    # on SQLAlchemy's logger for every later test)
    engine = make_engine(f"sqlite:///{tmp_path / 'echo.db'}")
    try:
        with caplog.at_level("INFO", logger="sqlalchemy.engine.Engine"), engine.connect() as conn:
            assert conn.execute(sa.text("SELECT :secret"), {"secret": SECRET}).scalar_one() == SECRET
    finally:
        engine.dispose()
    assert "SELECT ?" in caplog.text and SECRET not in caplog.text
