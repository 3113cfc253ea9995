"""Benchmark of Python's work a finding, rule by rule (a script, not a test).

    .venv/bin/python bench/findings.py                       # SQLite, 20,000 projects
    .venv/bin/python bench/findings.py --size 100000 --repeat 5
    .venv/bin/python bench/findings.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test

Generates a store with bench/reconcile.py's generator (N projects, N/2 expense agreements, fiscal
year 1404), reads each rule's rows once as a run would as of 1405/01/20 (every quarter closed),
then times, with the rows in memory, what a run's Python does with them: judging, wording,
fingerprinting and staging (``rule.findings`` through ``reconcile.lifecycle.stage``, the batches
handed to nothing), under the run's garbage-collection pace (``reconcile.judge.fewer_collections``).
Prints, per rule, its findings and the best microseconds a finding of `--repeat` rounds, then the
whole. No query and no insert is timed: what is left between a run and its SQL reference is this
Python (docs/benchmarks.md, "Where issue 17 stands"). Compare two trees back to back, alternating.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foundation.jalali import parse_day  # noqa: E402
from reconcile.facts import AsOf  # noqa: E402
from reconcile.judge import enabled_rules, fewer_collections, rule_rows  # noqa: E402
from reconcile.lifecycle import stage  # noqa: E402
from reconcile.scope import Scope  # noqa: E402
from reconcile.settings import ReconcileConfig  # noqa: E402
from store.db import open_store  # noqa: E402


def _bench_reconcile():  # bench/reconcile.py's generator and store helpers (a script, not a package)
    spec = importlib.util.spec_from_file_location("bench_reconcile", Path(__file__).with_name("reconcile.py"))
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=20_000, help="projects (default 20,000)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds per rule; the best is printed (default 7)")
    parser.add_argument("--database", help="PostgreSQL URL (a scratch schema, dropped after); default: SQLite")
    args = parser.parse_args()
    generator = _bench_reconcile()
    settings = ReconcileConfig()
    calendar = AsOf(parse_day(generator.AS_OF), settings.report_due_days, settings.approval_due_days)
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as tmp, \
            generator.fresh_store(args.database, Path(tmp), args.size) as url:
        engine = open_store(url)
        counts = generator.generate(engine, args.size)
        print(f"{engine.dialect.name}, N = {args.size:,}: {counts['projects']:,} projects, "
              f"{counts['agreements']:,} agreements, {counts['performance']:,} performance rows; as of "
              f"{generator.AS_OF}, best of {args.repeat} rounds, rows in memory")
        total_findings, total_seconds = 0, 0.0
        with engine.connect() as conn, fewer_collections():
            scope = Scope(conn, calendar, (generator.YEAR,))
            for rule, limits in enabled_rules(settings):
                rows = list(rule_rows(conn, rule.select(scope, limits)))
                best, made = float("inf"), 0
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    made = stage(lambda _batch: None, rule.findings(rows, scope, limits), 0)
                    best = min(best, time.perf_counter() - started)
                each = f"{best / made * 1e6:6.1f} µs a finding" if made else "      —"
                print(f"  {rule.name:<34} {len(rows):>8,} rows {made:>8,} findings {best:7.3f} s {each}")
                total_findings += made
                total_seconds += best
            scope.close()
        engine.dispose()
    print(f"  {'all rules':<34} {'':>13} {total_findings:>8,} findings {total_seconds:7.3f} s "
          f"{total_seconds / max(total_findings, 1) * 1e6:6.1f} µs a finding")


if __name__ == "__main__":
    main()
