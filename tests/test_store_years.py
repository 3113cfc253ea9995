"""The fiscal years a store holds (store.reporting.fiscal_years), read by a loose index scan: the
same years as reading every row, on SQLite and PostgreSQL, for the reports (listed only), the
console (newest first) and a reconciliation run (every year)."""

from __future__ import annotations

import sqlalchemy as sa

from reconcile.engine import store_years
from store import console, reporting
from tests.reconcile.reconcile_builders import Store


def _by_reading_every_row(conn: sa.Connection, *, listed_only: bool) -> list[int]:
    def years(table: str) -> set[int]:
        where = " WHERE NOT gone" if listed_only else ""
        return set(conn.execute(sa.text(f"SELECT fiscal_year FROM {table}{where}")).scalars())

    return sorted(years("project_year") | years("expense_agreement"))


def test_an_empty_store_holds_no_year(engine):
    with engine.connect() as conn:
        assert reporting.fiscal_years(conn) == reporting.fiscal_years(conn, listed_only=False) == []
        assert console.fiscal_years(conn) == store_years(conn) == []


def test_every_year_once_with_gaps_gone_rows_and_both_tables(engine):
    store = Store(engine)
    # 1401: only a gone project; 1402 and 1405: projects (several rows each); 1403: only an
    # agreement; 1404: a gone agreement beside a listed one; 1407: only a gone agreement (a gap at 1406)
    store.project("1305012007-001", year=1401, gone=True)
    for n, year in enumerate((1402, 1402, 1405, 1405, 1405)):
        store.project(f"1305012007-1{n:02d}", year=year)
    store.agreement("1403-032-11002", year=1403)
    store.agreement("1404-032-11002", year=1404)
    gone = [store.agreement("1404-032-11003", year=1404), store.agreement("1407-032-11002", year=1407)]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE expense_agreement SET gone = :yes WHERE id IN (:a, :b)"),
                     {"yes": True, "a": gone[0].id, "b": gone[1].id})
    with engine.connect() as conn:
        every = reporting.fiscal_years(conn, listed_only=False)
        listed = reporting.fiscal_years(conn)
        assert every == _by_reading_every_row(conn, listed_only=False) == [1401, 1402, 1403, 1404, 1405, 1407]
        assert listed == _by_reading_every_row(conn, listed_only=True) == [1402, 1403, 1404, 1405]
        assert console.fiscal_years(conn) == every[::-1]  # newest first, gone or not
        assert store_years(conn) == every  # a run judges every year the store holds
