"""The shared request mechanism of every connector: one place for the hard, portal-neutral parts.

A portal client owns a :class:`PortalHttp` and sends every request through :meth:`PortalHttp.send`,
which (1) keeps at most ``settings.concurrency`` requests in flight (a slot held only while a
request is on the wire, never during a back-off sleep; ``urgent`` requests — logins and list
pages — are handed a slot before queued detail reads, see :class:`InFlight`), (2) spaces request
starts when the portal has a rate limit, (3) retries transient faults with exponential back-off and jitter, bounded by
``max_attempts`` and ``max_retry_seconds``, waiting at least what ``Retry-After`` asks (integer
seconds or an HTTP date), and (4) counts what it did under stable keys. After the retry budget it
raises :class:`~connectors.errors.SourceUnavailable` naming the method, the URL path and the last
fault. What counts as a transient fault beyond the HTTP basics (500/502/503/504/429, time-outs,
resets) is the portal's call: it passes ``fault=`` a function that reads a response and names the
fault, or returns None (Nezarat-4 answers some errors with status 200).

Request bodies are never logged nor put in an exception: a login form carries the password.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.stop import stop_any

from .errors import SourceUnavailable
from .settings import PortalSettings

log = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})

# Stable counter keys; a client may add its own, but these are always present.
STAT_KEYS = ("requests", "retries", "relogins", "rejections", "pages", "details", "not_found",
             "rate_limited")


@dataclass(frozen=True, slots=True)
class Fault:
    """What went wrong with one attempt, in words for the run record, and how long to hold off."""

    description: str
    retry_after: float | None = None


class TransientFault(Exception):
    """Raised inside the retry loop for one failed attempt; never escapes :meth:`PortalHttp.send`."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.description)
        self.fault = fault


FaultReader = Callable[[httpx.Response], "Fault | None"]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: integer (or decimal) seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def http_fault(response: httpx.Response) -> Fault | None:
    """The transient faults every portal shares: 429 and 5xx gateway/server errors."""
    if response.status_code in TRANSIENT_STATUSES:
        return Fault(
            f"HTTP {response.status_code}",
            parse_retry_after(response.headers.get("Retry-After")),
        )
    return None


class RateLimiter:
    """Spaces request starts so that at most ``per_second`` start in any second (all tasks share it).

    Each start is spaced from the previous one as it actually happened, not as it was scheduled:
    turns reserved ahead would all be let go at once after the event loop stalls (a large page
    parsed, the GIL held by another thread), several starts within milliseconds, and a portal
    counting a sliding second would answer 429. Waiters take their turns one at a time, in order.

    ``hold_off`` pushes every later start back, e.g. when the portal answered 429 with Retry-After;
    a waiter already sleeping sees it when it wakes.
    """

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next_start = 0.0
        self._lock = asyncio.Lock()

    async def wait_turn(self) -> None:
        async with self._lock:
            while (now := time.monotonic()) < self._next_start:
                await asyncio.sleep(self._next_start - now)
            self._next_start = now + self._interval

    def hold_off(self, seconds: float) -> None:
        self._next_start = max(self._next_start, time.monotonic() + seconds)


class InFlight:
    """At most `limit` requests on the wire; urgent waiters get a freed slot before the others.

    A sync queues a hundred detail reads ahead of the list. With a first-come semaphore the next
    list page would wait behind all of them, and the detail queue would run dry while it does:
    the slots idle for one list round trip per page (a large share of a Nezarat-4 sync's wall time:
    docs/benchmarks.md, figures behind the comments). Urgent requests (logins, list pages) are few
    and sequential, so they cannot starve the detail reads.
    """

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiting: tuple[deque[asyncio.Future], deque[asyncio.Future]] = (deque(), deque())  # urgent, other

    @asynccontextmanager
    async def slot(self, urgent: bool = False) -> AsyncIterator[None]:
        if self._free > 0 and not (self._waiting[0] or self._waiting[1]):
            self._free -= 1
        else:
            turn = asyncio.get_running_loop().create_future()
            queue = self._waiting[0 if urgent else 1]
            queue.append(turn)
            try:
                await turn
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled():
                    self._release()  # handed a slot in the same instant it was cancelled: pass it on
                else:
                    queue.remove(turn)
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in self._waiting:
            while queue:
                turn = queue.popleft()
                if not turn.done():
                    turn.set_result(None)  # the slot passes straight to the waiter
                    return
        self._free += 1


class PortalHttp:
    """An async httpx client with the politeness and retry rules of the contracts."""

    def __init__(
        self,
        source: str,
        settings: PortalSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        rate_limit_per_second: float | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.client = httpx.AsyncClient(
            base_url=settings.base_url,
            transport=transport,
            verify=settings.verify_tls,
            timeout=settings.timeout_seconds,
            headers={"User-Agent": settings.user_agent},
            follow_redirects=False,  # a redirect to the login page is a signal, not a detour
        )
        self._in_flight = InFlight(settings.concurrency)
        self._limiter = RateLimiter(rate_limit_per_second) if rate_limit_per_second else None
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)

    async def aclose(self) -> None:
        await self.client.aclose()

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def _wait(self, retry_state: RetryCallState) -> float:
        s = self.settings
        base = min(s.backoff_initial_seconds * 2 ** (retry_state.attempt_number - 1),
                   s.backoff_max_seconds)
        wait = base / 2 + random.uniform(0, base / 2)  # "equal jitter": spread, never zero
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientFault) and exc.fault.retry_after is not None:
            wait = max(wait, exc.fault.retry_after)
        return wait

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        self.count("retries")
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        sleep = retry_state.next_action.sleep if retry_state.next_action else 0.0
        # DEBUG: a portal down for a night would write a line a request a try (an operator's trial:
        # 200 lines in 25 s); the run counts them (stats "retries") and says the request that gave up
        log.debug("%s: attempt %d failed (%s); retrying in %.2f s", self.source,
                  retry_state.attempt_number, exc, sleep)

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Callable[[], Mapping[str, str]] | Mapping[str, str] | None = None,
        fault: FaultReader | None = None,
        before_send: Callable[[], None] | None = None,
        urgent: bool = False,
        attempts: int | None = None,
        since: float | None = None,
        **request: Any,
    ) -> httpx.Response:
        """Send one request, retrying transient faults; return the first answer that is not one.

        ``headers`` may be a function, evaluated per attempt (a bearer token may change between
        attempts). ``fault`` reads a portal-specific transient fault from an answer. ``request``
        goes to ``httpx.AsyncClient.request`` (params, content, json, ...). ``before_send`` runs
        right before each attempt goes on the wire (after the waits); whatever it raises ends the
        call unretried (Nezarat-4: a postback whose session was replaced meanwhile). ``urgent``
        requests (logins, list pages) take the next free slot before queued detail reads.
        ``attempts`` lowers the retry budget for a request that must not be sent twice as it is (a
        login form whose hidden fields belong to the answer before it). ``since`` (a
        ``time.monotonic()``) counts ``max_retry_seconds`` from that moment instead of this request's
        first try: a request that is one step of a larger one tried again whole (a login) spends the
        larger one's budget, not a new one each time.
        """
        s = self.settings
        path = httpx.URL(url).path or url
        last: list[str] = []
        sent: list[float] = []  # when the first try went on the wire

        def out_of_time(retry_state: RetryCallState) -> bool:
            """max_retry_seconds counted from the first try on the wire, not from the call: a request
            queued behind hundreds for a slot (a large sync) spent its budget waiting, and gave up
            after one or two tries when the portal faltered (an operator's trial)."""
            start = since if since is not None else sent[0] if sent else None
            return start is not None and time.monotonic() - start + retry_state.upcoming_sleep >= s.max_retry_seconds

        limited: list[int] = []  # tries answered 429: waited for as Retry-After asks, not counted as tries

        def out_of_tries(retry_state: RetryCallState) -> bool:
            """``max_attempts`` tries, not counting those the portal answered 429: "wait Retry-After
            seconds, then repeat" (saba.md §4) — bounded by ``max_retry_seconds`` alone (a review of
            the contract: six 429s in a row gave the request up, as if the portal had failed)."""
            return retry_state.attempt_number - len(limited) >= (attempts or s.max_attempts)

        retrying = AsyncRetrying(
            stop=stop_any(out_of_tries, out_of_time),
            wait=self._wait,
            retry=retry_if_exception_type(TransientFault),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    response = await self._attempt(method, url, headers, fault, before_send,
                                                   urgent, last, request, sent, limited)
        except TransientFault:
            raise SourceUnavailable(
                self.source,
                f"{method} {path} failed {len(last)} time(s) in "
                f"{time.monotonic() - (sent[0] if sent else time.monotonic()):.1f} s; "
                f"last fault: {last[-1] if last else '?'}",
            ) from None
        return response

    async def _attempt(self, method, url, headers, fault, before_send, urgent, last, request, sent, limited
                       ) -> httpx.Response:
        async with self._in_flight.slot(urgent):
            # The rate turn is taken inside the slot, so that starts stay spaced even when many
            # tasks were queued for a slot.
            if self._limiter is not None:
                await self._limiter.wait_turn()
            if before_send is not None:
                before_send()
            request_headers = headers() if callable(headers) else headers
            self.count("requests")
            if not sent:
                sent.append(time.monotonic())
            try:
                response = await self.client.request(method, url, headers=request_headers,
                                                     **request)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                described = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                last.append(described)
                raise TransientFault(Fault(described)) from exc
        found = http_fault(response) or (fault(response) if fault else None)
        if found is not None:
            if response.status_code == 429:
                self.count("rate_limited")
                limited.append(1)
                if self._limiter is not None and found.retry_after:
                    self._limiter.hold_off(found.retry_after)
            last.append(found.description)
            raise TransientFault(found)
        return response
