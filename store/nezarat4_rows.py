"""Nezarat-4's records as rows: a project's detail page for a year, with its credits and reports.

The mapping of ``foundation.records.ProjectDetail`` onto ``project``, ``project_year``,
``project_credit`` and ``progress_report``, written through the history-keeping upsert of
``store.upsert`` (each changed field logged with the run that saw it), and the look-ups and
``gone`` marks a Nezarat-4 sync needs. Runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from foundation.persian import text_key
from foundation.records import ProjectDetail
from store.models import (
    Agency,
    ChangeLog,
    County,
    Plan,
    ProgressReport,
    Project,
    ProjectCredit,
    ProjectYear,
    RejectedRecord,
)
from store.reference_rows import county_id, ensure_counties, ensure_plans, start_batch
from store.upsert import T, WriteCounts, mark_gone, mark_unseen_gone, merge_rows, select_existing, upsert

# What a sync of Nezarat-4 writes (store.db.refresh_statistics is given these after a run)
TABLES_WRITTEN: tuple[sa.Table, ...] = tuple(
    T(m) for m in (Agency, Plan, County, Project, ProjectYear, ProjectCredit, ProgressReport, ChangeLog, RejectedRecord)
)

_PROJECT_YEAR_FIELDS = (
    "title", "agency_code", "county_id", "location", "start_year", "end_year", "total_cost",
    "progress_at_year_start", "agreement_no", "agreement_date", "agreement_status", "plan_code",
    "target_q1", "target_q2", "target_q3", "target_q4",
    "total_approved", "total_notified", "total_allocated", "total_absorbed", "last_modified", "gone",
)
_PROJECT_YEAR_TEXT = frozenset({"title", "location"})
_CREDIT_FIELDS = ("source", "approved", "notified", "allocated", "absorbed")
_REPORT_FIELDS = ("reported_on", "progress", "absorbed", "comptroller_status", "decided_on", "remarks")


def save_project_details(conn: Connection, run_id: int, details: Sequence[ProjectDetail]) -> WriteCounts:
    """Store a batch of detail pages (one per project and year) with their credits and reports."""
    counts = WriteCounts()
    if not details:
        return counts
    changes = start_batch(conn, run_id, {d.agency_code: d.agency_name for d in details})
    ensure_plans(conn, {d.plan_code: d.plan_title for d in details if d.plan_code})
    county_ids = ensure_counties(conn, ((d.county, None) for d in details))

    # a project's own plan_code is its latest year's: a batch of an older year never overwrites it
    latest = _latest_years(conn, {d.project_code for d in details})
    newest: dict[str, ProjectDetail] = {}
    for d in details:
        if d.project_code not in newest or d.fiscal_year >= newest[d.project_code].fiscal_year:
            newest[d.project_code] = d
    existing_projects = select_existing(conn, T(Project), ["code"], ((c,) for c in newest))
    project_rows = {}
    for code, d in newest.items():
        old = existing_projects.get((code,))
        keeps_plan = old is not None and d.fiscal_year < latest.get(code, d.fiscal_year)
        project_rows[code] = dict(code=code, portal_id=d.portal_id,
                                  plan_code=old["plan_code"] if keeps_plan else d.plan_code)
    fresh = [r for c, r in project_rows.items() if (c,) not in existing_projects
             or existing_projects[(c,)]["portal_id"] != r["portal_id"] or existing_projects[(c,)]["plan_code"] != r["plan_code"]]
    upsert(conn, T(Project), fresh, ["code"])
    project_ids = {k[0]: v["id"] for k, v in select_existing(conn, T(Project), ["code"], ((c,) for c in project_rows)).items()}

    year_rows = []
    for d in details:
        t = d.targets
        total = d.credit_total
        year_rows.append(dict(
            project_id=project_ids[d.project_code], fiscal_year=d.fiscal_year,
            title=d.title, title_key=text_key(d.title) or "", agency_code=d.agency_code,
            county_id=county_id(county_ids, d.county), location=d.location,
            start_year=d.start_year, end_year=d.end_year, total_cost=d.total_cost,
            progress_at_year_start=d.progress_at_year_start, agreement_no=d.agreement_no,
            agreement_date=d.agreement_date, agreement_status=d.agreement_status, plan_code=d.plan_code,
            target_q1=t.get(1), target_q2=t.get(2), target_q3=t.get(3), target_q4=t.get(4),
            total_approved=total.approved if total else None, total_notified=total.notified if total else None,
            total_allocated=total.allocated if total else None, total_absorbed=total.absorbed if total else None,
            last_modified=d.last_modified, gone=False,
        ))
    code_of = {project_ids[d.project_code]: d.project_code for d in details}
    year_ids, new_years, changed_years = merge_rows(
        conn, T(ProjectYear), ["project_id", "fiscal_year"], year_rows, _PROJECT_YEAR_FIELDS,
        _PROJECT_YEAR_TEXT, "project_year", lambda r: f"{code_of[r['project_id']]}/{r['fiscal_year']}", changes, run_id,
    )

    credit_rows, report_rows = [], []
    label: dict[int, str] = {}
    for d in details:
        py_id = year_ids[(project_ids[d.project_code], d.fiscal_year)]
        label[py_id] = f"{d.project_code}/{d.fiscal_year}"
        for c in d.credits:
            credit_rows.append(dict(project_year_id=py_id, source=c.source, source_key=text_key(c.source) or "",
                                    approved=c.approved, notified=c.notified, allocated=c.allocated, absorbed=c.absorbed))
        for r in d.reports:
            report_rows.append(dict(project_year_id=py_id, quarter=r.quarter, reported_on=r.reported_on,
                                    progress=r.progress, absorbed=r.absorbed, comptroller_status=r.comptroller_status,
                                    decided_on=r.decided_on, remarks=r.remarks))
    _, new_c, changed_c = merge_rows(
        conn, T(ProjectCredit), ["project_year_id", "source_key"], credit_rows, _CREDIT_FIELDS, frozenset({"source"}),
        "project_credit", lambda r: f"{label[r['project_year_id']]}/{r['source']}", changes, run_id,
    )
    _, new_r, changed_r = merge_rows(
        conn, T(ProgressReport), ["project_year_id", "quarter"], report_rows, _REPORT_FIELDS, frozenset({"remarks"}),
        "progress_report", lambda r: f"{label[r['project_year_id']]}/q{r['quarter']}", changes, run_id,
    )
    touched = {k[0] for k in new_c | changed_c | new_r | changed_r}
    for key in year_ids:
        py_id = year_ids[key]
        if key in new_years:
            counts.inserted += 1
        elif key in changed_years or py_id in touched:
            counts.updated += 1
        else:
            counts.unchanged += 1
    counts.changes = changes.flush(conn)
    return counts


def _latest_years(conn: Connection, codes: set[str]) -> dict[str, int]:
    """The latest fiscal year stored of each of these projects."""
    py, project = T(ProjectYear), T(Project)
    rows = conn.execute(sa.select(project.c.code, sa.func.max(py.c.fiscal_year))
                        .join(py, py.c.project_id == project.c.id)
                        .where(project.c.code.in_(sorted(codes))).group_by(project.c.code))
    return {code: year for code, year in rows}


def stored_project_versions(conn: Connection, fiscal_year: int, codes: Iterable[str]) -> dict[str, datetime | None]:
    """project code -> stored last_modified of its year (absent: never stored or gone)."""
    codes = list(codes)
    if not codes:
        return {}
    py, p = T(ProjectYear), T(Project)
    out: dict[str, datetime | None] = {}
    for start in range(0, len(codes), 400):
        rows = conn.execute(
            sa.select(p.c.code, py.c.last_modified)
            .join(py, py.c.project_id == p.c.id)
            .where(py.c.fiscal_year == fiscal_year, py.c.gone.is_(False), p.c.code.in_(codes[start : start + 400]))
        )
        out.update(dict(rows.all()))
    return out


def holds_year(conn: Connection, fiscal_year: int) -> bool:
    """Whether the store holds any project of `fiscal_year` not marked gone (by index)."""
    py = T(ProjectYear)
    return conn.execute(sa.select(sa.literal(1)).where(py.c.fiscal_year == fiscal_year, py.c.gone.is_(False))
                        .limit(1)).first() is not None


def mark_projects_gone(conn: Connection, run_id: int, fiscal_year: int, seen_codes: set[str]) -> int:
    """A full sync did not list these projects for the year: mark them gone (never delete)."""
    py, p = T(ProjectYear), T(Project)
    stored = (sa.select(py.c.id, p.c.code).join(p, p.c.id == py.c.project_id)
              .where(py.c.fiscal_year == fiscal_year, py.c.gone.is_(False)))
    return mark_unseen_gone(conn, run_id, py, "project_year", stored, seen_codes, lambda c: f"{c}/{fiscal_year}")


def mark_project_gone(conn: Connection, run_id: int, fiscal_year: int, code: str) -> int:
    """The detail page said the project is not there (any more) for the year."""
    py, p = T(ProjectYear), T(Project)
    row = conn.execute(
        sa.select(py.c.id).join(p, p.c.id == py.c.project_id)
        .where(py.c.fiscal_year == fiscal_year, p.c.code == code, py.c.gone.is_(False))
    ).first()
    return mark_gone(conn, run_id, py, "project_year", [(row[0], f"{code}/{fiscal_year}")] if row else [])

