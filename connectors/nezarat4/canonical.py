"""Nezarat-4 raw rows -> typed records, through foundation.persian, foundation.jalali and
foundation.counties (a county's name is canonical here, once: هفتگل becomes هفتکل).

The reading layer (``pages.py``) hands over cell texts as the portal wrote them; this module turns
them into the records of ``foundation.records``. A cell that cannot be read rejects its row, never
the page: the row becomes a :class:`Rejection` naming the field, the raw text and the reason, and
the rest goes on (nezarat4.md §5). The one exception is a detail page's identity table: a project
whose code, status or last-modified stamp cannot be read is not stored at all, so its detail comes
back as a :class:`RejectedDetail` rather than a half-read :class:`ProjectDetail`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from foundation.counties import canonical_county
from foundation.jalali import parse_jalali_date, parse_jalali_datetime, parse_quarter_name
from foundation.persian import (
    NormalizationError,
    clean_text,
    parse_code,
    parse_count_label,
    parse_int,
    parse_number,
    require_text,
    text_key,
)

from ..errors import LayoutChanged
from foundation.records import (
    CreditRow,
    ProgressReportRecord,
    ProjectDetail,
    ProjectListPage,
    ProjectListRow,
    Rejection,
)
from . import pages

SOURCE = "nezarat4"

# Value vocabularies (labels are matched by persian.text_key, so ZWNJ/space/letter variants agree).
AGREEMENT_STATUSES = {
    text_key("مبادله شده"): "exchanged",
    text_key("در انتظار مبادله"): "awaiting",
    text_key("اصلاحیه"): "amended",
    text_key("لغو شده"): "cancelled",
}
COMPTROLLER_STATUSES = {
    text_key("تأیید شده"): "approved",
    text_key("در انتظار تأیید"): "pending",
    text_key("رد شده"): "rejected",
}


@dataclass(slots=True)
class RejectedDetail:
    """A detail page whose identity table (tblInfo) could not be read: nothing of it is stored."""

    portal_id: int
    fiscal_year: int
    rejections: list[Rejection] = field(default_factory=list)


class _Unreadable(Exception):
    """One field of a row could not be read; carries what a Rejection needs."""

    def __init__(self, field: str, raw: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field, self.raw, self.reason = field, raw, reason


def _read(cells: dict[str, str], key: str, parse: Callable[[str | None], Any]) -> Any:
    raw = cells.get(key)
    try:
        return parse(raw)
    except NormalizationError as exc:
        raise _Unreadable(key, raw, exc.reason) from None


def _required(parse: Callable[[str | None], Any]) -> Callable[[str | None], Any]:
    def read(raw: str | None) -> Any:
        value = parse(raw)
        if value is None:
            raise NormalizationError(raw, "empty, but required")
        return value

    return read


def _status(vocabulary: dict[str | None, str], what: str) -> Callable[[str | None], str]:
    def read(raw: str | None) -> str:
        status = vocabulary.get(text_key(raw))
        if status is None:
            raise NormalizationError(raw, f"not a known {what}")
        return status

    return read


def _optional_code(raw: str | None) -> str | None:
    return None if clean_text(raw) is None else parse_code(raw)


def _amount(raw: str | None) -> Decimal | None:
    return parse_number(raw)


def _percent(raw: str | None) -> Decimal | None:
    return parse_number(raw, percent=True)


def _zero_if_empty(raw: str | None) -> Decimal:
    value = parse_number(raw)
    return Decimal(0) if value is None else value


def _code_or_none(raw: str | None) -> str | None:
    try:
        return parse_code(raw)
    except NormalizationError:
        return None


def _rejection(locator: str, exc: _Unreadable, key: str | None) -> Rejection:
    return Rejection(SOURCE, locator, exc.reason, exc.field, exc.raw, key)


def _row_problem(locator: str, row: pages.RawRow) -> Rejection:
    return Rejection(SOURCE, locator, row.problem or "unreadable row", None, row.raw, None)


# --- project list -------------------------------------------------------------------------------


def list_row(row: pages.RawRow) -> ProjectListRow:
    """Raises _Unreadable for the first field that cannot be read."""
    c = row.cells
    portal_id = _read(c, "portal_id", _required(lambda raw: parse_int(raw, field="id")))
    return ProjectListRow(
        portal_id=portal_id,
        project_code=_read(c, "project_code", parse_code),
        title=_read(c, "title", require_text),
        agency_name=_read(c, "agency_name", require_text),
        county=_read(c, "county", canonical_county),
        approved_credit=_read(c, "approved_credit", _amount),
        progress=_read(c, "progress", _percent),
        last_modified=_read(c, "last_modified", _required(parse_jalali_datetime)),
    )


def list_page(raw: pages.ListPage, fiscal_year: int, page_no: int) -> ProjectListPage:
    try:
        announced_total = parse_count_label(raw.count_label)
    except NormalizationError:  # the page's own header, not a row: the page is not understood
        raise LayoutChanged(SOURCE, f"ProjectList.aspx (year {fiscal_year}, page {page_no})",
                            f"span#{pages.COUNT_ID} 'تعداد رکوردها: N'",
                            repr(raw.count_label)) from None
    page = ProjectListPage(fiscal_year=fiscal_year, page_no=page_no,
                           announced_total=announced_total)
    for row in raw.rows:
        locator = f"ProjectList year={fiscal_year} page {page_no} row {row.index}"
        if row.problem:
            page.rejections.append(_row_problem(locator, row))
            continue
        try:
            page.rows.append(list_row(row))
        except _Unreadable as exc:
            key = _code_or_none(row.cells.get("project_code"))
            page.rejections.append(_rejection(locator, exc, key))
    return page


# --- project detail -----------------------------------------------------------------------------


# ProjectDetail's identity fields: the span of table#tblInfo each is read from, and how
_IDENTITY: dict[str, tuple[str, Callable[[str], Any]]] = {
    "project_code": ("lblProjectCode", parse_code),
    "title": ("lblProjectTitle", require_text),
    "plan_code": ("lblPlanCode", _optional_code),
    "plan_title": ("lblPlanTitle", clean_text),
    "agency_code": ("lblAgencyCode", parse_code),
    "agency_name": ("lblAgencyName", require_text),
    "county": ("lblCounty", canonical_county),
    "location": ("lblLocation", clean_text),
    "start_year": ("lblStartYear", parse_int),
    "end_year": ("lblEndYear", parse_int),
    "total_cost": ("lblTotalCost", _amount),
    "progress_at_year_start": ("lblProgressAtYearStart", _percent),
    "agreement_no": ("lblAgreementNo", _optional_code),
    "agreement_date": ("lblAgreementDate", parse_jalali_date),
    "agreement_status": ("lblAgreementStatus", _status(AGREEMENT_STATUSES, "agreement status")),
    "last_modified": ("lblLastModified", _required(parse_jalali_datetime)),
}
_CREDIT_AMOUNTS = ("approved", "notified", "allocated", "absorbed")  # an empty cell is 0


def _identity(spans: dict[str, str]) -> dict[str, Any]:
    """tblInfo -> ProjectDetail's identity fields; raises _Unreadable (the whole page is rejected)."""
    return {name: _read(spans, span, read) for name, (span, read) in _IDENTITY.items()}


def _credit_row(c: dict[str, str]) -> CreditRow:
    return CreditRow(source=_read(c, "source", require_text),
                     **{name: _read(c, name, _zero_if_empty) for name in _CREDIT_AMOUNTS})


def _target_row(c: dict[str, str]) -> tuple[int, Decimal]:
    return (_read(c, "period", parse_quarter_name),
            _read(c, "planned_progress", _required(_percent)))


def _report_row(c: dict[str, str]) -> ProgressReportRecord:
    return ProgressReportRecord(
        quarter=_read(c, "period", parse_quarter_name),
        reported_on=_read(c, "reported_on", parse_jalali_date),
        progress=_read(c, "progress", _percent),
        absorbed=_read(c, "absorbed", _amount),
        comptroller_status=_read(c, "comptroller_status",
                                 _status(COMPTROLLER_STATUSES, "comptroller status")),
        decided_on=_read(c, "decided_on", parse_jalali_date),
        remarks=_read(c, "remarks", clean_text),
    )


def detail(raw: pages.DetailPage, portal_id: int, fiscal_year: int
           ) -> ProjectDetail | RejectedDetail:
    where = f"ProjectDetail id={portal_id} year={fiscal_year}"
    key = _code_or_none(raw.identity.get("lblProjectCode"))
    try:
        identity = _identity(raw.identity)
    except _Unreadable as exc:
        reason = f"identity unreadable, project not stored: {exc.reason}"
        return RejectedDetail(portal_id, fiscal_year, [
            Rejection(SOURCE, f"{where} tblInfo", reason, exc.field, exc.raw, key)])
    result = ProjectDetail(portal_id=portal_id, fiscal_year=fiscal_year, **identity)
    key = result.project_code

    def each(rows: list[pages.RawRow], grid: str, read: Callable[[dict[str, str]], Any]):
        for row in rows:
            locator = f"{where} {grid} row {row.index}"
            if row.problem:
                result.rejections.append(
                    Rejection(SOURCE, locator, row.problem, None, row.raw, key))
                continue
            try:
                yield locator, row, read(row.cells)
            except _Unreadable as exc:
                result.rejections.append(_rejection(locator, exc, key))

    for _, _, credit in each(raw.credits, "gvCredits", _credit_row):
        result.credits.append(credit)
    if raw.credit_total is not None:
        for _, _, total in each([raw.credit_total], "gvCredits total", _credit_row):
            result.credit_total = total
    # At most one row per quarter (§4): a second one is not guessed between, it is rejected.
    for locator, row, (quarter, planned) in each(raw.targets, "gvTargets", _target_row):
        if quarter in result.targets:
            result.rejections.append(Rejection(
                SOURCE, locator, f"a second target row for quarter {quarter}", "period",
                row.cells.get("period"), key))
            continue
        result.targets[quarter] = planned
    seen: set[int] = set()
    for locator, row, report in each(raw.performance, "gvPerformance", _report_row):
        if report.quarter in seen:
            result.rejections.append(Rejection(
                SOURCE, locator, f"a second performance row for quarter {report.quarter}",
                "period", row.cells.get("period"), key))
            continue
        seen.add(report.quarter)
        result.reports.append(report)
    return result
