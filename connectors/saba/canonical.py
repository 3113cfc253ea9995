"""SABA checked items -> typed records, through foundation.persian, foundation.jalali and
foundation.counties (a county's name is canonical here, once: سیدون becomes صیدون).

``payloads.py`` guarantees the shape (keys present, JSON types right); this module reads the values:
codes with ASCII digits, Persian display text, Jalali dates and ISO date-times, status words and
chapter numbers from their vocabularies. An item with a value it cannot read becomes a
:class:`Rejection` (field, raw value, reason) and the rest of the answer goes on (saba.md §5).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from foundation.counties import canonical_county
from foundation.jalali import parse_iso_datetime, parse_jalali_date
from foundation.persian import NormalizationError, clean_text, parse_code, require_text

from foundation.records import (
    AgreementDetail,
    AgreementListPage,
    ExpenseAgreementRecord,
    ExpenseCredit,
    OperationPerformanceRecord,
    OperationRecord,
    Rejection,
)
from .payloads import Checked, ItemProblem

SOURCE = "saba"

AGREEMENT_STATUSES = {"EXCHANGED": "exchanged", "AWAITING": "awaiting", "AMENDED": "amended",
                      "CANCELLED": "cancelled"}
COMPTROLLER_STATUSES = {"APPROVED": "approved", "PENDING": "pending", "REJECTED": "rejected"}
CHAPTERS = range(1, 8)  # فصل‌های هزینه 1..7 (domain.md §4)
QUARTERS = range(1, 5)


class _Unreadable(Exception):
    def __init__(self, field: str, raw: Any, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason
        self.raw = raw if raw is None or isinstance(raw, str) else json.dumps(
            raw, ensure_ascii=False, default=str)


def _read(field: str, raw: Any, parse: Callable[[Any], Any]) -> Any:
    try:
        return parse(raw)
    except NormalizationError as exc:
        raise _Unreadable(field, raw, exc.reason) from None


def _word(field: str, raw: str, vocabulary: dict[str, str]) -> str:
    word = vocabulary.get(raw.strip().upper())
    if word is None:
        raise _Unreadable(field, raw, f"not one of {', '.join(vocabulary)}")
    return word


def _in(field: str, value: int, allowed: range, what: str) -> int:
    if value not in allowed:
        raise _Unreadable(field, value, f"not a {what} ({allowed.start}..{allowed.stop - 1})")
    return value


def _amount(value: int | float | Decimal | None) -> Decimal | None:
    # parse_body reads JSON floats as Decimal; a float (already-parsed JSON) goes through its repr
    if value is None:
        return None
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)


def _rejection(locator: str, exc: _Unreadable, key: str | None) -> Rejection:
    return Rejection(SOURCE, locator, exc.reason, exc.field, exc.raw, key)


def _problem(locator: str, problem: ItemProblem, key: str | None) -> Rejection:
    return Rejection(SOURCE, locator, problem.reason, problem.field, problem.raw, key)


def _key_of(item: Any, field: str) -> str | None:
    """The business key of a set-aside item when it can still be read, for its Rejection."""
    try:
        return parse_code(item.get(field)) if isinstance(item, dict) else None
    except (NormalizationError, TypeError, AttributeError):
        return None


# --- agreements -----------------------------------------------------------------------------------


def agreement(item: dict[str, Any], fiscal_year: int) -> ExpenseAgreementRecord:
    if item["fiscalYear"] != fiscal_year:
        raise _Unreadable("fiscalYear", item["fiscalYear"],
                          f"an agreement of another year in the listing of {fiscal_year}")
    county = item["county"]
    credits: list[ExpenseCredit] = []
    for entry in item["credits"]:
        chapter = _in("credits[].chapter", entry["chapter"], CHAPTERS, "expense chapter")
        if any(c.chapter == chapter for c in credits):
            raise _Unreadable("credits[].chapter", chapter, "the same chapter twice")
        credits.append(ExpenseCredit(
            chapter=chapter,
            title=_read("credits[].title", entry["title"], clean_text),
            approved=_amount(entry["approved"]),
            notified=_amount(entry["notified"]),
            allocated=_amount(entry["allocated"]),
            spent=_amount(entry["spent"]),
        ))
    modified_at: datetime | None = _read("modifiedAt", item["modifiedAt"], parse_iso_datetime)
    if modified_at is None:
        raise _Unreadable("modifiedAt", item["modifiedAt"], "empty, but required")
    return ExpenseAgreementRecord(
        portal_id=item["id"],
        agreement_no=_read("agreementNo", item["agreementNo"], parse_code),
        fiscal_year=item["fiscalYear"],
        agency_code=_read("agency.code", item["agency"]["code"], parse_code),
        agency_name=_read("agency.name", item["agency"]["name"], require_text),
        county_code=_read("county.code", county["code"], parse_code) if county else None,
        county_name=_read("county.name", county["name"], canonical_county) if county else None,
        program_code=_read("program.code", item["program"]["code"], parse_code),
        program_title=_read("program.title", item["program"]["title"], clean_text),
        status=_word("status", item["status"], AGREEMENT_STATUSES),
        exchanged_on=_read("exchangedAt", item["exchangedAt"], parse_jalali_date),
        modified_at=modified_at,
        credits=credits,
    )


def agreement_page(checked: Checked, fiscal_year: int, page_no: int, page_size: int
                   ) -> AgreementListPage:
    page = AgreementListPage(fiscal_year=fiscal_year, page_no=page_no, page_size=page_size,
                             announced_total=checked.envelope["totalCount"])
    where = f"agreements fiscalYear={fiscal_year} page {page_no}"
    for problem in checked.problems:
        page.rejections.append(_problem(f"{where} item {problem.index}", problem,
                                        _key_of(problem.item, "agreementNo")))
    for index, item in checked.items:
        try:
            page.items.append(agreement(item, fiscal_year))
        except _Unreadable as exc:
            page.rejections.append(_rejection(f"{where} item {index} (id {item['id']})", exc,
                                              _key_of(item, "agreementNo")))
    return page


# --- operations and performance -------------------------------------------------------------------


def operation(item: dict[str, Any]) -> OperationRecord:
    targets = item["quarterlyTargets"]
    if len(targets) != 4:
        raise _Unreadable("quarterlyTargets", targets, f"{len(targets)} quarters, not 4")
    return OperationRecord(
        code=_read("code", item["code"], parse_code),
        title=_read("title", item["title"], clean_text),
        unit=_read("unit", item["unit"], clean_text),
        annual_target=_amount(item["annualTarget"]),
        quarterly_targets=tuple(_amount(t) for t in targets),  # type: ignore[arg-type]
        unit_cost=_amount(item["unitCost"]),
    )


def performance(item: dict[str, Any]) -> OperationPerformanceRecord:
    comptroller = item["comptroller"]
    return OperationPerformanceRecord(
        quarter=_in("quarter", item["quarter"], QUARTERS, "quarter"),
        operation_code=_read("operationCode", item["operationCode"], parse_code),
        quantity=_amount(item["quantity"]),
        spent=_amount(item["spent"]),
        reported_on=_read("reportedAt", item["reportedAt"], parse_jalali_date),
        comptroller_status=_word("comptroller.status", comptroller["status"],
                                 COMPTROLLER_STATUSES),
        decided_on=_read("comptroller.decidedAt", comptroller["decidedAt"], parse_jalali_date),
        remarks=_read("remarks", item["remarks"], clean_text),
    )


def _readable(checked: Checked, where: str, read: Callable[[dict[str, Any]], Any], key_field: str,
              rejections: list[Rejection]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(locator, item, record) of each item that reads; the others are added to ``rejections``."""
    for problem in checked.problems:
        rejections.append(_problem(f"{where} item {problem.index}", problem,
                                   _key_of(problem.item, key_field)))
    for index, item in checked.items:
        locator = f"{where} item {index}"
        try:
            yield locator, item, read(item)
        except _Unreadable as exc:
            rejections.append(_rejection(locator, exc, _key_of(item, key_field)))


def agreement_detail(portal_id: int, operations: Checked, reports: Checked) -> AgreementDetail:
    detail = AgreementDetail(portal_id=portal_id)
    where = f"agreement id={portal_id}"
    for locator, item, record in _readable(operations, f"{where} operations", operation, "code",
                                           detail.rejections):
        if any(o.code == record.code for o in detail.operations):
            detail.rejections.append(Rejection(SOURCE, locator, "the same operation code twice",
                                               "code", item["code"], record.code))
            continue
        detail.operations.append(record)
    codes = {o.code for o in detail.operations}
    seen: set[tuple[int, str]] = set()
    for locator, item, record in _readable(reports, f"{where} performance", performance,
                                           "operationCode", detail.rejections):
        if record.operation_code not in codes:
            detail.rejections.append(Rejection(
                SOURCE, locator, "performance for an operation the agreement does not list",
                "operationCode", item["operationCode"], record.operation_code))
            continue
        if (record.quarter, record.operation_code) in seen:
            detail.rejections.append(Rejection(
                SOURCE, locator, f"a second report for quarter {record.quarter}",
                "quarter", str(item["quarter"]), record.operation_code))
            continue
        seen.add((record.quarter, record.operation_code))
        detail.performance.append(record)
    return detail
