"""The `malformed` fault's hosts: records whose rows or items the portals serve broken on demand.

A part of `World`. `_build_hosts` adds ordinary records (or cancelled ones, so that a rejected row
cannot change any rule's outcome) and notes for each the one field served broken, where, and what
a correct client does with it (`Malformation.effect`). The portals ask `malformation(...)` while
rendering; the ground truth asks `_excluded(...)` to leave out what a correct client rejects. Both
answer only while the fault is on (`malformed_active`, set by `Simulator.set_faults`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from simulator.generate import capital_year, dec, expense_agreement, operations_for
from simulator.model import Agreement, Project, ProjectYear


@dataclass(frozen=True, slots=True)
class Malformation:
    """One row or item the `malformed` fault serves broken, and what a correct client does with it."""

    portal: str  # nezarat4 | saba
    where: str  # list | detail | agreements | operations | performance
    key: str  # project code or agreement number (canonical)
    fiscal_year: int
    portal_id: int
    field: str  # the broken field, as named on the page / in the JSON
    raw: object  # what is served instead of the value
    locator: str  # which row or item: 'row', 'quarter 2', an operation code
    effect: str  # record_absent | report_absent | operation_absent | item_absent | none

    def as_dict(self) -> dict:
        return asdict(self)


class MalformationHosts:
    """The malformation hosts of `World` (a mixin: World's __init__ declares the state used here)."""

    def _host_year(self) -> int:
        y = self.epoch.current_year
        return y if self.epoch.closed(y) else self.epoch.previous_year

    def _build_hosts(self) -> None:
        """Records that carry the `malformed` fault's broken rows; none of them is a deviation."""
        rng = self._host_rng
        epoch = self.epoch
        year = self._host_year()
        fa = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

        def host_project(case: str, status: str) -> tuple[Project, ProjectYear]:
            project = self._new_identity(rng, case=case)
            project.start_year, project.end_year = year - 1, year + 2
            record = capital_year(rng, epoch, project, year, status, dec(rng.uniform(10, 60)),
                                  self._capital_agreement_no(year, project), force_reports=True)
            project.years[year] = record
            self._register_project(project)
            return project, record

        def add(m: Malformation, *index: object) -> None:
            self._malformations.append(m)
            self._mal_index[index] = m

        list_kinds = [
            ("approved_credit", "۱۲۳٬۴۵۶٫۷٫۸"),
            ("progress", "نامشخص"),
            ("last_modified", f"{year}/13/02 10:00".translate(fa)),
        ]
        for i, (field, raw) in enumerate(list_kinds, start=1):
            project, _ = host_project(f"MH-L{i}", "exchanged")
            add(Malformation("nezarat4", "list", project.code, year, project.portal_id, field, raw, "row",
                             "record_absent"), "list", project.code, year)
        project, _ = host_project("MH-I1", "exchanged")
        add(Malformation("nezarat4", "detail", project.code, year, project.portal_id, "lblProjectCode",
                         (project.code + "الف").translate(fa), "tblInfo", "record_absent"),
            "identity", project.code, year)
        detail_kinds = [
            ("period", "سه\u200cماهه پنجم"),
            ("reported_on", f"{year}/02/35".translate(fa)),
            ("progress", "۳۴٫۸٫۲"),
        ]
        for i, (field, raw) in enumerate(detail_kinds, start=1):
            project, record = host_project(f"MH-D{i}", "cancelled")
            quarter = record.reports[0].quarter
            add(Malformation("nezarat4", "detail", project.code, year, project.portal_id, field, raw,
                             f"gvPerformance quarter {quarter}", "report_absent"),
                "report", project.code, year, quarter)

        def host_agreement(case: str, status: str) -> Agreement:
            agency, program, county, serial = self._agreement_identity(rng)
            while len(program.operations) < 2:
                agency, program, county, serial = self._agreement_identity(rng)
            operations = operations_for(rng, program, 2)
            for op in operations:
                total = sum(op.quarterly_targets)
                op.quarterly_targets = [total // 4] * 3 + [total - 3 * (total // 4)]
            agreement = expense_agreement(
                rng, epoch, portal_id=0, agreement_no=f"{year}-{agency.code}-{serial}", year=year,
                status=status, agency=agency, county=county, program=program, operations=operations,
                force_reports=True,
            )
            agreement.case = case
            self._register_agreement(agreement)
            return agreement

        # SABA ids are assigned later; the index uses the agreement object's identity via its key.
        listing_kinds = [("status", "DRAFT"), ("credits[0].chapter", 9), ("credits[0].approved", "18500")]
        for i, (field, raw) in enumerate(listing_kinds, start=1):
            a = host_agreement(f"MH-A{i}", "exchanged")
            if field == "credits[0].approved":
                raw = str(a.credits[0].approved)
            add(Malformation("saba", "agreements", a.agreement_no, year, 0, field, raw, "item", "record_absent"),
                "agreement", a.agreement_no, year)
        operation_kinds = [("unitCost", "0.85"), ("quarterlyTargets", "three values")]
        for i, (field, raw) in enumerate(operation_kinds, start=1):
            a = host_agreement(f"MH-O{i}", "cancelled")
            op = a.operations[1]
            add(Malformation("saba", "operations", a.agreement_no, year, 0, field, raw, op.code, "operation_absent"),
                "operation", a.agreement_no, year, op.code)
        perf_kinds = [("comptroller.status", "UNKNOWN"), ("quantity", "string"), ("reportedAt", f"{year}/13/40"),
                      ("quarter", 5)]
        for i, (field, raw) in enumerate(perf_kinds, start=1):
            a = host_agreement(f"MH-P{i}", "cancelled")
            op = a.operations[0]
            item = op.performance[0]
            if field == "quantity":
                raw = str(item.quantity)
            add(Malformation("saba", "performance", a.agreement_no, year, 0, field, raw,
                             f"{op.code} quarter {item.quarter}", "item_absent"),
                "performance", a.agreement_no, year, op.code, item.quarter)
        a = host_agreement("MH-U1", "exchanged")
        ghost = f"{a.program_code}-99"
        add(Malformation("saba", "performance", a.agreement_no, year, 0, "operationCode", ghost,
                         "extra item", "none"), "ghost", a.agreement_no, year)

    def malformation(self, *index: object) -> Malformation | None:
        """The malformation planted at `index`, if the `malformed` fault is on."""
        if not self.malformed_active:
            return None
        return self._mal_index.get(index)

    def _excluded(self, *index: object) -> bool:
        return self.malformed_active and index in self._mal_index

    def malformed_records(self) -> list[dict]:
        """Every malformation the `malformed` fault serves (whether or not it is on right now)."""
        with self.lock:
            out = []
            for m in self._malformations:
                portal_id = m.portal_id
                if m.portal == "saba":
                    agreement = self._agreement_by_key.get((m.key, m.fiscal_year))
                    portal_id = agreement.portal_id if agreement else 0
                out.append({**m.as_dict(), "portal_id": portal_id})
            return out

