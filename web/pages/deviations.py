"""The deviations: the list (filters, sorting, server-side pages) and a deviation's page with its
sentence, figures, evidence row and history, where it is acknowledged or dismissed with a reason.

Filters arrive as query parameters; a value the console does not know is dropped with a note
rather than failing the page (a bookmarked link outlives a renamed rule). Acting goes through
reconcile.deviations, which records the event with who and why.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse
from starlette.datastructures import QueryParams

from foundation import present
from foundation.persian import BadCode, has_visible, parse_code, sort_key, to_ascii_digits
from foundation.vocabulary import DEVIATION_STATUSES, FIRST_YEAR, GROUPS, KINDS, LAST_YEAR, SEVERITIES
from reconcile import deviations as dv
from reconcile.rules import RULE_IDS
from reconcile.settings import RoutingConfig
from store import console as store
from store.users import display_names, record_action
from web.common import (Id, Refused, checked_form, console, credit_limits, evidence_figures, flash, query_url,
                        redirect, render, user_of)
from web import words
from web.permissions import can_act_on, group_agencies

router = APIRouter()
PER_PAGE = 50
SORT_NAMES = (("severity", "شدت (بحرانی نخست)"), ("rule", "قاعده"), ("subject", "پروژه / موافقتنامه"),
              ("period", "دوره"), ("status", "وضعیت"), ("found", "آخرین یافتن"))
RULES_BY_NAME = tuple(sorted(RULE_IDS, key=lambda rule: sort_key(present.rule(rule))))  # as the form lists them
FILTERS = ("year", "quarter", "county", "agency", "group", "rule", "kind", "severity", "status", "subject")


def _ints(values: list[str], low: int, high: int) -> tuple[int, ...]:
    found = []
    for value in values:
        text = to_ascii_digits(value).strip()
        # ASCII digits only, and few ('²' is a digit int() refuses; 5,000 digits are over its limit)
        if text.isascii() and text.isdigit() and len(text) <= 19 and low <= int(text) <= high:
            found.append(int(text))
    return tuple(sorted(set(found)))


def _known(values: list[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(v for v in dict.fromkeys(values) if v in allowed)


# how the note of values not understood names each filter
FILTER_NAMES = {"year": "سال مالی", "quarter": "سه‌ماهه", "county": "شهرستان", "group": "گروه", "rule": "قاعده",
                "kind": "نوع", "severity": "شدت", "status": "وضعیت"}


def _subject(raw: str) -> str:
    """The code search as a code is stored: bidi marks (copied from right-to-left text) and ZWNJ
    dropped, any dash a '-' (a trial found nothing for «‎1305» or «1305203619‐008», which the
    project page opens), as foundation.persian.parse_code reads codes; else its digits in ASCII."""
    try:
        return parse_code(raw, field="subject")
    except BadCode:
        return to_ascii_digits(raw).strip()


def parse_query(args: QueryParams, routing: RoutingConfig) -> tuple[store.DeviationQuery, dict[str, Any]]:
    """The list's query from the URL's parameters, and the parameters as understood (for links and
    the form); ``understood["dropped"]``: (filter's name, value) of each value not understood."""
    params: dict[str, Any] = {name: [v for v in args.getlist(name) if v.strip()] for name in FILTERS}
    groups = _known(params["group"], GROUPS)
    group_in, group_out = group_agencies(groups[0], routing) if len(groups) == 1 else (None, None)
    if len(groups) > 1 and routing.default in groups:  # with the default group: every agency but those
        # routed to a group not chosen (the default group holds the agencies routed nowhere)
        group_out = tuple(sorted(code for code, g in routing.agencies.items() if g not in groups))
    elif len(groups) > 1:  # several groups: their agencies together
        group_in = tuple(sorted(code for code, g in routing.agencies.items() if g in groups))
    subject = _subject((params["subject"] or [""])[0])
    sort = args.get("sort", "severity")
    query = store.DeviationQuery(
        years=_ints(params["year"], FIRST_YEAR, LAST_YEAR), quarters=_ints(params["quarter"], 0, 4),
        county_ids=_ints(params["county"], 1, 10**9), agencies=tuple(to_ascii_digits(a).strip() for a in params["agency"]),
        group_agencies=group_in, group_excludes=group_out, rules=_known(params["rule"], RULE_IDS),
        kinds=_known(params["kind"], KINDS), severities=_known(params["severity"], SEVERITIES),
        statuses=_known(params["status"], DEVIATION_STATUSES), subject=subject or None,
        sort=sort if sort in store.SORTS else "severity", descending=args.get("dir") == "desc",
        page=(_ints([args.get("page", "1")], 1, 10**7) or (1,))[0], per_page=PER_PAGE,
    )
    understood = {"year": list(map(str, query.years)), "quarter": list(map(str, query.quarters)),
                  "county": list(map(str, query.county_ids)), "agency": list(query.agencies), "group": list(groups),
                  "rule": list(query.rules), "kind": list(query.kinds), "severity": list(query.severities),
                  "status": list(query.statuses), "subject": subject}
    understood["dropped"] = [(FILTER_NAMES[name], value) for name in FILTER_NAMES for value in params[name]
                             if _as_understood(name, value) not in understood[name]]
    return query, understood


def _as_understood(name: str, value: str) -> str:
    """A value of filter `name` as parse_query keeps it when it understands it ('۱۴۰۵' as '1405')."""
    if name in ("year", "quarter", "county"):
        text = to_ascii_digits(value).strip()
        return str(int(text)) if text.isascii() and text.isdigit() and len(text) <= 19 else value
    return value


@router.get("/deviations")
def deviation_list(request: Request):
    state = console(request)
    query, params = parse_query(request.query_params, state.config.routing)
    with state.engine.connect() as conn:
        page = store.list_deviations(conn, query)
        agencies = store.agency_names(conn)
        counties = store.county_names(conn)
        years = store.fiscal_years(conn)
    listed = {**{k: v for k, v in params.items() if k != "dropped"}, "sort": query.sort,
              "dir": "desc" if query.descending else ""}

    def sort_link(key: str) -> str:
        descending = key == query.sort and not query.descending
        return query_url("/deviations", listed, sort=key, dir="desc" if descending else "", page="")

    def page_link(number: int) -> str:
        return query_url("/deviations", listed, page=number if number > 1 else "")

    if page.total and query.page > page.pages:  # an old link past the last page: the last page
        return redirect(page_link(page.pages))
    return render(request, "deviations.html", page=page, query=query, params=params, agencies=agencies,
                  counties=counties, years=years, rules=RULES_BY_NAME, groups=GROUPS, kinds=KINDS,
                  severities=tuple(reversed(SEVERITIES)), statuses=DEVIATION_STATUSES, sort_link=sort_link,
                  page_link=page_link, routing=state.config.routing, sort_names=SORT_NAMES)


def _deviation(request: Request, deviation_id: int) -> dict[str, Any]:
    with console(request).engine.connect() as conn:
        try:
            row, history = dv.get(conn, deviation_id)
        except dv.DeviationError:
            raise Refused(404, "چنین انحرافی در پایگاه نیست.") from None
        names = store.agency_names(conn, {row.agency_code} if row.agency_code else set())
        counties = store.county_names(conn, {row.county_id} if row.county_id else set())
        evidence = store.evidence(conn, row.evidence_table, row.evidence_id)
        people = display_names(conn, {row.acted_by, *(e.by for e in history)} - {None})
    if evidence:  # the row's figures; its ids and run references mean nothing to a reader
        evidence = {k: v for k, v in evidence.items()
                    if k != "id" and not k.endswith("_id") and k not in ("source_key", *words.EVIDENCE_HIDDEN)}
        # as the project's and agreement's pages write a credit row: with the tolerance config.yaml
        # sets and, for a credit_inconsistency, the one it was judged against
        limits = credit_limits(console(request))
        if row.rule == "credit_inconsistency":
            limits = (*limits, *present.bounds_of(row.numbers))
        evidence = evidence_figures(row, evidence, limits)
    return {"row": row, "history": history, "agency_name": names.get(row.agency_code),
            "county_name": counties.get(row.county_id), "evidence": evidence, "people": people}


@router.get("/deviations/{deviation_id}")
def deviation_page(request: Request, deviation_id: Id):
    data = _deviation(request, deviation_id)
    routing = console(request).config.routing
    row = data["row"]
    return render(request, "deviation.html", **data, group=dv.group_of(row.agency_code, routing),
                  may_act=can_act_on(user_of(request), row.agency_code, routing), REASON_MAX=dv.REASON_MAX)


def _refused(request: Request, data: dict, action: str, reason: str, why: str) -> HTMLResponse:
    """The deviation's page again, saying why the act was not recorded, with the reason as typed
    in its form (a redirect emptied the box: a long reason was lost)."""
    flash(request, why, "error")
    row = data["row"]
    routing = console(request).config.routing
    return render(request, "deviation.html", status_code=400, **data, group=dv.group_of(row.agency_code, routing),
                  may_act=True, REASON_MAX=dv.REASON_MAX, typed={action: reason})


@router.post("/deviations/{deviation_id}/{action}")
async def act(request: Request, deviation_id: Id, action: str):
    form = await checked_form(request)
    if action not in ("acknowledge", "dismiss"):
        raise Refused(404, "چنین کاری روی انحراف تعریف نشده است.")
    state, user = console(request), user_of(request)
    data = await run_in_threadpool(_deviation, request, deviation_id)
    if not can_act_on(user, data["row"].agency_code, state.config.routing):
        raise Refused(403, "این انحراف به دستگاهی خارج از گروه‌های شما مربوط است؛ فقط می‌توانید آن را ببینید.")
    # a browser sends each line break as CR LF, and counts it as one character against the textarea's
    # maxlength: a reason the form let through was refused as too long (a trial)
    reason = str(form.get("reason", "")).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not has_visible(reason):  # ZWNJ or bidi marks alone were recorded as a reason
        return _refused(request, data, action, reason, "دلیل را بنویسید؛ بدون دلیل ثبت نمی‌شود.")
    if len(reason) > dv.REASON_MAX:
        return _refused(request, data, action, reason,
                        f"دلیل حداکثر {present.number(dv.REASON_MAX)} نویسه باشد؛ این یکی "
                        f"{present.number(len(reason))} نویسه است و ثبت نشد.")
    call = dv.acknowledge if action == "acknowledge" else dv.dismiss

    def logged(conn: Any) -> None:  # the console's log of acts, in the act's own transaction
        record_action(conn, user.username, action, f"deviation {deviation_id}", reason)

    # the status the page showed: acting on what changed since (another's act, a run) is refused
    seen = str(form.get("seen", "")) or None
    if seen is not None and seen not in DEVIATION_STATUSES:
        raise Refused(400, "فرم ناقص یا نادرست است؛ صفحه را دوباره باز کنید.")
    try:
        await run_in_threadpool(lambda: call(state.engine, deviation_id, by=user.username, reason=reason, also=logged,
                                             seen=seen))
    except dv.DeviationChanged as exc:
        # who acted, and why, is in the page's history the redirect shows
        flash(request, f"این انحراف پس از باز شدن صفحه تغییر کرد و اکنون «{present.status(exc.status)}» است؛ "
                       "کار شما ثبت نشد. وضعیت تازه را ببینید و اگر لازم است دوباره اقدام کنید.", "error")
        return redirect(f"/deviations/{deviation_id}")
    except dv.DeviationError:
        flash(request, "وضعیت این انحراف اجازهٔ این کار را نمی‌دهد (شاید کس دیگری پیش‌تر اقدام کرده است).", "error")
        return redirect(f"/deviations/{deviation_id}")
    flash(request, "بررسی ثبت شد." if action == "acknowledge" else "انحراف به‌عنوان نادرست رد شد.")
    return redirect(f"/deviations/{deviation_id}")
