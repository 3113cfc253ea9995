"""A listing row the connector rejects proves its item is still listed: a full sync never marks it
gone (issue 12, item 1). Real HTTP against the simulator."""

from __future__ import annotations

import sqlalchemy as sa

from simulator import Faults
from store.db import open_store
from store.models import ExpenseAgreement, Project, ProjectYear, RejectedRecord
from sync import run_sync
from tests.sync.conftest import store_config


def test_items_whose_listing_rows_are_malformed_are_not_marked_gone(simulator_factory, sqlite_url, monkeypatch):
    sim = simulator_factory()
    engine = open_store(sqlite_url)
    config = store_config(sim, sqlite_url, monkeypatch)
    assert all(o.status == "success" for o in run_sync(engine, config.sources, full=True))
    listing_rows = [m for m in sim.world.malformed_records() if m["where"] in ("list", "agreements")]
    assert listing_rows  # the fault breaks some listing rows of both portals
    sim.set_faults(Faults(malformed=True))
    outcomes = run_sync(engine, config.sources, full=True)
    assert all(o.status == "success" for o in outcomes), [o.error for o in outcomes]
    py, pj, ea = ProjectYear.__table__, Project.__table__, ExpenseAgreement.__table__
    with engine.connect() as conn:
        for m in listing_rows:
            if m["portal"] == "nezarat4":
                gone = conn.execute(sa.select(py.c.gone).join(pj, pj.c.id == py.c.project_id)
                                    .where(pj.c.code == m["key"], py.c.fiscal_year == m["fiscal_year"])).scalar_one()
            else:
                gone = conn.execute(sa.select(ea.c.gone).where(ea.c.agreement_no == m["key"],
                                                               ea.c.fiscal_year == m["fiscal_year"])).scalar_one()
            assert gone is False or gone == 0, m
        rejected = {row.key for row in conn.execute(sa.select(RejectedRecord.__table__.c.key))}
    assert {m["key"] for m in listing_rows} <= rejected  # rejected with their reasons, and kept
    assert sum(o.gone for o in outcomes) == 0
