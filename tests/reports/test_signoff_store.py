"""Migration 0006 (the sign-off table) goes up and down on each backend, and the database itself
refuses a second sign-off of one period."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.exc import IntegrityError

from store.db import _alembic_config, current_revision, make_engine, upgrade
from store.reviews import Signoff, record_signoff, signoff

ENTRY = Signoff(1405, 2, "مریم احمدی", datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc), None, date(2026, 11, 25),
                "/data/archive/1405-Q2", "ab" * 32)


def test_migration_0006_goes_up_and_down(store_url):
    engine = make_engine(store_url)
    try:
        upgrade(engine, "0006")
        assert current_revision(engine) == "0006"
        with engine.begin() as conn:
            record_signoff(conn, ENTRY)
        with engine.connect() as conn:
            assert signoff(conn, 1405, 2) == ENTRY
            assert signoff(conn, 1405, 1) is None
        command.downgrade(_alembic_config(engine), "0005")
        assert "review_signoff" not in sa.inspect(engine).get_table_names()
        upgrade(engine, "0006")
        assert "review_signoff" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_period_is_signed_off_once(engine):
    with engine.begin() as conn:
        record_signoff(conn, ENTRY)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        record_signoff(conn, ENTRY)
