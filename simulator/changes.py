"""Live changes: what happens to the province while clients read it.

A part of `World`. Tests and the `shift_while_paging` fault move the world clock, edit ordinary
records (a change that never creates a deviation), add and remove records; every change holds the
world's lock and stamps last-modified with `world.now`, and draws from the mutation RNG stream, so
one seed and one sequence of calls give the same world. `shift_projects` / `shift_agreements` are
what the portals call after serving a list page while the fault is on.
"""

from __future__ import annotations

import bisect
from datetime import datetime, timedelta
from decimal import Decimal

from simulator.generate import capital_year
from simulator.model import Agreement, ProjectYear
from simulator.reference import LOCATIONS
from simulator.truth import capital_bookkeeping, expense_bookkeeping

D = Decimal


class LiveChanges:
    """The changes of `World` (a mixin: World's __init__ declares the state used here)."""

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
