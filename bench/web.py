"""Benchmark of the console's deviations list on a 100k-project store (a script, not a test).

    .venv/bin/python bench/web.py                       # SQLite, 100,000 projects
    .venv/bin/python bench/web.py --size 10000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/web.py --keep /tmp/bench100k.db          # keep the SQLite store, then time it
    .venv/bin/python bench/web.py --store sqlite:////tmp/bench100k.db --analyze    # again, after ANALYZE

Generates the store with bench/reconcile.py's generator (N projects, N/2 agreements), runs one
reconciliation as of 1405/01/20 (about 243,000 deviations at N = 100,000), then serves the console
with uvicorn on loopback, signs in, and for each of a few filtered list pages prints:

- the time to first byte of the page over HTTP (median and slowest of --repeat requests), and
- the plain SQL behind it (the count and the page's SELECT of store/console.py, executed bare on
  the same store), so the difference is what the console adds (session, names, template).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

PAGES = {  # name -> query string of /deviations
    "default (all but dismissed, most severe first), page 1": "",
    "year 1404, critical, social group": "year=1404&severity=critical&group=social",
    "county 3, rule progress_lag, open": "county=3&rule=progress_lag&status=open",
    "agency 305, sorted by last found, newest first": "agency=305&sort=found&dir=desc",
    "default, page 2,000 (OFFSET 99,950)": "page=2000",
}
PASSWORD = "bench password " + os.urandom(6).hex()


def _bench_reconcile():
    """bench/reconcile.py (its generator and scratch stores), loaded under a name that does not
    shadow the reconcile package."""
    spec = importlib.util.spec_from_file_location("bench_reconcile", ROOT / "bench" / "reconcile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _routing() -> dict:
    # bench/reconcile.py makes agencies 300..339: a quarter each to three groups, the rest default
    groups = {**{str(c): "social" for c in range(300, 310)}, **{str(c): "infrastructure" for c in range(310, 320)},
              **{str(c): "production" for c in range(320, 330)}}
    return {"default": "consolidation", "agencies": groups}


def _sql_ms(engine, query_string: str, config, repeat: int) -> list[float]:
    """The count and the page SELECT of store/console.py for this query string, timed bare."""
    from starlette.datastructures import QueryParams

    from store import console as store
    from web.pages.deviations import parse_query

    query, _ = parse_query(QueryParams(query_string), config.routing)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with engine.connect() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(store.dev).where(*store._where(query))).scalar_one()
            conn.execute(store.deviation_page_query(query)).all()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _ttfb_ms(client: httpx.Client, path: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        with client.stream("GET", path) as response:
            chunks = response.iter_raw()
            next(chunks)  # the first bytes of the body
            first = time.perf_counter()
            assert response.status_code == 200, response.status_code
            for _ in chunks:  # the rest, so the connection is free for the next request
                pass
        times.append((first - start) * 1000)
    return times


def _analyze(engine) -> None:
    """What a store in steady state has: statistics of its tables, its WAL folded into the file."""
    if engine.dialect.name == "sqlite":
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM (ANALYZE) deviation"))
    print("statistics refreshed (ANALYZE) before timing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="projects to generate (agreements: half)")
    parser.add_argument("--database", help="postgresql+psycopg://... (default: a SQLite file in a temporary folder)")
    parser.add_argument("--repeat", type=int, default=7, help="requests per page")
    parser.add_argument("--store", help="an existing store this script made (--keep), generated and reconciled")
    parser.add_argument("--keep", help="SQLite: generate the store into this file and keep it (for --store)")
    parser.add_argument("--analyze", action="store_true",
                        help="refresh the planner's statistics (ANALYZE) and checkpoint the WAL before timing")
    args = parser.parse_args()

    import uvicorn

    import reconcile
    from budgetwatch.config import parse_config
    from foundation.jalali import parse_day
    from store.db import open_store
    from store.models import Deviation
    from store.users import users
    from web import create_app
    from web.users import create

    bench = _bench_reconcile()
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        config = parse_config({"data_dir": folder, "routing": _routing()})
        if args.store:
            engine = open_store(args.store)
        else:
            if args.keep:
                Path(args.keep).unlink(missing_ok=True)
                url = f"sqlite:///{Path(args.keep).resolve()}"
            else:
                url = stack.enter_context(bench.fresh_store(args.database, Path(folder), args.size))
            engine = open_store(url)
            started = time.perf_counter()
            bench.generate(engine, args.size)
            print(f"store of {args.size:,} projects generated in {time.perf_counter() - started:.0f} s")
            started = time.perf_counter()
            result = reconcile.run(engine, config.reconcile, as_of=parse_day(bench.AS_OF))
            print(f"reconciled in {time.perf_counter() - started:.0f} s: {len(result.findings):,} findings")
        with engine.connect() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(Deviation.__table__)).scalar_one()
        print(f"{total:,} deviations in the store")
        if args.analyze:
            _analyze(engine)
        with engine.begin() as conn:  # a second run with --store: the user is there already
            conn.execute(sa.delete(users).where(users.c.username == "bench"))
        create(engine, "bench", PASSWORD, role="consolidation")

        app = create_app(engine, config, secret=os.urandom(32).hex())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)[1]  # the form's
                assert client.post("/login", data={"username": "bench", "password": PASSWORD,
                                                   "csrf": token}).status_code == 303
                print(f"\n{'page':<58} {'TTFB median / max':>20} {'bare SQL median':>16}")
                for name, query_string in PAGES.items():
                    path = "/deviations" + (f"?{query_string}" if query_string else "")
                    _ttfb_ms(client, path, 1)  # warm: the first request reads the tables into the cache
                    http = _ttfb_ms(client, path, args.repeat)
                    sql = _sql_ms(engine, query_string, config, args.repeat)
                    print(f"{name:<58} {statistics.median(http):>8.0f} / {max(http):>5.0f} ms "
                          f"{statistics.median(sql):>12.0f} ms")
        finally:
            server.should_exit = True
            thread.join(10)
            engine.dispose()


if __name__ == "__main__":
    main()
