"""Sync runs: the history with their counts, and a run's rejected rows with why."""

from __future__ import annotations

from fastapi import APIRouter, Request

from store import console as store
from store.export import recent_runs, run_rejections
from web.common import Id, Refused, console, render

router = APIRouter()
REJECTIONS_SHOWN = 500


@router.get("/runs")
def runs(request: Request):
    source = request.query_params.get("source") or None
    with console(request).engine.connect() as conn:
        rows = recent_runs(conn, limit=100, source=source)
    return render(request, "runs.html", runs=rows, source=source)


@router.get("/runs/{run_id}")
def run(request: Request, run_id: Id):
    with console(request).engine.connect() as conn:
        row = store.sync_run(conn, run_id)
        if row is None:
            raise Refused(404, "چنین اجرایی ثبت نشده است.")
        rejections = run_rejections(conn, run_id, limit=REJECTIONS_SHOWN)
    return render(request, "run.html", run=row, rejections=rejections, shown_limit=REJECTIONS_SHOWN)
