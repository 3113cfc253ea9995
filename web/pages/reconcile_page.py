"""Running a reconciliation from the console: the consolidation group starts one (years, as-of
day); it runs in the background (web/jobs.py) while the page refreshes itself to show its
progress, then its result. A second start while one runs is refused with a message."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from foundation import present
from foundation.jalali import parse_day
from foundation.persian import NormalizationError, to_ascii_digits
from foundation.vocabulary import FIRST_YEAR, LAST_YEAR
from store import console as store
from store.users import display_names, record_action
from web.common import Refused, checked_form, console, flash, redirect, render, user_of
from web.jobs import JobBusy, ReconcileJob
from web.permissions import can_reconcile

router = APIRouter()
REFRESH_SECONDS = 2


@router.get("/reconcile")
def reconcile_page(request: Request) -> HTMLResponse:
    state = console(request)
    job = state.jobs.last
    with state.engine.connect() as conn:
        runs = store.reconcile_runs(conn, limit=10)
        years = store.fiscal_years(conn)
        people = display_names(conn, {job.by}) if job is not None else {}
    response = render(request, "reconcile.html", job=job, runs=runs, years=years, people=people,
                      may_run=can_reconcile(user_of(request)))
    if job is not None and job.running:
        # no script: the browser reloads the page while the run lasts
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response


@router.post("/reconcile")
async def start(request: Request):
    form = await checked_form(request)
    state, user = console(request), user_of(request)
    if not can_reconcile(user):  # a 403, as every other act refused by role (a trial: a 200 with a message)
        raise Refused(403, "اجرای تطبیق با گروه تلفیق بودجه است.")
    years: list[int] = []
    for raw in form.getlist("year"):
        text = to_ascii_digits(str(raw)).strip()
        if text:
            if not (text.isascii() and text.isdigit() and len(text) == 4 and FIRST_YEAR <= int(text) <= LAST_YEAR):
                flash(request, f"سال مالی «{raw}» درست نیست: سالی از {present.digits(FIRST_YEAR)} تا "
                               f"{present.digits(LAST_YEAR)} (مانند ۱۴۰۵).", "error")
                return redirect("/reconcile")
            years.append(int(text))
    as_of: date | None = None
    raw_day = str(form.get("as_of", "")).strip()
    if raw_day:
        try:
            as_of = parse_day(raw_day)
        except NormalizationError:
            flash(request, f"روز «{raw_day}» خوانا نیست؛ مانند ۱۴۰۵/۰۹/۱۲ بنویسید.", "error")
            return redirect("/reconcile")
    engine = state.engine

    def started() -> None:
        with engine.begin() as conn:
            record_action(conn, user.username, "reconcile", ",".join(map(str, years)) or "all years",
                          f"as of {as_of.isoformat()}" if as_of else "as of today")

    def on_end(job: ReconcileJob) -> None:
        with engine.begin() as conn:
            record_action(conn, job.by, "reconcile_end", f"run {job.run_id}" if job.run_id else None,
                          job.error or f"{job.findings} findings in {job.seconds:.1f} s"
                          + (f" (what-if: {job.what_if})" if job.what_if else ""))

    try:
        await run_in_threadpool(lambda: state.jobs.start(by=user.username, years=sorted(set(years)) or None,
                                                         as_of=as_of, before=started, on_end=on_end))
    except JobBusy:
        flash(request, "یک تطبیق هنوز در حال اجراست؛ پس از پایان آن دوباره بکوشید.", "error")
        return redirect("/reconcile")
    flash(request, "تطبیق آغاز شد؛ این صفحه پیشرفت آن را نشان می‌دهد.")
    return redirect("/reconcile")
