"""The overview: each source's last sync, the last reconciliation, what is open by severity and
expert group and by county, and the alerts' outbox backlog."""

from __future__ import annotations

from collections import defaultdict

from fastapi import APIRouter, Request

from foundation.vocabulary import GROUPS, SEVERITIES, SOURCES
from reconcile.deviations import group_of
from store import alerts as store_alerts
from store import console as store
from web.common import console, render

router = APIRouter()


@router.get("/")
def overview(request: Request):
    state = console(request)
    routing = state.config.routing
    with state.engine.connect() as conn:
        syncs = store.last_sync_runs(conn, tuple(SOURCES))
        runs = store.reconcile_runs(conn, limit=1)
        by_agency = store.active_by_agency(conn)
        by_county = store.active_by_county(conn)  # every county (Khuzestan has about thirty)
        outbox = store_alerts.outbox_summary(conn)
    # severity x group, of deviations someone still has to deal with; acknowledged ones counted apart
    grid: dict[str, dict[str, int]] = {g: defaultdict(int) for g in GROUPS}
    acknowledged: dict[str, int] = defaultdict(int)
    for agency_code, severity, status, n in by_agency:
        group = group_of(agency_code, routing)
        if status == "open":
            grid[group][severity] += n
        else:
            acknowledged[group] += n
    return render(request, "overview.html", sources=SOURCES, syncs=syncs, last_run=runs[0] if runs else None,
                  groups=GROUPS, severities=SEVERITIES, grid=grid, acknowledged=acknowledged,
                  by_county=by_county, outbox=outbox, job=state.jobs.last)
