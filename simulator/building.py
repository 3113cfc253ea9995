"""How the province is built: identities, the ordinary (background) records, and the build's order.

A part of `World` (world.py holds the state and the indexes this fills). `_build` runs once, from
`World.generate`: the planting plan first (planted/), then the malformation hosts (hosts.py),
then ordinary projects, inspections and agreements up to the asked sizes, then SABA ids, then the
bookkeeping of time-driven deviations (truth.py). Each step draws from its own RNG stream, so the
same seed and sizes give the same records. The identity helpers (codes, numbers, portal ids) also
serve the live changes of changes.py, which draw from the mutation stream.
"""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal

from simulator import calendar as cal
from simulator.generate import (
    CHECKED,
    capital_year,
    dec,
    expense_agreement,
    operations_for,
)
from simulator.model import Agreement, Inspection, Project
from simulator.planted import Planter
from simulator.reference import (
    AGENCIES,
    COUNTIES,
    INSPECTION_REMARKS,
    INSPECTORS,
    PROGRAMS,
    Agency,
    County,
    Program,
)
from simulator.truth import capital_bookkeeping, expense_bookkeeping

D = Decimal


class Building:
    """The generation steps of `World` (a mixin: World's __init__ declares the state used here)."""

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
            agency, county = plan_of.agency, plan_of.county
            plan_code, plan_title = plan_of.plan_code, plan_of.plan_title
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


def _year_status(rng: random.Random, current: bool) -> str:
    roll = rng.random()
    if current:
        return "exchanged" if roll < 0.85 else "amended" if roll < 0.91 else "awaiting" if roll < 0.96 else "cancelled"
    return "exchanged" if roll < 0.88 else "amended" if roll < 0.96 else "cancelled"
