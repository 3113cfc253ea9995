"""The JSON of SABA's answers: agreement items, operations and performance items, as saba.md shows them.

`SabaPayloads` writes each item from the world's canonical record with the text quirks (letters;
`agreementNo` sometimes in Persian digits) and whole numbers sometimes written `2480.0`, chosen
by hash of (seed, record, field) so an item is the same every time it is served. The `malformed`
fault's wrong types and the `saba_field` drift are applied here, where the JSON is written.
"""

from __future__ import annotations

from decimal import Decimal

from simulator import calendar as cal
from simulator.config import TEHRAN
from simulator.model import Agreement
from simulator.quirks import Quirks, digits
from simulator.reference import CHAPTERS

STATUS = {"exchanged": "EXCHANGED", "awaiting": "AWAITING", "amended": "AMENDED", "cancelled": "CANCELLED"}
COMPTROLLER = {"approved": "APPROVED", "pending": "PENDING", "rejected": "REJECTED"}


class SabaPayloads:
    """Writes SABA's JSON items for one simulator (its seed, world and faults). Thread-safe: no state."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.world = sim.world
        self.quirks = Quirks(sim.config.seed + 1)

    def agreement_item(self, a: Agreement) -> dict:
        q = self.quirks
        key = f"{a.agreement_no}|{a.fiscal_year}"
        number = a.agreement_no if q.h(key, "number") % 5 < 3 else digits(a.agreement_no, "fa")
        item = {
            "id": a.portal_id,
            "agreementNo": number,
            "fiscalYear": a.fiscal_year,
            "agency": {"code": a.agency.code, "name": q.text(a.agency.name, key, "agency", escape=False)},
            "county": ({"code": a.county.code, "name": q.county(a.county, key, "county", escape=False)}
                       if a.county else None),
            "program": {"code": a.program_code, "title": q.text(a.program_title, key, "program", escape=False)},
            "status": STATUS[a.status],
            "exchangedAt": cal.jalali_text(a.exchanged_on) if a.exchanged_on else None,
            "credits": [
                {"chapter": c.chapter, "title": q.text(CHAPTERS[c.chapter], key, f"chapter{c.chapter}", escape=False),
                 "approved": self._num(c.approved, key, f"c{c.chapter}a"),
                 "notified": self._num(c.notified, key, f"c{c.chapter}n"),
                 "allocated": self._num(c.allocated, key, f"c{c.chapter}l"),
                 "spent": self._num(c.spent, key, f"c{c.chapter}s")}
                for c in sorted(a.credits, key=lambda c: c.chapter)
            ],
            "modifiedAt": a.modified_at.astimezone(TEHRAN).isoformat(timespec="seconds"),
        }
        broken = self.world.malformation("agreement", a.agreement_no, a.fiscal_year)
        if broken is not None:
            if broken.field == "status":
                item["status"] = broken.raw
            elif broken.field == "credits[0].chapter":
                item["credits"][0]["chapter"] = broken.raw
            elif broken.field == "credits[0].approved":
                item["credits"][0]["approved"] = broken.raw
        if self.sim.faults.layout_change == "saba_field":
            item = {("agreementNumber" if k == "agreementNo" else k): v for k, v in item.items()}
        return item

    def _num(self, value: Decimal | None, key: str, field: str) -> int | float | None:
        """A JSON number: an int when whole (sometimes written 2480.0), else a float."""
        if value is None:
            return None
        if value == value.to_integral_value():
            return float(value) if self.quirks.h(key, field) % 4 == 0 else int(value)
        return float(value)

    def operations(self, a: Agreement) -> list[dict]:
        q = self.quirks
        key = f"{a.agreement_no}|{a.fiscal_year}"
        items = []
        for op in sorted(a.operations, key=lambda o: o.code):
            okey = f"{key}|{op.code}"
            item = {
                "code": op.code,
                "title": q.text(op.title, okey, "title", escape=False),
                "unit": q.text(op.unit, okey, "unit", escape=False),
                "annualTarget": self._num(sum(op.quarterly_targets, Decimal(0)), okey, "annual"),
                "quarterlyTargets": [self._num(t, okey, f"t{i}") for i, t in enumerate(op.quarterly_targets)],
                "unitCost": self._num(op.unit_cost, okey, "cost"),
            }
            broken = self.world.malformation("operation", a.agreement_no, a.fiscal_year, op.code)
            if broken is not None:
                if broken.field == "unitCost":
                    item["unitCost"] = str(op.unit_cost)
                elif broken.field == "quarterlyTargets":
                    item["quarterlyTargets"] = item["quarterlyTargets"][:3]
            items.append(item)
        return items

    def performance(self, a: Agreement) -> list[dict]:
        q = self.quirks
        key = f"{a.agreement_no}|{a.fiscal_year}"
        rows = sorted(((r.quarter, op.code, r) for op in a.operations for r in op.performance),
                      key=lambda t: (t[0], t[1]))
        items = []
        for quarter, code, r in rows:
            pkey = f"{key}|{code}|{quarter}"
            item = {
                "quarter": quarter,
                "operationCode": code,
                "quantity": self._num(r.quantity, pkey, "quantity"),
                "spent": self._num(r.spent, pkey, "spent"),
                "reportedAt": cal.jalali_text(r.reported_on),
                "comptroller": {"status": COMPTROLLER[r.status],
                                "decidedAt": cal.jalali_text(r.decided_on) if r.decided_on else None},
                "remarks": q.text(r.remarks, pkey, "remarks", escape=False) if r.remarks else "",
            }
            broken = self.world.malformation("performance", a.agreement_no, a.fiscal_year, code, quarter)
            if broken is not None:
                if broken.field == "comptroller.status":
                    item["comptroller"]["status"] = broken.raw
                elif broken.field == "quantity":
                    item["quantity"] = str(r.quantity)
                elif broken.field == "reportedAt":
                    item["reportedAt"] = broken.raw
                elif broken.field == "quarter":
                    item["quarter"] = broken.raw
            items.append(item)
        ghost = self.world.malformation("ghost", a.agreement_no, a.fiscal_year)
        if ghost is not None and rows:
            quarter, _code, r = rows[0]
            items.append({
                "quarter": quarter, "operationCode": ghost.raw, "quantity": 10, "spent": 12.5,
                "reportedAt": cal.jalali_text(r.reported_on),
                "comptroller": {"status": "PENDING", "decidedAt": None}, "remarks": "",
            })
        return items

