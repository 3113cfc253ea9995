"""An independent reading of reconciliation-rules.md, for checking the simulator's ground truth.

It works on the simulator's *truth* (the export-format dicts and the inspections), with its own
calendar arithmetic, and shares no code with the simulator: if the planting plan and this reading
of the catalogue disagree, one of them is wrong. (It is not the product's reconciliation engine.)
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

import jdatetime

REPORT_DUE_DAYS = 15
APPROVAL_DUE_DAYS = 15
FOUR = Decimal("0.0001")


def r4(value: Decimal) -> Decimal:
    """Round to 4 places, half away from zero (ROUND_HALF_UP is away from zero for Decimal)."""
    return value.quantize(FOUR, rounding=ROUND_HALF_UP)


def quarter_last_day(year: int, q: int) -> date:
    month = 3 * q
    if q <= 2:
        day = 31
    elif q == 3:
        day = 30
    else:
        day = 30 if jdatetime.date(year, 1, 1).isleap() else 29
    return jdatetime.date(year, month, day).togregorian()


def closed(year: int, q: int, as_of: date) -> bool:
    return quarter_last_day(year, q) < as_of


def due(year: int, q: int) -> date:
    return quarter_last_day(year, q) + timedelta(days=REPORT_DUE_DAYS)


def _d(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _z(value: Decimal | None) -> Decimal:
    return value if value is not None else Decimal(0)


def capital(projects: list[dict], inspections: list[dict], as_of: date) -> set[tuple]:
    found: set[tuple] = set()

    def flag(rule, p, q, severity):
        found.add((rule, p["project_code"], p["fiscal_year"], q, severity))

    by_project: dict[str, list[dict]] = {}
    for row in inspections:
        by_project.setdefault(row["project_code"], []).append(row)

    for p in projects:
        year = p["fiscal_year"]
        # credit_inconsistency: every status
        rows = [(c["approved"], c["notified"], c["allocated"], c["absorbed"]) for c in p["credits"]]
        total = tuple(sum((_z(r[i]) for r in rows), Decimal(0)) for i in range(4))
        broken = False
        for a, n, al, ab in rows + [total]:
            a, n, al, ab = _z(a), _z(n), _z(al), _z(ab)
            if r4(ab - al) > Decimal("0.5") or r4(al - n) > Decimal("0.5") or r4(n - a) > Decimal("0.5"):
                broken = True
        if broken:
            flag("credit_inconsistency", p, None, "major")

        targets = {int(k): v for k, v in p["targets"].items()}
        if p["agreement_status"] not in ("exchanged", "amended") or not targets:
            continue
        start = p["progress_at_year_start"]
        reports = {r["quarter"]: r for r in p["reports"]}
        notified_total = total[1]
        for q in (1, 2, 3, 4):
            if not closed(year, q, as_of):
                continue
            report = reports.get(q)
            if report is None:
                if as_of > due(year, q):
                    flag("missing_report", p, q, "major")
                continue
            actual = report["progress"]
            if actual is None:
                continue
            if q in targets:
                gap = r4(targets[q] - actual)
                if gap >= 30:
                    flag("progress_lag", p, q, "critical")
                elif gap >= 15:
                    flag("progress_lag", p, q, "major")
                elif gap >= 5:
                    flag("progress_lag", p, q, "minor")
            earlier = [reports[e] for e in range(1, q) if e in reports and reports[e]["progress"] is not None]
            previous = earlier[-1]["progress"] if earlier else start
            if actual < previous - Decimal("0.5"):
                flag("progress_regression", p, q, "major")
            if 4 in targets:
                gain = targets[4] - start
                if gain > 0 and notified_total > 0:
                    physical = (actual - start) / gain
                    spend = _z(report["absorbed"]) / notified_total
                    diff = r4(spend - physical)
                    if diff >= Decimal("0.50"):
                        flag("spend_progress_gap", p, q, "critical")
                    elif diff >= Decimal("0.30"):
                        flag("spend_progress_gap", p, q, "major")
        for report in p["reports"]:
            if report["comptroller_status"] != "approved":
                if (as_of - _d(report["reported_on"])).days > APPROVAL_DUE_DAYS:
                    flag("approval_overdue", p, report["quarter"], "minor")
        # completion_overdue
        if year > p["end_year"]:
            latest = max(p["reports"], key=lambda r: r["quarter"]) if p["reports"] else None
            progress = latest["progress"] if latest else start
            if progress < 100:
                years = year - p["end_year"]
                flag("completion_overdue", p, None, "minor" if years == 1 else "major" if years == 2 else "critical")
        # inspection_mismatch
        visits = []
        for row in by_project.get(p["project_code"], []):
            y, m, d = (int(x) for x in row["date"].split("/"))
            if y == year:
                visits.append((jdatetime.date(y, m, d).togregorian(), row))
        if visits:
            day, visit = max(visits, key=lambda v: v[0])
            eligible = [r for r in p["reports"] if quarter_last_day(year, r["quarter"]) <= day]
            if eligible:
                ref = max(eligible, key=lambda r: r["quarter"])
                reference, quarter = ref["progress"], ref["quarter"]
            else:
                reference, quarter = start, None
            diff = r4(abs(visit["observed_progress"] - reference))
            if diff >= 25:
                flag("inspection_mismatch", p, quarter, "critical")
            elif diff >= 10:
                flag("inspection_mismatch", p, quarter, "major")
    return found


def expense(agreements: list[dict], as_of: date) -> set[tuple]:
    found: set[tuple] = set()
    for a in agreements:
        year = a["fiscal_year"]
        number = a["agreement_no"]
        broken = False
        for c in a["credits"]:
            ap, n, al, sp = (_z(c[k]) for k in ("approved", "notified", "allocated", "spent"))
            if r4(sp - al) > Decimal("0.5") or r4(al - n) > Decimal("0.5") or r4(n - ap) > Decimal("0.5"):
                broken = True
        if broken:
            found.add(("credit_inconsistency", number, year, None, "major"))
        if a["status"] not in ("exchanged", "amended"):
            continue
        for q in (1, 2, 3, 4):
            if not closed(year, q, as_of):
                continue
            has_item = any(r["quarter"] == q for op in a["operations"] for r in op["performance"])
            planned = any(op["quarterly_targets"][q - 1] > 0 for op in a["operations"])
            if planned and not has_item and as_of > due(year, q):
                found.add(("missing_report", number, year, q, "major"))
            for op in a["operations"]:
                subject = f"{number}/{op['code']}"
                items = [r for r in op["performance"] if r["quarter"] <= q]
                planned_cum = sum(op["quarterly_targets"][:q], Decimal(0))
                actual_cum = sum((_z(r["quantity"]) for r in items), Decimal(0))
                spent_cum = sum((_z(r["spent"]) for r in items), Decimal(0))
                if planned_cum > 0 and items:
                    ratio = r4(actual_cum / planned_cum)
                    if ratio < Decimal("0.85"):
                        severity = ("minor" if ratio >= Decimal("0.70") else
                                    "major" if ratio >= Decimal("0.40") else "critical")
                        found.add(("operation_shortfall", subject, year, q, severity))
                unit_cost = op["unit_cost"]
                if actual_cum > 0 and unit_cost is not None and unit_cost > 0:
                    ratio = r4((spent_cum / actual_cum) / unit_cost)
                    if ratio >= Decimal("1.50"):
                        found.add(("unit_cost_overrun", subject, year, q, "major"))
                    elif ratio >= Decimal("1.20"):
                        found.add(("unit_cost_overrun", subject, year, q, "minor"))
        for op in a["operations"]:
            for r in op["performance"]:
                if r["comptroller_status"] != "approved" and (as_of - _d(r["reported_on"])).days > APPROVAL_DUE_DAYS:
                    found.add(("approval_overdue", f"{number}/{op['code']}", year, r["quarter"], "minor"))
    return found


def evaluate(world, as_of: date) -> set[tuple]:
    """Every deviation the catalogue flags over the world's truth as of `as_of`."""
    return capital(world.truth_projects(), world.inspections(), as_of) | expense(world.truth_agreements(), as_of)


def as_set(expected: list[dict]) -> set[tuple]:
    return {(d["rule"], d["subject"], d["fiscal_year"], d["quarter"], d["severity"]) for d in expected}
