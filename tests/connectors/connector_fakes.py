"""Helpers of the connector tests: the contract's example pages, fast settings, and two small fake
portals that speak the contracts through ``httpx.MockTransport`` (no sockets).

The fakes are deliberately simple and scriptable (drop the session before the next request, serve
an error page next, count what was in flight); the full behaviour over real HTTP is the project's
simulator (test_simulator_http.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote

import httpx
from pydantic import SecretStr

from foundation.persian import to_persian_digits
from connectors import PortalSettings

FIXTURES = Path(__file__).parent / "fixtures"
PASSWORD = "s3cret-Pa55!word"  # asserted absent from every error message


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fast_settings(base_url: str = "https://portal.test", **overrides) -> PortalSettings:
    values = dict(base_url=base_url, username="budget.user", password=SecretStr(PASSWORD),
                  backoff_initial_seconds=0.01, backoff_max_seconds=0.05, max_attempts=4,
                  max_retry_seconds=10.0, page_pause_seconds=0.0, rate_limit_per_second=1000.0,
                  timeout_seconds=10.0)
    values.update(overrides)
    return PortalSettings(**values)


# --- a fake Nezarat-4 ---------------------------------------------------------------------------

LIST_HEADER = ("<tr class=\"header\"><th>ردیف</th><th>کد پروژه</th><th>عنوان پروژه</th>"
               "<th>دستگاه اجرایی</th><th>شهرستان</th><th>اعتبار مصوب (میلیون ریال)</th>"
               "<th>پیشرفت فیزیکی (٪)</th><th>آخرین ویرایش</th><th></th></tr>")
GRID_TARGET = "ctl00$ContentPlaceHolder1$gvProjects"


def _postback(n: int, label: str) -> str:
    return (f"<td><a href=\"javascript:__doPostBack('{GRID_TARGET}','Page${n}')\">{label}</a>"
            "</td>")


def pager_html(current: int, pages: int) -> str:
    """The GridView's numeric pager: blocks of 10, '...' to the neighbouring block."""
    if pages <= 1:
        return ""
    first = (current - 1) // 10 * 10 + 1
    last = min(first + 9, pages)
    cells = [_postback(first - 1, "...")] if first > 1 else []
    for n in range(first, last + 1):
        cells.append(f"<td><span>{n}</span></td>" if n == current else _postback(n, str(n)))
    if last < pages:
        cells.append(_postback(last + 1, "..."))
    return f"<tr class=\"pager\"><td colspan=\"9\"><table><tr>{''.join(cells)}</tr></table></td></tr>"


@dataclass
class FakeNezarat4:
    """Serves Login.aspx, ProjectList.aspx (search + Page$N postbacks) and ProjectDetail.aspx."""

    projects: int = 23
    page_size: int = 5
    years: tuple[int, ...] = (1404, 1405)
    username: str = "budget.user"
    password: str = PASSWORD
    login_outcome: str | None = None  # None | 'captcha' | 'locked'
    failing_login_posts: int = 0  # the first N login POSTs answer 500, as when the session drops mid-login
    header: str = LIST_HEADER
    return_url: bool = True  # redirect with ?ReturnUrl=... (the contract allows without)
    sessions: set[str] = field(default_factory=set)
    requests: list[tuple[str, str, dict]] = field(default_factory=list)
    logins: int = 0
    drop_session_when: Callable[[str, str, dict], bool] | None = None
    queued: list[httpx.Response] = field(default_factory=list)  # served before the next answer
    # ASP.NET as the contract allows it to be strict: a postback must carry the view state of the
    # session's latest list page, and may ask only for a page that page's pager links (event validation)
    strict: bool = False
    # the list POST (method, path, form) whose answer is lost after the portal processed it: a
    # connection reset once the server has moved its page state on
    lose_answer_when: Callable[[str, str, dict], bool] | None = None
    latest: dict[str, tuple[int, int, set[int], int]] = field(default_factory=dict)  # session -> (year, page, linked, served)

    def __post_init__(self) -> None:
        self.rows = [
            dict(id=40000 + i, code=f"13010{i:05d}-001", title=f"احداث پل شماره {i}",
                 agency="اداره کل راه و شهرسازی استان خوزستان", county="اهواز",
                 credit=f"{100 + i}٬{i:03d}", progress=f"{i}٫5 ٪",
                 modified=f"1405/0{1 + i % 8}/1{i % 9} 1{i % 10}:0{i % 6}")
            for i in range(1, self.projects + 1)
        ]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # ---- plumbing
    def _session_of(self, request: httpx.Request) -> str | None:
        cookie = request.headers.get("cookie", "")
        m = re.search(r"ASP\.NET_SessionId=([^;]+)", cookie)
        auth = ".ASPXAUTH=" in cookie
        return m.group(1) if m and auth and m.group(1) in self.sessions else None

    def _to_login(self, request: httpx.Request) -> httpx.Response:
        target = request.url.raw_path.decode()
        location = "/Login.aspx" + (f"?ReturnUrl={quote(target, safe='')}"
                                    if self.return_url else "")
        return httpx.Response(302, headers={"Location": location})

    def handle(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode(), keep_blank_values=True)) \
            if request.method == "POST" else {}
        path = request.url.path
        self.requests.append((request.method, path, form | dict(request.url.params)))
        if self.queued:
            return self.queued.pop(0)
        if path == "/Login.aspx":
            return self._login(request, form)
        if self.drop_session_when and self.drop_session_when(request.method, path, form):
            self.sessions.clear()
        session = self._session_of(request)
        if session is None:
            return self._to_login(request)
        if path == "/Projects/ProjectList.aspx":
            return self._list(request, form, session)
        if path == "/Projects/ProjectDetail.aspx":
            return self._detail(request)
        return httpx.Response(404)

    def _login(self, request: httpx.Request, form: dict) -> httpx.Response:
        page = fixture_text("nezarat4-login.html")
        if request.method == "GET":
            if self.login_outcome == "captcha":
                return httpx.Response(200, text=fixture_text("nezarat4-login-captcha.html"))
            return httpx.Response(200, text=page)
        if self.failing_login_posts:
            self.failing_login_posts -= 1
            return httpx.Response(500, text=fixture_text("nezarat4-runtime-error.html"))
        expected_hidden = dict(re.findall(r'name="(__\w+)" id="__\w+" value="([^"]*)"', page))
        for name, value in expected_hidden.items():
            assert form.get(name) == value, f"login must post {name} unchanged"
        assert form.get("btnLogin") == "ورود"
        if self.login_outcome == "captcha":
            return httpx.Response(200, text=fixture_text("nezarat4-login-captcha.html"))
        if self.login_outcome == "locked":
            message = "حساب کاربری شما غیرفعال شده است"
        elif (form.get("txtUserName"), form.get("txtPassword")) != (self.username, self.password):
            message = "نام کاربری یا کلمه عبور اشتباه است"
        else:
            self.logins += 1
            sid = f"sid{self.logins}"
            self.sessions.add(sid)
            location = request.url.params.get("ReturnUrl", "/Default.aspx")
            return httpx.Response(302, headers=[
                ("Location", location),
                ("Set-Cookie", f"ASP.NET_SessionId={sid}; path=/; HttpOnly"),
                ("Set-Cookie", f".ASPXAUTH=AUTH{sid}; path=/; HttpOnly"),
            ])
        return httpx.Response(200, text=page.replace(
            '<span id="lblMessage" class="error"></span>',
            f'<span id="lblMessage" class="error">{message}</span>'))

    def _list(self, request: httpx.Request, form: dict, session: str) -> httpx.Response:
        year, modified_from, page_no = 1405, "", 1
        refused = httpx.Response(500, text=fixture_text("nezarat4-runtime-error.html"))
        if request.method == "POST":
            state = form.get("__VIEWSTATE", "").split("|")
            if state[0] != "VS" or state[1] != session:
                return refused
            year = int(form["ctl00$ContentPlaceHolder1$ddlYear"])
            modified_from = form.get("ctl00$ContentPlaceHolder1$txtModifiedFrom", "")
            if "ctl00$ContentPlaceHolder1$btnSearch" in form:
                page_no = 1
            else:
                assert form["__EVENTTARGET"] == GRID_TARGET
                page_no = int(form["__EVENTARGUMENT"].removeprefix("Page$"))
            if self.strict:
                latest = self.latest.get(session)
                if latest is None or state[2:] != [str(latest[1]), str(latest[3])]:
                    return refused  # the view state of an older page, or of none this session showed
                if "ctl00$ContentPlaceHolder1$btnSearch" not in form and page_no not in latest[2]:
                    return refused  # a page the latest page's pager does not link
        served = (self.latest[session][3] + 1) if session in self.latest else 1  # every page state its own
        html = self.list_html(session, year, modified_from, page_no)
        if self.strict:
            html = re.sub(r'(name="__VIEWSTATE" value="VS\|[^|]+\|\d+)"', rf'\1|{served}"', html, count=1)
        rows = self.rows if year == 1405 else []
        pages = max(1, -(-len(rows) // self.page_size))
        shown = min(page_no, pages)
        first = (shown - 1) // 10 * 10 + 1
        linked = set(range(first, min(first + 9, pages) + 1)) | {first - 1, min(first + 9, pages) + 1}
        self.latest[session] = (year, shown, {n for n in linked if 1 <= n <= pages and n != shown}, served)
        if self.lose_answer_when and request.method == "POST" and self.lose_answer_when(request.method,
                                                                                          request.url.path, form):
            raise httpx.ReadError("connection reset after the portal processed the request", request=request)
        return httpx.Response(200, text=html)

    def list_html(self, session: str, year: int, modified_from: str, page_no: int) -> str:
        rows = self.rows if year == 1405 else []
        pages = max(1, -(-len(rows) // self.page_size))
        page_no = min(page_no, pages)
        chunk = rows[(page_no - 1) * self.page_size: page_no * self.page_size]
        body = "".join(
            f"<tr class=\"{'row' if n % 2 else 'altrow'}\"><td>{to_persian_digits(str(n))}</td>"
            f"<td>{to_persian_digits(r['code'])}</td><td>{r['title']}</td><td>{r['agency']}</td>"
            f"<td>{r['county']}</td><td>{to_persian_digits(r['credit'])}</td>"
            f"<td>{to_persian_digits(r['progress'])}</td><td>{r['modified']}</td>"
            f"<td><a href=\"ProjectDetail.aspx?id={r['id']}\">جزئیات</a></td></tr>"
            for n, r in enumerate(chunk, start=(page_no - 1) * self.page_size + 1)
        ) or "<tr class=\"empty\"><td colspan=\"9\">رکوردی یافت نشد</td></tr>"
        options = "".join(f'<option value="{y}"{" selected" if y == year else ""}>{y}</option>'
                          for y in self.years)
        return f"""<html dir="rtl"><head><title>فهرست پروژه‌ها</title></head><body>
<form id="aspnetForm" method="post" action="./ProjectList.aspx">
<input type="hidden" name="__EVENTTARGET" value="" />
<input type="hidden" name="__EVENTARGUMENT" value="" />
<input type="hidden" name="__VIEWSTATE" value="VS|{session}|{page_no}" />
<input type="hidden" name="__EVENTVALIDATION" value="EV{page_no}" />
<select name="ctl00$ContentPlaceHolder1$ddlYear">{options}</select>
<select name="ctl00$ContentPlaceHolder1$ddlCounty"><option selected="selected" value="0">همه</option></select>
<input name="ctl00$ContentPlaceHolder1$txtModifiedFrom" type="text" value="{modified_from}" />
<input type="submit" name="ctl00$ContentPlaceHolder1$btnSearch" value="جستجو" />
<span id="ctl00_ContentPlaceHolder1_lblCount">تعداد رکوردها: {to_persian_digits(str(len(rows)))}</span>
<table id="ctl00_ContentPlaceHolder1_gvProjects" class="grid">{self.header}{body}{pager_html(page_no, pages)}</table>
</form></body></html>"""

    def _detail(self, request: httpx.Request) -> httpx.Response:
        portal_id = int(request.url.params["id"])
        known = {r["id"]: r for r in self.rows}
        if portal_id not in known and portal_id != 48213:
            return httpx.Response(200, text="<html><body><span id=\"lblNotFound\">"
                                            "پروژه مورد نظر یافت نشد</span></body></html>")
        page = fixture_text("nezarat4-detail.html")
        if portal_id in known:
            page = page.replace("۱۳۰۵۰۱۲۰۰۷-۰۰۳", to_persian_digits(known[portal_id]["code"]))
        return httpx.Response(200, text=page)

    def posted(self, path: str = "/Projects/ProjectList.aspx") -> list[dict]:
        return [form for method, p, form in self.requests if method == "POST" and p == path]


# --- a fake SABA --------------------------------------------------------------------------------


def agreement_item(i: int, **changes) -> dict:
    item = json.loads(fixture_text("saba-agreements-page1.json"))["items"][0]
    item.update(id=9000 + i, agreementNo=f"۱۴۰۵-۰۳۲-{10000 + i}")
    item.update(changes)
    return item


@dataclass
class FakeSaba:
    agreements: int = 7
    max_page_size: int = 200
    username: str = "budget.user"
    password: str = PASSWORD
    locked: bool = False
    tokens: list[str] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    queued: list[httpx.Response] = field(default_factory=list)
    expire_token_before: Callable[[httpx.Request], bool] | None = None
    items: list[dict] = field(default_factory=list)
    operations: dict = field(default_factory=lambda: json.loads(fixture_text("saba-operations.json")))
    performance: dict = field(default_factory=lambda: json.loads(fixture_text("saba-performance.json")))

    def __post_init__(self) -> None:
        if not self.items:
            self.items = [agreement_item(i) for i in range(1, self.agreements + 1)]

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.queued:
            return self.queued.pop(0)
        path = request.url.path
        if path == "/api/v1/auth/token":
            body = json.loads(request.content)
            if self.locked:
                return httpx.Response(423, json={"error": "account_locked"})
            if (body["username"], body["password"]) != (self.username, self.password):
                return httpx.Response(401, json={"error": "invalid_credentials"})
            self.tokens.append(f"tok{len(self.tokens) + 1}")
            return httpx.Response(200, json={"access_token": self.tokens[-1],
                                             "token_type": "Bearer", "expires_in": 900})
        if self.expire_token_before and self.expire_token_before(request):
            self.tokens.clear()
        auth = request.headers.get("Authorization", "")
        if not self.tokens or auth != f"Bearer {self.tokens[-1]}":
            return httpx.Response(401, json={"error": "token_expired"})
        if path == "/api/v1/agreements":
            page = int(request.url.params["page"])
            size = min(int(request.url.params["pageSize"]), self.max_page_size)
            chunk = self.items[(page - 1) * size: page * size]
            return httpx.Response(200, json={"items": chunk, "page": page, "pageSize": size,
                                             "totalCount": len(self.items)})
        m = re.fullmatch(r"/api/v1/agreements/(\d+)/(operations|performance)", path)
        if m:
            if int(m.group(1)) not in {item["id"] for item in self.items}:
                return httpx.Response(404, json={"error": "not_found"})
            return httpx.Response(200, json=getattr(self, m.group(2)))
        return httpx.Response(404)


class InFlight(httpx.AsyncBaseTransport):
    """Wraps a transport and records the most requests it ever had in flight at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float = 0.0) -> None:
        self.inner, self.delay = inner, delay
        self.now = self.max = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.max = max(self.max, self.now)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self.inner.handle_async_request(request)
        finally:
            self.now -= 1
