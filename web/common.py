"""What every page of the console shares: its state, rendering, the checked form, refusals, flashes.

Templates are Jinja2 with autoescape on for everything (portal text is untrusted); every figure,
day and name a template shows goes through foundation.present, offered to templates as filters
(``{{ x|amount }}``, ``{{ d|day }}``) and as the ``present`` global for the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy.engine import Engine
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from foundation import present
from reports import precision
from reports.model import Limits
from store.users import User
from web import auth, words
from web.jobs import ReconcileJobs
from web.permissions import ROLE_NAMES
from web.words import word


MAX_ID = 2**63 - 1  # the stores' 64-bit integers: an id beyond them is no page (404), not the driver's overflow
# an id in a page's address: 1 to MAX_ID, else the page cannot exist (404, as /deviations/abc)
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
FORM_FIELDS = 50  # fields of a form (the users page's groups among them); files: none unless the form takes one
LOGIN_FIELDS = 10  # the sign-in form's: csrf, username, password, next


class Refused(Exception):
    """A request the console will not serve: rendered as a page with the status and a Persian sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Console:
    """The application's state: the store, the configuration, the reconciliation job, the limiter."""

    engine: Engine
    config: Any  # budgetwatch.config.Config (web may not import the application shell)
    jobs: ReconcileJobs
    limiter: auth.LoginLimiter
    templates: Environment


def templates() -> Environment:
    env = Environment(loader=PackageLoader("web", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(
        number=present.number, amount=amount, percent=present.percent, ratio=present.ratio,
        day=present.day, day_long=present.day_long, moment=present.moment, severity=present.severity,
        status=present.status, group=present.group, rule=present.rule, kind=present.kind, source=present.source,
        digits=present.digits, cell=cell,
        figure=lambda value, row, other=None: present.figure(_field(row, "kind"), _field(row, "rule"), value,
                                                             measure=_measure(row), other=other,
                                                             bounds=_bounds(row)),
        # under the list's «برنامه / عملکرد» columns, a rule whose figures are something else names them
        figure_name=lambda row, i: _other_name(row, i),
        comptroller=lambda code: present.COMPTROLLER_NAMES.get(code or "", code or present.NOTHING),
        role=lambda code: ROLE_NAMES.get(code, code), sync_status=word(words.SYNC_STATUS),
        run_status=word(words.RUN_STATUS), mode=word(words.MODES), event=word(words.EVENTS),
        run_reason=word(words.RUN_REASONS),
        years=lambda text: present.digits("، ".join(str(text or "").split(","))) or present.NOTHING,
        table=word(words.TABLES), phase=words.phase, act_text=words.act_text,
        label=lambda key: words.LABELS.get(key, key), job_state=word(words.JOB_STATE), action=word(words.ACTIONS),
        agreement_status=word(words.AGREEMENT_STATUS),
    )
    env.globals.update(rule_figure=rule_figure, evidence_figure=evidence_figure, present=present,
                       rejection_reason=words.rejection_reason,
                       NOTHING=present.NOTHING, AMOUNT_UNIT=present.AMOUNT_UNIT)
    return env


def amount(value: Any, *, unit: bool = False, places: int | None = None) -> str:
    """Million rials as the report writes them (reports.precision.amount): up to two places, trailing
    zeros dropped ('۱٬۶۹۹٫۸۸', '۶۰۰'); a quarter's absorbed credit read «۶۰۰٫۵۰۰۰۵» here and «۶۰۰٫۵» in
    the report. ``places``: exactly that many (a unit cost's two)."""
    if places is None and value is not None:
        places = precision.amount(value).places
    return present.amount(value, unit=unit, places=places)


_FIGURE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def cell(value: Any, key: str = "") -> str:
    """Any stored value as people read it: days Jalali, figures in Persian digits (ids and years
    without separators), yes/no in words."""
    if value is None:
        return present.NOTHING
    if isinstance(value, bool):
        return "بله" if value else "خیر"
    if isinstance(value, datetime):
        return present.moment(value)
    if isinstance(value, date):
        return present.day(value)
    if isinstance(value, (int, float, Decimal)):
        plain = key == "id" or key.endswith(("_id", "year", "quarter", "chapter"))
        return present.number(value, grouped=not plain)
    if isinstance(value, (list, tuple)):
        return "؛ ".join(cell(item, key) for item in value)
    if isinstance(value, dict):
        return "، ".join(f"{words.LABELS.get(k, k)} {cell(v, k)}" for k, v in value.items())
    if key.endswith("comptroller_status"):
        return present.COMPTROLLER_NAMES.get(str(value), str(value))
    text = str(value)
    # a rule's ``numbers`` keep figures and days as exact text: show them as figures and days
    if _FIGURE.fullmatch(text):
        return cell(Decimal(text), key)
    if _ISO_DAY.fullmatch(text):
        return present.day(date.fromisoformat(text))
    return text


# figures of ``numbers`` compared with another: a credit break's figure with its ceiling, the two
# figures a rule compared (a drop's two progresses, a unit cost and the agreement's), and the
# measures a rule compared with its limit (an excess of 0.50005 beside «more than 0.5» was «۰٫۵»)
_PAIRED = {"value": "limit", "limit": "value"}
_PAIRED_IN_RULE = {rule: {a: b, b: a} for rule, (a, b) in {
    "progress_regression": ("previous", "actual"), "progress_lag": ("target", "actual"),
    "inspection_mismatch": ("observed", "reported"), "spend_progress_gap": ("spend_share", "physical_share"),
    "unit_cost_overrun": ("unit_cost", "actual_unit_cost")}.items()}
_AGAINST_LIMIT = frozenset({"excess", "gap", "drop", "difference"})


def rule_figure(row: Any, key: str, value: Any, other: Any = None) -> str:
    """One of the figures a deviation's rule kept in ``numbers`` (or a column of its evidence row),
    as people read it: in its unit (present.figure: '۵۵٪', '۱٬۲۵۰ میلیون ریال'), a quarter by name,
    a credit stage in words; apart from the `other` figure it is compared with."""
    if isinstance(value, list):
        return "؛ ".join(rule_figure(row, key, item) for item in value)
    if isinstance(value, dict):  # a credit break: «ردیف ملی، … رقم ۶۰۰٫۵۰۰۱، سقف ۶۰۰، مازاد ۰٫۵۰۰۱ میلیون ریال»
        parts = [[words.LABELS.get(k, k), rule_figure(row, k, v, value.get(_PAIRED.get(k, '')))]
                 for k, v in value.items()]
        unit = f" {present.AMOUNT_UNIT}"
        amounts = [part for part in parts if part[1].endswith(unit)]
        for part in amounts[:-1]:  # the unit once, after the last amount (presentation.md)
            part[1] = part[1].removesuffix(unit)
        return "، ".join(f"{label} {text}" for label, text in parts)
    figure_like = isinstance(value, (str, int, float, Decimal)) and not isinstance(value, bool)
    if figure_like and _FIGURE.fullmatch(str(value)):
        bounds = _bounds(row)
        partner = _PAIRED_IN_RULE.get(_field(row, "rule"), {}).get(key)
        if other is None and partner is not None:
            other = (_numbers(row) or {}).get(partner)
        if key in _AGAINST_LIMIT:
            other, bounds = present.limit_of(_numbers(row)), ()
        elif other is not None:
            other = Decimal(str(other)) if _FIGURE.fullmatch(str(other)) else None
        shown = present.figure(_field(row, "kind"), _field(row, "rule"), Decimal(str(value)), name=key,
                               measure=_measure(row), other=other, bounds=bounds)
        if shown is not None:
            return shown
    if key.endswith("quarter") and isinstance(value, int):
        return present.quarter(_field(row, "fiscal_year"), value)
    if key == "operations_planned":  # operation codes: as stored, isolated left-to-right
        return present.code_text(str(value))
    if key in ("stage", "exceeds") and isinstance(value, str):
        return words.STAGES.get(_field(row, "kind"), {}).get(value, value)
    return cell(value, key)


# an evidence row's columns whose unit is not what a rule's figure of that name has
_EVIDENCE_UNITS = {
    **{("project_year", c): present.POINTS
       for c in ("target_q1", "target_q2", "target_q3", "target_q4", "progress_at_year_start")},
    **{("project_year", c): present.AMOUNT
       for c in ("total_cost", "total_approved", "total_notified", "total_allocated", "total_absorbed")},
    **{("operation", c): present.QUANTITY
       for c in ("annual_target", "target_q1", "target_q2", "target_q3", "target_q4")},
    ("operation", "unit_cost"): present.AMOUNT,
}
_CODES = ("code", "agreement_no", "plan_code", "agency_code", "project_code", "program_code", "portal_id")


def evidence_figure(row: Any, key: str, value: Any) -> str:
    """A column of a deviation's evidence row as people read it: codes as stored and isolated
    left-to-right, figures in their unit by (table, column), the rest as a rule's figure of that name."""
    if value is None:
        return present.NOTHING
    if key in _CODES:
        return present.code_text(str(value))
    if key in ("agreement_status", "status"):
        return words.AGREEMENT_STATUS.get(str(value), str(value))
    unit = _EVIDENCE_UNITS.get((_field(row, "evidence_table"), key))
    if unit is not None and isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return {present.POINTS: present.percent, present.AMOUNT: lambda v: present.amount(v, unit=True)}.get(
            unit, present.number)(value)
    return rule_figure(row, key, value)


# a credit row's stages in the catalogue's order (reports.precision.credit_stages), by evidence table
_CREDIT_STAGES = {"project_credit": ("approved", "notified", "allocated", "absorbed"),
                  "expense_credit": ("approved", "notified", "allocated", "spent"),
                  "project_year": ("total_approved", "total_notified", "total_allocated", "total_absorbed")}


# the evidence columns a rule sums or compares counting an empty one as 0 (reconciliation-rules.md:
# "a figure the portal left empty counts as 0 in sums"), by rule and evidence table
_SUMMED = {("operation_shortfall", "operation_performance"): ("quantity",),
           ("unit_cost_overrun", "operation_performance"): ("quantity", "spent"),
           **{("credit_inconsistency", table): stages for table, stages in _CREDIT_STAGES.items()}}
EMPTY_AS_ZERO = f"{present.NOTHING} (خالی؛ صفر در جمع)"


def credit_limits(state: Any) -> tuple[Decimal, ...]:
    """credit_inconsistency's tolerance as config.yaml sets it (the report's Limits read it so too)."""
    return Limits.of(state.config.reconcile.rules).credit


def evidence_figures(row: Any, evidence: dict[str, Any], limits: tuple[Decimal, ...]) -> dict[str, str]:
    """A deviation's evidence row, each column as people read it (:func:`evidence_figure`); a credit
    row's stages as the project's and agreement's pages and the report write them (precision.credit_texts
    with credit_inconsistency's tolerance, `limits`): 600.5001 beside 600 reads «۶۰۰٫۵۰۰۱», as the
    figures above it say, not «۶۰۰٫۵», which reads as a break of exactly the tolerance (a trial). A
    figure the portal left empty that the rule counted as 0 says so (EMPTY_AS_ZERO): a bare «—» read
    as "not reported" beside a sentence saying «۰ خانوار انجام داده» (a trial)."""
    table = _field(row, "evidence_table")
    shown = {key: evidence_figure(row, key, value) for key, value in evidence.items()}
    stages = _CREDIT_STAGES.get(table, ())
    if stages and all(stage in evidence for stage in stages):
        texts = precision.credit_texts([evidence[stage] for stage in stages], limits)
        for stage, text in zip(stages, texts):
            shown[stage] = text if text == present.NOTHING else f"{text} {present.AMOUNT_UNIT}"
    for key in _SUMMED.get((_field(row, "rule"), table), ()):
        if key in evidence and evidence[key] is None:
            shown[key] = EMPTY_AS_ZERO
    return shown


def _other_name(row: Any, i: int) -> str:
    """The rule's own name of its planned (0) or actual (1) figure when it is not «برنامه»/«عملکرد»."""
    name = present.figure_names(_field(row, "kind"), _field(row, "rule"))[i]
    return "" if name == ("برنامه", "عملکرد")[i] else name


def _measure(row: Any) -> str | None:
    """An operation's unit of measure, where the row carries the deviation's ``numbers``."""
    return present.measure_of(_numbers(row))


def _numbers(row: Any) -> dict | None:
    """The deviation's ``numbers``, where the row carries them."""
    numbers = row.get("numbers") if isinstance(row, dict) else getattr(row, "numbers", None)
    return numbers if isinstance(numbers, dict) else None


def _bounds(row: Any) -> tuple[Decimal, ...]:
    """The limits the deviation was judged against, where the row carries its ``numbers``."""
    return present.bounds_of(_numbers(row))


def _field(row: Any, name: str) -> Any:
    """A column of a row, whether a mapping (a page's dicts) or a Row."""
    return row[name] if isinstance(row, dict) else getattr(row, name)


def console(request: Request) -> Console:
    return request.app.state.console


def user_of(request: Request) -> User:
    return request.state.user


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    user = getattr(request.state, "user", None)
    flashes = request.session.pop("flash", []) if "session" in request.scope else []
    html = console(request).templates.get_template(template).render(
        request=request, user=user, csrf=request.session.get("csrf", "") if "session" in request.scope else "",
        flashes=flashes, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def query_url(path: str, params: dict[str, Any], **changes: Any) -> str:
    """`path` with the list's parameters, some changed (links for sorting and paging)."""
    merged = {**params, **changes}
    pairs = [(k, v) for k, values in merged.items() for v in (values if isinstance(values, (list, tuple)) else [values])
             if v not in (None, "")]
    return f"{path}?{urlencode(pairs)}" if pairs else path


async def checked_form(request: Request, *, files: int = 0) -> FormData:
    """The POSTed form, once its CSRF token matches the session's (else 403). At most `files` files
    and FORM_FIELDS other fields: a part past them is refused before its content is read (400)."""
    try:
        form = await request.form(max_files=files, max_fields=FORM_FIELDS)
    except HTTPException as exc:  # Starlette's 400 for a form past its counts, or malformed
        raise Refused(exc.status_code, "فرمی که فرستادید درست نیست؛ صفحه را دوباره باز کنید و از نو بفرستید.") from None
    if not auth.csrf_matches(request.session.get("csrf"), form.get("csrf")):  # type: ignore[arg-type]
        raise Refused(403, "فرم منقضی شده یا از این سامانه نیامده است؛ صفحه را دوباره باز کنید و از نو بفرستید.")
    return form
