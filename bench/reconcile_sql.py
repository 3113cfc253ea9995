"""A set-based SQL reference of the whole rule catalogue: what the database alone can do (a script, not a test).

    .venv/bin/python bench/reconcile_sql.py URL [--as-of 1405/01/20] [--output FILE]

Written from ../shared/reconciliation-rules.md alone, not from reconcile/: one
``INSERT INTO ref_deviation … SELECT`` per rule (13), with the as-of day's calendar (quarter ends,
due days, which quarters are closed or late) computed in Python and joined as a small table, and the
expense operations' year-to-date sums computed once into a temporary table. It finds each
deviation's identity and severity (kind, rule, subject, fiscal year, quarter, severity); unlike
``budgetwatch reconcile`` it writes no sentence, no figures, no fingerprint, no events and no
history — it is the floor of what a run must cost, not a rival implementation.

Rounding is the catalogue's: ROUND(x, 4) before comparing (PostgreSQL NUMERIC, half away from zero;
SQLite rounds the REAL value, good enough for a reference — bench/reconcile.py counts any
difference from the product's deviations). Used by bench/reconcile.py, which times it back to back
with the product on the same store; run alone it prints its time and its count per rule.

``output_reference`` (``--output FILE``) is the floor of the other half of the command: the store's
deviations written as ``reconcile --format json`` writes them (one JSON array, one object a line,
most severe first, then rule, subject, year, quarter), each object made by the database's own JSON
function (SQLite ``json_object``, PostgreSQL ``json_build_object``) and Python only joining the
lines. Its figures read as the database prints them (30.0 where the command writes 30), so the
files differ in bytes but parse to the same objects (bench/reconcile.py checks).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foundation.jalali import parse_day, quarter_end, year_end, year_start  # noqa: E402

# the catalogue's defaults
REPORT_DUE_DAYS = 15
APPROVAL_DUE_DAYS = 15

ACTIVE_PY = ("py.agreement_status NOT IN ('cancelled', 'awaiting') AND (py.target_q1 IS NOT NULL OR "
             "py.target_q2 IS NOT NULL OR py.target_q3 IS NOT NULL OR py.target_q4 IS NOT NULL)")
IN_SCOPE_PY = "py.fiscal_year IN (SELECT fiscal_year FROM ref_year) AND NOT py.gone"
IN_SCOPE_EA = "ea.fiscal_year IN (SELECT fiscal_year FROM ref_year) AND NOT ea.gone"
ACTIVE_EA = "ea.status NOT IN ('cancelled', 'awaiting')"
TARGET = ("CASE {q} WHEN 1 THEN py.target_q1 WHEN 2 THEN py.target_q2 WHEN 3 THEN py.target_q3 "
          "ELSE py.target_q4 END")
START = "COALESCE(py.progress_at_year_start, 0)"
OP_TARGET = ("CASE {q} WHEN 1 THEN op.target_q1 WHEN 2 THEN op.target_q2 WHEN 3 THEN op.target_q3 "
             "ELSE op.target_q4 END")

RULES: dict[str, str] = {
    # gap = target[q] − actual[q] ≥ 5: minor < 15 ≤ major < 30 ≤ critical
    "capital.progress_lag": f"""
        SELECT 'capital', 'progress_lag', code, fiscal_year, quarter,
               CASE WHEN gap >= 30 THEN 'critical' WHEN gap >= 15 THEN 'major' ELSE 'minor' END
        FROM (SELECT pj.code, py.fiscal_year, pr.quarter, ROUND({TARGET.format(q='pr.quarter')} - pr.progress, 4) AS gap
              FROM project_year py JOIN project pj ON pj.id = py.project_id
              JOIN progress_report pr ON pr.project_year_id = py.id
              JOIN ref_quarter q ON q.fiscal_year = py.fiscal_year AND q.quarter = pr.quarter AND q.closed = 1
              WHERE {IN_SCOPE_PY} AND {ACTIVE_PY} AND pr.progress IS NOT NULL
                AND {TARGET.format(q='pr.quarter')} IS NOT NULL) t
        WHERE gap >= 5""",
    # no report for a quarter past its due day: major
    "capital.missing_report": f"""
        SELECT 'capital', 'missing_report', pj.code, py.fiscal_year, q.quarter, 'major'
        FROM project_year py JOIN project pj ON pj.id = py.project_id
        JOIN ref_quarter q ON q.fiscal_year = py.fiscal_year AND q.late = 1
        WHERE {IN_SCOPE_PY} AND {ACTIVE_PY}
          AND NOT EXISTS (SELECT 1 FROM progress_report pr WHERE pr.project_year_id = py.id AND pr.quarter = q.quarter)""",
    # not approved, entered more than approval_due_days before the as-of day: minor
    "capital.approval_overdue": f"""
        SELECT 'capital', 'approval_overdue', pj.code, py.fiscal_year, pr.quarter, 'minor'
        FROM project_year py JOIN project pj ON pj.id = py.project_id
        JOIN progress_report pr ON pr.project_year_id = py.id
        JOIN ref_quarter q ON q.fiscal_year = py.fiscal_year AND q.quarter = pr.quarter
        WHERE {IN_SCOPE_PY} AND {ACTIVE_PY} AND pr.comptroller_status <> 'approved'
          AND COALESCE(pr.reported_on, q.quarter_end) < :approval_cutoff""",
    # actual[q] < previous − 0.5: major
    "capital.progress_regression": f"""
        SELECT 'capital', 'progress_regression', code, fiscal_year, quarter, 'major'
        FROM (SELECT pj.code, py.fiscal_year, pr.quarter,
                     ROUND(COALESCE((SELECT p2.progress FROM progress_report p2
                                     WHERE p2.project_year_id = py.id AND p2.quarter < pr.quarter
                                       AND p2.progress IS NOT NULL ORDER BY p2.quarter DESC LIMIT 1), {START})
                           - pr.progress, 4) AS drop_
              FROM project_year py JOIN project pj ON pj.id = py.project_id
              JOIN progress_report pr ON pr.project_year_id = py.id
              JOIN ref_quarter q ON q.fiscal_year = py.fiscal_year AND q.quarter = pr.quarter AND q.closed = 1
              WHERE {IN_SCOPE_PY} AND {ACTIVE_PY} AND pr.progress IS NOT NULL) t
        WHERE drop_ > 0.5""",
    # spend_share − physical_share ≥ 0.30 major, ≥ 0.50 critical
    "capital.spend_progress_gap": f"""
        SELECT 'capital', 'spend_progress_gap', code, fiscal_year, quarter,
               CASE WHEN gap >= 0.5 THEN 'critical' ELSE 'major' END
        FROM (SELECT pj.code, py.fiscal_year, pr.quarter,
                     ROUND(COALESCE(pr.absorbed, 0) / py.total_notified
                           - (pr.progress - {START}) / (py.target_q4 - {START}), 4) AS gap
              FROM project_year py JOIN project pj ON pj.id = py.project_id
              JOIN progress_report pr ON pr.project_year_id = py.id
              JOIN ref_quarter q ON q.fiscal_year = py.fiscal_year AND q.quarter = pr.quarter AND q.closed = 1
              WHERE {IN_SCOPE_PY} AND {ACTIVE_PY} AND pr.progress IS NOT NULL AND py.target_q4 IS NOT NULL
                AND py.target_q4 - {START} > 0 AND COALESCE(py.total_notified, 0) > 0) t
        WHERE gap >= 0.3""",
    # a source row or the total: absorbed > allocated, allocated > notified, notified > approved by > 0.5
    "capital.credit_inconsistency": f"""
        SELECT 'capital', 'credit_inconsistency', pj.code, py.fiscal_year, 0, 'major'
        FROM project_year py JOIN project pj ON pj.id = py.project_id
        WHERE {IN_SCOPE_PY} AND (
          EXISTS (SELECT 1 FROM project_credit pc WHERE pc.project_year_id = py.id AND (
                  ROUND(COALESCE(pc.absorbed, 0) - COALESCE(pc.allocated, 0), 4) > 0.5
               OR ROUND(COALESCE(pc.allocated, 0) - COALESCE(pc.notified, 0), 4) > 0.5
               OR ROUND(COALESCE(pc.notified, 0) - COALESCE(pc.approved, 0), 4) > 0.5))
          OR ROUND(COALESCE(py.total_absorbed, 0) - COALESCE(py.total_allocated, 0), 4) > 0.5
          OR ROUND(COALESCE(py.total_allocated, 0) - COALESCE(py.total_notified, 0), 4) > 0.5
          OR ROUND(COALESCE(py.total_notified, 0) - COALESCE(py.total_approved, 0), 4) > 0.5)""",
    # Y after the end year and the latest progress of Y below 100: minor 1, major 2, critical ≥ 3 years
    "capital.completion_overdue": f"""
        SELECT 'capital', 'completion_overdue', pj.code, py.fiscal_year, 0,
               CASE WHEN py.fiscal_year - py.end_year >= 3 THEN 'critical'
                    WHEN py.fiscal_year - py.end_year >= 2 THEN 'major' ELSE 'minor' END
        FROM project_year py JOIN project pj ON pj.id = py.project_id
        JOIN ref_year y ON y.fiscal_year = py.fiscal_year AND y.begun = 1
        WHERE {IN_SCOPE_PY} AND {ACTIVE_PY} AND py.end_year IS NOT NULL AND py.fiscal_year - py.end_year >= 1
          AND ROUND(COALESCE((SELECT pr.progress FROM progress_report pr WHERE pr.project_year_id = py.id
                              AND pr.progress IS NOT NULL ORDER BY pr.quarter DESC LIMIT 1), {START}), 4) < 100""",
    # the latest visit of Y against the latest report whose quarter ended by then: ≥ 10 major, ≥ 25 critical
    "capital.inspection_mismatch": f"""
        SELECT 'capital', 'inspection_mismatch', code, fiscal_year, COALESCE(quarter, 0),
               CASE WHEN diff >= 25 THEN 'critical' ELSE 'major' END
        FROM (SELECT v.code, v.fiscal_year, r.quarter,
                     ROUND(ABS(v.observed_progress - COALESCE(r.progress, v.start)), 4) AS diff
              FROM (SELECT pj.code, py.id AS py_id, py.fiscal_year, {START} AS start, fi.visited_on,
                           fi.observed_progress,
                           ROW_NUMBER() OVER (PARTITION BY py.id ORDER BY fi.visited_on DESC, fi.id DESC) AS n
                    FROM project_year py JOIN project pj ON pj.id = py.project_id
                    JOIN ref_year y ON y.fiscal_year = py.fiscal_year
                    JOIN field_inspection fi ON fi.project_code = pj.code
                     AND fi.visited_on >= y.first_day AND fi.visited_on <= y.last_day AND fi.visited_on <= :as_of
                    WHERE {IN_SCOPE_PY} AND {ACTIVE_PY}) v
              LEFT JOIN (SELECT pr.project_year_id, pr.quarter, pr.progress, q.quarter_end
                         FROM progress_report pr JOIN project_year py ON py.id = pr.project_year_id
                         JOIN ref_quarter q ON q.fiscal_year = py.fiscal_year AND q.quarter = pr.quarter
                         WHERE pr.progress IS NOT NULL) r
                ON r.project_year_id = v.py_id AND r.quarter_end <= v.visited_on
               AND NOT EXISTS (SELECT 1 FROM progress_report p2 JOIN ref_quarter q2
                               ON q2.fiscal_year = v.fiscal_year AND q2.quarter = p2.quarter
                               WHERE p2.project_year_id = v.py_id AND p2.progress IS NOT NULL
                                 AND p2.quarter > r.quarter AND q2.quarter_end <= v.visited_on)
              WHERE v.n = 1) t
        WHERE diff >= 10""",
    # actual_cum / planned_cum < 0.85 (planned_cum > 0, a report in 1..q): minor ≥ 0.70, major ≥ 0.40
    "expense.operation_shortfall": """
        SELECT 'expense', 'operation_shortfall', subject, fiscal_year, quarter,
               CASE WHEN ratio >= 0.7 THEN 'minor' WHEN ratio >= 0.4 THEN 'major' ELSE 'critical' END
        FROM (SELECT subject, fiscal_year, quarter, ROUND(actual_cum / planned_cum, 4) AS ratio
              FROM ref_ytd WHERE planned_cum > 0 AND items > 0) t
        WHERE ratio < 0.85""",
    # (spent_cum / actual_cum) / unit cost ≥ 1.20: minor, ≥ 1.50 major
    "expense.unit_cost_overrun": """
        SELECT 'expense', 'unit_cost_overrun', subject, fiscal_year, quarter,
               CASE WHEN ratio >= 1.5 THEN 'major' ELSE 'minor' END
        FROM (SELECT subject, fiscal_year, quarter, ROUND(spent_cum / (actual_cum * unit_cost), 4) AS ratio
              FROM ref_ytd WHERE actual_cum > 0 AND unit_cost > 0) t
        WHERE ratio >= 1.2""",
    # no performance item at all for a quarter past due, while some operation plans a quantity in it
    "expense.missing_report": f"""
        SELECT 'expense', 'missing_report', ea.agreement_no, ea.fiscal_year, q.quarter, 'major'
        FROM expense_agreement ea JOIN ref_quarter q ON q.fiscal_year = ea.fiscal_year AND q.late = 1
        WHERE {IN_SCOPE_EA} AND {ACTIVE_EA}
          AND NOT EXISTS (SELECT 1 FROM operation op JOIN operation_performance perf ON perf.operation_id = op.id
                          WHERE op.agreement_id = ea.id AND perf.quarter = q.quarter)
          AND EXISTS (SELECT 1 FROM operation op WHERE op.agreement_id = ea.id
                      AND COALESCE({OP_TARGET.format(q='q.quarter')}, 0) > 0)""",
    "expense.approval_overdue": f"""
        SELECT 'expense', 'approval_overdue', ea.agreement_no || '/' || op.code, ea.fiscal_year, perf.quarter, 'minor'
        FROM expense_agreement ea JOIN operation op ON op.agreement_id = ea.id
        JOIN operation_performance perf ON perf.operation_id = op.id
        JOIN ref_quarter q ON q.fiscal_year = ea.fiscal_year AND q.quarter = perf.quarter
        WHERE {IN_SCOPE_EA} AND {ACTIVE_EA} AND perf.comptroller_status <> 'approved'
          AND COALESCE(perf.reported_on, q.quarter_end) < :approval_cutoff""",
    "expense.credit_inconsistency": f"""
        SELECT 'expense', 'credit_inconsistency', ea.agreement_no, ea.fiscal_year, 0, 'major'
        FROM expense_agreement ea
        WHERE {IN_SCOPE_EA} AND EXISTS (SELECT 1 FROM expense_credit ec WHERE ec.agreement_id = ea.id AND (
                  ROUND(COALESCE(ec.spent, 0) - COALESCE(ec.allocated, 0), 4) > 0.5
               OR ROUND(COALESCE(ec.allocated, 0) - COALESCE(ec.notified, 0), 4) > 0.5
               OR ROUND(COALESCE(ec.notified, 0) - COALESCE(ec.approved, 0), 4) > 0.5))""",
}

YTD = f"""
    INSERT INTO ref_ytd (subject, fiscal_year, quarter, unit_cost, planned_cum, actual_cum, spent_cum, items)
    SELECT ea.agreement_no || '/' || op.code, ea.fiscal_year, q.quarter, op.unit_cost,
           COALESCE(op.target_q1, 0) + CASE WHEN q.quarter >= 2 THEN COALESCE(op.target_q2, 0) ELSE 0 END
             + CASE WHEN q.quarter >= 3 THEN COALESCE(op.target_q3, 0) ELSE 0 END
             + CASE WHEN q.quarter >= 4 THEN COALESCE(op.target_q4, 0) ELSE 0 END,
           SUM(CASE WHEN perf.quarter <= q.quarter THEN COALESCE(perf.quantity, 0) ELSE 0 END),
           SUM(CASE WHEN perf.quarter <= q.quarter THEN COALESCE(perf.spent, 0) ELSE 0 END),
           COUNT(CASE WHEN perf.quarter <= q.quarter THEN 1 END)
    FROM expense_agreement ea JOIN operation op ON op.agreement_id = ea.id
    JOIN ref_quarter q ON q.fiscal_year = ea.fiscal_year AND q.closed = 1
    LEFT JOIN operation_performance perf ON perf.operation_id = op.id
    WHERE {IN_SCOPE_EA} AND {ACTIVE_EA}
    GROUP BY ea.agreement_no, op.code, ea.fiscal_year, q.quarter, op.unit_cost, op.target_q1, op.target_q2,
             op.target_q3, op.target_q4"""


def reference(conn: sa.Connection, as_of: date, years: list[int]) -> dict[str, int]:
    """Fill ref_deviation (a temporary table) with the catalogue's deviations as of `as_of`; counts per rule."""
    numeric = "NUMERIC" if conn.dialect.name == "postgresql" else "REAL"
    for statement in (
        "DROP TABLE IF EXISTS ref_deviation", "DROP TABLE IF EXISTS ref_quarter", "DROP TABLE IF EXISTS ref_year",
        "DROP TABLE IF EXISTS ref_ytd",
        "CREATE TEMPORARY TABLE ref_deviation (kind VARCHAR(16), rule VARCHAR(64), subject VARCHAR(160), "
        "fiscal_year INTEGER, quarter INTEGER, severity VARCHAR(16))",
        "CREATE TEMPORARY TABLE ref_year (fiscal_year INTEGER PRIMARY KEY, first_day DATE, last_day DATE, begun INTEGER)",
        "CREATE TEMPORARY TABLE ref_quarter (fiscal_year INTEGER, quarter INTEGER, quarter_end DATE, "
        "closed INTEGER, late INTEGER, PRIMARY KEY (fiscal_year, quarter))",
        f"CREATE TEMPORARY TABLE ref_ytd (subject VARCHAR(200), fiscal_year INTEGER, quarter INTEGER, "
        f"unit_cost {numeric}, planned_cum {numeric}, actual_cum {numeric}, spent_cum {numeric}, items INTEGER)",
    ):
        conn.execute(sa.text(statement))
    conn.execute(sa.text("INSERT INTO ref_year VALUES (:y, :first, :last, :begun)"), [
        {"y": y, "first": year_start(y), "last": year_end(y), "begun": int(year_start(y) <= as_of)} for y in years])
    quarters = []
    for y in years:
        for q in (1, 2, 3, 4):
            end = quarter_end(y, q)
            quarters.append({"y": y, "q": q, "end": end, "closed": int(end < as_of),
                             "late": int(end < as_of and as_of > end + timedelta(days=REPORT_DUE_DAYS))})
    conn.execute(sa.text("INSERT INTO ref_quarter VALUES (:y, :q, :end, :closed, :late)"), quarters)
    conn.execute(sa.text(YTD))
    params = {"as_of": as_of, "approval_cutoff": as_of - timedelta(days=APPROVAL_DUE_DAYS)}
    counts = {}
    for name, select in RULES.items():
        result = conn.execute(sa.text(f"INSERT INTO ref_deviation (kind, rule, subject, fiscal_year, quarter, "
                                      f"severity) {select}"), params)
        counts[name] = result.rowcount
    return counts


_OUTPUT_KEYS = ("id", "kind", "rule", "severity", "subject", "fiscal_year", "quarter", "planned", "actual",
                "measure", "status", "message", "agency_code", "county_id")


def output_reference(conn: sa.Connection, path: Path) -> tuple[float, int]:
    """The stored deviations but the dismissed as one JSON array in the command's order, each
    object made by the database; (seconds, objects written)."""
    postgres = conn.dialect.name == "postgresql"
    pairs = ", ".join(f"'{key}', NULLIF(d.quarter, 0)" if key == "quarter" else f"'{key}', d.{key}"
                      for key in _OUTPUT_KEYS) + ", 'county', c.name"  # quarter 0: none, written null
    make = "json_build_object" if postgres else "json_object"
    as_text = "::text" if postgres else ""  # psycopg would parse json into dicts
    collate = ' COLLATE "C"' if postgres else ""  # code order, as the command sorts
    query = (f"SELECT {make}({pairs}){as_text} FROM deviation d LEFT JOIN county c ON c.id = d.county_id "
             f"WHERE d.status <> 'dismissed' ORDER BY CASE d.severity WHEN 'critical' THEN 3 "
             f"WHEN 'major' THEN 2 ELSE 1 END DESC, d.rule{collate}, d.subject{collate}, d.fiscal_year, d.quarter")
    started = time.perf_counter()
    written = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        # the driver's own cursor (SQLite steps it; psycopg has the whole result when execute returns):
        # a server-side cursor would run PostgreSQL's sort without parallel workers
        for rows in conn.exec_driver_sql(query).partitions(2000):
            out.write(("\n  " if not written else ",\n  ") + ",\n  ".join(str(row[0]) for row in rows))
            written += len(rows)
        out.write("\n]\n")
    return time.perf_counter() - started, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--as-of", default="1405/01/20")
    parser.add_argument("--output", type=Path, help="also time output_reference into this file")
    args = parser.parse_args()
    engine = sa.create_engine(args.url)
    with engine.begin() as conn:
        years = sorted(conn.execute(sa.text("SELECT DISTINCT fiscal_year FROM project_year UNION "
                                            "SELECT DISTINCT fiscal_year FROM expense_agreement")).scalars())
        started = time.perf_counter()
        counts = reference(conn, parse_day(args.as_of), years)
        seconds = time.perf_counter() - started
    print(f"SQL reference: {sum(counts.values()):,} deviations in {seconds:.2f} s")
    for name, n in counts.items():
        print(f"  {name:32} {n:>9,}")
    if args.output:
        with engine.connect() as conn:
            seconds, written = output_reference(conn, args.output)
        print(f"output reference: {written:,} stored deviations written as JSON by the database in {seconds:.2f} s")


if __name__ == "__main__":
    main()
