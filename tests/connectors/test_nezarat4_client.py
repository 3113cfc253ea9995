"""Nezarat-4 conversation over httpx.MockTransport: login, search, postback paging, session loss,
transient error pages, politeness (nezarat4.md §2–6)."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest

from connectors import (
    AuthenticationFailed,
    LayoutChanged,
    Nezarat4Client,
    ProjectDetail,
    ProtocolError,
    SourceUnavailable,
)

from connector_fakes import PASSWORD, FakeNezarat4, InFlight, fast_settings, fixture_text

pytestmark = pytest.mark.anyio


async def read_all(nz: Nezarat4Client, **kwargs):
    return [page async for page in nz.list_projects(fiscal_year=1405, **kwargs)]


def ids(pages) -> list[int]:
    return [row.portal_id for page in pages for row in page.rows]


async def test_login_then_one_pass_over_every_page(nezarat: FakeNezarat4):
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        await nz.login()
        pages = await read_all(nz)
    assert [p.page_no for p in pages] == [1, 2, 3, 4, 5]
    assert ids(pages) == [r["id"] for r in nezarat.rows]
    assert all(p.announced_total == 23 and p.rejections == [] for p in pages)
    search, *postbacks = nezarat.posted()
    assert search["ctl00$ContentPlaceHolder1$btnSearch"] == "جستجو"
    assert search["ctl00$ContentPlaceHolder1$ddlYear"] == "1405"
    assert [p["__EVENTARGUMENT"] for p in postbacks] == ["Page$2", "Page$3", "Page$4", "Page$5"]
    assert all("ctl00$ContentPlaceHolder1$btnSearch" not in p for p in postbacks)
    # each postback carries the latest page's hidden fields
    assert [p["__VIEWSTATE"] for p in postbacks] == [f"VS|sid1|{n}" for n in (1, 2, 3, 4)]
    assert nz.stats["relogins"] == 0 and nz.stats["pages"] == 5


async def test_paging_crosses_the_ellipsis_into_the_next_block():
    fake = FakeNezarat4(projects=57, page_size=4)  # 15 pages: 1..10, '...', 11..15
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        pages = await read_all(nz)
    assert [p.page_no for p in pages] == list(range(1, 16))
    assert ids(pages) == [r["id"] for r in fake.rows]


async def test_login_is_lazy_and_modified_from_is_sent_as_jalali(nezarat):
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        await read_all(nz, modified_from=date(2026, 10, 1))
    assert nezarat.logins == 1
    assert nezarat.posted()[0]["ctl00$ContentPlaceHolder1$txtModifiedFrom"] == "1405/07/09"


async def test_one_page_has_no_pager_and_empty_result_has_no_rows():
    fake = FakeNezarat4(projects=3)
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        assert [len(p.rows) for p in await read_all(nz)] == [3]
        empty = [p async for p in nz.list_projects(fiscal_year=1404)]
    assert [(len(p.rows), p.announced_total) for p in empty] == [(0, 0)]


async def test_year_not_offered_is_a_protocol_error(nezarat):
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        with pytest.raises(ProtocolError, match="1399"):
            [p async for p in nz.list_projects(fiscal_year=1399)]


@pytest.mark.parametrize("return_url", [True, False])
async def test_session_lost_mid_paging_searches_again_and_posts_the_page_reached(return_url):
    fake = FakeNezarat4(return_url=return_url)
    fake.drop_session_when = lambda method, path, form: form.get("__EVENTARGUMENT") == "Page$3" \
        and fake.logins == 1
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        pages = await read_all(nz)
        assert nz.stats["relogins"] == 1
    assert [p.page_no for p in pages] == [1, 2, 3, 4, 5]
    assert ids(pages) == [r["id"] for r in fake.rows]
    posted = [(p.get("__EVENTARGUMENT"), "ctl00$ContentPlaceHolder1$btnSearch" in p,
               p["__VIEWSTATE"].split("|")[1]) for p in fake.posted()]
    assert posted == [("", True, "sid1"), ("Page$2", False, "sid1"), ("Page$3", False, "sid1"),
                      ("", True, "sid2"), ("Page$3", False, "sid2"), ("Page$4", False, "sid2"),
                      ("Page$5", False, "sid2")]


async def test_a_request_sent_back_to_login_every_time_gives_up_after_its_retry_budget(nezarat):
    # a second login redirect in a row is an error of that request: retried with back-off, and only
    # a request that meets it every time gives up, as any transient fault (issue 12, item 4)
    nezarat.drop_session_when = lambda method, path, form: path != "/Login.aspx"
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        with pytest.raises(SourceUnavailable, match="sent to the login page again right after logging in"):
            await nz.project_detail(portal_id=40001, fiscal_year=1405)


async def test_a_second_login_redirect_in_a_row_is_retried_not_fatal(nezarat):
    calls = {"n": 0}

    def drop_twice(method, path, form):  # the detail read, and again right after the re-login
        if path.endswith("ProjectDetail.aspx"):
            calls["n"] += 1
            return calls["n"] <= 2
        return False

    nezarat.drop_session_when = drop_twice
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        detail = await nz.project_detail(portal_id=40001, fiscal_year=1405)
        assert nz.stats["relogins"] == 2
    assert detail is not None and calls["n"] == 3


async def test_detail_get_is_repeated_after_relogin_and_always_names_the_year(nezarat):
    calls = {"n": 0}

    def drop_once(method, path, form):
        calls["n"] += 1 if path.endswith("ProjectDetail.aspx") else 0
        return path.endswith("ProjectDetail.aspx") and calls["n"] == 2

    nezarat.drop_session_when = drop_once
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        first = await nz.project_detail(portal_id=40001, fiscal_year=1405)
        second = await nz.project_detail(portal_id=40002, fiscal_year=1405)
        assert nz.stats["relogins"] == 1
    assert isinstance(first, ProjectDetail) and first.project_code == "1301000001-001"
    assert isinstance(second, ProjectDetail) and second.project_code == "1301000002-001"
    details = [form for method, path, form in nezarat.requests if path.endswith("Detail.aspx")]
    assert all(form.get("year") == "1405" for form in details)


async def test_detail_not_found_is_none(nezarat):
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        assert await nz.project_detail(portal_id=1, fiscal_year=1405) is None
        assert nz.stats["not_found"] == 1


async def test_concurrent_details_after_session_loss_log_in_once():
    fake = FakeNezarat4(projects=30)
    dropped = {"done": False}

    def drop_first_time(method, path, form):
        if path.endswith("Detail.aspx") and not dropped["done"]:
            dropped["done"] = True
            return True
        return False

    fake.drop_session_when = drop_first_time
    async with Nezarat4Client(fast_settings(concurrency=4), fake.transport()) as nz:
        await nz.login()
        results = await asyncio.gather(*(nz.project_detail(portal_id=r["id"], fiscal_year=1405)
                                         for r in fake.rows))
        assert all(isinstance(r, ProjectDetail) for r in results)
        assert nz.stats["relogins"] == 1
    assert fake.logins == 2


@pytest.mark.parametrize("outcome, reason, advice", [
    ("wrong", "invalid_credentials", "$NEZARAT4_PASSWORD"),
    ("captcha", "captcha", "log in once in a browser"),
    ("locked", "account_locked", "ask the portal admin to unlock"),
])
async def test_login_refusals_are_permanent_one_line_and_never_show_the_password(
        outcome, reason, advice):
    fake = FakeNezarat4(password="another" if outcome == "wrong" else PASSWORD,
                        login_outcome=outcome if outcome != "wrong" else None)
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        with pytest.raises(AuthenticationFailed) as exc:
            await nz.login()
    assert exc.value.reason == reason and advice in str(exc.value)
    assert "\n" not in str(exc.value)
    assert PASSWORD not in str(exc.value) and PASSWORD not in repr(exc.value)
    login_posts = [r for r in fake.requests if r[0] == "POST"]
    assert len(login_posts) <= 1  # never retried (a captcha page is not even posted to)


@pytest.mark.parametrize("page, status", [
    ("nezarat4-runtime-error.html", 200),
    ("nezarat4-runtime-error.html", 500),
    ("nezarat4-error-fa.html", 200),
    ("nezarat4-maintenance.html", 200),
    ("nezarat4-maintenance.html", 503),
])
async def test_error_and_maintenance_pages_are_retried(nezarat, page, status):
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        await nz.login()
        nezarat.queued = [httpx.Response(status, text=fixture_text(page),
                                         headers={"Retry-After": "0"})] * 2
        detail = await nz.project_detail(portal_id=48213, fiscal_year=1405)
        assert isinstance(detail, ProjectDetail) and nz.stats["retries"] == 2


async def test_retry_budget_exhausted_names_path_and_last_fault(nezarat):
    async with Nezarat4Client(fast_settings(max_attempts=3), nezarat.transport()) as nz:
        await nz.login()
        nezarat.queued = [httpx.Response(200, text=fixture_text("nezarat4-maintenance.html"))] * 5
        with pytest.raises(SourceUnavailable) as exc:
            await nz.project_detail(portal_id=48213, fiscal_year=1405)
    assert "/Projects/ProjectDetail.aspx" in str(exc.value)
    assert "maintenance" in str(exc.value) and "3 time" in str(exc.value)


async def test_connection_errors_are_transient(nezarat):
    failures = {"left": 2}

    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("Detail.aspx") and failures["left"]:
            failures["left"] -= 1
            raise httpx.ConnectError("connection reset by peer", request=request)
        return nezarat.handle(request)

    async with Nezarat4Client(fast_settings(), httpx.MockTransport(flaky)) as nz:
        assert isinstance(await nz.project_detail(portal_id=48213, fiscal_year=1405),
                          ProjectDetail)
        assert nz.stats["retries"] == 2


async def test_renamed_list_header_stops_the_pass(nezarat):
    nezarat.header = nezarat.header.replace("<th>شهرستان</th>", "<th>بخش</th>")
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        with pytest.raises(LayoutChanged) as exc:
            await read_all(nz)
    assert "ProjectList.aspx" in exc.value.page and "بخش" in exc.value.found


async def test_in_flight_requests_never_exceed_concurrency():
    fake = FakeNezarat4(projects=40)
    transport = InFlight(fake.transport(), delay=0.005)
    async with Nezarat4Client(fast_settings(concurrency=3), transport) as nz:
        await asyncio.gather(*(nz.project_detail(portal_id=r["id"], fiscal_year=1405)
                               for r in fake.rows))
    assert transport.max == 3


async def test_user_agent_from_settings(nezarat):
    seen = []

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["User-Agent"])
        return nezarat.handle(request)

    async with Nezarat4Client(fast_settings(user_agent="budgetwatch/9.9 (test)"),
                              httpx.MockTransport(spy)) as nz:
        await nz.login()
    assert seen and set(seen) == {"budgetwatch/9.9 (test)"}


async def test_page_pause_between_postbacks(nezarat):
    loop = asyncio.get_running_loop()
    stamps = []

    def spy(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("ProjectList.aspx"):
            stamps.append(loop.time())
        return nezarat.handle(request)

    async with Nezarat4Client(fast_settings(page_pause_seconds=0.05),
                              httpx.MockTransport(spy)) as nz:
        await read_all(nz)
    gaps = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # between postbacks, not the search
    assert gaps and min(gaps) >= 0.045


async def test_relogin_by_a_detail_task_while_paging_does_not_post_a_dead_view_state(nezarat):
    nezarat.drop_session_when = lambda method, path, form: path.endswith("Detail.aspx") \
        and nezarat.logins == 1
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        pages = []
        async for page in nz.list_projects(fiscal_year=1405):
            pages.append(page)
            if page.page_no == 2:  # the sync engine reads details while it pages
                assert await nz.project_detail(portal_id=40001, fiscal_year=1405) is not None
        assert nz.stats["retries"] == 0 and nz.stats["relogins"] == 1
    assert ids(pages) == [r["id"] for r in nezarat.rows]
    posted = [(p.get("__EVENTARGUMENT"), p["__VIEWSTATE"].split("|")[1]) for p in nezarat.posted()]
    assert posted == [("", "sid1"), ("Page$2", "sid1"), ("", "sid2"), ("Page$3", "sid2"),
                      ("Page$4", "sid2"), ("Page$5", "sid2")]


async def test_a_refused_login_is_not_tried_again_by_the_other_tasks():
    fake = FakeNezarat4(password="changed-meanwhile")
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        results = await asyncio.gather(*(nz.project_detail(portal_id=40000 + i, fiscal_year=1405)
                                         for i in range(1, 9)), return_exceptions=True)
        with pytest.raises(AuthenticationFailed):
            await nz.login()
    assert all(isinstance(r, AuthenticationFailed) for r in results)
    assert len([r for r in fake.requests if r[0] == "POST"]) == 1  # one failed login, not nine


async def test_a_failed_login_post_is_retried_from_a_fresh_login_page(nezarat):
    # issue 12, item 3: the portal drops the session during the login POST; posting the same
    # __VIEWSTATE again can only fail, so each retry starts with a GET of the login page
    nezarat.failing_login_posts = 2
    async with Nezarat4Client(fast_settings(), nezarat.transport()) as nz:
        await nz.login()
    logins = [method for method, path, _form in nezarat.requests if path == "/Login.aspx"]
    assert logins == ["GET", "POST", "GET", "POST", "GET", "POST"]


async def test_a_portal_down_at_its_login_page_is_given_up_within_one_retry_budget():
    # an operator's trial: Nezarat-4 at a closed port with max_retry_seconds 5 held a sync 32.7 s
    # and 26 requests: each of the login's six tries had a budget of its own. A real closed port
    # on loopback (connections refused at once), not a fake transport.
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the probe goes: nothing listens there
    settings = fast_settings(f"http://127.0.0.1:{port}", backoff_initial_seconds=0.2, backoff_max_seconds=0.4,
                             max_attempts=6, max_retry_seconds=1.5)
    started = time.monotonic()
    async with Nezarat4Client(settings) as nz:
        with pytest.raises(SourceUnavailable) as caught:
            await nz.login()
        requests = nz.stats["requests"]
    took = time.monotonic() - started
    assert took < 1.5 + 0.4 + 1.0, took  # the budget, a last pause at most, and a margin for a slow machine
    # the old way, six logins of up to six GETs each: 26 in the trial, up to 36; now the GETs of the
    # first login spend the budget and at most one more login starts before it is gone
    assert requests < 2 * settings.max_attempts, requests
    assert "the login was tried" in str(caught.value) and "GET /Login.aspx failed" in str(caught.value)


# --- an ASP.NET portal as strict as the contract lets it be (a review of the contract) -----------


def _losing_once(chosen) -> tuple[FakeNezarat4, list[str]]:
    """A strict portal that processes the first list POST `chosen` (its form) picks and loses its
    answer; the view states of the POSTs it lost."""
    fake, lost = FakeNezarat4(strict=True), []

    def lose_once(method, path, form):
        if chosen(form) and not lost:
            lost.append(form["__VIEWSTATE"])
            return True
        return False

    fake.lose_answer_when = lose_once
    return fake, lost


async def test_a_postback_whose_answer_was_lost_after_the_portal_moved_on_searches_again():
    # the portal processed Page$3 and moved its page state on; the answer was lost (a reset after
    # processing, a time-out). Posting page 2's view state again can only be refused: the sync
    # failed with "POST … failed 4 time(s) … HTTP 500". It searches again and walks back to page 3.
    fake, lost = _losing_once(lambda form: form.get("__EVENTARGUMENT") == "Page$3")
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        pages = await read_all(nz)
    assert [state.rsplit("|", 1)[0] for state in lost] == ["VS|sid1|2"]
    assert ids(pages) == [r["id"] for r in fake.rows]
    assert [p.page_no for p in pages] == [1, 2, 3, 4, 5]


async def test_a_new_search_reaches_a_later_block_through_the_pagers_links():
    # a portal with event validation takes only a Page$N its latest page links: after the session
    # was lost on page 13, posting Page$13 from page 1 was refused every time
    fake = FakeNezarat4(projects=75, page_size=5, strict=True)  # 15 pages: 1..10, '...', 11..15
    fake.drop_session_when = lambda method, path, form: form.get("__EVENTARGUMENT") == "Page$13" \
        and fake.logins == 1
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        pages = await read_all(nz)
        assert nz.stats["relogins"] == 1
    assert ids(pages) == [r["id"] for r in fake.rows]
    after = [p["__EVENTARGUMENT"] for p in fake.posted() if p["__VIEWSTATE"].split("|")[1] == "sid2"]
    assert after[:3] == ["", "Page$11", "Page$13"]  # the search, the next block, the page reached


async def test_a_strict_portal_is_read_whole_without_faults():
    fake = FakeNezarat4(projects=75, page_size=5, strict=True)
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        pages = await read_all(nz)
    assert ids(pages) == [r["id"] for r in fake.rows] and [p.page_no for p in pages] == list(range(1, 16))


async def test_a_search_whose_answer_was_lost_after_the_portal_moved_on_gets_the_form_again():
    fake, lost = _losing_once(lambda form: "ctl00$ContentPlaceHolder1$btnSearch" in form)
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        pages = await read_all(nz)
    assert [state.rsplit("|", 1)[0] for state in lost] == ["VS|sid1|1"] and ids(pages) == [r["id"] for r in fake.rows]


async def test_a_burst_of_error_pages_on_a_postback_is_ridden_out_with_back_off_not_a_new_search():
    # a review of the change: list postbacks tried twice then searched again failed a sync over a
    # burst of error pages that retries with back-off ride out (nezarat4.md §5: transient)
    fake = FakeNezarat4(strict=True)
    burst = []
    async with Nezarat4Client(fast_settings(), fake.transport()) as nz:
        listing = nz.list_projects(fiscal_year=1405)
        pages = [await listing.__anext__()]  # page 1
        fake.queued.extend(httpx.Response(500, text=fixture_text("nezarat4-runtime-error.html")) for _ in range(3))
        burst.append(len(fake.requests))
        pages += [page async for page in listing]
    assert ids(pages) == [r["id"] for r in fake.rows]
    searches = [form for form in fake.posted() if "ctl00$ContentPlaceHolder1$btnSearch" in form]
    assert len(searches) == 1  # no new search: the postback's own retries
    assert len(fake.requests) - burst[0] == 3 + 4  # three refused tries, then pages 2-5
