"""What a batch of a sync costs the store, as the store fills (a script, not a test).

    .venv/bin/python bench/writes.py                          # 36,000 project details, 18,000 agreements, SQLite
    .venv/bin/python bench/writes.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test

Saves synthetic canonical records (``foundation.records``) the way the sync engine does: batches of
25 project details (``store.nezarat4_rows.save_project_details``), then the agreements a list page
gives (200 at a time, ``store.saba_rows.save_agreements``) and batches of 25 agreements' operations
and performance (``save_agreement_details``), each batch one transaction. Prints the mean milliseconds a batch
took in the first, the slowest and the last tenth of the fill: a batch whose cost grows with the
store shows it here (before the fix of session 4, a batch in the last tenth cost several times one
in the first). PostgreSQL: the tables are created in a schema of their own, dropped at the end;
where the revision has it, the ANALYZE a sync ends with is timed too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy.engine import Connection, Engine  # noqa: E402

from foundation.jalali import TEHRAN  # noqa: E402
from foundation.records import (  # noqa: E402
    AgreementDetail,
    CreditRow,
    ExpenseAgreementRecord,
    ExpenseCredit,
    OperationPerformanceRecord,
    OperationRecord,
    ProgressReportRecord,
    ProjectDetail,
)
try:  # the portals' mappings; before issue 11 both were one module, store.writes (run at a revision to compare)
    from store import nezarat4_rows, saba_rows  # noqa: E402
except ImportError:
    from store import writes as nezarat4_rows  # noqa: E402
    saba_rows = nezarat4_rows
from store.db import open_store, scratch_schema  # noqa: E402
from store.models import SyncRun, utcnow  # noqa: E402

MODIFIED = datetime(2026, 10, 20, 9, 30, tzinfo=TEHRAN)
COUNTIES = ["اهواز", "دزفول", "آبادان", "خرمشهر", "شوشتر", "بهبهان", "ایذه", "مسجدسلیمان"]
BATCH = 25


def project(n: int) -> ProjectDetail:
    amount = Decimal(1000 + n % 997)
    return ProjectDetail(
        portal_id=n // 2, fiscal_year=1404 + n % 2, project_code=f"1305{n // 2:06d}-001",
        title=f"احداث مدرسه‌ی شماره {n}", plan_code=f"13050{n % 40:05d}", plan_title="توسعه فضاهای آموزشی",
        agency_code=f"{300 + n % 30}", agency_name=f"اداره کل {n % 30}", county=COUNTIES[n % len(COUNTIES)],
        location="روستا", start_year=1402, end_year=1406, total_cost=amount * 10,
        progress_at_year_start=Decimal("0.5"), agreement_no=f"1405-{n:05d}", agreement_date=date(2026, 5, 2),
        agreement_status="exchanged", last_modified=MODIFIED,
        credits=[CreditRow("ملی", amount, amount, amount, amount / 2), CreditRow("استانی", amount, amount, 0, 0)],
        credit_total=CreditRow("جمع", amount * 2, amount * 2, amount, amount / 2),
        targets={1: Decimal(10), 2: Decimal(25), 3: Decimal(45), 4: Decimal(70)},
        reports=[ProgressReportRecord(q, date(2026, 3 * q, 8), Decimal(5 * q), amount / 4 * q, "approved",
                                      date(2026, 3 * q, 20), None) for q in (1, 2, 3, 4)],
    )


def agreement(n: int) -> ExpenseAgreementRecord:
    return ExpenseAgreementRecord(
        portal_id=n, agreement_no=f"1405-{n:06d}", fiscal_year=1404 + n % 2, agency_code=f"{100 + n % 30}",
        agency_name=f"دستگاه {n % 30}", county_code=f"06{n % 8:02d}", county_name=COUNTIES[n % len(COUNTIES)],
        program_code="11002", program_title="ترویج کشاورزی", status="exchanged", exchanged_on=date(2026, 5, 10),
        modified_at=MODIFIED,
        credits=[ExpenseCredit(c, "فصل", Decimal(5000), Decimal(4000), Decimal(3000), Decimal(2500)) for c in (1, 2, 3)],
    )


def agreement_detail(n: int) -> AgreementDetail:
    ops = [OperationRecord(f"11002-{k:02d}", f"فعالیت {k}", "نفر", Decimal(400), (Decimal(100),) * 4, Decimal("12.5"))
           for k in range(5)]
    perf = [OperationPerformanceRecord(q, op.code, Decimal(90), Decimal(45), date(2026, 3 * q, 1), "approved",
                                       date(2026, 3 * q, 15), None) for op in ops for q in (1, 2, 3, 4)]
    return AgreementDetail(portal_id=n, operations=ops, performance=perf)


def tenths(times: list[float]) -> str:
    k = max(1, len(times) // 10)
    means = [sum(times[i : i + k]) / len(times[i : i + k]) * 1000 for i in range(0, len(times), k)]
    first, last = means[0], means[-1]
    return (f"{first:6.1f} ms a batch in the first tenth, {max(means):6.1f} in the slowest, {last:6.1f} in the last "
            f"({last / first:.2f}x); mean {sum(times) / len(times) * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=36_000, help="project details (project-years)")
    parser.add_argument("--agreements", type=int, default=18_000, help="agreements (agreement-years)")
    parser.add_argument("--database", help="PostgreSQL URL (default: a fresh SQLite file)")
    args = parser.parse_args()

    with ExitStack() as stack:  # the store goes when the benchmark ends
        if args.database:
            url = stack.enter_context(scratch_schema(args.database, "bench"))
        else:
            url = f"sqlite:///{Path(stack.enter_context(tempfile.TemporaryDirectory(prefix='bw-writes-'))) / 'bench.db'}"
        engine = open_store(url)
        stack.callback(engine.dispose)
        measure(engine, args.projects, args.agreements)


def in_batches(engine: Engine, what: str, items: list, size: int, save: Callable[[Connection, list], Any]) -> list:
    """Save ``items`` ``size`` at a time, each batch one transaction; print the timings; return what
    each save returned."""
    times, results = [], []
    for start in range(0, len(items), size):
        batch = items[start : start + size]
        t0 = time.perf_counter()
        with engine.begin() as conn:
            results.append(save(conn, batch))
        times.append(time.perf_counter() - t0)
    print(f"{what}, {len(items)} in batches of {size}: {tenths(times)}; {sum(times):.1f} s in all")
    return results


def measure(engine: Engine, n_projects: int, n_agreements: int) -> None:
    with engine.begin() as conn:
        run_id = conn.execute(sa.insert(SyncRun.__table__).values(
            source="nezarat4", mode="full", fiscal_years="1404,1405", started_at=utcnow(), status="running",
        )).inserted_primary_key[0]
    in_batches(engine, "project details", [project(n) for n in range(n_projects)], BATCH,
               lambda conn, batch: nezarat4_rows.save_project_details(conn, run_id, batch))
    pages = in_batches(engine, "agreements (list pages)", [agreement(n) for n in range(n_agreements)], 200,
                       lambda conn, batch: saba_rows.save_agreements(conn, run_id, batch))
    ids = [i for saved in pages for i, _ in saved.owed]
    in_batches(engine, "agreement details (5 operations, 20 performance rows each)",
               [(i, agreement_detail(i)) for i in ids], BATCH,
               lambda conn, batch: saba_rows.save_agreement_details(conn, run_id, batch))
    written = getattr(nezarat4_rows, "TABLES_WRITTEN", None)  # from session 4 on
    if engine.dialect.name == "postgresql" and written is not None:
        from store.db import refresh_statistics

        by_source = written if isinstance(written, dict) else {"nezarat4": written, "saba": saba_rows.TABLES_WRITTEN}
        for source, tables in by_source.items():
            t0 = time.perf_counter()
            refresh_statistics(engine, tables)
            print(f"ANALYZE of what a {source} sync writes (store.db.refresh_statistics): "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
