"""The ground truth: what a correct client reads from the portals, and what a correct reconciliation finds.

A part of `World`. `truth_projects` / `truth_agreements` give every record in the format of
`budgetwatch export` (canonical text, Decimal numbers, ISO Gregorian dates); `inspections` the
field visits in the import format. `expected_deviations` is the union of the planted cases'
deviations (written in planted/ from the plan) and the bookkeeping below of the time-driven rules
(`missing_report`, `approval_overdue`) from what was generated — never computed by running rules.
"""

from __future__ import annotations

from datetime import date, timedelta

from simulator import calendar as cal
from simulator.config import TEHRAN
from simulator.epoch import Epoch
from simulator.generate import CHECKED
from simulator.model import Agreement, ExpectedDeviation, Project, ProjectYear


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


class GroundTruth:
    """The ground truth of `World` (a mixin: World's __init__ declares the state used here)."""

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
                {"project_code": i.project_code, "date": cal.jalali_text(i.day),
                 "observed_progress": i.observed_progress, "inspector": i.inspector, "remarks": i.remarks}
                for i in sorted(rows, key=lambda i: (i.project_code, i.day))
            ]

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

# ---------------------------------------------------------------------------------------------
# Bookkeeping: the time-driven deviations that follow from what was generated


def capital_bookkeeping(epoch: Epoch, project: Project, record: ProjectYear) -> list[ExpectedDeviation]:
    """missing_report / approval_overdue as they follow from the record's reports and dates."""
    if record.status not in CHECKED or not record.targets:
        return []
    out = []
    reported = {r.quarter for r in record.reports}
    for q in epoch.closed(record.fiscal_year):
        if q not in reported:
            out.append(ExpectedDeviation(
                "missing_report", project.code, record.fiscal_year, q, "major",
                cal.due_day(record.fiscal_year, q) + timedelta(days=1), project.case,
            ))
    for r in record.reports:
        if r.status != "approved":
            out.append(ExpectedDeviation(
                "approval_overdue", project.code, record.fiscal_year, r.quarter, "minor",
                r.reported_on + timedelta(days=cal.APPROVAL_DUE_DAYS + 1), project.case,
            ))
    return out


def expense_bookkeeping(epoch: Epoch, agreement: Agreement) -> list[ExpectedDeviation]:
    if agreement.status not in CHECKED:
        return []
    out = []
    year = agreement.fiscal_year
    for q in epoch.closed(year):
        has_item = any(r.quarter == q for op in agreement.operations for r in op.performance)
        planned = any(op.quarterly_targets[q - 1] > 0 for op in agreement.operations)
        if planned and not has_item:
            out.append(ExpectedDeviation(
                "missing_report", agreement.agreement_no, year, q, "major",
                cal.due_day(year, q) + timedelta(days=1), agreement.case,
            ))
    for op in agreement.operations:
        for r in op.performance:
            if r.status != "approved":
                out.append(ExpectedDeviation(
                    "approval_overdue", f"{agreement.agreement_no}/{op.code}", year, r.quarter, "minor",
                    r.reported_on + timedelta(days=cal.APPROVAL_DUE_DAYS + 1), agreement.case,
                ))
    return out
