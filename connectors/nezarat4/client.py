"""Nezarat-4 client: log in like a person, search the project list, page through it, read details.

The conversation with the ASP.NET WebForms portal (nezarat4.md §2–5): a login form posted with its
hidden fields, a session kept in cookies, a search posted with the filters, postbacks ``Page$N``
for the next pages, and one GET per project detail. A lost session (a redirect to the login page)
is answered by logging in again: a GET is then repeated; a postback cannot be (its ``__VIEWSTATE``
belongs to the lost session), so the list is searched again and the pager walked to the page that
had been reached (through the pages each page links). So is a postback refused every time within its
retry budget: its answer may have been lost after the portal moved its page state on. A second login redirect in a row for one request is retried with back-off within its retry budget (issue 12); a request that meets it every time raises :class:`SourceUnavailable`.
Markup is read by ``pages.py`` and values by ``canonical.py``; retries, the in-flight limit and the
counters live in :class:`~connectors.http.PortalHttp`, and the login shared by concurrent requests
in :class:`~connectors.session.Login`. List and detail pages are read in a worker
process (``settings.parse_workers``, see :mod:`connectors.offload`) so that the event loop only does
I/O; the in-flight limit counts requests on the wire, never readings.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import date
from urllib.parse import urlencode

import httpx

from foundation.jalali import format_jalali
from foundation.persian import to_ascii_digits

from ..errors import AuthenticationFailed, ProtocolError, SourceUnavailable, YearNotOffered
from ..http import Fault, PortalHttp
from ..offload import PageReader
from ..paging import asked_again
from foundation.records import ProjectDetail, ProjectListPage
from ..session import CHURN_LIMIT, Login, LoginUnderway
from ..settings import PortalSettings
from . import canonical, pages, reading
from .canonical import RejectedDetail

log = logging.getLogger(__name__)

SOURCE = "nezarat4"
_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# new searches after a list postback (or the search) was refused every time within its retry budget,
# before the source gives up: its answer may have been lost after the portal moved its page state on
POSTBACK_RECOVERIES = 1
MAX_PAGER_HOPS = 200  # blocks of ten pages walked to reach a page after a new search (2,000 pages)


class _SearchRefused(Exception):
    """The search POST was refused every time within its retry budget; the search starts again from
    a new GET of the form (POSTBACK_RECOVERIES times at most)."""

    def __init__(self, error: SourceUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


class _SessionLost(Exception):
    """The answer was the login page (or a redirect to it). ``session`` is the login whose cookies
    the request carried: if another task has logged in since, the loss is already dealt with."""

    def __init__(self, session: int) -> None:
        super().__init__(session)
        self.session = session


class _Stale(Exception):
    """Another task logged in again since this form was read: its __VIEWSTATE is of a dead session,
    so posting it would only earn the ASP.NET error page. Nothing was sent."""


@dataclass(slots=True)
class _Listing:
    """A list page as read, with the login its hidden fields belong to."""

    page: pages.ListPage
    session: int


class _Redirects:
    """Login redirects met while trying to get one answer.

    The contract's rule — a second login redirect in a row for the same request is an error — is
    read as: this request logged in again, and the session it got never served a page before the
    portal sent the request back to the login page. A login that does not take would loop for
    ever; a working session that the portal drops later (it may, at any moment) is a new loss,
    and a redirect met while another task logged in is that task's to judge.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.logged_in = False  # this request's own re-login gave the current session
        self.strikes = 0  # second redirects in a row met by this request

    async def check(self, session_had_worked: bool, settings: PortalSettings) -> None:
        """A second redirect in a row is an error *of this request*: it is retried with back-off
        within the request's retry budget, as any transient fault, and only a request that meets it
        every time gives up (issue 12, item 4); the source goes on with its other requests."""
        if not (self.logged_in and not session_had_worked):
            return
        self.strikes += 1
        if self.strikes >= settings.max_attempts:
            raise SourceUnavailable(SOURCE, f"{self.what}: sent to the login page again right after logging in, "
                                            f"{self.strikes} times in a row")
        await asyncio.sleep(min(settings.backoff_initial_seconds * 2 ** (self.strikes - 1),
                                settings.backoff_max_seconds))


class Nezarat4Client:
    """One logged-in session with Nezarat-4. Use as ``async with Nezarat4Client(settings) as nz``."""

    def __init__(self, settings: PortalSettings,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._http = PortalHttp(SOURCE, settings, transport)
        self._reader = PageReader(SOURCE, settings.parse_workers, preload=(reading.__name__,))
        self._session = Login(self._http, self._post_login_form)  # which login the cookies belong to

    async def __aenter__(self) -> Nezarat4Client:
        self._reader.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self._http.aclose()
        finally:
            self._reader.close()

    @property
    def stats(self) -> dict[str, int]:
        """Counters under stable keys: requests, retries, relogins, rejections, pages, details, ..."""
        return dict(self._http.stats)

    # --- session ------------------------------------------------------------------------------

    async def login(self) -> None:
        """Log in now (otherwise done on the first request). Raises AuthenticationFailed."""
        await self._session.login()

    async def _after_redirect(self, lost: _SessionLost, redirects: _Redirects) -> None:
        """A request met the login page: log in again, unless another task already has."""
        if lost.session != self._session.current:
            return  # the request carried a session already replaced: not a redirect of its own
        await redirects.check(lost.session <= self._session.proven, self.settings)
        redirects.logged_in = await self._session.renew(lost.session, "session lost; logging in again")

    async def _post_login_form(self) -> None:
        """Log in through the form; returns once logged in (the cookies hold the new session).

        A login POST that fails is not posted again as it was: its ``__VIEWSTATE`` belongs to the
        login page it answered, and a portal that dropped the session meanwhile refuses it every
        time. The whole login is tried again instead, from a fresh GET of the login page, with
        back-off, within the retry budget (issue 12, item 3): ``max_retry_seconds`` is the whole
        login's, from its first try, its GETs' retries included (an operator's trial: each try of
        the login had a budget of its own, and a portal down at its login page held a run 6 × 300 s).
        """
        s = self.settings
        started = time.monotonic()
        for attempt in range(1, s.max_attempts + 1):
            try:
                await self._login_once(started)
                return
            except SourceUnavailable as exc:
                pause = min(s.backoff_initial_seconds * 2 ** (attempt - 1), s.backoff_max_seconds)
                spent = time.monotonic() - started
                if attempt == s.max_attempts or spent + pause >= s.max_retry_seconds:
                    raise SourceUnavailable(SOURCE, f"the login was tried {attempt} time(s) in {spent:.1f} s "
                                                    f"and failed: {exc.message}") from None
                self._http.count("retries")
                await asyncio.sleep(pause)

    async def _login_once(self, started: float) -> None:
        """One login: GET the form, POST it once (``started``: when the whole login began)."""
        self._http.client.cookies.clear()
        response = await self._http.send("GET", pages.LOGIN_PATH, fault=self._fault, urgent=True, since=started)
        self._expect_page(response, "Login.aspx")
        form = pages.read_login_page(response.text, str(response.url))
        if form.captcha:  # posting would only count as one more failed login
            raise self._refused("captcha")
        button = form.form.buttons.get(pages.LOGIN_BUTTON, pages.LOGIN_BUTTON_VALUE)
        fields = form.form.with_values({
            pages.USER_INPUT: self.settings.username,
            pages.PASSWORD_INPUT: self.settings.password.get_secret_value(),
            pages.LOGIN_BUTTON: button,
        })
        response = await self._http.send("POST", form.form.action, content=urlencode(fields),
                                         headers=_FORM, fault=self._fault, urgent=True, attempts=1)
        if response.is_redirect:
            if pages.is_login_location(response.headers.get("Location")):
                raise ProtocolError(SOURCE, "the login was answered with a redirect back to "
                                            "the login page")
            return
        self._expect_page(response, "Login.aspx")
        if not pages.is_login_page(response.text):
            return  # a server that shows the start page instead of redirecting
        answer = pages.read_login_page(response.text, str(response.url))
        if answer.refusal:
            raise self._refused(answer.refusal)
        raise ProtocolError(SOURCE, f"the login was refused with an unknown message "
                                    f"{answer.message!r}")

    def _refused(self, reason: str) -> AuthenticationFailed:
        user = self.settings.username
        message = {
            "invalid_credentials": f"login refused for user {user!r}: check "
                                   "sources.nezarat4.username and the password in "
                                   "$NEZARAT4_PASSWORD",
            "captcha": "the portal demands a captcha: log in once in a browser to clear the "
                       "captcha, then rerun",
            "account_locked": f"the account {user!r} is locked: ask the portal admin to unlock it",
        }[reason]
        return AuthenticationFailed(SOURCE, reason, message)

    # --- requests -----------------------------------------------------------------------------

    @staticmethod
    def _fault(response: httpx.Response) -> Fault | None:
        return pages.transient_fault(response.status_code, response.headers, response.text)

    @staticmethod
    def _expect_page(response: httpx.Response, page: str) -> None:
        if response.status_code != 200:
            raise ProtocolError(SOURCE, f"{response.request.method} {response.request.url.path} "
                                        f"({page}) answered HTTP {response.status_code}")

    async def _send(self, method: str, url: str, page: str, *, view_session: int | None = None,
                    urgent: bool = False, **request) -> tuple[httpx.Response, int]:
        """One request inside the session: the answer and the login whose cookies it carried.

        List pages are ``urgent``: they go before queued detail reads (connectors.http.InFlight).

        Raises _SessionLost when the portal asks for a login, and _Stale (nothing sent) when the
        form of ``view_session`` belongs to a session replaced since.
        """
        while True:
            on_wire = [await self._session.ensure()]

            def before_send() -> None:
                session = self._session.stamp()
                if view_session is not None and view_session != session:
                    raise _Stale()
                on_wire[0] = session

            try:
                response = await self._http.send(method, url, fault=self._fault,
                                                 before_send=before_send, urgent=urgent, **request)
                break
            except LoginUnderway:
                continue
        if response.is_redirect:
            location = response.headers.get("Location")
            if pages.is_login_location(location):
                raise _SessionLost(on_wire[0])
            raise ProtocolError(SOURCE, f"{method} {response.request.url.path} ({page}) "
                                        f"redirected to {location!r}")
        self._expect_page(response, page)
        if pages.is_login_page(response.text):
            raise _SessionLost(on_wire[0])
        self._session.prove(on_wire[0])
        return response, on_wire[0]

    async def _get(self, url: str, page: str, **request) -> httpx.Response:
        """A GET, repeated after logging in again."""
        redirects = _Redirects(page)
        for _ in range(CHURN_LIMIT):
            try:
                response, _ = await self._send("GET", url, page, **request)
                return response
            except _SessionLost as lost:
                await self._after_redirect(lost, redirects)
        raise self._churn(page)

    @staticmethod
    def _churn(page: str) -> ProtocolError:
        return ProtocolError(SOURCE, f"{page}: the session kept being replaced by re-logins")

    # --- project list -------------------------------------------------------------------------

    async def list_projects(self, fiscal_year: int, modified_from: date | None = None
                            ) -> AsyncGenerator[ProjectListPage, int | None]:
        """One pass over the project list of ``fiscal_year``: the search, then Page$2 .. last.

        ``modified_from`` lists only projects changed on or after 00:00 of that day. Yields each
        page as read; rows can shift between pages while paging (§3), the caller de-duplicates.
        """
        filters = {
            pages.YEAR_INPUT: str(fiscal_year),
            pages.MODIFIED_FROM_INPUT:
                format_jalali(modified_from, persian_digits=False) if modified_from else "",
        }
        listing = await self._search(fiscal_year, filters)
        page_no = 1
        while True:
            ask = yield self._list_page(listing.page, fiscal_year, page_no)
            next_no = page_no + 1
            target = listing.page.pager.target_for(next_no)  # whether a later page exists, from this one
            for hop in range(3):
                while (again := asked_again(ask, page_no)) is not None:  # connectors.paging
                    # a neighbouring page, which the pager links (the one before through "..." at a
                    # block's start); the grid's event target is the same for every page
                    links = listing.page.pager.links
                    link = links.get(again) or target or next(iter(links.values()), None)
                    if link is None:
                        break  # a single page: nothing to go back to
                    await asyncio.sleep(self.settings.page_pause_seconds)
                    listing = await self._goto_page(listing, fiscal_year, filters, link, again)
                    ask = yield self._list_page(listing.page, fiscal_year, again)
                if target is None:
                    return
                if next_no in listing.page.pager.links or listing.page.pager.current == page_no or hop == 2:
                    break
                # a page read again ends a pager block and does not link the page after the one
                # reached: go through the page reached (every page links its neighbours), read again
                await asyncio.sleep(self.settings.page_pause_seconds)
                back = listing.page.pager.links.get(page_no) or target
                listing = await self._goto_page(listing, fiscal_year, filters, back, page_no)
                ask = yield self._list_page(listing.page, fiscal_year, page_no)
                target = listing.page.pager.target_for(next_no)  # None: the list shrank to end here
            # on from the latest page read (its fields), to the page after the one reached
            await asyncio.sleep(self.settings.page_pause_seconds)
            listing = await self._goto_page(listing, fiscal_year, filters, target, next_no)
            page_no = next_no

    def _list_page(self, listing: pages.ListPage, fiscal_year: int, page_no: int
                   ) -> ProjectListPage:
        shown = listing.pager.current
        if shown is not None and shown != page_no:
            log.warning("nezarat4: asked for page %d of the list, the portal showed page %d",
                        page_no, shown)
            page_no = shown
        page = canonical.list_page(listing, fiscal_year, page_no)
        self._http.count("pages")
        self._http.count("rejections", len(page.rejections))
        return page

    async def _search(self, fiscal_year: int, filters: dict[str, str],
                      redirects: _Redirects | None = None) -> _Listing:
        """GET the list page and post the search (page 1), logging in again if need be."""
        redirects = redirects or _Redirects(f"ProjectList.aspx search (year {fiscal_year})")
        refusals = 0
        for _ in range(CHURN_LIMIT):
            try:
                return await self._try_search(fiscal_year, filters)
            except _SessionLost as lost:
                await self._after_redirect(lost, redirects)
            except _Stale:
                pass
            except _SearchRefused as refused:  # its answer lost after the portal moved on: GET the form again
                refusals += 1
                if refusals > POSTBACK_RECOVERIES:
                    raise refused.error from None
        raise self._churn("ProjectList.aspx search")

    async def _try_search(self, fiscal_year: int, filters: dict[str, str]) -> _Listing:
        page = f"ProjectList.aspx (year {fiscal_year})"
        response, session = await self._send("GET", pages.LIST_PATH, page, urgent=True)
        start = await self._reader.read(reading.list_page, response.text, str(response.url), page)
        offered = {to_ascii_digits(v).strip(): v for v in start.form.options[pages.YEAR_INPUT]}
        if str(fiscal_year) not in offered:
            raise YearNotOffered(SOURCE, fiscal_year, sorted(offered))
        button = start.form.buttons.get(pages.SEARCH_BUTTON, pages.SEARCH_BUTTON_VALUE)
        fields = start.form.with_values({
            **filters,
            pages.YEAR_INPUT: offered[str(fiscal_year)],
            "__EVENTTARGET": "",
            "__EVENTARGUMENT": "",
            pages.SEARCH_BUTTON: button,
        })
        try:
            response, session = await self._send("POST", start.form.action, page, headers=_FORM,
                                                 content=urlencode(fields), view_session=session,
                                                 urgent=True)
        except SourceUnavailable as exc:
            raise _SearchRefused(exc) from None
        return await self._read_listing(response, page, session)

    async def _read_listing(self, response: httpx.Response, page: str, session: int) -> _Listing:
        listing = await self._reader.read(reading.list_page, response.text, str(response.url), page)
        return _Listing(listing, session)

    async def _postback(self, listing: _Listing, fiscal_year: int, filters: dict[str, str],
                        target: str, page_no: int) -> _Listing:
        """Post Page$N with the hidden fields of ``listing`` (the latest page of this search)."""
        page = f"ProjectList.aspx (year {fiscal_year}, page {page_no})"
        form = listing.page.form
        year = filters[pages.YEAR_INPUT]
        offered = {to_ascii_digits(v).strip(): v for v in form.options[pages.YEAR_INPUT]}
        fields = form.with_values({
            **filters,
            pages.YEAR_INPUT: offered.get(year, year),
            "__EVENTTARGET": target,
            "__EVENTARGUMENT": f"Page${page_no}",
        })
        # retried with back-off as any request (the error page is transient: §5); refused every time,
        # it may carry a view state the portal has moved past, and _goto_page searches again
        response, session = await self._send("POST", form.action, page, headers=_FORM,
                                             content=urlencode(fields), view_session=listing.session,
                                             urgent=True)
        return await self._read_listing(response, page, session)

    async def _goto_page(self, listing: _Listing, fiscal_year: int, filters: dict[str, str],
                         target: str, page_no: int) -> _Listing:
        """Page$N from the latest page. When that postback cannot be answered as sent — the session
        lost, its form stale, or refused every time (a review of the contract: an answer lost after
        the portal moved its page state on made every retry post an older page's view state, and
        the sync failed) — search again (page 1) and walk the pager to page N, each step posting
        a page the latest page links (ASP.NET's event validation refuses any other: nezarat4.md §3,
        "... links to the next or previous block"): "the connector searches again and carries on
        from the page it had reached" (§2)."""
        redirects = _Redirects(f"ProjectList.aspx page {page_no} (year {fiscal_year})")
        refusals, recovering = 0, False
        for _ in range(CHURN_LIMIT):
            try:
                if recovering:
                    await asyncio.sleep(self.settings.page_pause_seconds)
                    listing = await self._search(fiscal_year, filters, redirects)
                    listing, target, arrived = await self._walk_to(listing, fiscal_year, filters, page_no, target)
                    if arrived:
                        return listing
                return await self._postback(listing, fiscal_year, filters, target, page_no)
            except _SessionLost as lost:
                await self._after_redirect(lost, redirects)
            except _Stale:
                pass
            except SourceUnavailable:
                # refused every time within its budget: a new search, once; refused again (or the
                # search failing), the portal fails, not the form
                refusals += 1
                if refusals > POSTBACK_RECOVERIES:
                    raise
            recovering = True
        raise self._churn(f"ProjectList.aspx page {page_no}")

    async def _walk_to(self, listing: _Listing, fiscal_year: int, filters: dict[str, str], page_no: int,
                       target: str) -> tuple[_Listing, str, bool]:
        """From a page of the list towards page `page_no` through the pages its pager links, a block
        at a time ("..."), until the page shown links it: (the latest page, the link to `page_no`,
        whether the latest page is where the walk ends: `page_no` itself, or the list's last page
        when the list now ends before it)."""
        for _ in range(MAX_PAGER_HOPS):
            pager = listing.page.pager
            current = pager.current or 1
            if current == page_no:
                return listing, target, True
            if page_no in pager.links:
                return listing, pager.links[page_no], False
            if not pager.links:  # one page: the list now ends there
                return listing, target, True
            ahead = page_no > current
            nearer = [n for n in pager.links if (current < n < page_no if ahead else page_no < n < current)]
            if not nearer:
                # ahead, the list now ends before the page reached: its last page is where a portal
                # shows a Page$N beyond the end (and a strict one refuses a page no page links)
                return listing, target, ahead
            hop = max(nearer) if ahead else min(nearer)
            await asyncio.sleep(self.settings.page_pause_seconds)
            listing = await self._postback(listing, fiscal_year, filters, pager.links[hop], hop)
        return listing, target, False

    # --- project detail -----------------------------------------------------------------------

    async def project_detail(self, portal_id: int, fiscal_year: int
                             ) -> ProjectDetail | RejectedDetail | None:
        """The detail page of one project and year; None when the portal says it is not there.

        A page whose identity table cannot be read comes back as RejectedDetail (store nothing).
        """
        page = f"ProjectDetail.aspx?id={portal_id}&year={fiscal_year}"
        response = await self._get(pages.DETAIL_PATH, page,
                                   params={"id": portal_id, "year": fiscal_year})
        result = await self._reader.read(reading.detail, response.text, page, portal_id,
                                         fiscal_year)
        self._http.count("details")
        if result is None:
            self._http.count("not_found")
            return None
        self._http.count("rejections", len(result.rejections))
        return result
