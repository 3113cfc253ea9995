"""SABA: the reading layer (payloads), canonical values, and the client over httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from decimal import Decimal

import httpx
import pytest

from foundation.jalali import TEHRAN
from connectors import (
    AuthenticationFailed,
    LayoutChanged,
    ProtocolError,
    SabaClient,
    SourceUnavailable,
)
from connectors.saba import canonical, payloads

from connector_fakes import PASSWORD, FakeSaba, InFlight, agreement_item, fast_settings, fixture_text

LISTING = "GET /api/v1/agreements"


def example(name: str):
    return payloads.parse_body(fixture_text(name), "example")


def listing(items: list, **envelope) -> dict:
    return {"items": items, "page": 1, "pageSize": 50, "totalCount": len(items)} | envelope


def read_page(body):
    return canonical.agreement_page(payloads.read_agreements(body, LISTING), 1405, 1, 50)


# --- reading and canonical values -----------------------------------------------------------------


def test_example_agreements_read_to_canonical_records():
    page = read_page(example("saba-agreements-page1.json"))
    assert page.announced_total == 311 and page.rejections == []
    a, b = page.items
    assert (a.portal_id, a.agreement_no, a.fiscal_year) == (9123, "1405-032-11002", 1405)
    assert (a.agency_code, a.agency_name) == ("032", "اداره کل بهزیستی استان خوزستان")
    assert (a.county_code, a.county_name, a.program_code, a.program_title) == (
        "01", "اهواز", "11002", "توانبخشی معلولین")
    assert (a.status, a.exchanged_on) == ("exchanged", date(2026, 5, 5))  # 1405/02/15
    assert a.modified_at == datetime(2026, 10, 4, 10, 15, tzinfo=TEHRAN)
    assert [(c.chapter, c.approved, c.notified, c.allocated, c.spent) for c in a.credits] == [
        (1, Decimal("18500"), Decimal("18500"), Decimal("9250"), Decimal("9100.5")),
        (2, Decimal("6200"), Decimal("6000"), Decimal("2400"), Decimal("2301.5")),
        (5, Decimal("2500"), Decimal("2500"), Decimal("1000"), Decimal("0")),
    ]
    assert (b.county_code, b.county_name, b.status) == (None, None, "amended")  # province-wide



def test_county_spelt_another_way_is_read_as_its_canonical_name():
    """Counties are canonicalised once, here in the connector (foundation.counties)."""
    page = read_page(listing([agreement_item(1, county={"code": "۲۱", "name": "سیدون"})]))
    assert (page.items[0].county_code, page.items[0].county_name) == ("21", "صیدون")

def test_example_operations_and_performance():
    detail = canonical.agreement_detail(
        9123, payloads.read_operations(example("saba-operations.json"), "ops"),
        payloads.read_performance(example("saba-performance.json"), "perf"))
    assert detail.rejections == []
    op = detail.operations[0]
    assert (op.code, op.unit, op.annual_target, op.unit_cost) == (
        "11002-03", "نفر-ساعت", Decimal("12000"), Decimal("0.85"))
    assert op.quarterly_targets == (Decimal(3000), Decimal(3000), Decimal(3500), Decimal(2500))
    assert detail.operations[1].title == "تامین وسایل کمک توانبخشی"  # Arabic yeh folded
    q1, q2, q2b = detail.performance
    assert (q1.quarter, q1.quantity, q1.spent, q1.comptroller_status, q1.decided_on) == (
        1, Decimal("2950"), Decimal("2480.0"), "approved", date(2026, 7, 13))
    assert (q2.reported_on, q2.comptroller_status, q2.decided_on, q2.remarks) == (
        date(2026, 10, 4), "pending", None, "کمبود نیروی متخصص")
    assert (q2b.quantity, q2b.spent, q2b.remarks) == (None, None, None)


def test_not_json_is_layout_change_naming_endpoint():
    with pytest.raises(LayoutChanged) as exc:
        payloads.parse_body("<html>gateway</html>", LISTING, "text/html")
    assert exc.value.page == LISTING and "JSON" in exc.value.expected


@pytest.mark.parametrize("missing", ["items", "totalCount", "pageSize"])
def test_envelope_without_a_field_is_layout_change(missing):
    body = listing([agreement_item(1)])
    del body[missing]
    with pytest.raises(LayoutChanged) as exc:
        payloads.read_agreements(body, LISTING)
    assert missing in exc.value.expected and exc.value.page == LISTING


def test_field_missing_from_every_item_is_drift():
    items = [agreement_item(i) for i in range(3)]
    for item in items:
        item["modifiedOn"] = item.pop("modifiedAt")
    with pytest.raises(LayoutChanged) as exc:
        payloads.read_agreements(listing(items), LISTING)
    assert "modifiedAt" in exc.value.expected


def test_nested_field_missing_from_every_credit_is_drift():
    items = [agreement_item(i) for i in range(3)]
    for item in items:
        for credit in item["credits"]:
            credit["absorbed"] = credit.pop("spent")
    with pytest.raises(LayoutChanged, match=r"credits\[\]\.spent"):
        payloads.read_agreements(listing(items), LISTING)


def test_field_missing_from_one_item_among_good_ones_is_a_rejection():
    items = [agreement_item(i) for i in range(3)]
    del items[1]["status"]
    page = read_page(listing(items))
    assert len(page.items) == 2
    [rej] = page.rejections
    assert (rej.field, rej.reason, rej.key) == ("status", "field missing", "1405-032-10001")


@pytest.mark.parametrize("change, field, raw", [
    ({"status": "ARCHIVED"}, "status", "ARCHIVED"),
    ({"exchangedAt": "1405/13/01"}, "exchangedAt", "1405/13/01"),
    ({"modifiedAt": "2026-10-04T10:15:00"}, "modifiedAt", "2026-10-04T10:15:00"),
    ({"fiscalYear": "1405"}, "fiscalYear", '"1405"'),
    ({"agreementNo": None}, "agreementNo", "null"),
])
def test_one_malformed_item_is_a_rejection(change, field, raw):
    items = [agreement_item(1), agreement_item(2, **change), agreement_item(3)]
    page = read_page(listing(items))
    assert [a.portal_id for a in page.items] == [9001, 9003]
    [rej] = page.rejections
    assert (rej.source, rej.field, rej.raw) == ("saba", field, raw)
    assert "item 2" in rej.locator and rej.reason


def test_unknown_chapter_or_string_amount_rejects_the_agreement():
    bad_chapter = agreement_item(2)
    bad_chapter["credits"][0]["chapter"] = 9
    string_amount = agreement_item(3)
    string_amount["credits"][1]["spent"] = "2301.5"
    page = read_page(listing([agreement_item(1), bad_chapter, string_amount]))
    assert [a.portal_id for a in page.items] == [9001]
    assert [(r.field, r.raw) for r in page.rejections] == [
        ("credits[].spent", '"2301.5"'), ("credits[].chapter", "9")]


def test_performance_for_an_unlisted_operation_is_a_rejection():
    perf = example("saba-performance.json")
    perf["items"][0]["operationCode"] = "99999-01"
    detail = canonical.agreement_detail(
        9123, payloads.read_operations(example("saba-operations.json"), "ops"),
        payloads.read_performance(perf, "perf"))
    assert len(detail.performance) == 2
    [rej] = detail.rejections
    assert (rej.field, rej.raw, rej.key) == ("operationCode", "99999-01", "99999-01")


def test_quarterly_targets_must_be_four():
    ops = example("saba-operations.json")
    ops["items"][0]["quarterlyTargets"] = [1, 2, 3]
    detail = canonical.agreement_detail(9123, payloads.read_operations(ops, "ops"),
                                        payloads.read_performance({"items": []}, "perf"))
    assert [o.code for o in detail.operations] == ["11002-07"]
    assert detail.rejections[0].field == "quarterlyTargets"


# --- the client -------------------------------------------------------------------------------------

async def read_all(sb: SabaClient, **kwargs):
    return [page async for page in sb.list_agreements(fiscal_year=1405, **kwargs)]


@pytest.mark.anyio
async def test_listing_pages_until_the_last(saba: FakeSaba):
    async with SabaClient(fast_settings(page_size=3), saba.transport()) as sb:
        pages = await read_all(sb)
    assert [(p.page_no, len(p.items)) for p in pages] == [(1, 3), (2, 3), (3, 1)]
    assert [a.portal_id for p in pages for a in p.items] == [i["id"] for i in saba.items]
    assert all(r.headers["Authorization"] == "Bearer tok1" for r in saba.requests[1:])


@pytest.mark.anyio
async def test_listing_stops_when_page_times_size_reaches_total():
    fake = FakeSaba(agreements=6)
    async with SabaClient(fast_settings(page_size=3), fake.transport()) as sb:
        pages = await read_all(sb)
    assert [p.page_no for p in pages] == [1, 2]  # no third, empty request


@pytest.mark.anyio
async def test_listing_follows_a_smaller_page_size_the_portal_says_it_used():
    fake = FakeSaba(agreements=7, max_page_size=2)
    async with SabaClient(fast_settings(page_size=200), fake.transport()) as sb:
        pages = await read_all(sb)
    assert [len(p.items) for p in pages] == [2, 2, 2, 1]


@pytest.mark.anyio
async def test_modified_since_sent_as_iso_with_offset(saba):
    async with SabaClient(fast_settings(), saba.transport()) as sb:
        await read_all(sb, modified_since=datetime(2026, 10, 1, 8, 0, tzinfo=TEHRAN))
    assert saba.requests[-1].url.params["modifiedSince"] == "2026-10-01T08:00:00+03:30"


@pytest.mark.anyio
async def test_token_expired_gets_a_new_token_and_repeats_once(saba):
    expired = {"n": 0}

    def expire_second_call(request):
        expired["n"] += 1
        return expired["n"] == 2

    saba.expire_token_before = expire_second_call
    async with SabaClient(fast_settings(page_size=3), saba.transport()) as sb:
        pages = await read_all(sb)
        assert sb.stats["relogins"] == 1
    assert sum(len(p.items) for p in pages) == 7
    assert [r.url.path for r in saba.requests].count("/api/v1/auth/token") == 2


@pytest.mark.anyio
async def test_token_expired_twice_in_a_row_is_a_protocol_error(saba):
    saba.expire_token_before = lambda request: True
    async with SabaClient(fast_settings(), saba.transport()) as sb:
        with pytest.raises(ProtocolError, match="token_expired"):
            await sb.agreement_detail(portal_id=9001)


@pytest.mark.anyio
@pytest.mark.parametrize("locked, reason, advice", [
    (False, "invalid_credentials", "$SABA_PASSWORD"),
    (True, "account_locked", "ask the portal admin to unlock"),
])
async def test_auth_refusals_are_permanent_and_never_show_the_password(locked, reason, advice):
    fake = FakeSaba(password="other", locked=locked)
    async with SabaClient(fast_settings(), fake.transport()) as sb:
        with pytest.raises(AuthenticationFailed) as exc:
            await read_all(sb)
    assert exc.value.reason == reason and advice in str(exc.value)
    assert PASSWORD not in str(exc.value) and PASSWORD not in repr(exc.value)
    assert len(fake.requests) == 1  # never retried


@pytest.mark.anyio
async def test_429_waits_retry_after_then_repeats(saba):
    async with SabaClient(fast_settings(), saba.transport()) as sb:
        await sb.login()
        saba.queued = [httpx.Response(429, headers={"Retry-After": "1"})]
        loop = asyncio.get_running_loop()
        started = loop.time()
        detail = await sb.agreement_detail(portal_id=9001)
        assert loop.time() - started >= 0.95
        assert detail is not None and sb.stats["rate_limited"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried(saba, status):
    async with SabaClient(fast_settings(), saba.transport()) as sb:
        await sb.login()
        saba.queued = [httpx.Response(status)] * 2
        assert await sb.agreement_detail(portal_id=9001) is not None
        assert sb.stats["retries"] == 2


@pytest.mark.anyio
async def test_time_outs_outlasting_the_budget_are_source_unavailable(saba):
    def slow(request):
        if request.url.path.endswith("/operations"):
            raise httpx.ReadTimeout("timed out", request=request)
        return saba.handle(request)

    async with SabaClient(fast_settings(max_attempts=3), httpx.MockTransport(slow)) as sb:
        with pytest.raises(SourceUnavailable) as exc:
            await sb.agreement_detail(portal_id=9001)
    assert "/api/v1/agreements/9001/operations" in str(exc.value) and "ReadTimeout" in str(exc.value)


@pytest.mark.anyio
async def test_unknown_agreement_is_none(saba):
    async with SabaClient(fast_settings(), saba.transport()) as sb:
        assert await sb.agreement_detail(portal_id=1) is None
        assert sb.stats["not_found"] == 1


@pytest.mark.anyio
async def test_html_body_from_the_api_is_layout_change(saba):
    async with SabaClient(fast_settings(), saba.transport()) as sb:
        await sb.login()
        saba.queued = [httpx.Response(200, text="<html>maintenance</html>")]
        with pytest.raises(LayoutChanged) as exc:
            await sb.agreement_detail(portal_id=9001)
    assert exc.value.page == "GET /api/v1/agreements/9001/operations"


@pytest.mark.anyio
async def test_in_flight_and_rate_limit():
    fake = FakeSaba(agreements=30)
    transport = InFlight(fake.transport(), delay=0.01)
    settings = fast_settings(concurrency=2, rate_limit_per_second=100.0)
    async with SabaClient(settings, transport) as sb:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(sb.agreement_detail(portal_id=i["id"]) for i in fake.items))
        elapsed = loop.time() - started
    assert transport.max == 2
    assert elapsed >= (61 - 1) / 100  # 61 requests (token + 2 x 30) started 10 ms apart


@pytest.mark.anyio
async def test_a_refused_token_is_not_asked_for_again():
    fake = FakeSaba(password="changed-meanwhile")
    async with SabaClient(fast_settings(), fake.transport()) as sb:
        results = await asyncio.gather(*(sb.agreement_detail(portal_id=9000 + i)
                                         for i in range(1, 6)), return_exceptions=True)
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    assert len(fake.requests) == 1


def test_a_json_body_after_a_utf8_byte_order_mark_is_read():
    # "Bodies are JSON, UTF-8": a BOM before one was read as drift, "expected a JSON body"
    from connectors.saba.payloads import parse_body

    assert parse_body('\ufeff{"items": [], "total": 0}', "/api/v1/agreements") == {"items": [], "total": 0}
