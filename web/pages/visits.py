"""Field visits (بازدید میدانی): record one in a form, or upload a CSV or .xlsx file of many.

Both go through reconcile.inspections exactly as `budgetwatch inspections import` does: the form's
visit is written as a one-row file of the same columns and imported, so a visit is checked by the
same code, row for row, and a file is all or nothing with the same report of every bad line. The
file's name in the store (``field_inspection.source_file``) names the user; the console's log of
acts records who, when and how many, in the import's own transaction. An expert may record visits
only to projects of their groups' agencies: a row naming any other project is a bad row, listed with
its line among the others (the import asks ``refuse`` within its transaction), and the file is
refused whole. Everyone sees the visits recorded last; only experts and the consolidation group
record them (an admin sees everything and acts on nothing).
"""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from foundation.jalali import parse_day
from foundation.persian import parse_code, parse_number
from foundation.present import digits, number
from reconcile import inspections as insp
from store import console as store
from store.models import FieldInspection
from store.users import record_action
from web.common import Refused, checked_form, console, flash, redirect, render, user_of
from web.permissions import can_act_on, can_record_visits
from web.words import visit_reason

router = APIRouter()
NOT_YOURS = "ثبت بازدید میدانی با کارشناسان بودجه و گروه تلفیق است."
MAX_FILE_BYTES = 5 * 1024 * 1024
REMARKS_MAX = insp.MAX_REMARKS  # the form's maxlength; the import counts (the text as it keeps it)
COLUMNS = (*insp.REQUIRED, *insp.OPTIONAL)
fi = FieldInspection.__table__


def _recent(request: Request, limit: int = 30) -> list[dict]:
    with console(request).engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(fi).order_by(fi.c.imported_at.desc().nulls_last(),
                                                                     fi.c.id.desc()).limit(limit)).mappings()]


@dataclass(frozen=True)
class Problem:
    """A reason nothing was recorded, as the page lists it."""

    line: int | None  # the file's line (1 is the header); None for the form's visit or the whole file
    text: str
    persian: bool  # False: the import's English sentence, shown left to right

    @classmethod
    def of(cls, line: int | None, reason: str) -> Problem:
        too_early = _TOO_EARLY.fullmatch(reason)
        if too_early:
            return cls(line, _too_early(too_early), True)
        return cls(line, *visit_reason(reason))


# a day before reconcile.inspections.EARLIEST_VISIT (its reason is newer than web.words' list of the
# import's reasons, which says the others in Persian)
_TOO_EARLY = re.compile(r"date '.*' \((\d{4}/\d{2}/\d{2})\) is before (\d{4}/\d{2}/\d{2}), "
                        r"the earliest day a visit may have", re.S)


def _too_early(match: re.Match) -> str:
    return (f"تاریخ بازدید ({digits(match[1])}) پیش از {digits(match[2])} است، نخستین روزی که بازدید می‌تواند داشته "
            "باشد؛ سال را بازبینی کنید")


def _page(request: Request, *, status_code: int = 200, problems: list[Problem] | None = None,
          values: dict[str, str] | None = None, busy: Problem | None = None):
    values = values or {"project_code": request.query_params.get("project", "")}
    return render(request, "visits.html", status_code=status_code, recent=_recent(request), problems=problems or [],
                  values=values, busy=busy, may_record=can_record_visits(user_of(request)), REMARKS_MAX=REMARKS_MAX,
                  INSPECTOR_MAX=insp.MAX_INSPECTOR)


@router.get("/visits")
def visits_page(request: Request):
    return _page(request)


Act = Callable[[insp.ImportResult], tuple[str, str | None, str | None]]  # (action, target, detail)


def _import(request: Request, path: Path, act: Act) -> tuple[insp.ImportResult | None, list[Problem]]:
    """Check every row of the file, the user's right to its project among the rest, then import it
    (all or nothing): the import's own checks, as `budgetwatch inspections import` makes them. The
    act's line in the console's log of acts is written in the import's transaction: the visits and
    their line are stored together or not at all."""
    state, user = console(request), user_of(request)

    def logged(conn: sa.Connection, result: insp.ImportResult) -> None:
        record_action(conn, user.username, *act(result))

    def refuse(conn, codes: set[str]) -> dict[str, str]:
        agencies = store.project_agencies(conn, sorted(codes))
        return {code: f"project {code}: its agency is outside your expert groups"
                for code, agency in agencies.items() if not can_act_on(user, agency, state.config.routing)}

    try:
        return insp.import_file(state.engine, path, refuse=refuse, also=logged), []
    except insp.InspectionFileError as exc:
        if exc.problems:
            return None, [Problem.of(p.line, p.reason) for p in exc.problems]
        return None, [Problem.of(None, exc.whole or str(exc))]


async def _imported(request: Request, path: Path, act: Act,
                    form: dict[str, str] | None = None) -> tuple[insp.ImportResult | None, Response | None]:
    """`_import` off the event loop: its result, or the page to answer with instead. What to fix:
    400 (`form`: the form's visit, the one row of `path`, whose reasons stand without a line number and
    whose values stay in the form). Another import stuck half-way that held this one past its wait:
    503 and that sentence alone, since nothing was stored and nothing sent was wrong (the form's
    values kept to send again; a file is chosen again)."""
    try:
        result, problems = await run_in_threadpool(_import, request, path, act)
    except insp.ImportsBusy as exc:
        busy = Problem.of(None, str(exc))
        return None, await run_in_threadpool(lambda: _page(request, status_code=503, values=form, busy=busy))
    if result is None:
        if form is not None:  # line 2 of the one-row file is the form itself
            problems = [Problem(None, p.text, p.persian) for p in problems]
        return None, await run_in_threadpool(lambda: _page(request, status_code=400, problems=problems, values=form))
    return result, None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "file"


@router.post("/visits")
async def record_visit(request: Request):
    form = await checked_form(request)
    user = user_of(request)
    values = {name: str(form.get(name, "")).strip() for name in COLUMNS}
    if not can_record_visits(user):
        raise Refused(403, NOT_YOURS)
    def act(_: insp.ImportResult) -> tuple[str, str, str]:
        # imported, the visit's fields are read as the import read them (۱۳۰۵… typed is 1305…, a day
        # typed 1405-09-10 is Jalali): the log keeps the code, the day in ISO and the percentage, in
        # the forms the users page reads (web.words.act_text)
        observed = parse_number(values["observed_progress"], percent=True, field="observed_progress")
        return ("visit", parse_code(values["project_code"], field="project_code"),
                f"{parse_day(values['date']).isoformat()} {observed}")

    with tempfile.TemporaryDirectory(prefix="bw-visit-") as folder:
        path = Path(folder) / f"console-{_safe_name(user.username)}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            writer.writerow([values[name] for name in COLUMNS])
        result, answer = await _imported(request, path, act, form=values)
    if answer is not None:
        return answer
    code = parse_code(values["project_code"], field="project_code")
    flash(request, "بازدید ثبت شد." if result.inserted else "بازدید پیش‌تر ثبت شده بود و به‌روز شد."
          if result.updated else "همین بازدید پیش‌تر با همین ارقام ثبت شده بود.")
    return redirect(f"/projects/{quote(code, safe='')}")


@router.post("/visits/file")
async def upload_visits(request: Request):
    form = await checked_form(request, files=1)
    user = user_of(request)
    if not can_record_visits(user):
        raise Refused(403, NOT_YOURS)
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        flash(request, "پرونده‌ای برای بارگذاری انتخاب نشده است.", "error")
        return redirect("/visits")
    content = await upload.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        flash(request, "پرونده بزرگ‌تر از ۵ مگابایت است؛ آن را در چند پرونده بفرستید.", "error")
        return redirect("/visits")

    def act(r: insp.ImportResult) -> tuple[str, str, str]:
        return ("visits_file", upload.filename,
                f"{r.rows} rows: {r.inserted} new, {r.updated} updated, {r.unchanged} unchanged")

    with tempfile.TemporaryDirectory(prefix="bw-visits-") as folder:
        path = Path(folder) / f"console-{_safe_name(user.username)}-{_safe_name(upload.filename)}"
        path.write_bytes(content)
        result, answer = await _imported(request, path, act)
    if answer is not None:
        return answer
    flash(request, f"پرونده خوانده شد: {number(result.rows)} ردیف؛ {number(result.inserted)} تازه، "
                   f"{number(result.updated)} به‌روزشده، {number(result.unchanged)} بی‌تغییر.")
    return redirect("/visits")
