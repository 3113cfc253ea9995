"""The simulated province: its projects, agreements and inspections, and the indexes the portals read.

`World.generate(seed, projects, agreements, clock)` builds everything deterministically from the
seed: the same seed and sizes give the same records (and, rendered, the same bytes). The world is
shared by both portal servers; every read and every change holds one re-entrant lock, so changes
made while clients page through (edits, additions, removals) are atomic.

`World` is one object whose parts live in their own modules: this one holds its state, the indexes
and the look-ups the portals page through; building.py builds it; hosts.py keeps the `malformed`
fault's hosts; truth.py gives the ground truth (export format and expected deviations); changes.py
changes it while clients read.
"""

from __future__ import annotations

import bisect
import random
import threading
from datetime import datetime

from simulator.building import Building
from simulator.changes import LiveChanges
from simulator.config import default_clock
from simulator.epoch import Epoch
from simulator.hosts import Malformation, MalformationHosts
from simulator.model import Agreement, ExpectedDeviation, Inspection, Project, ProjectYear
from simulator.planted import PlantedCase
from simulator.reference import AGENCIES, COUNTIES, Agency, County
from simulator.truth import GroundTruth


class World(Building, MalformationHosts, GroundTruth, LiveChanges):
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

    @classmethod
    def generate(
        cls, seed: int, projects: int = 600, agreements: int = 300, clock: datetime | None = None
    ) -> World:
        world = cls(seed, clock or default_clock())
        world._build(projects, agreements)
        return world

    # ---------------------------------------------------------------- registration (the indexes)

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

    # ---------------------------------------------------------------- reading (portals)

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

