"""Benchmark of a full and an incremental sync against the simulator (a script, not a test).

    .venv/bin/python bench/sync.py                       # 20,000 projects, 10,000 agreements, 50 ms
    .venv/bin/python bench/sync.py --projects 2000 --agreements 1000   # a quick look

The simulator runs in this process (its request log counts what the sync asked for); the sync runs
as `budgetwatch sync` in a child process, so its wall time and peak memory are its own. It prints:

- wall time of a full sync against the politeness bound = requests ÷ concurrency × latency;
- requests made against the fewest the contracts allow (list pages + one detail per project;
  agreement pages + operations + performance per agreement, + login/token);
- an incremental sync after ``--change`` of the items changed: requests against list pages +
  details of changed items;
- the peak memory (PSS) and the CPU time of the sync's processes together (sampled every 0.25 s),
  for the full and for the incremental sync.

``--preload N`` first fills the fresh store with bench/reconcile.py's generator (N projects and
N/2 agreements of fiscal year 1404, straight into the database), so that the full sync runs into an
already large store (issue 17: its memory stays under 300 MB). Below N = 1,000,000 their codes cannot
collide with the simulator's (projects ``1300xxxxxx-001`` against its plans ``13`` + 01..59 + six
digits, agreements ``1404-NNNNNN`` against ``YEAR-AGENCY-SERIAL``); the script checks and stops if
any do. So the full sync marks every generated project-year and agreement of 1404 gone (counted in
"gone"); agency codes 301 and 305 are both the generator's and the simulator's: the sync renames them.

``--sync-tree DIR`` runs the sync of another checkout (a git worktree of an earlier commit) against
this checkout's simulator: a before/after comparison of the sync alone, whatever the simulator
became meanwhile.

SABA answers 429 above 10 requests a second per token. At that limit no client can reach the
politeness bound, so by default the benchmark lifts the simulator's limit (``--saba-rate``) and
the client's, to measure the engine itself; `--saba-rate 10` shows the contract's real ceiling.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foundation.jalali import TEHRAN  # noqa: E402
from simulator import Faults, Simulator, SimulatorConfig  # noqa: E402
from store.db import open_store, scratch_schema  # noqa: E402
from bench_memory import TreeSampler  # noqa: E402

CLOCK = datetime(2026, 11, 25, 10, 0, tzinfo=TEHRAN)
YEARS = [1404, 1405]


def write_config(path: Path, sim: Simulator, database: str, concurrency: int, saba_rate: float) -> dict[str, str]:
    env = dict(os.environ)
    sources = {}
    for name, url in (("nezarat4", sim.nezarat_url), ("saba", sim.saba_url)):
        user, password = sim.credentials[name]
        env[f"BENCH_{name.upper()}_PASSWORD"] = password
        sources[name] = dict(base_url=url, username=user, password_env=f"BENCH_{name.upper()}_PASSWORD",
                             fiscal_years=YEARS, concurrency=concurrency)
    sources["nezarat4"]["page_pause_seconds"] = 0
    sources["saba"]["rate_limit_per_second"] = min(saba_rate * 0.9, 10)
    path.write_text(yaml.safe_dump({"database": {"url": database}, "sources": sources}), encoding="utf-8")
    if saba_rate > 10:
        # the config caps the client at the contract's 10/s; the benchmark lifts it on purpose
        env["BUDGETWATCH_BENCH_SABA_RATE"] = str(saba_rate * 0.9)
    return env


CPU = {"seconds": 0.0}


def bench_reconcile():
    """bench/reconcile.py (its generator), loaded under a name that does not shadow the reconcile
    package (as bench/web.py does)."""
    spec = importlib.util.spec_from_file_location("bench_reconcile", ROOT / "bench" / "reconcile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def preload(database: str, n: int, sim: Simulator) -> None:
    """Fill the store with bench/reconcile.py's generate(engine, n) before the full sync; stop if
    a generated project code or agreement number is also one the simulator serves."""
    t0 = time.perf_counter()
    engine = open_store(database)
    try:
        counts = bench_reconcile().generate(engine, n)
        with engine.connect() as conn:
            codes = set(conn.execute(sa.text("SELECT code FROM project")).scalars())
            numbers = set(conn.execute(sa.text("SELECT agreement_no FROM expense_agreement")).scalars())
    finally:
        engine.dispose()
    with sim.world.lock:
        shared_p = codes & set(sim.world.projects)
        shared_a = numbers & {a.agreement_no for a in sim.world.agreements.values()}
    print(f"store preloaded with bench/reconcile.py's generator in {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; shared with the simulator: {len(shared_p)} project codes, {len(shared_a)} agreement numbers")
    if shared_p or shared_a:
        raise SystemExit("the generated store shares codes with the simulator: the sync would update them")


def run_sync(tree: Path, config: Path, env: dict[str, str], *extra: str) -> tuple[float, int, str]:
    """One sync of the checkout ``tree`` in a child process: (wall seconds, peak resident memory of
    its process tree, output)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, tree / "bench" / "_sync_child.py", str(config), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
        wall = time.perf_counter() - start
    CPU["seconds"] = sampler.cpu_seconds
    peak_kb = sampler.peak_kb
    if proc.returncode != 0:
        print(out[-3000:], err[-3000:], sep="\n")
        raise SystemExit(f"sync failed with exit code {proc.returncode}")
    return wall, peak_kb, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=20_000)
    parser.add_argument("--agreements", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--change", type=float, default=0.01, help="share of items changed before the incremental run")
    parser.add_argument("--saba-rate", type=float, default=1000, help="simulator's SABA rate limit per token")
    parser.add_argument("--sync-tree", type=Path, default=ROOT,
                        help="the checkout whose sync runs (default: this one), e.g. a worktree of an earlier commit")
    parser.add_argument("--preload", type=int, default=0, metavar="N",
                        help="before the full sync, fill the store with bench/reconcile.py's generator: N projects, "
                             "N/2 agreements (default: none, an empty store)")
    parser.add_argument("--database", help="PostgreSQL URL: the store goes in a schema of its own, dropped afterwards (default: a fresh SQLite file)")
    args = parser.parse_args()

    with ExitStack() as stack:  # the store and the config go when the benchmark ends
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bw-bench-")))
        database = stack.enter_context(scratch_schema(args.database, "bench")) if args.database else f"sqlite:///{tmp / 'bench.db'}"
        measure(args, tmp, database)


def measure(args: argparse.Namespace, tmp: Path, database: str) -> None:
    t0 = time.perf_counter()
    sim = Simulator(SimulatorConfig(seed=5, projects=args.projects, agreements=args.agreements, clock=CLOCK,
                                    rate_limit_per_second=args.saba_rate))
    sim.start()
    print(f"simulator: {args.projects} projects, {args.agreements} agreements generated in "
          f"{time.perf_counter() - t0:.1f} s; latency {args.latency_ms} ms; concurrency {args.concurrency}; "
          f"sync of {args.sync_tree}")
    sim.set_faults(Faults(latency_ms=args.latency_ms))
    try:
        config = tmp / "config.yaml"
        env = write_config(config, sim, database, args.concurrency, args.saba_rate)
        latency = args.latency_ms / 1000
        if args.preload:
            preload(database, args.preload, sim)

        sim.log.reset()
        wall, peak_kb, out = run_sync(args.sync_tree, config, env, "--full")
        n_list = sim.log.total(portal="nezarat4", endpoint="search") + sim.log.total(portal="nezarat4", endpoint="page") \
            + sim.log.total(portal="nezarat4", endpoint="list")
        n_total = sim.log.total(portal="nezarat4")
        s_total = sim.log.total(portal="saba")
        projects = len(sim.world.truth_projects())
        agreements = len(sim.world.truth_agreements())
        min_n = sum(math.ceil(len([p for p in sim.world.truth_projects() if p["fiscal_year"] == y]) / 50) for y in YEARS) \
            + projects + 2  # GET + POST login
        min_s = sum(math.ceil(len([a for a in sim.world.truth_agreements() if a["fiscal_year"] == y]) / 200) for y in YEARS) \
            + 2 * agreements + 1
        bound = max(n_total, s_total) / args.concurrency * latency
        print(out.strip())
        print(f"full sync: {wall:.1f} s wall; politeness bound {bound:.1f} s "
              f"(max(nezarat4 {n_total}, saba {s_total}) requests / {args.concurrency} x {latency:.3f} s) "
              f"-> {wall / bound:.2f}x the bound")
        print(f"  nezarat4: {n_total} requests ({n_list} list pages) vs contract minimum {min_n} "
              f"(+{(n_total - min_n) / min_n:.1%})")
        print(f"  saba:     {s_total} requests vs contract minimum {min_s} (+{(s_total - min_s) / min_s:.1%})")
        print(f"  peak memory (PSS) of the sync's processes together: {peak_kb / 1024:.0f} MB; their CPU time {CPU['seconds']:.1f} s")

        n_change_p = max(1, int(args.projects * args.change))
        n_change_a = max(1, int(args.agreements * args.change))
        sim.world.advance(60 * 24)
        changed_p = sim.world.edit_projects(n_change_p)
        changed_a = sim.world.edit_agreements(n_change_a)
        sim.log.reset()
        wall_i, peak_i_kb, out_i = run_sync(args.sync_tree, config, env)
        n_i, s_i = sim.log.total(portal="nezarat4"), sim.log.total(portal="saba")
        n_details = sim.log.total(portal="nezarat4", endpoint="detail")
        s_details = sim.log.total(portal="saba", endpoint="operations") + sim.log.total(portal="saba", endpoint="performance")
        n_pages = n_i - n_details
        s_pages = s_i - s_details
        n_target = n_pages + len(changed_p) * 2
        s_target = s_pages + len(changed_a) * 2
        print(out_i.strip())
        print(f"incremental after {args.change:.0%} changed ({len(changed_p)} projects, {len(changed_a)} agreements): "
              f"{wall_i:.1f} s wall")
        print(f"  nezarat4: {n_i} requests = {n_pages} list/login + {n_details} details; "
              f"target <= list + changed x2 years = {n_target} (x1.05 = {n_target * 1.05:.0f})")
        print(f"  saba:     {s_i} requests = {s_pages} list/token + {s_details} details; "
              f"target <= {s_target} (x1.05 = {s_target * 1.05:.0f})")
        print(f"  peak memory (PSS) of the sync's processes together: {peak_i_kb / 1024:.0f} MB; "
              f"their CPU time {CPU['seconds']:.1f} s")
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
