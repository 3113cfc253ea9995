"""Nezarat-4 (capital projects), served as nezarat4.md specifies: an ASP.NET WebForms look-alike.

Pages: /Login.aspx (GET, POST), /Default.aspx, /Projects/ProjectList.aspx (GET; POST search and
pager postbacks), /Projects/ProjectDetail.aspx?id=&year=, /Captcha.ashx. Markup follows
`examples/nezarat4-*.html` element for element; values carry the quirks of `quirks.py`.

Sessions: login sets ASP.NET_SessionId and .ASPXAUTH; a protected page without a live session
answers 302 to /Login.aspx?ReturnUrl=<path and query>. A session dies after `session_idle_seconds`
of the injected session clock, or when the drop-session fault strikes. The list page's __VIEWSTATE
is bound to the session and to the latest list page served in it: a postback carrying any other
viewstate answers 500 with the Runtime Error page. Viewstates, cookies and tokens are derived
from the seed and a session counter, so two runs with one seed serve the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal
from html import escape
from urllib.parse import quote

import jdatetime

from simulator.config import TEHRAN
from simulator.model import Project, ProjectYear
from simulator.quirks import Quirks, digits
from simulator.reference import AGREEMENT_STATUS_FA, COMPTROLLER_STATUS_FA, COUNTIES, PERIODS, SOURCES, z
from simulator.wire import FaultDraw, Request, Response

PAGE_SIZE = 50
# The drop-session fault spares a session's first requests: the contract makes a second login
# redirect in a row for one request an error, so the request repeated after a new login (even with
# the contract's maximum of 8 others in flight) must get through.
FRESH_SESSION_REQUESTS = 8
PAGER_BLOCK = 10
GRID = "ctl00$ContentPlaceHolder1$gvProjects"
F_YEAR = "ctl00$ContentPlaceHolder1$ddlYear"
F_COUNTY = "ctl00$ContentPlaceHolder1$ddlCounty"
F_MODIFIED = "ctl00$ContentPlaceHolder1$txtModifiedFrom"
F_SEARCH = "ctl00$ContentPlaceHolder1$btnSearch"

MSG_WRONG = "نام کاربری یا کلمه عبور اشتباه است"
MSG_CAPTCHA = "لطفا کد امنیتی را وارد کنید"
MSG_LOCKED = "حساب کاربری شما غیرفعال شده است"
NOT_FOUND = "پروژه مورد نظر یافت نشد"
NO_RECORDS = "رکوردی یافت نشد"

LIST_HEADERS = ["ردیف", "کد پروژه", "عنوان پروژه", "دستگاه اجرایی", "شهرستان",
                "اعتبار مصوب (میلیون ریال)", "پیشرفت فیزیکی (٪)", "آخرین ویرایش", ""]
LIST_HEADER_DRIFT = {1: "شماره پروژه"}  # layout_change='list_header'
CREDIT_HEADERS = ["منبع", "مصوب", "ابلاغی", "تخصیص", "جذب"]
TARGET_HEADERS = ["دوره", z("پیشرفت فیزیکی پیش~بینی~شده (٪)")]
PERFORMANCE_HEADERS = ["دوره", "تاریخ گزارش", "پیشرفت فیزیکی (٪)", "جذب اعتبار (میلیون ریال)",
                       "وضعیت تأیید ذیحساب", "تاریخ تأیید", "توضیحات"]

HTML_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "private"),
    ("X-AspNet-Version", "4.0.30319"),
    ("X-Powered-By", "ASP.NET"),
]

RUNTIME_ERROR_PAGE = """<html>
<head><title>Runtime Error</title></head>
<body bgcolor="white">
<span><h1>Server Error in '/' Application.<hr width=100% size=1 color=silver></h1>
<h2> <i>Runtime Error</i> </h2></span>
<b> Description: </b>An application error occurred on the server. The current custom error settings for this application prevent the details of the application error from being viewed remotely (for security reasons).
</body>
</html>
"""

ERROR_FA_PAGE = """<!DOCTYPE html>
<html dir="rtl" lang="fa">
<head><meta charset="utf-8"><title>خطا</title></head>
<body>
<div class="error-box"><span id="lblError">خطا در پردازش درخواست</span>
<p>لطفا دقایقی دیگر مجددا تلاش نمایید.</p></div>
</body>
</html>
"""

MAINTENANCE_PAGE = """<!DOCTYPE html>
<html dir="rtl" lang="fa">
<head><meta charset="utf-8"><title>سامانه نظارت ۴</title></head>
<body>
<div id="maintenance">سامانه در حال بروزرسانی است</div>
</body>
</html>
"""

NOT_FOUND_404 = """<html>
<head><title>The resource cannot be found.</title></head>
<body bgcolor="white">
<span><h1>Server Error in '/' Application.<hr width=100% size=1 color=silver></h1>
<h2> <i>The resource cannot be found.</i> </h2></span>
</body>
</html>
"""

# A 1×1 GIF: the captcha image itself does not matter, nobody (no connector) may solve it.
CAPTCHA_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


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
    user: str
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
        self.quirks = Quirks(sim.config.seed)
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, int] = {}
        self._serial = 0

    # ---------------------------------------------------------------- helpers

    def _hash(self, *parts: object, size: int = 24) -> bytes:
        return hashlib.blake2b("|".join(map(str, (self.config.seed, *parts))).encode(), digest_size=size).digest()

    def _b64(self, *parts: object, size: int = 24) -> str:
        return base64.b64encode(self._hash(*parts, size=size)).decode()

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
            return self._html(200, self._home_page())
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
            return self._html(200, self._login_page(return_url, captcha, "", MSG_CAPTCHA if captcha else ""))
        user = request.form.get("txtUserName", "")
        password = request.form.get("txtPassword", "")
        if captcha:
            return self._html(200, self._login_page(return_url, True, user, MSG_CAPTCHA))
        if user == "locked.user":
            return self._html(200, self._login_page(return_url, False, user, MSG_LOCKED))
        if (user, password) != self.sim.credentials["nezarat4"]:
            with self._lock:
                self._failures[client] = failures + 1
            return self._html(200, self._login_page(return_url, False, user, MSG_WRONG))
        with self._lock:
            self._failures.pop(client, None)
            self._serial += 1
            serial = self._serial
            session_id = base64.b32encode(self._hash("session", serial, size=15)).decode().lower()
            auth = self._hash("auth", serial, size=40).hex().upper()
            self._sessions[session_id] = Session(session_id, auth, user, serial, self.config.time_source())
        target = return_url if return_url and return_url.startswith("/") else "/Default.aspx"
        response = self._redirect(target)
        response.headers += [
            ("Set-Cookie", f"ASP.NET_SessionId={session_id}; path=/; HttpOnly; SameSite=Lax"),
            ("Set-Cookie", f".ASPXAUTH={auth}; path=/; HttpOnly"),
        ]
        return response

    def _login_page(self, return_url: str | None, captcha: bool, user: str, message: str) -> str:
        action = "./Login.aspx" + ("?ReturnUrl=" + quote(return_url, safe="") if return_url else "")
        value = f' value="{escape(user)}"' if user else ""
        viewstate = "/wEPDwUKMTY1NDU2MTA1Mg" + self._b64("login", captcha, size=24)
        validation = "/wEdAA" + self._b64("login-ev", captcha, size=15)
        lines = [
            "<!DOCTYPE html>",
            '<html dir="rtl" lang="fa">',
            '<head><meta charset="utf-8"><title>ورود به سامانه نظارت ۴</title></head>',
            "<body>",
            f'<form id="form1" method="post" action="{escape(action)}">',
            f'<input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="{viewstate}" />',
            '<input type="hidden" name="__VIEWSTATEGENERATOR" id="__VIEWSTATEGENERATOR" value="C2EE9ABB" />',
            f'<input type="hidden" name="__EVENTVALIDATION" id="__EVENTVALIDATION" value="{validation}" />',
            '<div class="login-box">',
        ]
        if not captcha:
            lines.append(z("  <h2>سامانه مبادله موافقتنامه~های اعتبارات تملک دارایی~های سرمایه~ای (نظارت ۴)</h2>"))
        lines += [
            '  <label for="txtUserName">نام کاربری</label>',
            f'  <input name="txtUserName" type="text"{value} id="txtUserName" />',
            '  <label for="txtPassword">کلمه عبور</label>',
            '  <input name="txtPassword" type="password" id="txtPassword" />',
        ]
        if captcha:
            stamp = int.from_bytes(self._hash("captcha", user, size=4), "big") % 900000000 + 100000000
            lines += [
                f'  <img id="imgCaptcha" src="Captcha.ashx?t={stamp}" alt="" />',
                '  <input name="txtCaptcha" type="text" id="txtCaptcha" />',
            ]
        lines += [
            '  <input type="submit" name="btnLogin" value="ورود" id="btnLogin" />',
            f'  <span id="lblMessage" class="error">{message}</span>',
            "</div>",
            "</form>",
            "</body>",
            "</html>",
            "",
        ]
        return "\n".join(lines)

    def _home_page(self) -> str:
        return "\n".join([
            "<!DOCTYPE html>",
            '<html dir="rtl" lang="fa">',
            '<head><meta charset="utf-8"><title>سامانه نظارت ۴</title></head>',
            "<body>",
            '<div id="menu"><a href="Projects/ProjectList.aspx">' + z("فهرست پروژه~ها") + "</a></div>",
            "</body>",
            "</html>",
            "",
        ])

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
            body_rows = [self._list_row((page - 1) * PAGE_SIZE + i + 1, p, r) for i, (p, r) in enumerate(shown)]
            total = len(rows)
            served = [p.code for p, _ in shown]
        with self._lock:
            session.counter += 1
            viewstate = "/wEPDwULLTE0NjU4NzMyOTgPZBYCZg9kFg" + self._b64(
                "list", session.serial, session.counter, year, county, modified, page, size=48)
            session.list_state = ListState(viewstate, year, county, modified, page)
        html = self._list_page(viewstate, session, year, county, modified, total, body_rows, page, pages)
        response = self._html(200, html)
        if self.sim.faults.shift_while_paging:
            response.after = lambda: world.shift_projects(year, served)
        return response

    def _list_row(self, number: int, project: Project, record: ProjectYear) -> str:
        q = self.quirks
        key = f"{project.code}|{record.fiscal_year}"
        system = q.row_digits(key)
        latest = record.latest_report()
        progress = q.percent(latest.progress, key, "list.progress", system) if latest else q.empty(key, "list.progress")
        cells = {
            "approved_credit": q.number(record.approved_total, key, "list.approved", system),
            "progress": progress,
            "last_modified": q.datetime(record.last_modified, key, "list.modified", system),
        }
        broken = self.world.malformation("list", project.code, record.fiscal_year)
        if broken is not None:
            cells[broken.field] = escape(str(broken.raw))
        css = "row" if number % 2 else "altrow"
        return (
            f'  <tr class="{css}"><td>{digits(str(number), system)}</td>'
            f"<td>{digits(project.code, system)}</td>"
            f"<td>{q.text(project.title, key, 'list.title', system)}</td>"
            f"<td>{q.text(project.agency.name, key, 'list.agency', system)}</td>"
            f"<td>{q.county(project.county, key, 'list.county', system)}</td>"
            f"<td>{cells['approved_credit']}</td><td>{cells['progress']}</td><td>{cells['last_modified']}</td>"
            f'<td><a href="ProjectDetail.aspx?id={project.portal_id}">جزئیات</a></td></tr>'
        )

    def _list_page(self, viewstate: str, session: Session, year: int, county: str, modified: str, total: int,
                   body_rows: list[str], page: int, pages: int) -> str:
        validation = "/wEdABN" + self._b64("list-ev", session.serial, year, size=15)
        selected_attr = ' selected="selected"'
        years = "".join(
            f'<option value="{y}"{selected_attr if y == year else ""}>{digits(str(y), "fa")}</option>'
            for y in sorted(self.world.years)
        )
        counties = ('<option selected="selected" value="0">' if county == "0" else '<option value="0">') + z(
            "همه شهرستان~ها</option>")
        for c in COUNTIES:
            selected = ' selected="selected"' if c.code == county else ""
            counties += f'<option{selected} value="{c.code}">{c.name}</option>'
        value = f' value="{escape(modified)}"' if modified else ""
        headers = list(LIST_HEADERS)
        if self.sim.faults.layout_change == "list_header":
            for index, text in LIST_HEADER_DRIFT.items():
                headers[index] = text
        header_row = '  <tr class="header">' + "".join(f"<th>{h}</th>" for h in headers) + "</tr>"
        count = digits(f"{total:,}".replace(",", "٬"), "fa")
        if not body_rows:
            body_rows = [f'  <tr class="empty"><td colspan="9">{NO_RECORDS}</td></tr>']
        pager = self._pager(page, pages) if pages > 1 else ""
        return "\n".join([
            "<!DOCTYPE html>",
            '<html dir="rtl" lang="fa">',
            '<head><meta charset="utf-8"><title>' + z("فهرست پروژه~ها") + "</title></head>",
            "<body>",
            '<form id="aspnetForm" method="post" action="./ProjectList.aspx">',
            '<input type="hidden" name="__EVENTTARGET" id="__EVENTTARGET" value="" />',
            '<input type="hidden" name="__EVENTARGUMENT" id="__EVENTARGUMENT" value="" />',
            f'<input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="{viewstate}" />',
            '<input type="hidden" name="__VIEWSTATEGENERATOR" id="__VIEWSTATEGENERATOR" value="8A1F4C2D" />',
            f'<input type="hidden" name="__EVENTVALIDATION" id="__EVENTVALIDATION" value="{validation}" />',
            '<script type="text/javascript">',
            "function __doPostBack(eventTarget, eventArgument) {",
            "  var theForm = document.forms['aspnetForm'];",
            "  theForm.__EVENTTARGET.value = eventTarget; theForm.__EVENTARGUMENT.value = eventArgument; theForm.submit();",
            "}",
            "</script>",
            '<div id="filters">',
            f'  <select name="{F_YEAR}" id="ctl00_ContentPlaceHolder1_ddlYear">{years}</select>',
            f'  <select name="{F_COUNTY}" id="ctl00_ContentPlaceHolder1_ddlCounty">{counties}</select>',
            f'  <input name="{F_MODIFIED}" type="text"{value} id="ctl00_ContentPlaceHolder1_txtModifiedFrom" />',
            f'  <input type="submit" name="{F_SEARCH}" value="جستجو" id="ctl00_ContentPlaceHolder1_btnSearch" />',
            "</div>",
            f'<span id="ctl00_ContentPlaceHolder1_lblCount">تعداد رکوردها: {count}</span>',
            '<table id="ctl00_ContentPlaceHolder1_gvProjects" class="grid" cellspacing="0" rules="all" border="1">',
            header_row,
            *body_rows,
            pager,
            "</table>",
            "</form>",
            "</body>",
            "</html>",
        ])

    @staticmethod
    def _pager(page: int, pages: int) -> str:
        def link(target: int, text: str) -> str:
            return f"<td><a href=\"javascript:__doPostBack('{GRID}','Page${target}')\">{text}</a></td>"

        first = (page - 1) // PAGER_BLOCK * PAGER_BLOCK + 1
        last = min(first + PAGER_BLOCK - 1, pages)
        cells = []
        if first > 1:
            cells.append(link(first - 1, "..."))
        for n in range(first, last + 1):
            cells.append(f"<td><span>{n}</span></td>" if n == page else link(n, str(n)))
        if last < pages:
            cells.append(link(last + 1, "..."))
        return '  <tr class="pager"><td colspan="9"><table><tr>' + "".join(cells) + "</tr></table></td></tr>"

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
                html = self._not_found_page(raw_id, raw_year)
            else:
                html = self._detail_page(session, project, record)
        return self._html(200, html)

    def _not_found_page(self, raw_id: str, raw_year: str) -> str:
        return "\n".join([
            "<!DOCTYPE html>",
            '<html dir="rtl" lang="fa">',
            '<head><meta charset="utf-8"><title>جزئیات پروژه</title></head>',
            "<body>",
            f'<span id="lblNotFound">{NOT_FOUND}</span>',
            "</body>",
            "</html>",
            "",
        ])

    def _detail_page(self, session: Session, project: Project, record: ProjectYear) -> str:
        q = self.quirks
        year = record.fiscal_year
        key = f"{project.code}|{year}"
        system = q.row_digits(key + "|detail")
        viewstate = "/wEPDwUKLTg2NTQ0MTIzMWRk" + self._b64("detail", session.serial, project.portal_id, year, size=18)
        code = digits(project.code, system)
        broken_identity = self.world.malformation("identity", project.code, year)
        if broken_identity is not None:
            code = escape(str(broken_identity.raw))
        start = q.number(record.progress_at_year_start, key, "detail.start", system)
        info = [
            ("کد پروژه", "lblProjectCode", code),
            ("عنوان پروژه", "lblProjectTitle", q.text(project.title, key, "detail.title", system)),
            ("کد طرح", "lblPlanCode", digits(project.plan_code, system)),
            ("عنوان طرح", "lblPlanTitle", q.text(project.plan_title, key, "detail.plan", system)),
            ("کد دستگاه", "lblAgencyCode", digits(project.agency.code, system)),
            ("دستگاه اجرایی", "lblAgencyName", q.text(project.agency.name, key, "detail.agency", system)),
            ("شهرستان", "lblCounty", q.county(project.county, key, "detail.county", system)),
            ("محل اجرا", "lblLocation", q.text(record.location, key, "detail.location", system) if record.location else ""),
            ("سال شروع", "lblStartYear", digits(str(project.start_year), system)),
            ("سال خاتمه", "lblEndYear", digits(str(project.end_year), system)),
            ("برآورد کل (میلیون ریال)", "lblTotalCost", q.number(project.total_cost, key, "detail.cost", system)),
            ("پیشرفت فیزیکی ابتدای سال (٪)", "lblProgressAtYearStart", start),
            ("شماره موافقتنامه", "lblAgreementNo", digits(record.agreement_no, system) if record.agreement_no else ""),
            ("تاریخ موافقتنامه", "lblAgreementDate",
             q.date(record.agreement_date, key, "detail.agreed", system) if record.agreement_date else ""),
            ("وضعیت موافقتنامه", "lblAgreementStatus",
             q.text(AGREEMENT_STATUS_FA[record.status], key, "detail.status", system)),
            ("آخرین ویرایش", "lblLastModified", q.datetime(record.last_modified, key, "detail.modified", system)),
        ]
        if self.sim.faults.layout_change == "detail_span":
            info = [row for row in info if row[1] != "lblProjectCode"]
        lines = [
            "<!DOCTYPE html>",
            '<html dir="rtl" lang="fa">',
            '<head><meta charset="utf-8"><title>جزئیات پروژه</title></head>',
            "<body>",
            f'<form id="aspnetForm" method="post" action="./ProjectDetail.aspx?id={project.portal_id}&amp;year={year}">',
            f'<input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="{viewstate}" />',
            '<input type="hidden" name="__VIEWSTATEGENERATOR" id="__VIEWSTATEGENERATOR" value="5D2B9E71" />',
            '<table id="tblInfo" class="form">',
        ]
        lines += [f'  <tr><th>{label}</th><td><span id="{span}">{value}</span></td></tr>' for label, span, value in info]
        lines += [
            "</table>",
            "",
            f"<h3>اعتبارات سال {digits(str(year), 'fa')} (میلیون ریال)</h3>",
            '<table id="gvCredits" class="grid" cellspacing="0" rules="all" border="1">',
            _header(CREDIT_HEADERS),
        ]
        totals = [Decimal(0)] * 4
        for i, credit in enumerate(sorted(record.credits, key=lambda c: SOURCES.index(c.source))):
            amounts = [credit.approved, credit.notified, credit.allocated, credit.absorbed]
            totals = [t + a for t, a in zip(totals, amounts)]
            ckey = f"{key}|{credit.source}"
            cells = [q.text(credit.source, ckey, "credit.source", system)] + [
                q.amount_or_empty(a, ckey, f"credit.{n}", system) for n, a in enumerate(amounts)
            ]
            lines.append(_row("row" if i % 2 == 0 else "altrow", cells))
        lines.append(_row("total", ["جمع"] + [q.amount_or_empty(t, key, f"total.{n}", system)
                                             for n, t in enumerate(totals)]))
        lines += [
            "</table>",
            "",
            z("<h3>پیشرفت فیزیکی پیش~بینی~شده در موافقتنامه</h3>"),
            '<table id="gvTargets" class="grid" cellspacing="0" rules="all" border="1">',
            _header(TARGET_HEADERS),
        ]
        if record.targets:
            for i, (quarter, target) in enumerate(sorted(record.targets.items())):
                tkey = f"{key}|t{quarter}"
                lines.append(_row("row" if i % 2 == 0 else "altrow", [
                    q.text(PERIODS[quarter], tkey, "target.period", system),
                    q.percent(target, tkey, "target.value", system),
                ]))
        else:
            lines.append(f'  <tr class="empty"><td colspan="2">{NO_RECORDS}</td></tr>')
        lines += [
            "</table>",
            "",
            z("<h3>گزارش~های عملکرد</h3>"),
            '<table id="gvPerformance" class="grid" cellspacing="0" rules="all" border="1">',
            _header(PERFORMANCE_HEADERS),
        ]
        reports = sorted(record.reports, key=lambda r: r.quarter)
        for i, report in enumerate(reports):
            rkey = f"{key}|r{report.quarter}"
            cells = {
                "period": q.text(PERIODS[report.quarter], rkey, "report.period", system),
                "reported_on": q.date(report.reported_on, rkey, "report.date", system),
                "progress": q.percent(report.progress, rkey, "report.progress", system),
                "absorbed": q.number(report.absorbed, rkey, "report.absorbed", system),
                "status": q.text(COMPTROLLER_STATUS_FA[report.status], rkey, "report.status", system),
                "decided_on": (q.date(report.decided_on, rkey, "report.decided", system) if report.decided_on
                               else q.empty(rkey, "report.decided")),
                "remarks": (q.text(report.remarks, rkey, "report.remarks", system) if report.remarks
                            else q.empty(rkey, "report.remarks")),
            }
            broken = self.world.malformation("report", project.code, year, report.quarter)
            if broken is not None:
                cells[broken.field] = escape(str(broken.raw))
            lines.append(_row("row" if i % 2 == 0 else "altrow", list(cells.values())))
        if not reports:
            lines.append(f'  <tr class="empty"><td colspan="7">{NO_RECORDS}</td></tr>')
        lines += ["</table>", "</form>", "</body>", "</html>", ""]
        return "\n".join(lines)


def _header(cells: list[str]) -> str:
    return '  <tr class="header">' + "".join(f"<th>{c}</th>" for c in cells) + "</tr>"


def _row(css: str, cells: list[str]) -> str:
    return f'  <tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


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
