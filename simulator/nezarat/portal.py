"""Nezarat-4's application: routing, sessions, login, and the project list's postbacks.

Pages: /Login.aspx (GET, POST), /Default.aspx, /Projects/ProjectList.aspx (GET; POST search and
pager postbacks), /Projects/ProjectDetail.aspx?id=&year=, /Captcha.ashx. The markup is written by
pages.py; this module decides which page a request gets.

Sessions: login sets ASP.NET_SessionId and .ASPXAUTH; a protected page without a live session
answers 302 to /Login.aspx?ReturnUrl=<path and query>. A session dies after `session_idle_seconds`
of the injected session clock, or when the drop-session fault strikes. The list page's __VIEWSTATE
is bound to the session and to the latest list page served in it: a postback carrying any other
viewstate answers 500 with the Runtime Error page. Viewstates, cookies and tokens are derived
from the seed and a session counter, so two runs with one seed serve the same bytes.
"""

from __future__ import annotations

import base64
import re
import threading
from dataclasses import dataclass
from datetime import datetime, time
from html import escape
from urllib.parse import quote

import jdatetime

from simulator.config import TEHRAN
from simulator.nezarat.pages import (
    CAPTCHA_GIF,
    ERROR_FA_PAGE,
    F_COUNTY,
    F_MODIFIED,
    F_SEARCH,
    F_YEAR,
    GRID,
    MAINTENANCE_PAGE,
    MSG_CAPTCHA,
    MSG_LOCKED,
    MSG_WRONG,
    NOT_FOUND_404,
    RUNTIME_ERROR_PAGE,
    NezaratPages,
)
from simulator.quirks import digits
from simulator.reference import COUNTIES
from simulator.wire import FaultDraw, Request, Response, seeded_digest

PAGE_SIZE = 50
# The drop-session fault spares a session's first requests: the contract makes a second login
# redirect in a row for one request an error, so the request repeated after a new login (even with
# the contract's maximum of 8 others in flight) must get through.
FRESH_SESSION_REQUESTS = 8

HTML_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "private"),
    ("X-AspNet-Version", "4.0.30319"),
    ("X-Powered-By", "ASP.NET"),
]


@dataclass
class ListState:
    viewstate: str
    year: int
    county: str
    modified: str
    page: int


@dataclass
class Session:
    session_id: str
    auth: str
    serial: int
    last_seen: float
    list_state: ListState | None = None
    counter: int = 0
    served: int = 0  # protected requests answered so far


class NezaratPortal:
    """The Nezarat-4 application: routes a Request to a Response. Thread-safe."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.world = sim.world
        self.config = sim.config
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, int] = {}
        self._serial = 0
        self.pages = NezaratPages(sim)

    # ---------------------------------------------------------------- helpers

    def _html(self, status: int, text: str, extra: list[tuple[str, str]] | None = None) -> Response:
        return Response(status, text.encode("utf-8"), HTML_HEADERS + (extra or []))

    def runtime_error(self, status: int = 500) -> Response:
        return self._html(status, RUNTIME_ERROR_PAGE)

    def error_fa(self) -> Response:
        return self._html(200, ERROR_FA_PAGE)

    def maintenance(self, as_page: bool) -> Response:
        if as_page:
            return self._html(200, MAINTENANCE_PAGE)
        return self._html(503, MAINTENANCE_PAGE, [("Retry-After", "1")])

    def _redirect(self, location: str) -> Response:
        body = (
            "<html><head><title>Object moved</title></head><body>\n"
            f'<h2>Object moved to <a href="{escape(location)}">here</a>.</h2>\n'
            "</body></html>\n"
        )
        return Response(302, body.encode("utf-8"), HTML_HEADERS + [("Location", location)])

    def _to_login(self, request: Request) -> Response:
        return self._redirect("/Login.aspx?ReturnUrl=" + quote(request.target, safe=""))

    @staticmethod
    def endpoint(request: Request) -> str:
        path = request.path.lower()
        if path == "/login.aspx":
            return "login"
        if path == "/projects/projectlist.aspx":
            if request.method == "POST":
                return "search" if F_SEARCH in request.form else "page"
            return "list"
        if path == "/projects/projectdetail.aspx":
            return "detail"
        if path in ("/default.aspx", "/"):
            return "home"
        if path == "/captcha.ashx":
            return "captcha"
        return "other"

    def reset_login_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def drop_sessions(self) -> int:
        with self._lock:
            n = len(self._sessions)
            self._sessions.clear()
            return n

    # ---------------------------------------------------------------- routing

    def handle(self, request: Request, draw: FaultDraw) -> Response:
        endpoint = self.endpoint(request)
        if endpoint == "login":
            return self._login(request)
        if endpoint == "captcha":
            return Response(200, CAPTCHA_GIF, [("Content-Type", "image/gif"), ("Cache-Control", "no-cache")])
        if endpoint == "other" or request.method not in ("GET", "POST"):
            return self._html(404, NOT_FOUND_404)
        session = self._session(request, draw)
        if session is None:
            return self._to_login(request)
        if endpoint == "home":
            return self._html(200, self.pages.home_page())
        if endpoint == "detail":
            return self._detail(request, session)
        if request.method == "GET":
            return self._list(session, self.world.epoch.current_year, "0", "", 1)
        return self._postback(request, session)

    def _session(self, request: Request, draw: FaultDraw) -> Session | None:
        now = self.config.time_source()
        with self._lock:
            session = self._sessions.get(request.cookies.get("ASP.NET_SessionId", ""))
            if session is None or request.cookies.get(".ASPXAUTH") != session.auth:
                return None
            dropped = draw.drop_session and session.served >= FRESH_SESSION_REQUESTS
            if now - session.last_seen > self.config.session_idle_seconds or dropped:
                del self._sessions[session.session_id]
                return None
            session.last_seen = now
            session.served += 1
            return session

    # ---------------------------------------------------------------- login

    def _login(self, request: Request) -> Response:
        return_url = request.query.get("ReturnUrl")
        client = request.client
        with self._lock:
            failures = self._failures.get(client, 0)
        captcha = failures >= self.config.captcha_after
        if request.method != "POST":
            return self._html(200, self.pages.login_page(return_url, captcha, "", MSG_CAPTCHA if captcha else ""))
        user = request.form.get("txtUserName", "")
        password = request.form.get("txtPassword", "")
        if captcha:
            return self._html(200, self.pages.login_page(return_url, True, user, MSG_CAPTCHA))
        if user == self.sim.locked_user[0]:
            return self._html(200, self.pages.login_page(return_url, False, user, MSG_LOCKED))
        if (user, password) != self.sim.credentials["nezarat4"]:
            with self._lock:
                self._failures[client] = failures + 1
            return self._html(200, self.pages.login_page(return_url, False, user, MSG_WRONG))
        with self._lock:
            self._failures.pop(client, None)
            self._serial += 1
            serial = self._serial
            session_id = base64.b32encode(seeded_digest(self.config.seed, "session", serial, size=15)).decode().lower()
            auth = seeded_digest(self.config.seed, "auth", serial, size=40).hex().upper()
            self._sessions[session_id] = Session(session_id, auth, serial, self.config.time_source())
        target = return_url if return_url and return_url.startswith("/") else "/Default.aspx"
        response = self._redirect(target)
        response.headers += [
            ("Set-Cookie", f"ASP.NET_SessionId={session_id}; path=/; HttpOnly; SameSite=Lax"),
            ("Set-Cookie", f".ASPXAUTH={auth}; path=/; HttpOnly"),
        ]
        return response

    # ---------------------------------------------------------------- project list

    def _postback(self, request: Request, session: Session) -> Response:
        form = request.form
        with self._lock:
            state = session.list_state
            if state is None or form.get("__VIEWSTATE") != state.viewstate:
                return self.runtime_error(500)  # a viewstate of another session or an older page
        try:
            year = int(digits(form.get(F_YEAR, str(state.year)).strip(), "en"))
        except ValueError:
            return self.runtime_error(500)
        county = form.get(F_COUNTY, state.county).strip() or "0"
        modified = form.get(F_MODIFIED, state.modified)
        if year not in self.world.years or (county != "0" and county not in {c.code for c in COUNTIES}):
            return self.runtime_error(500)
        if F_SEARCH in form:
            page = 1
        elif form.get("__EVENTTARGET") == GRID:
            argument = form.get("__EVENTARGUMENT", "")
            named = {"Page$First": 1, "Page$Prev": state.page - 1, "Page$Next": state.page + 1, "Page$Last": 10**9}
            if argument in named:
                page = named[argument]
            elif re.fullmatch(r"Page\$\d+", argument):
                page = int(argument[5:])
            else:
                return self.runtime_error(500)
        else:
            page = state.page
        return self._list(session, year, county, modified, page)

    def _list(self, session: Session, year: int, county: str, modified: str, page: int) -> Response:
        cutoff = None
        if modified.strip():
            cutoff = parse_jalali_day(modified)
            if cutoff is None:
                return self.runtime_error(500)  # what WebForms does with an unparsable date
        world = self.world
        with world.lock:
            rows = world.project_rows(year, None if county == "0" else county, cutoff)
            pages = max(1, -(-len(rows) // PAGE_SIZE))
            page = min(max(page, 1), pages)
            shown = rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
            body_rows = [self.pages.list_row((page - 1) * PAGE_SIZE + i + 1, p, r) for i, (p, r) in enumerate(shown)]
            total = len(rows)
            served = [p.code for p, _ in shown]
        with self._lock:
            session.counter += 1
            viewstate = "/wEPDwULLTE0NjU4NzMyOTgPZBYCZg9kFg" + self.pages.b64(
                "list", session.serial, session.counter, year, county, modified, page, size=48)
            session.list_state = ListState(viewstate, year, county, modified, page)
        html = self.pages.list_page(viewstate, session, year, county, modified, total, body_rows, page, pages)
        response = self._html(200, html)
        if self.sim.faults.shift_while_paging:
            response.after = lambda: world.shift_projects(year, served)
        return response

    # ---------------------------------------------------------------- project detail

    def _detail(self, request: Request, session: Session) -> Response:
        world = self.world
        raw_id = digits(request.query.get("id", "").strip(), "en")
        raw_year = digits(request.query.get("year", "").strip(), "en")
        with world.lock:
            project = world.project_by_portal_id(int(raw_id)) if raw_id.isdigit() else None
            year = int(raw_year) if raw_year.isdigit() else (world.epoch.current_year if not raw_year else None)
            record = project.years.get(year) if project is not None and year is not None else None
            if record is None:
                html = self.pages.not_found_page(raw_id, raw_year)
            else:
                html = self.pages.detail_page(session, project, record)
        return self._html(200, html)


def parse_jalali_day(text: str) -> datetime | None:
    """00:00 Tehran time of a Jalali 'YYYY/MM/DD' typed with any digits; None when not a date."""
    parts = digits(text.strip(), "en").replace("-", "/").split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    try:
        day = jdatetime.date(int(parts[0]), int(parts[1]), int(parts[2])).togregorian()
    except ValueError:
        return None
    return datetime.combine(day, time(0, 0), TEHRAN)
