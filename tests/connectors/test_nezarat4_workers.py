"""Nezarat-4 pages read in a worker process (settings.parse_workers, connectors.offload): what
comes back — records, rejections, exceptions — is what reading on the event loop gives."""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import pickle
from contextlib import asynccontextmanager

import httpx
import pytest

from foundation.jalali import TEHRAN
from connectors import (
    AuthenticationFailed,
    ConnectorError,
    LayoutChanged,
    Nezarat4Client,
    PortalSettings,
    ProjectDetail,
    ProtocolError,
    RejectedDetail,
    SourceUnavailable,
)
from connectors.nezarat4 import canonical, pages
from connectors.offload import PageReader, RemoteTraceback

from connector_fakes import PASSWORD, FakeNezarat4, fast_settings, fixture_text

pytestmark = pytest.mark.anyio

LIST_URL = "https://portal.test/Projects/ProjectList.aspx"


def serving(fake: FakeNezarat4, rewrite) -> httpx.MockTransport:
    """The fake portal, with each detail page passed through ``rewrite(portal_id, html)``."""

    def handle(request: httpx.Request) -> httpx.Response:
        response = fake.handle(request)
        if request.url.path.endswith("ProjectDetail.aspx") and response.status_code == 200:
            html = rewrite(int(request.url.params["id"]), response.text)
            return httpx.Response(200, text=html)
        return response

    return httpx.MockTransport(handle)


@asynccontextmanager
async def client(transport: httpx.AsyncBaseTransport, workers: int):
    async with Nezarat4Client(fast_settings(parse_workers=workers), transport) as nz:
        if workers:  # until the worker is ready pages are read on the loop: wait, to test it
            assert await nz._reader.started(timeout=30), "the page-reading worker did not start"
            assert await nz._reader.read(os.getpid) != os.getpid()
        yield nz


async def read_detail(transport, workers: int, portal_id: int):
    async with client(transport, workers) as nz:
        try:
            return await nz.project_detail(portal_id=portal_id, fiscal_year=1405), nz.stats
        except ConnectorError as exc:
            return exc, nz.stats


# --- through the client -------------------------------------------------------------------------


async def test_a_layout_change_raised_in_the_worker_reaches_the_caller_intact():
    fake = FakeNezarat4(projects=3)
    transport = serving(fake, lambda pid, html: html.replace('id="gvTargets"', 'id="gvOther"'))
    on_loop, _ = await read_detail(transport, 0, 40001)
    in_worker, stats = await read_detail(transport, 1, 40001)
    assert type(in_worker) is type(on_loop) is LayoutChanged
    assert in_worker.__dict__ == on_loop.__dict__ and in_worker.args == on_loop.args
    assert str(in_worker) == str(on_loop) == (
        "nezarat4: layout changed on ProjectDetail.aspx?id=40001&year=1405: expected "
        "table#gvTargets, found " + on_loop.found)
    assert in_worker.page == "ProjectDetail.aspx?id=40001&year=1405"
    # the worker's traceback comes along, for the developers the error is meant for
    assert isinstance(in_worker.__cause__, RemoteTraceback)
    assert "_read_grid" in str(in_worker.__cause__)
    assert stats["details"] == 0


async def test_a_rejected_detail_made_in_the_worker_reaches_the_caller_intact():
    fake = FakeNezarat4(projects=3)
    transport = serving(fake, lambda pid, html: html.replace(
        '<span id="lblAgreementStatus">مبادله شده</span>',
        '<span id="lblAgreementStatus">بایگانی</span>'))
    on_loop, loop_stats = await read_detail(transport, 0, 40002)
    in_worker, stats = await read_detail(transport, 1, 40002)
    assert isinstance(in_worker, RejectedDetail) and in_worker == on_loop
    [rejection] = in_worker.rejections
    assert (rejection.field, rejection.raw, rejection.key) == (
        "lblAgreementStatus", "بایگانی", "1301000002-001")
    assert stats == loop_stats and stats["rejections"] == 1


async def test_on_the_loop_and_in_a_worker_the_same_pages_give_the_same_records():
    fake = FakeNezarat4(projects=12, page_size=5)

    def vary(pid: int, html: str) -> str:  # a malformed cell on some pages: rejections too
        return html.replace("<td>۳۴٫۸</td>", "<td>۳۴٫۸x</td>") if pid % 3 == 0 else html

    transport = serving(fake, vary)
    results = []
    for workers in (0, 1):
        async with client(transport, workers) as nz:
            listed = [page async for page in nz.list_projects(fiscal_year=1405)]
            ids = [row.portal_id for page in listed for row in page.rows] + [1]  # 1: not found
            details = [await nz.project_detail(portal_id=i, fiscal_year=1405) for i in ids]
            results.append((listed, details, nz.stats))
    (listed, details, stats), (listed_w, details_w, stats_w) = results
    assert listed_w == listed and len(listed) == 3
    assert details_w == details and details[-1] is None
    assert all(isinstance(d, ProjectDetail) for d in details[:-1])
    assert sum(len(d.rejections) for d in details[:-1]) == 4  # ids 40003, 40006, 40009, 40012
    assert all(d.last_modified.tzinfo is TEHRAN for d in details_w[:-1])
    assert stats_w == stats


# --- what crosses the process boundary ----------------------------------------------------------


@pytest.mark.parametrize("error", [
    ConnectorError("nezarat4", "m"),
    SourceUnavailable("saba", "GET /x failed 6 time(s)"),
    AuthenticationFailed("nezarat4", "captcha", "the portal demands a captcha"),
    LayoutChanged("nezarat4", "ProjectList.aspx", "table#gv", "page titled 'x'"),
    ProtocolError("nezarat4", "a second login redirect in a row"),
], ids=lambda e: type(e).__name__)
def test_connector_errors_pickle_and_copy_whole(error):
    error.add_note("a note")
    for again in (pickle.loads(pickle.dumps(error)), copy.copy(error), copy.deepcopy(error)):
        assert type(again) is type(error)
        assert again.args == error.args and again.__dict__ == error.__dict__
        assert str(again) == str(error) and PASSWORD not in str(again)


def test_records_and_raw_pages_pickle_whole():
    html = fixture_text("nezarat4-detail.html")
    raw = pages.read_detail_page(html, "ProjectDetail.aspx?id=48213&year=1405")
    detail = canonical.detail(raw, 48213, 1405)
    assert detail.credits and detail.credit_total and detail.targets and detail.reports
    rejected = canonical.detail(
        pages.read_detail_page(html.replace("۱۴۰۵/۰۸/۰۳ ۱۴:۰۵", "دیروز"), "P"), 48213, 1405)
    listing = pages.read_list_page(fixture_text("nezarat4-list-page1.html"), LIST_URL)
    listed = canonical.list_page(listing, 1405, 1)
    for value in (raw, detail, rejected, listing, listed):
        assert pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)) == value
    assert pickle.loads(pickle.dumps(detail)).last_modified.tzinfo is TEHRAN


def test_parse_workers_is_zero_or_more():
    with pytest.raises(ValueError, match="parse_workers"):
        PortalSettings(base_url="https://x", username="u", password=PASSWORD, parse_workers=-1)


# --- the reader's fallbacks ---------------------------------------------------------------------


class Unpicklable(Exception):
    def __init__(self, a: int, b: int) -> None:  # pickle would call Unpicklable(message)
        super().__init__(f"{a}/{b}")


def raise_unpicklable(a: int, b: int) -> None:
    raise Unpicklable(a, b)


@asynccontextmanager
async def reader(workers: int = 1):
    page_reader = PageReader("nezarat4", workers, preload=("connectors.nezarat4.reading",))
    page_reader.start()
    try:
        assert await page_reader.started(timeout=30) is bool(workers)
        yield page_reader
    finally:
        page_reader.close()


async def test_an_exception_that_cannot_cross_is_raised_by_reading_again_on_the_loop():
    async with reader() as r:
        with pytest.raises(Unpicklable, match="^1/2$"):
            await r.read(raise_unpicklable, 1, 2)
        assert await r.read(os.getpid) != os.getpid()  # the worker is still in use


async def test_a_dead_worker_means_reading_on_the_loop_with_a_warning(caplog):
    caplog.set_level(logging.WARNING, logger="connectors.offload")
    async with reader() as r:
        r._all[0].process.kill()
        r._all[0].process.join(5)
        assert await r.read(os.getpid) == os.getpid()
        assert await r.read(os.getpid) == os.getpid()
    assert "reading pages on the event loop from now on" in caplog.text


async def test_no_workers_reads_on_the_loop_and_starts_nothing():
    async with reader(workers=0) as r:
        assert await r.read(os.getpid) == os.getpid()
        assert r._all == []


async def test_reads_waiting_when_the_reader_closes_are_done_on_the_loop():
    async with reader() as r:
        worker_pid = r._all[0].process.pid
        waiting = [asyncio.ensure_future(r.read(os.getpid)) for _ in range(5)]
        await asyncio.sleep(0)  # the first is with the worker, the others queued
        r.close()
        pids = await asyncio.gather(*waiting)
    assert set(pids[:1]) <= {worker_pid, os.getpid()}
    assert pids[1:] == [os.getpid()] * 4


def test_a_worker_whose_reader_is_gone_ends_without_a_traceback(capfd):
    # issue 12, item 10: a piped sync whose reader closed, or a source stopped by a layout change,
    # closes the pipes before the worker says it is ready; real OS pipes, the worker's own function
    import multiprocessing

    from connectors.offload import _serve

    jobs_reader, jobs_writer = multiprocessing.Pipe(duplex=False)
    answers_reader, answers_writer = multiprocessing.Pipe(duplex=False)
    answers_reader.close()  # the parent is gone: nobody will read the worker's "ready"
    jobs_writer.close()
    import signal

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _serve(jobs_reader, answers_writer)  # returns: no BrokenPipeError escapes
    finally:  # _serve sets a worker's signal handling: give this process its own back
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert "Traceback" not in capfd.readouterr().err
