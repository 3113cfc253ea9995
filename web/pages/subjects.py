"""A project's and an agreement's page: identity, credits, targets against reports (an S-curve),
the comptroller's status, field visits, deviations, and the change history of each reported figure."""

from __future__ import annotations

from decimal import Decimal

from fastapi import APIRouter, Request

from foundation.persian import BadCode, parse_code
from reconcile.deviations import group_of
from reports.model import curve_year
from reports.precision import credit_texts
from store import console as store
from web.common import Refused, console, credit_limits, render, user_of
from web.curves import cumulative_share, s_curve
from web.permissions import can_act_on, can_record_visits

router = APIRouter()


def _code(raw: str) -> str:
    """A code in a page's address as the store keeps it (typed with Persian digits, too); one that
    is no code is kept as it is, and finds nothing."""
    try:
        return parse_code(raw)
    except BadCode:
        return raw


@router.get("/projects/{code}")
def project(request: Request, code: str):
    state = console(request)
    with state.engine.connect() as conn:
        page = store.project_page(conn, _code(code))
    if page is None:
        raise Refused(404, "پروژه‌ای با این کد در پایگاه نیست.")
    limits = credit_limits(state)
    curves, credits = {}, {}
    for year in page.years:
        reports = {r["quarter"]: r["progress"] for r in page.reports.get(year["id"], [])}
        # the points `budgetwatch report project CODE` draws too: from the year's start, at its `start`
        curve = curve_year(year["fiscal_year"], year["progress_at_year_start"],
                           [year[f"target_q{q}"] for q in range(1, 5)], reports)
        curves[year["id"]] = s_curve(curve.planned, curve.reported)
        rows = [(c["source"], _stages(c, "absorbed", limits)) for c in page.credits.get(year["id"], [])]
        total = credit_texts([year[f"total_{stage}"] for stage in ("approved", "notified", "allocated", "absorbed")],
                             limits)
        credits[year["id"]] = (rows, total)
    agency = page.years[0]["agency_code"] if page.years else None
    routing = state.config.routing
    user = user_of(request)
    return render(request, "project.html", page=page, curves=curves, credits=credits, group=group_of(agency, routing),
                  may_visit=can_record_visits(user) and can_act_on(user, agency, routing))


def _stages(row, last: str, limits: tuple[Decimal, ...]) -> list[str]:
    """A credit row's stages as the report's tables show them (reports.precision.credit_stages): up to
    two places, more where two would hide a break credit_inconsistency flags; ``last`` is absorbed
    (a project's source) or spent (an agreement's chapter)."""
    return credit_texts([row["approved"], row["notified"], row["allocated"], row[last]], limits)


@router.get("/agreements/{agreement_no:path}")
def agreement(request: Request, agreement_no: str):
    """An agreement's page: by its number, or by a deviation's subject ``agreement_no/op`` (the
    number may hold '/' itself: store.console.agreement_of takes the one stored)."""
    state = console(request)
    with state.engine.connect() as conn:
        number = _code(agreement_no)
        page = store.agreement_page(conn, store.agreement_of(conn, number) or number)
    if page is None:
        raise Refused(404, "موافقتنامه‌ای با این شماره در پایگاه نیست.")
    limits = credit_limits(state)
    credits = {year_id: [(c["chapter"], c["title"], _stages(c, "spent", limits)) for c in rows]
               for year_id, rows in page.credits.items()}
    curves = {}
    for operations in page.operations.values():
        for op in operations:
            targets = {q: op[f"target_q{q}"] for q in range(1, 5)}
            known = [Decimal(v) for v in targets.values() if v is not None]
            total = op["annual_target"] or (sum(known) if known else None)
            done = {p["quarter"]: p["quantity"] for p in page.performance.get(op["id"], [])}
            curves[op["id"]] = s_curve(cumulative_share(targets, total), cumulative_share(done, total))
    return render(request, "agreement.html", page=page, curves=curves, credits=credits,
                  group=group_of(page.years[0]["agency_code"], state.config.routing))
