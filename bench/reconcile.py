"""Benchmark of a full reconciliation run (a script, not a test).

    .venv/bin/python bench/reconcile.py                                    # SQLite, 10k 30k 100k
    .venv/bin/python bench/reconcile.py --sizes 10000 --database postgresql+psycopg://postgres@127.0.0.1:5432/test

For each size N it generates straight into a fresh store (bulk inserts, no portal, no sync): N
capital projects of fiscal year 1404 with 4 quarterly reports each (two funding source rows and the
total row), N/2 expense agreements with 2 chapters and 5 operations reported in all 4 quarters
(20 performance rows per agreement: 1,000,000 at N = 100,000), 40 agencies, 30 counties and a field
visit for 2% of the projects. Figures are drawn (seeded) so that every rule fires on a minority.

Then, back to back on that store, as of 1405/01/20 (every quarter of 1404 closed and due; a past
day, since a run dated after today records nothing — until session 18 the bench judged 1405 as of
1406/01/20, the same shape a year later):
bench/reconcile_sql.py's SQL reference of the rules; the whole `budgetwatch reconcile --format json
--output FILE` command (interpreter start-up and output included) on the new store; the same again
on unchanged data; bench/reconcile_sql.py's ``output_reference``, the same deviations written as
JSON by the database's own functions (the floor of a command's output half); the command after 1 %
of the subjects changed; and ``--full`` after that; then the nightly case, another 1 % changed and
judged the next day (1405/01/21), and ``--full`` that day after it. Each command's line gives its wall time, the
peak memory of its process tree (PSS summed, sampled every 0.25 s), its ratio to the SQL reference,
the run's own recorded time and scope, and the CPU time of the tree; then whether the deviations
equal the reference's and whether the incremental run equals ``--full``. On PostgreSQL each size
gets a schema of its own, dropped afterwards. Targets: issue 17 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_memory import TreeSampler  # noqa: E402
from foundation.jalali import parse_day, quarter_end  # noqa: E402
from store import models as m  # noqa: E402
from store.db import open_store, scratch_schema  # noqa: E402

YEAR = 1404
AS_OF = "1405/01/20"
NEXT_DAY = "1405/01/21"  # the nightly case: the day after AS_OF
BATCH = 20_000
SOURCES = ("ملی", "استانی")
NOW = datetime(2027, 4, 9, tzinfo=timezone.utc)


def dec(value: float, places: int = 2) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def _insert(conn, table, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        conn.execute(sa.insert(table), rows[start:start + BATCH])


def generate(engine, n: int, seed: int = 5) -> dict[str, int]:
    """N projects, N/2 agreements, straight into the store; returns row counts."""
    rnd = random.Random(seed)
    counts: dict[str, int] = {}
    ends = [quarter_end(YEAR, q) for q in (1, 2, 3, 4)]
    with engine.begin() as conn:
        conn.execute(sa.insert(m.SyncRun.__table__), [
            {"id": 1, "source": "nezarat4", "mode": "full", "fiscal_years": str(YEAR), "started_at": NOW,
             "status": "success"},
            {"id": 2, "source": "saba", "mode": "full", "fiscal_years": str(YEAR), "started_at": NOW,
             "status": "success"}])
        _insert(conn, m.Agency.__table__, [{"code": str(300 + i), "name": f"دستگاه اجرایی {i}",
                                            "name_key": f"دستگاهاجرایی{i}"} for i in range(40)])
        _insert(conn, m.County.__table__, [{"id": i + 1, "name": f"شهرستان {i}", "name_key": f"شهرستان{i}",
                                            "code": f"{i:02d}"} for i in range(30)])
        _insert(conn, m.Project.__table__, [{"id": i + 1, "code": f"{1300000000 + i}-001"} for i in range(n)])
        years, credits, reports, visits = [], [], [], []
        for i in range(n):
            start = rnd.choice((0, 0, 10, 25, 40, 60))
            gain = rnd.choice((20, 30, 40))
            targets = [dec(start + gain * k / 4) for k in (1, 2, 3, 4)]
            approved = dec(rnd.uniform(500, 50000))
            notified, allocated = approved, dec(float(approved) * rnd.uniform(0.5, 1.0))
            absorbed = dec(float(allocated) * rnd.uniform(0.3, 1.0))
            if rnd.random() < 0.02:
                absorbed = allocated + 10  # credit_inconsistency
            status = "cancelled" if rnd.random() < 0.02 else "exchanged"
            years.append({"id": i + 1, "project_id": i + 1, "fiscal_year": YEAR, "title": f"پروژه شماره {i}",
                          "title_key": f"پروژه{i}", "agency_code": str(300 + i % 40), "county_id": 1 + i % 30,
                          "start_year": YEAR - 5, "end_year": rnd.choice(tuple(range(YEAR - 1, YEAR + 5))),
                          "progress_at_year_start": dec(start), "agreement_status": status,
                          "target_q1": targets[0], "target_q2": targets[1], "target_q3": targets[2],
                          "target_q4": targets[3], "total_approved": approved * 2, "total_notified": notified * 2,
                          "total_allocated": allocated * 2, "total_absorbed": absorbed * 2, "gone": False,
                          "first_run_id": 1, "last_run_id": 1})
            for k, source in enumerate(SOURCES):
                credits.append({"project_year_id": i + 1, "source": source, "source_key": source,
                                "approved": approved, "notified": notified, "allocated": allocated,
                                "absorbed": absorbed})
            lag_kind = rnd.random()
            progress = Decimal(start)
            for q in (1, 2, 3, 4):
                lag = 0 if lag_kind < 0.8 else rnd.choice((6, 18, 35)) if lag_kind < 0.95 else rnd.uniform(0, 4)
                progress = max(progress - (1 if rnd.random() < 0.01 else 0), dec(float(targets[q - 1]) - lag))
                pending = rnd.random() < 0.05
                reports.append({"project_year_id": i + 1, "quarter": q,
                                "reported_on": ends[q - 1] + timedelta(days=rnd.randint(1, 14)),
                                "progress": progress, "absorbed": dec(float(absorbed) * q / 4),
                                "comptroller_status": "pending" if pending else "approved",
                                "first_run_id": 1, "last_run_id": 1})
            if rnd.random() < 0.02:
                visits.append({"project_code": f"{1300000000 + i}-001", "visited_on": ends[2] + timedelta(days=20),
                               "observed_progress": dec(float(targets[2]) - rnd.choice((0, 5, 12, 30))),
                               "inspector": "کارشناس", "inspector_key": "کارشناس", "imported_at": NOW})
        _insert(conn, m.ProjectYear.__table__, years)
        _insert(conn, m.ProjectCredit.__table__, credits)
        _insert(conn, m.ProgressReport.__table__, reports)
        _insert(conn, m.FieldInspection.__table__, visits)
        counts.update(projects=n, reports=len(reports), project_credits=len(credits), inspections=len(visits))
        del years, credits, reports, visits

        agreements, chapters, operations, performance = [], [], [], []
        op_id = 0
        for a in range(n // 2):
            agreements.append({"id": a + 1, "agreement_no": f"{YEAR}-{a:06d}", "fiscal_year": YEAR,
                               "agency_code": str(300 + a % 40), "county_id": 1 + a % 30, "program_code": "11002",
                               "program_title": "برنامه", "status": "exchanged", "detail_synced": True,
                               "gone": False, "first_run_id": 2, "last_run_id": 2})
            for chapter in (1, 2):
                approved = dec(rnd.uniform(100, 10000))
                spent = approved + 5 if rnd.random() < 0.01 else dec(float(approved) * rnd.uniform(0.2, 0.9))
                chapters.append({"agreement_id": a + 1, "chapter": chapter, "approved": approved,
                                 "notified": approved, "allocated": approved, "spent": spent})
            for k in range(5):
                op_id += 1
                target = rnd.choice((100, 250, 1000))
                unit_cost = dec(rnd.uniform(0.5, 3), 4)
                operations.append({"id": op_id, "agreement_id": a + 1, "code": f"11002-{k:02d}", "title": "فعالیت",
                                   "unit": "نفر", "annual_target": target * 4, "target_q1": target,
                                   "target_q2": target, "target_q3": target, "target_q4": target,
                                   "unit_cost": unit_cost})
                short = rnd.random() < 0.08
                dear = rnd.random() < 0.05
                for q in (1, 2, 3, 4):
                    quantity = dec(target * (rnd.uniform(0.3, 0.8) if short else rnd.uniform(0.9, 1.1)))
                    spent = dec(float(quantity) * float(unit_cost) * (rnd.uniform(1.25, 1.8) if dear else 1.0))
                    pending = rnd.random() < 0.02
                    performance.append({"operation_id": op_id, "quarter": q, "quantity": quantity, "spent": spent,
                                        "reported_on": ends[q - 1] + timedelta(days=rnd.randint(1, 14)),
                                        "comptroller_status": "pending" if pending else "approved",
                                        "first_run_id": 2, "last_run_id": 2})
        _insert(conn, m.ExpenseAgreement.__table__, agreements)
        _insert(conn, m.ExpenseCredit.__table__, chapters)
        _insert(conn, m.Operation.__table__, operations)
        _insert(conn, m.OperationPerformance.__table__, performance)
        counts.update(agreements=len(agreements), operations=len(operations), performance=len(performance))
    if engine.dialect.name == "postgresql":
        # A bulk load leaves work for the server (autovacuum of the million-row tables, a checkpoint
        # of the gigabyte of WAL) that would otherwise run during the timed runs, which a store
        # synced night by night does not have: it is done here, before timing.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM (ANALYZE)"))
            conn.execute(sa.text("CHECKPOINT"))
        # explicit ids were inserted: move the sequences past them
        with engine.begin() as conn:
            for table in ("project", "project_year", "county", "expense_agreement", "operation", "sync_run"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT max(id) FROM {table}))"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    return counts


@contextmanager
def fresh_store(database: str | None, workdir: Path, n: int) -> Iterator[str]:
    """The URL of an empty store for size n: a SQLite file, or a PostgreSQL schema; removed after."""
    if database and not database.startswith("sqlite"):
        with scratch_schema(database, "bench") as url:
            yield url
        return
    path = workdir / f"bench-{n}.db"
    files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
    for f in files:
        f.unlink(missing_ok=True)
    try:
        yield f"sqlite:///{path}"
    finally:
        for f in files:
            f.unlink(missing_ok=True)


def command(url: str, workdir: Path, *extra: str, as_of: str = AS_OF) -> dict:
    """`budgetwatch reconcile --format json --output FILE` as a person runs it: the whole command,
    interpreter start-up included, its process tree's memory sampled."""
    config = workdir / "bench-config.yaml"
    config.write_text(f"database:\n  url: \"{url}\"\n", encoding="utf-8")
    out = workdir / "deviations.json"
    argv = [str(Path(sys.executable).with_name("budgetwatch")), "--config", str(config), "reconcile", "--as-of",
            as_of, "--format", "json", "--output", str(out), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        _out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"reconcile failed ({proc.returncode}): {err[-3000:]}")
    found = {(r["kind"], r["rule"], r["subject"], r["fiscal_year"], r["quarter"] or 0, r["severity"])
             for r in json.loads(out.read_text(encoding="utf-8"))}
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # the run's own time, as it recorded it (no start-up, no output)
        stats = conn.execute(sa.select(m.ReconcileRun.__table__.c.stats)
                             .order_by(m.ReconcileRun.__table__.c.id.desc()).limit(1)).scalar_one()
    engine.dispose()
    return {"wall": wall, "tree_kb": sampler.peak_kb, "tree_cpu": sampler.cpu_seconds, "found": found,
            "run": stats["seconds"], "scope": stats.get("scope")}


def sql_reference(url: str) -> tuple[float, set]:
    """bench/reconcile_sql.py on the same store: seconds and the deviations it finds."""
    from reconcile_sql import reference

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        start = time.perf_counter()
        reference(conn, parse_day(AS_OF), [YEAR])
        seconds = time.perf_counter() - start
        found = set(map(tuple, conn.execute(sa.text(
            "SELECT kind, rule, subject, fiscal_year, quarter, severity FROM ref_deviation")).all()))
        conn.execute(sa.text("DROP TABLE ref_deviation"))
    engine.dispose()
    return seconds, found


def output_reference_beside(url: str, workdir: Path) -> tuple[float, bool]:
    """bench/reconcile_sql.py's output_reference on the same store, right after a command wrote
    deviations.json: its seconds, and whether both files hold the same objects."""
    from reconcile_sql import output_reference

    path = workdir / "reference-output.json"
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        seconds, _written = output_reference(conn, path)
    engine.dispose()
    same = json.loads(path.read_text(encoding="utf-8")) == json.loads(
        (workdir / "deviations.json").read_text(encoding="utf-8"))
    path.unlink()
    return seconds, same


# How the changed subjects' figures change. "lower": every progress × 0.8 and every quantity × 0.7, so
# that every changed operation breaks both year-to-date rules in every closed quarter (a 1 % run opens
# as many deviations as ~9 % of a first run: the worst case, the one sessions 27–40 measured). "mixed":
# each row's figure × a factor of its own from 0.6 to 1.4 (progress kept at or below 100), so that
# some subjects come to break a rule, some stop, most stay as they were — a portal's re-reporting.
CHANGES = {
    "lower": ("progress * 0.8", "quantity * 0.7"),
    "mixed": ("CASE WHEN progress * (0.6 + (id % 81) / 100.0) > 100 THEN 100 "
              "ELSE progress * (0.6 + (id % 81) / 100.0) END",
              "quantity * (0.6 + (id % 81) / 100.0)"),
}


def change_one_percent(url: str, remainder: int = 7, change: str = "lower") -> int:
    """A sync's worth of change: 1 % of the subjects — every report of 1 % of the project years, every
    performance row of 1 % of the agreements (ids ending in `remainder` modulo 100) — get other
    figures (`change`: one of CHANGES), marked with a new sync run as a sync marks what it writes;
    returns the rows changed."""
    progress, quantity = CHANGES[change]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        run = conn.execute(sa.select(sa.func.max(m.SyncRun.__table__.c.id))).scalar() + 1
        conn.execute(sa.insert(m.SyncRun.__table__).values(id=run, source="nezarat4", mode="incremental",
                                                            fiscal_years=str(YEAR), started_at=NOW, status="success"))
        changed = conn.execute(sa.text(f"UPDATE progress_report SET progress = {progress}, last_run_id = :run "
                                       "WHERE project_year_id % 100 = :k"), {"run": run, "k": remainder}).rowcount
        changed += conn.execute(sa.text(
            f"UPDATE operation_performance SET quantity = {quantity}, last_run_id = :run WHERE operation_id IN "
            "(SELECT id FROM operation WHERE agreement_id % 100 = :k)"), {"run": run, "k": remainder}).rowcount
    engine.dispose()
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.replace(",", " ").split()],
                        default=[10_000, 30_000, 100_000], help="project counts, e.g. '10000 100000'")
    parser.add_argument("--database", help="PostgreSQL URL (a schema per size is created and dropped); "
                                           "default: SQLite files in a temporary directory")
    args = parser.parse_args()
    backend = "postgresql" if args.database and args.database.startswith("postgresql") else "sqlite"
    print(f"reconciliation benchmark on {backend}, as of {AS_OF}, sizes {args.sizes}")
    print("each line: the whole command's wall s (start-up and output included), peak MB of its process tree "
          "(PSS), ratio to the SQL reference")
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bw-bench-") as tmp, fresh_store(args.database, Path(tmp), n) as url:
            engine = open_store(url)
            t0 = time.perf_counter()
            counts = generate(engine, n)
            engine.dispose()
            print(f"\nN = {n:,}: {counts['projects']:,} projects, {counts['reports']:,} reports, "
                  f"{counts['agreements']:,} agreements, {counts['operations']:,} operations, "
                  f"{counts['performance']:,} performance rows (generated in {time.perf_counter() - t0:.1f} s)")
            ref_s, ref = sql_reference(url)
            first = command(url, Path(tmp))
            again = command(url, Path(tmp))
            out_s, out_same = output_reference_beside(url, Path(tmp))
            changed = change_one_percent(url)
            step = command(url, Path(tmp))
            whole = command(url, Path(tmp), "--full")
            ref_again, _ = sql_reference(url)
            # the nightly case: another 1 % changed, judged the next day (time-driven rules' clocks
            # move, and every active deviation is found on a new day)
            changed_next = change_one_percent(url, remainder=13)
            step_next = command(url, Path(tmp), as_of=NEXT_DAY)
            whole_next = command(url, Path(tmp), "--full", as_of=NEXT_DAY)

            def line(name: str, r: dict) -> None:
                print(f"  {name:<44} {r['wall']:6.2f} s {r['tree_kb'] / 1024:6.0f} MB  {r['wall'] / ref_s:5.2f}x"
                      f"  (the run itself {r['run']:.2f} s, {r['scope']}; {r['tree_cpu']:.1f} s CPU)")

            print(f"  {'SQL reference (bench/reconcile_sql.py)':<44} {ref_s:6.2f} s"
                  f"            ({len(ref):,} deviations; again after the change: {ref_again:.2f} s)")
            line("reconcile --format json -o FILE", first)
            line("the same again, data unchanged", again)
            print(f"  {'output reference (the database JSON)':<44} {out_s:6.2f} s"
                  f"            (the stored deviations written as the command writes them; same objects: {out_same})")
            line(f"after 1% of subjects changed ({changed:,} rows)", step)
            line("--full after that change", whole)
            line(f"another 1% changed, the next day ({changed_next:,} rows)", step_next)
            line("--full the next day, after that", whole_next)
            print(f"  same deviations as the SQL reference: {first['found'] == ref} "
                  f"({len(first['found'] ^ ref)} differ); incremental = full after the change: "
                  f"{step['found'] == whole['found']} ({len(step['found']):,}); the next day: "
                  f"{step_next['found'] == whole_next['found']} ({len(step_next['found']):,})")
            print(f"  1 % run ÷ --full: {step['run'] / whole['run']:.1%} the same day, "
                  f"{step_next['run'] / whole_next['run']:.1%} the next day")
    print(f"(load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
