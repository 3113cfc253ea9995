"""A store filled the real way for report tests: simulator -> sync over HTTP -> field visits ->
reconcile, plus two hand-made projects whose titles a portal could send to attack a report (a
spreadsheet formula, HTML markup). One store per backend for the package: the tests only read it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import nullcontext

import pytest
from sqlalchemy.engine import Engine

import reconcile
from reconcile.inspections import import_file
from store.db import open_store, scratch_schema
from sync import run_sync
from tests.conftest import PG_SKIP_REASON, _pg_url
from tests.reports.builders import Province
from tests.sync.conftest import CLOCK, sim_config, store_config

AS_OF = CLOCK.date()  # 1405/09/04: Q1 and Q2 of 1405 closed
FORMULA_TITLE = '=HYPERLINK("http://example.invalid/x","click")'
MARKUP_TITLE = '<script>window.__injected = 1</script><img src="http://example.invalid/x.png">'


def _fill(url: str, monkeypatch: pytest.MonkeyPatch, folder) -> Engine:
    from simulator import Simulator

    sim = Simulator(sim_config(projects=40, agreements=25))
    sim.start()
    try:
        engine = open_store(url)
        config = store_config(sim, url, monkeypatch)
        assert [o.status for o in run_sync(engine, config.sources)] == ["success", "success"]
        visits = folder / "visits.csv"
        with visits.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, ["project_code", "date", "observed_progress", "inspector", "remarks"])
            writer.writeheader()
            writer.writerows(sim.world.inspections())
        import_file(engine, visits)
        reconcile.run(engine, config.reconcile, as_of=AS_OF)
    finally:
        sim.stop()
    province = Province(engine)
    province.project("X-FORMULA", title=FORMULA_TITLE, agency="305", county="اهواز")
    province.project("X-MARKUP", title=MARKUP_TITLE, agency="305", county="اهواز")
    return engine


@pytest.fixture(scope="package", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def simulated(request, tmp_path_factory) -> Iterator[Engine]:
    folder = tmp_path_factory.mktemp("reports")
    if request.param == "sqlite":
        store = nullcontext(f"sqlite:///{folder / 'store.db'}")
    else:
        base = _pg_url()
        if not base:
            pytest.skip(PG_SKIP_REASON)
        store = scratch_schema(base, "bw")
    with store as url, pytest.MonkeyPatch.context() as monkeypatch:
        engine = _fill(url, monkeypatch, folder)
        yield engine
        engine.dispose()
