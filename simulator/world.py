"""The simulated province: its projects, agreements and inspections, and the ground truth about them.

`World.generate(seed, projects, agreements, clock)` builds everything deterministically from the
seed: the same seed and sizes give the same records (and, rendered, the same bytes). The world is
shared by both portal servers; every read and every change holds one re-entrant lock, so changes
made while clients page through (edits, additions, removals) are atomic.

Ground truth comes in the product's export format (`truth_projects`, `truth_agreements`), and the
reconciliation ground truth in `expected_deviations` — from the planting plan (planted.py) and the
bookkeeping of time-driven rules (generate.py), never by running the rules.
"""

from __future__ import annotations

import bisect
import random
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from simulator import calendar as cal
from simulator.config import TEHRAN, default_clock
from simulator.generate import (
    CHECKED,
    Epoch,
    capital_bookkeeping,
    capital_year,
    dec,
    expense_agreement,
    expense_bookkeeping,
    operations_for,
)
from simulator.model import (
    Agreement,
    ExpectedDeviation,
    Inspection,
    Project,
    ProjectYear,
)
from simulator.planted import PlantedCase, Planter
from simulator.reference import (
    AGENCIES,
    COUNTIES,
    INSPECTION_REMARKS,
    INSPECTORS,
    LOCATIONS,
    PROGRAMS,
    Agency,
    County,
    Program,
)

D = Decimal


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
        return {
            "portal": self.portal,
            "where": self.where,
            "key": self.key,
            "fiscal_year": self.fiscal_year,
            "portal_id": self.portal_id,
            "field": self.field,
            "raw": self.raw,
            "locator": self.locator,
            "effect": self.effect,
        }


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _jalali_text(day: date) -> str:
    y, m, d = cal.to_jalali(day)
    return f"{y:04d}/{m:02d}/{d:02d}"


class World:
    """All records of the province; use `World.generate`."""

    def __init__(self, seed: int, clock: datetime) -> None:
        self.seed = seed
        self.epoch = Epoch.at(clock)
        self.now: datetime = self.epoch.clock
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}
        self.agreements: dict[int, Agreement] = {}  # by SABA id
        self.cases: list[PlantedCase] = []
        self.agencies: tuple[Agency, ...] = AGENCIES
        self.counties: tuple[County, ...] = COUNTIES
        self.malformed_active = False  # set by the simulator while the `malformed` fault is on
        self._by_portal_id: dict[int, Project] = {}
        self._codes_by_year: dict[int, list[str]] = {y: [] for y in self.epoch.years}
        self._agreement_ids_by_year: dict[int, list[int]] = {y: [] for y in self.epoch.years}
        self._agreement_by_key: dict[tuple[str, int], Agreement] = {}
        self._inspections: list[Inspection] = []
        self._expected: list[ExpectedDeviation] = []
        self._malformations: list[Malformation] = []
        self._mal_index: dict[tuple, Malformation] = {}
        self._plan_codes: set[str] = set()
        self._capital_serials: dict[tuple[int, str], int] = {}
        self._agreement_serials: dict[str, set[str]] = {}
        self._used_project_ids: set[int] = set()
        self._id_pool: list[int] = []
        self._next_saba_id = 0
        self._temp_id = 0
        self._plan_suffixes: dict[str, set[int]] = {}
        self._last_background: Project | None = None
        self._shift_count = {"nezarat4": 0, "saba": 0}
        self._shift_budget = {"nezarat4": 0, "saba": 0}
        rng = random.Random(f"budgetwatch-simulator:{seed}")
        self._ids_rng = random.Random(rng.getrandbits(64))
        self._capital_rng = random.Random(rng.getrandbits(64))
        self._expense_rng = random.Random(rng.getrandbits(64))
        self._host_rng = random.Random(rng.getrandbits(64))
        self._mutation_rng = random.Random(rng.getrandbits(64))

    # ================================================================== generation

    @classmethod
    def generate(
        cls, seed: int, projects: int = 600, agreements: int = 300, clock: datetime | None = None
    ) -> World:
        world = cls(seed, clock or default_clock())
        world._build(projects, agreements)
        return world

    def _build(self, n_projects: int, n_agreements: int) -> None:
        epoch = self.epoch
        self._id_pool = self._ids_rng.sample(range(10000, 10000 + max(90000, 5 * (n_projects + 200))),
                                             n_projects + 200)
        planter = Planter(
            epoch,
            new_project=lambda case: self._new_identity(self._capital_rng, case=case),
            capital_agreement_no=self._capital_agreement_no,
            new_agreement=self._planted_agreement_identity,
            register_project=self._register_project,
            register_agreement=self._register_agreement,
            add_inspection=self._inspections.append,
            add_expected=self._expected.append,
        )
        planter.plant()
        self.cases = planter.cases
        self._build_hosts()

        rng = self._capital_rng
        for _ in range(max(0, n_projects - len(self.projects))):
            self._background_project(rng)
        self._background_inspections()

        rng = self._expense_rng
        for _ in range(max(0, n_agreements - len(self.agreements))):
            self._background_agreement(rng)
        self._assign_saba_ids()

        for project in self.projects.values():
            for record in project.years.values():
                self._expected.extend(capital_bookkeeping(epoch, project, record))
        for agreement in self.agreements.values():
            self._expected.extend(expense_bookkeeping(epoch, agreement))

    # ---------------------------------------------------------------- identities

    def _next_project_id(self) -> int:
        while self._id_pool:
            candidate = self._id_pool.pop()
            if candidate not in self._used_project_ids:
                self._used_project_ids.add(candidate)
                return candidate
        while True:  # after generation: draw from a wider range
            candidate = self._mutation_rng.randint(100000, 999999)
            if candidate not in self._used_project_ids:
                self._used_project_ids.add(candidate)
                return candidate

    def _new_plan_code(self, rng: random.Random) -> str:
        while True:
            code = f"13{rng.randint(1, 59):02d}{rng.randint(0, 999999):06d}"
            if code not in self._plan_codes:
                self._plan_codes.add(code)
                return code

    def _new_identity(
        self, rng: random.Random, case: str | None = None, plan_of: Project | None = None, lowest: bool = False
    ) -> Project:
        """A new project: its own new plan, or (plan_of) the next free code in another's plan."""
        if plan_of is not None:
            agency, county, plan_code, plan_title = plan_of.agency, plan_of.county, plan_of.plan_code, plan_of.plan_title
            used = self._plan_suffixes.setdefault(plan_code, set())
            if lowest:  # the first free number: sorts before (most of) the plan's projects
                suffix = 0
                while suffix in used or f"{plan_code}-{suffix:03d}" in self.projects:
                    suffix += 1
            else:
                suffix = max(used) + rng.randint(1, 3)
        else:
            agency = rng.choice(AGENCIES)
            county = rng.choices(COUNTIES, weights=[c.weight for c in COUNTIES])[0]
            plan_code = self._new_plan_code(rng)
            plan_title = rng.choice(agency.plans)
            suffix = rng.randint(1, 9)
        if suffix > 999:
            return self._new_identity(rng, case=case)
        self._plan_suffixes.setdefault(plan_code, set()).add(suffix)
        code = f"{plan_code}-{suffix:03d}"
        place = county if rng.random() < 0.8 else rng.choice(COUNTIES)
        title = rng.choice(agency.projects).format(place=place.name)
        year = self.epoch.current_year
        return Project(
            portal_id=self._next_project_id(),
            code=code,
            title=title,
            plan_code=plan_code,
            plan_title=plan_title,
            agency=agency,
            county=county,
            start_year=year - 2,
            end_year=year + 2,
            total_cost=D(rng.randint(20, 900) * 500),
            case=case,
        )

    def _capital_agreement_no(self, year: int, project: Project) -> str:
        key = (year, project.agency.code)
        serial = self._capital_serials.get(key, 100 + (int(project.agency.code) * 7) % 300)
        serial += 1 + (serial * 31 + year) % 3
        self._capital_serials[key] = serial
        return f"{year}-{project.agency.code}-{serial:05d}"

    def _agreement_serial(self, rng: random.Random, agency: Agency, program: Program) -> str:
        used = self._agreement_serials.setdefault(agency.code, set())
        serial = program.code if program.code not in used else None
        while serial is None or serial in used:
            serial = f"{rng.randint(10000, 99999)}"
        used.add(serial)
        return serial

    def _planted_agreement_identity(self, case: str, year: int):
        rng = self._expense_rng
        programs = [PROGRAMS[c] for a in AGENCIES for c in a.programs if len(PROGRAMS[c].operations) >= 2]
        program = rng.choice(programs)
        agency = rng.choice([a for a in AGENCIES if program.code in a.programs])
        county = rng.choice(COUNTIES) if rng.random() < 0.7 else None
        serial = self._agreement_serial(rng, agency, program)
        return 0, f"{year}-{agency.code}-{serial}", agency, county, program

    # ---------------------------------------------------------------- registration

    def _register_project(self, project: Project) -> None:
        self.projects[project.code] = project
        self._by_portal_id[project.portal_id] = project
        for year in project.years:
            bisect.insort(self._codes_by_year.setdefault(year, []), project.code)

    def _register_agreement(self, agreement: Agreement) -> None:
        # SABA ids are assigned after generation (_assign_saba_ids); until then key by a counter.
        if agreement.portal_id == 0:
            self._temp_id -= 1
            agreement.portal_id = self._temp_id
        self.agreements[agreement.portal_id] = agreement
        self._agreement_by_key[(agreement.agreement_no, agreement.fiscal_year)] = agreement

    def _assign_saba_ids(self) -> None:
        rng = self._ids_rng
        items = sorted(self.agreements.values(), key=lambda a: (a.fiscal_year, a.agreement_no))
        rng.shuffle(items)
        self.agreements = {}
        self._agreement_ids_by_year = {y: [] for y in self.epoch.years}
        next_id = 9000
        for agreement in items:
            next_id += rng.randint(1, 7)
            agreement.portal_id = next_id
            self.agreements[next_id] = agreement
            self._agreement_ids_by_year.setdefault(agreement.fiscal_year, []).append(next_id)
        self._next_saba_id = next_id

    # ---------------------------------------------------------------- background

    def _background_project(self, rng: random.Random, *, only_year: int | None = None) -> Project:
        epoch = self.epoch
        previous = self._last_background
        if previous is not None and rng.random() < 0.55:
            project = self._new_identity(rng, plan_of=previous)  # another project of the same plan
        else:
            project = self._new_identity(rng)
        self._last_background = project
        y, p = epoch.current_year, epoch.previous_year
        roll = rng.random()
        if only_year is not None:
            years = [only_year]
            project.start_year = only_year
            project.end_year = only_year + rng.randint(1, 3)
        elif roll < 0.8:
            years = [p, y]
            project.start_year = y - rng.randint(1, 4)
            project.end_year = y + rng.randint(0, 3)
        elif roll < 0.92:
            years = [y]
            project.start_year = y
            project.end_year = y + rng.randint(1, 3)
        else:
            years = [p]
            project.start_year = p - rng.randint(1, 3)
            project.end_year = p
        start = D(0) if project.start_year == years[0] else dec(rng.uniform(5, 80))
        for year in years:
            status = _year_status(rng, year == y)
            record = capital_year(rng, epoch, project, year, status, start,
                                  self._capital_agreement_no(year, project))
            project.years[year] = record
            latest = record.latest_report()
            start = latest.progress if latest else record.progress_at_year_start
        self._register_project(project)
        return project

    def _background_inspections(self) -> None:
        rng = random.Random(f"inspections:{self.seed}")
        year = self.epoch.current_year
        for code in self._codes_by_year.get(year, []):
            project = self.projects[code]
            record = project.years[year]
            if project.case or record.status not in CHECKED or not record.reports or rng.random() > 0.04:
                continue
            latest = record.latest_report()
            day = min(self.epoch.today - timedelta(days=rng.randint(1, 20)),
                      cal.quarter_end(year, latest.quarter) + timedelta(days=rng.randint(1, 60)))
            day = max(day, cal.quarter_end(year, latest.quarter))
            observed = max(D(0), min(D(100), latest.progress + dec(rng.uniform(-3, 3))))
            self._inspections.append(Inspection(code, day, observed, rng.choice(INSPECTORS),
                                                rng.choice(INSPECTION_REMARKS)))

    def _agreement_identity(self, rng: random.Random) -> tuple[Agency, Program, County | None, str]:
        agency = rng.choice(AGENCIES)
        program = PROGRAMS[rng.choice(agency.programs)]
        county = rng.choices(COUNTIES, weights=[c.weight for c in COUNTIES])[0] if rng.random() < 0.7 else None
        return agency, program, county, self._agreement_serial(rng, agency, program)

    def _background_agreement(self, rng: random.Random, *, only_year: int | None = None) -> list[Agreement]:
        epoch = self.epoch
        agency, program, county, serial = self._agreement_identity(rng)
        roll = rng.random()
        if only_year is not None:
            years = [only_year]
        elif roll < 0.85:
            years = list(epoch.years)
        elif roll < 0.95:
            years = [epoch.current_year]
        else:
            years = [epoch.previous_year]
        count = rng.randint(1, 3)
        made = []
        for year in years:
            status = _year_status(rng, year == epoch.current_year)
            agreement = expense_agreement(
                rng, epoch, portal_id=0, agreement_no=f"{year}-{agency.code}-{serial}", year=year,
                status=status, agency=agency, county=county, program=program,
                operations=operations_for(rng, program, count),
            )
            self._register_agreement(agreement)
            made.append(agreement)
        return made

    # ---------------------------------------------------------------- malformation hosts

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

    # ================================================================== reading (portals)

    @property
    def years(self) -> tuple[int, int]:
        return self.epoch.years

    def project_by_portal_id(self, portal_id: int) -> Project | None:
        return self._by_portal_id.get(portal_id)

    def project_rows(
        self, year: int, county_code: str | None = None, modified_from: datetime | None = None
    ) -> list[tuple[Project, ProjectYear]]:
        """The project list's rows for a search, ordered by project code."""
        rows = []
        for code in self._codes_by_year.get(year, []):
            project = self.projects[code]
            record = project.years[year]
            if county_code and project.county.code != county_code:
                continue
            if modified_from is not None and record.last_modified < modified_from:
                continue
            rows.append((project, record))
        return rows

    def agreement_by_id(self, portal_id: int) -> Agreement | None:
        return self.agreements.get(portal_id)

    def agreement_rows(self, year: int, modified_since: datetime | None = None) -> list[Agreement]:
        out = []
        for portal_id in self._agreement_ids_by_year.get(year, []):
            agreement = self.agreements[portal_id]
            if modified_since is not None and agreement.modified_at < modified_since:
                continue
            out.append(agreement)
        return out

    def malformation(self, *index: object) -> Malformation | None:
        """The malformation planted at `index`, if the `malformed` fault is on."""
        if not self.malformed_active:
            return None
        return self._mal_index.get(index)

    # ================================================================== ground truth

    def _excluded(self, *index: object) -> bool:
        return self.malformed_active and index in self._mal_index

    def truth_projects(self, exclude_malformed: bool = True) -> list[dict]:
        """One dict per (project, fiscal year), in the format of `budgetwatch export`.

        With `exclude_malformed` (the default) and the `malformed` fault on, the records and report
        rows a correct client must reject are absent; with the fault off nothing is excluded.
        """
        out = []
        with self.lock:
            for code in sorted(self.projects):
                project = self.projects[code]
                for year in sorted(project.years):
                    if exclude_malformed and (self._excluded("list", code, year)
                                              or self._excluded("identity", code, year)):
                        continue
                    record = project.years[year]
                    reports = [
                        r for r in record.reports
                        if not (exclude_malformed and self._excluded("report", code, year, r.quarter))
                    ]
                    out.append({
                        "project_code": code,
                        "title": project.title,
                        "plan_code": project.plan_code,
                        "plan_title": project.plan_title,
                        "agency_code": project.agency.code,
                        "agency_name": project.agency.name,
                        "county": project.county.name,
                        "start_year": project.start_year,
                        "end_year": project.end_year,
                        "total_cost": project.total_cost,
                        "fiscal_year": year,
                        "progress_at_year_start": record.progress_at_year_start,
                        "agreement_no": record.agreement_no,
                        "agreement_status": record.status,
                        "credits": [
                            {"source": c.source, "approved": c.approved, "notified": c.notified,
                             "allocated": c.allocated, "absorbed": c.absorbed}
                            for c in sorted(record.credits, key=lambda c: c.source)
                        ],
                        "targets": {str(q): v for q, v in sorted(record.targets.items())},
                        "reports": [
                            {"quarter": r.quarter, "reported_on": _iso(r.reported_on), "progress": r.progress,
                             "absorbed": r.absorbed, "comptroller_status": r.status,
                             "decided_on": _iso(r.decided_on), "remarks": r.remarks or None}
                            for r in sorted(reports, key=lambda r: r.quarter)
                        ],
                        "gone": False,
                    })
        return out

    def truth_agreements(self, exclude_malformed: bool = True) -> list[dict]:
        """One dict per (agreement, fiscal year), in the format of `budgetwatch export`."""
        out = []
        with self.lock:
            for agreement in sorted(self.agreements.values(), key=lambda a: (a.agreement_no, a.fiscal_year)):
                no, year = agreement.agreement_no, agreement.fiscal_year
                if exclude_malformed and self._excluded("agreement", no, year):
                    continue
                operations = []
                for op in sorted(agreement.operations, key=lambda o: o.code):
                    if exclude_malformed and self._excluded("operation", no, year, op.code):
                        continue
                    performance = [
                        {"quarter": r.quarter, "quantity": r.quantity, "spent": r.spent,
                         "reported_on": _iso(r.reported_on), "comptroller_status": r.status,
                         "decided_on": _iso(r.decided_on), "remarks": r.remarks or None}
                        for r in sorted(op.performance, key=lambda r: r.quarter)
                        if not (exclude_malformed and self._excluded("performance", no, year, op.code, r.quarter))
                    ]
                    operations.append({
                        "code": op.code, "title": op.title, "unit": op.unit,
                        "quarterly_targets": list(op.quarterly_targets), "unit_cost": op.unit_cost,
                        "performance": performance,
                    })
                out.append({
                    "agreement_no": no,
                    "fiscal_year": year,
                    "agency_code": agreement.agency.code,
                    "agency_name": agreement.agency.name,
                    "county": agreement.county.name if agreement.county else None,
                    "program_code": agreement.program_code,
                    "program_title": agreement.program_title,
                    "status": agreement.status,
                    "credits": [
                        {"chapter": c.chapter, "approved": c.approved, "notified": c.notified,
                         "allocated": c.allocated, "spent": c.spent}
                        for c in sorted(agreement.credits, key=lambda c: c.chapter)
                    ],
                    "operations": operations,
                    "gone": False,
                })
        return out

    def inspections(self) -> list[dict]:
        """Field inspections (not on the portals), Jalali dates as 'YYYY/MM/DD'."""
        with self.lock:
            rows = [i for i in self._inspections if i.project_code in self.projects]
            return [
                {"project_code": i.project_code, "date": _jalali_text(i.day),
                 "observed_progress": i.observed_progress, "inspector": i.inspector, "remarks": i.remarks}
                for i in sorted(rows, key=lambda i: (i.project_code, i.day))
            ]

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

    def planted_cases(self) -> list[dict]:
        """The planting plan as built: case id, rule, description, values, subject, expected deviations."""
        return [
            {"case": c.case, "domain": c.domain, "rule": c.rule, "description": c.description,
             "values": c.values, "subject": c.subject, "fiscal_year": c.fiscal_year,
             "expected": [{"rule": r, "subject": s, "fiscal_year": c.fiscal_year, "quarter": q, "severity": v}
                          for r, s, q, v in c.expected]}
            for c in self.cases
        ]

    def expected_deviations(self, as_of: date | None = None) -> list[dict]:
        """The deviations a correct reconciliation finds as of `as_of` (default: the world clock's day).

        Valid for any day up to the next quarter end after the clock: beyond it a quarter would close
        that the data does not cover yet, and ValueError is raised.
        """
        with self.lock:
            as_of = as_of or self.now.astimezone(TEHRAN).date()
            if as_of > self.epoch.next_close:
                raise ValueError(
                    f"as_of {as_of} is after {self.epoch.next_close}, the end of a quarter the "
                    f"world's data (clock {self.epoch.today}) does not cover"
                )
            seen = set()
            out = []
            for e in self._expected:
                if e.active_from > as_of or not self._subject_present(e):
                    continue
                key = (e.rule, e.subject, e.fiscal_year, e.quarter)
                if key in seen:
                    continue
                seen.add(key)
                out.append({"rule": e.rule, "subject": e.subject, "fiscal_year": e.fiscal_year,
                            "quarter": e.quarter, "severity": e.severity})
            out.sort(key=lambda d: (d["rule"], d["subject"], d["fiscal_year"], d["quarter"] or 0))
            return out

    def _subject_present(self, e: ExpectedDeviation) -> bool:
        if e.rule in ("operation_shortfall", "unit_cost_overrun") or (
            e.rule == "approval_overdue" and "/" in e.subject
        ) or "/" in e.subject:
            number, _, op_code = e.subject.partition("/")
            agreement = self._agreement_by_key.get((number, e.fiscal_year))
            return (agreement is not None and not self._excluded("agreement", number, e.fiscal_year)
                    and any(o.code == op_code for o in agreement.operations)
                    and not self._excluded("operation", number, e.fiscal_year, op_code))
        project = self.projects.get(e.subject)
        if project is not None and e.fiscal_year in project.years:
            return not (self._excluded("list", e.subject, e.fiscal_year)
                        or self._excluded("identity", e.subject, e.fiscal_year))
        agreement = self._agreement_by_key.get((e.subject, e.fiscal_year))
        return agreement is not None and not self._excluded("agreement", e.subject, e.fiscal_year)

    # ================================================================== change

    def advance(self, minutes: float) -> datetime:
        """Move the world clock (what last-modified stamps of later changes say)."""
        with self.lock:
            self.now = self.now + timedelta(minutes=minutes)
            return self.now

    def _editable_codes(self, year: int) -> list[str]:
        return [c for c in self._codes_by_year.get(year, []) if self.projects[c].case is None]

    def edit_projects(self, n: int, year: int | None = None) -> list[str]:
        """Change n ordinary projects of `year` (default: current): credits and location; returns codes.

        The change never creates a deviation: approved and notified grow by the same amount.
        """
        with self.lock:
            year = year or self.epoch.current_year
            candidates = self._editable_codes(year)
            chosen = sorted(self._mutation_rng.sample(candidates, min(n, len(candidates))))
            for code in chosen:
                self._edit_project(self.projects[code].years[year])
            return chosen

    def _edit_project(self, record: ProjectYear) -> None:
        rng = self._mutation_rng
        delta = D(rng.randint(1, 50))
        row = record.credits[0]
        row.approved += delta
        if row.notified > 0:
            row.notified += delta
        record.location = rng.choice([loc for loc in LOCATIONS if loc != record.location])
        record.last_modified = self.now

    def edit_agreements(self, n: int, year: int | None = None) -> list[str]:
        """Change n ordinary agreements of `year`: a chapter's approved and notified; returns numbers."""
        with self.lock:
            year = year or self.epoch.current_year
            candidates = [self.agreements[i] for i in self._agreement_ids_by_year.get(year, [])
                          if self.agreements[i].case is None]
            chosen = sorted(self._mutation_rng.sample(candidates, min(n, len(candidates))),
                            key=lambda a: a.agreement_no)
            for agreement in chosen:
                self._edit_agreement(agreement)
            return [a.agreement_no for a in chosen]

    def _edit_agreement(self, agreement: Agreement) -> None:
        delta = D(self._mutation_rng.randint(1, 50))
        credit = agreement.credits[0]
        credit.approved = (credit.approved or D(0)) + delta
        if credit.notified:
            credit.notified += delta
        agreement.modified_at = self.now

    def add_project(self, year: int | None = None, near: str | None = None) -> str:
        """A new ordinary project with a record for `year` (default: current); returns its code.

        With `near` (a project code) the new project joins that project's plan, so it sorts just
        before or after it in the list.
        """
        with self.lock:
            year = year or self.epoch.current_year
            rng = self._mutation_rng
            plan_of = self.projects.get(near) if near else None
            project = self._new_identity(rng, plan_of=plan_of, lowest=True) if plan_of else None
            if project is None:
                project = self._new_identity(rng)
            project.start_year, project.end_year = year, year + rng.randint(1, 3)
            record = capital_year(rng, self.epoch, project, year, "exchanged", D(0),
                                  self._capital_agreement_no(year, project))
            record.last_modified = self.now
            project.years[year] = record
            self._register_project(project)
            self._expected.extend(capital_bookkeeping(self.epoch, project, record))
            return project.code

    def remove_project(self, code: str) -> bool:
        """Remove a project from the portal (every year); its detail page answers lblNotFound."""
        with self.lock:
            project = self.projects.pop(code, None)
            if project is None:
                return False
            self._by_portal_id.pop(project.portal_id, None)
            for year in project.years:
                codes = self._codes_by_year.get(year, [])
                i = bisect.bisect_left(codes, code)
                if i < len(codes) and codes[i] == code:
                    codes.pop(i)
            return True

    def add_agreement(self, year: int | None = None) -> str:
        """A new ordinary agreement for `year` (default: current), with the next SABA id."""
        with self.lock:
            year = year or self.epoch.current_year
            rng = self._mutation_rng
            agreement = self._background_agreement(rng, only_year=year)[0]
            self._next_saba_id += rng.randint(1, 7)
            del self.agreements[agreement.portal_id]
            agreement.portal_id = self._next_saba_id
            agreement.modified_at = self.now
            self.agreements[agreement.portal_id] = agreement
            self._agreement_ids_by_year.setdefault(year, []).append(agreement.portal_id)
            self._expected.extend(expense_bookkeeping(self.epoch, agreement))
            return agreement.agreement_no

    def remove_agreement(self, agreement_no: str, year: int | None = None) -> bool:
        with self.lock:
            year = year or self.epoch.current_year
            agreement = self._agreement_by_key.pop((agreement_no, year), None)
            if agreement is None:
                return False
            self.agreements.pop(agreement.portal_id, None)
            ids = self._agreement_ids_by_year.get(year, [])
            i = bisect.bisect_left(ids, agreement.portal_id)
            if i < len(ids) and ids[i] == agreement.portal_id:
                ids.pop(i)
            return True

    # ---------------------------------------------------------------- shifts while paging

    def reset_shifts(self, budget: int) -> None:
        """Give each portal `budget` additions/removals for shift_while_paging (set_faults calls it)."""
        with self.lock:
            self._shift_count = {"nezarat4": 0, "saba": 0}
            self._shift_budget = {"nezarat4": budget, "saba": budget}

    def _take_shift(self, portal: str) -> int | None:
        """The number of this membership change (1, 2, …), or None when the budget is spent."""
        if self._shift_budget[portal] <= 0:
            return None
        self._shift_budget[portal] -= 1
        self._shift_count[portal] += 1
        return self._shift_count[portal]

    def shift_projects(self, year: int, served: list[str]) -> dict:
        """After a list page: edit one project; while the budget lasts, also add one next to the
        page's first row (odd calls) or remove one of the page's projects (even calls)."""
        with self.lock:
            changed: dict = {"edited": self.edit_projects(1, year)}
            number = self._take_shift("nezarat4")
            if number is None:
                return changed
            eligible = [c for c in served if c in self.projects and self.projects[c].case is None]
            if number % 2 == 1 or not eligible:
                anchor = served[0] if served and served[0] in self.projects else None
                changed["added"] = self.add_project(year, near=anchor)
            else:
                victim = eligible[0]
                self.remove_project(victim)
                changed["removed"] = victim
            return changed

    def shift_agreements(self, year: int, served: list[int]) -> dict:
        """After an agreements page: edit one; while the budget lasts, also remove one of the page's
        agreements (odd calls) or add one at the end (even calls)."""
        with self.lock:
            changed: dict = {"edited": self.edit_agreements(1, year)}
            number = self._take_shift("saba")
            if number is None:
                return changed
            eligible = [self.agreements[i] for i in served if i in self.agreements and self.agreements[i].case is None]
            if number % 2 == 1 and eligible:
                victim = eligible[0]
                self.remove_agreement(victim.agreement_no, year)
                changed["removed"] = victim.agreement_no
            else:
                changed["added"] = self.add_agreement(year)
            return changed


def _year_status(rng: random.Random, current: bool) -> str:
    roll = rng.random()
    if current:
        return "exchanged" if roll < 0.85 else "amended" if roll < 0.91 else "awaiting" if roll < 0.96 else "cancelled"
    return "exchanged" if roll < 0.88 else "amended" if roll < 0.96 else "cancelled"
