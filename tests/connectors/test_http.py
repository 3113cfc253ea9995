"""The shared mechanism (connectors/http.py): Retry-After, bounded retries, in-flight limit."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from connectors import SourceUnavailable
from connectors.http import InFlight as Slots
from connectors.http import PortalHttp, RateLimiter, parse_retry_after

from connector_fakes import InFlight, fast_settings

pytestmark = pytest.mark.anyio


def test_retry_after_integer_seconds():
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 0 ") == 0


def test_retry_after_http_date():
    now = datetime(2026, 10, 4, 8, 0, tzinfo=timezone.utc)
    header = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(header, now=now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0


def test_retry_after_absent_or_unreadable():
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None


async def test_retry_after_http_date_is_honoured():
    answers = [httpx.Response(503, headers={"Retry-After": format_datetime(
        datetime.now(timezone.utc) + timedelta(seconds=2), usegmt=True)}), httpx.Response(200)]
    http = PortalHttp("test", fast_settings(), httpx.MockTransport(lambda r: answers.pop(0)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await http.send("GET", "/x")
    # an HTTP date has one-second resolution: more than 1 s, never the 10 ms back-off
    assert response.status_code == 200 and loop.time() - started >= 1.0
    assert http.stats["retries"] == 1 and http.stats["requests"] == 2
    await http.aclose()


async def test_retry_after_beyond_the_budget_gives_up_at_once():
    http = PortalHttp("test", fast_settings(max_retry_seconds=5.0), httpx.MockTransport(
        lambda r: httpx.Response(503, headers={"Retry-After": "3600"})))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SourceUnavailable, match=r"GET /api/x failed 1 time.*HTTP 503"):
        await http.send("GET", "/api/x?secret=no")
    # at once, not after the budget: half of it is room for a machine busy with other work
    assert loop.time() - started < 2.5
    await http.aclose()


async def test_attempts_are_bounded():
    calls = []

    def fail(request):
        calls.append(request)
        return httpx.Response(502)

    http = PortalHttp("test", fast_settings(max_attempts=3), httpx.MockTransport(fail))
    with pytest.raises(SourceUnavailable) as exc:
        await http.send("GET", "/y")
    assert len(calls) == 3 and str(exc.value).startswith("test: GET /y failed 3 time(s)")
    await http.aclose()


async def test_semaphore_bounds_requests_in_flight():
    transport = InFlight(httpx.MockTransport(lambda r: httpx.Response(200)), delay=0.01)
    http = PortalHttp("test", fast_settings(concurrency=5), transport)
    await asyncio.gather(*(http.send("GET", f"/z{i}") for i in range(40)))
    assert transport.max == 5
    await http.aclose()


async def test_urgent_requests_take_the_next_free_slot_before_queued_ones():
    # a list page asked for while detail reads are queued must not wait behind all of them
    order = []
    release = asyncio.Event()
    transport_calls = []

    async def handler(request):
        transport_calls.append(request.url.path)
        if request.url.path == "/held":
            await release.wait()
        order.append(request.url.path)
        return httpx.Response(200)

    http = PortalHttp("test", fast_settings(concurrency=1), httpx.MockTransport(handler))
    held = asyncio.ensure_future(http.send("GET", "/held"))
    while not transport_calls:  # the one slot is taken
        await asyncio.sleep(0)
    queued = [asyncio.ensure_future(http.send("GET", f"/detail{i}")) for i in range(3)]
    urgent = asyncio.ensure_future(http.send("GET", "/list", urgent=True))
    for _ in range(5):
        await asyncio.sleep(0)  # every request has queued for the slot
    release.set()
    await asyncio.gather(held, urgent, *queued)
    assert order == ["/held", "/list", "/detail0", "/detail1", "/detail2"]
    await http.aclose()


async def test_a_waiter_cancelled_as_it_is_handed_the_slot_passes_it_on():
    slots = Slots(1)
    entered = []

    async def use(name, hold=None):
        async with slots.slot():
            entered.append(name)
            if hold is not None:
                await hold.wait()

    hold = asyncio.Event()
    first = asyncio.ensure_future(use("first", hold))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(use("second"))
    third = asyncio.ensure_future(use("third"))
    await asyncio.sleep(0)
    hold.set()
    await asyncio.sleep(0)  # `first` leaves and hands the slot to `second`, which has not run yet
    second.cancel()
    # a leaked slot would leave `third` waiting for ever: bounded, so that shows as a failure
    await asyncio.wait_for(asyncio.gather(first, second, third, return_exceptions=True), 5)
    assert entered == ["first", "third"] and second.cancelled()
    async with slots.slot():  # and the slot is free again: nothing leaked
        pass


async def test_starts_stay_within_the_rate_when_the_event_loop_stalls():
    # Four tasks take turns at 10 a second while the loop is blocked for half a second (time.sleep
    # on purpose: the stall is what is tested — a page parsed on the loop, the GIL held by the
    # simulator's thread under load). The turns due during the stall must not all start at once
    # after it: any 11 starts span at least a second (10 ms allowed for stamping them here).
    limiter, starts = RateLimiter(10), []

    async def requests():
        for _ in range(6):
            await limiter.wait_turn()
            starts.append(time.monotonic())

    async def stall():
        await asyncio.sleep(0.25)
        time.sleep(0.5)

    await asyncio.gather(*(requests() for _ in range(4)), stall())
    starts.sort()
    assert len(starts) == 24
    assert min(starts[i + 10] - starts[i] for i in range(len(starts) - 10)) >= 0.99


async def test_a_hold_off_delays_a_turn_already_waiting():
    limiter = RateLimiter(2)  # one start every 0.5 s
    await limiter.wait_turn()
    waiting = asyncio.ensure_future(limiter.wait_turn())
    await asyncio.sleep(0)  # the waiter runs until it sleeps for its turn
    started = time.monotonic()
    limiter.hold_off(1.0)  # the portal answered 429, Retry-After: 1
    await waiting
    assert time.monotonic() - started >= 0.99


async def test_tls_verification_is_on_by_default():
    http = PortalHttp("test", fast_settings())
    context = http.client._transport._pool._ssl_context  # httpx internals: no public accessor
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    await http.aclose()


async def test_a_retry_is_no_line_of_the_services_log(caplog):
    # an operator's trial: with a portal down, one INFO line a request a try (200 in 25 s) flooded
    # the journal; the tries are counted in the run's stats and the request that gave up is said
    import logging

    http = PortalHttp("test", fast_settings(max_attempts=3), httpx.MockTransport(lambda r: httpx.Response(502)))
    with caplog.at_level(logging.INFO, logger="connectors"), pytest.raises(SourceUnavailable):
        await http.send("GET", "/y")
    assert [r for r in caplog.records if r.name.startswith("connectors")] == []
    assert http.stats["retries"] == 2
    with caplog.at_level(logging.DEBUG, logger="connectors"), pytest.raises(SourceUnavailable):
        await http.send("GET", "/y")
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 2  # there for --debug
    await http.aclose()


async def test_the_retry_budget_counts_from_the_first_try_not_from_the_queue():
    # an operator's trial: a request queued behind others for a slot spent max_retry_seconds waiting,
    # then gave up after one fault ("failed 2 time(s)" with max_attempts 6)
    answers = {"/slow": [httpx.Response(200)], "/flaky": [httpx.Response(503), httpx.Response(200)]}

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slow":
            await asyncio.sleep(1.5)  # holds the only slot longer than the whole retry budget
        return answers[request.url.path].pop(0)

    http = PortalHttp("test", fast_settings(concurrency=1, max_retry_seconds=1.0), httpx.MockTransport(answer))
    slow = asyncio.create_task(http.send("GET", "/slow"))
    await asyncio.sleep(0.05)  # the slow one holds the slot
    flaky = await http.send("GET", "/flaky")
    assert flaky.status_code == 200 and (await slow).status_code == 200
    assert http.stats["retries"] == 1
    await http.aclose()


async def test_a_rate_limit_is_waited_out_and_not_counted_as_a_try():
    # saba.md §4: 429 -> "wait Retry-After seconds, then repeat"; six 429s in a row had used up a
    # request's tries (max_attempts) as if the portal had failed. Bounded by max_retry_seconds alone.
    answers = [httpx.Response(429, headers={"Retry-After": "0"}) for _ in range(7)] + [httpx.Response(200)]
    http = PortalHttp("test", fast_settings(max_attempts=2), httpx.MockTransport(lambda r: answers.pop(0)))
    response = await http.send("GET", "/api/x")
    assert response.status_code == 200 and http.stats["rate_limited"] == 7 and http.stats["requests"] == 8
    await http.aclose()


async def test_other_faults_still_count_as_tries_beside_rate_limits():
    answers = [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(502), httpx.Response(502),
               httpx.Response(200)]
    http = PortalHttp("test", fast_settings(max_attempts=2), httpx.MockTransport(lambda r: answers.pop(0)))
    with pytest.raises(SourceUnavailable, match=r"failed 3 time"):
        await http.send("GET", "/api/x")
    await http.aclose()
