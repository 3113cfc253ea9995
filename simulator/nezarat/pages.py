"""The markup of Nezarat-4's pages, element for element as `examples/nezarat4-*.html` shows them.

`NezaratPages` renders the login, home, project list (with its pager) and project detail pages, and
holds the fixed pages (Runtime Error, the lblError page, maintenance, 404). Values go through the
quirks of `quirks.py`, chosen by hash of (seed, record, field), and viewstates are digests of the
seed, so a page renders to the same bytes every time it is served. The `malformed` fault's broken
cells and the `layout_change` drifts are applied here, where the markup is written.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

from simulator.model import Project, ProjectYear
from simulator.quirks import Quirks, digits
from simulator.reference import AGREEMENT_STATUS_FA, COMPTROLLER_STATUS_FA, COUNTIES, PERIODS, SOURCES, z
from simulator.wire import seeded_digest

if TYPE_CHECKING:
    from simulator.nezarat.portal import Session

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



class NezaratPages:
    """Renders Nezarat-4's pages for one simulator (its seed, world and faults). Thread-safe: no state."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.world = sim.world
        self.seed = sim.config.seed
        self.quirks = Quirks(sim.config.seed)

    def _hash(self, *parts: object, size: int = 24) -> bytes:
        return seeded_digest(self.seed, *parts, size=size)

    def b64(self, *parts: object, size: int = 24) -> str:
        """A viewstate-like base64 text, the same for the same seed and parts."""
        return base64.b64encode(self._hash(*parts, size=size)).decode()

    def login_page(self, return_url: str | None, captcha: bool, user: str, message: str) -> str:
        action = "./Login.aspx" + ("?ReturnUrl=" + quote(return_url, safe="") if return_url else "")
        value = f' value="{escape(user)}"' if user else ""
        viewstate = "/wEPDwUKMTY1NDU2MTA1Mg" + self.b64("login", captcha, size=24)
        validation = "/wEdAA" + self.b64("login-ev", captcha, size=15)
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

    def home_page(self) -> str:
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

    def list_row(self, number: int, project: Project, record: ProjectYear) -> str:
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

    def list_page(self, viewstate: str, session: Session, year: int, county: str, modified: str, total: int,
                   body_rows: list[str], page: int, pages: int) -> str:
        validation = "/wEdABN" + self.b64("list-ev", session.serial, year, size=15)
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
        pager = self.pager(page, pages) if pages > 1 else ""
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
    def pager(page: int, pages: int) -> str:
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

    def not_found_page(self, raw_id: str, raw_year: str) -> str:
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

    def detail_page(self, session: Session, project: Project, record: ProjectYear) -> str:
        q = self.quirks
        year = record.fiscal_year
        key = f"{project.code}|{year}"
        system = q.row_digits(key + "|detail")
        viewstate = "/wEPDwUKLTg2NTQ0MTIzMWRk" + self.b64("detail", session.serial, project.portal_id, year, size=18)
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

