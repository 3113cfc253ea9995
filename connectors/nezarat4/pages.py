"""The reading layer of Nezarat-4: HTML in, raw rows of strings out (nezarat4.md §2–5).

This is the only module that knows the portal's markup: element ids, classes, input names, column
headers, the pager's postback links and the texts of the login messages. It returns the cell texts
exactly as the portal wrote them (digits, separators, NBSP and all); turning them into typed values
is ``canonical.py``'s job. What it checks is structure: a page that parses but is not the page the
contract describes (a missing grid or span, a renamed column, an unknown page) raises
:class:`~connectors.errors.LayoutChanged` naming the page, the expected and the found structure.
Headers are compared with ``persian.text_key``, so ZWNJ, spacing and letter variants do not count
as a change but a different word does. If the real portal turns out to differ from the contract,
this file is the one to change: that is why it stays one module of some 480 lines (every page's
markup, and nothing else), rather than being split by page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qs, urljoin, urlsplit

from bs4 import BeautifulSoup, NavigableString, SoupStrainer, Tag

from foundation.persian import text_key, to_ascii_digits

from ..errors import LayoutChanged
from ..http import Fault, parse_retry_after

SOURCE = "nezarat4"

LOGIN_PATH = "/Login.aspx"
LIST_PATH = "/Projects/ProjectList.aspx"
DETAIL_PATH = "/Projects/ProjectDetail.aspx"

# --- login (§2) -------------------------------------------------------------------------------
USER_INPUT = "txtUserName"
PASSWORD_INPUT = "txtPassword"
LOGIN_BUTTON = "btnLogin"
LOGIN_BUTTON_VALUE = "ورود"
CAPTCHA_IMAGE_ID = "imgCaptcha"
CAPTCHA_INPUT = "txtCaptcha"
LOGIN_MESSAGES = {  # lblMessage text -> AuthenticationFailed.reason
    text_key("نام کاربری یا کلمه عبور اشتباه است"): "invalid_credentials",
    text_key("لطفا کد امنیتی را وارد کنید"): "captcha",
    text_key("حساب کاربری شما غیرفعال شده است"): "account_locked",
}

# --- project list (§3) ------------------------------------------------------------------------
YEAR_INPUT = "ctl00$ContentPlaceHolder1$ddlYear"
COUNTY_INPUT = "ctl00$ContentPlaceHolder1$ddlCounty"
MODIFIED_FROM_INPUT = "ctl00$ContentPlaceHolder1$txtModifiedFrom"
SEARCH_BUTTON = "ctl00$ContentPlaceHolder1$btnSearch"
SEARCH_BUTTON_VALUE = "جستجو"
GRID_EVENT_TARGET = "ctl00$ContentPlaceHolder1$gvProjects"
COUNT_ID = "ctl00_ContentPlaceHolder1_lblCount"
GRID_ID = "ctl00_ContentPlaceHolder1_gvProjects"
LIST_COLUMNS = (  # (raw row key, contracted header)
    ("row_no", "ردیف"),
    ("project_code", "کد پروژه"),
    ("title", "عنوان پروژه"),
    ("agency_name", "دستگاه اجرایی"),
    ("county", "شهرستان"),
    ("approved_credit", "اعتبار مصوب (میلیون ریال)"),
    ("progress", "پیشرفت فیزیکی (٪)"),
    ("last_modified", "آخرین ویرایش"),
    ("detail_link", ""),
)
_PAGE_LINK = re.compile(r"__doPostBack\(\s*'([^']*)'\s*,\s*'Page\$(\d+)'\s*\)")

# --- project detail (§4) ----------------------------------------------------------------------
NOT_FOUND_ID = "lblNotFound"
INFO_TABLE_ID = "tblInfo"
IDENTITY_SPANS = (
    "lblProjectCode", "lblProjectTitle", "lblPlanCode", "lblPlanTitle", "lblAgencyCode",
    "lblAgencyName", "lblCounty", "lblLocation", "lblStartYear", "lblEndYear", "lblTotalCost",
    "lblProgressAtYearStart", "lblAgreementNo", "lblAgreementDate", "lblAgreementStatus",
    "lblLastModified",
)
STATUS_SPAN = "lblAgreementStatus"
# an agreement awaiting its exchange, or cancelled, has no targets (nezarat4.md §4)
_NOT_EXCHANGED = frozenset({text_key("در انتظار مبادله"), text_key("لغو شده")})
OPTIONAL_SPANS = frozenset({"lblLocation"})  # "(may be empty)": absent is read as empty
CREDITS_GRID = ("gvCredits", (
    ("source", "منبع"), ("approved", "مصوب"), ("notified", "ابلاغی"), ("allocated", "تخصیص"),
    ("absorbed", "جذب"),
))
TARGETS_GRID = ("gvTargets", (
    ("period", "دوره"), ("planned_progress", "پیشرفت فیزیکی پیش‌بینی‌شده (٪)"),
))
PERFORMANCE_GRID = ("gvPerformance", (
    ("period", "دوره"), ("reported_on", "تاریخ گزارش"), ("progress", "پیشرفت فیزیکی (٪)"),
    ("absorbed", "جذب اعتبار (میلیون ریال)"), ("comptroller_status", "وضعیت تأیید ذیحساب"),
    ("decided_on", "تاریخ تأیید"), ("remarks", "توضیحات"),
))

# --- error pages (§5) -------------------------------------------------------------------------
ERROR_ID = "lblError"
MAINTENANCE_ID = "maintenance"
_RUNTIME_ERROR_TITLE = re.compile(r"<title>\s*Runtime Error\s*</title>", re.IGNORECASE)
_ERROR_MARKERS = re.compile(r"""id\s*=\s*["']?(lblError|maintenance)\b""", re.IGNORECASE)


# --- what a page yields -------------------------------------------------------------------------


@dataclass(slots=True)
class Form:
    """The values a browser would post from a form: every named input as it came (buttons apart)."""

    action: str  # resolved against the page's URL
    fields: list[tuple[str, str]]
    buttons: dict[str, str]  # submit inputs: name -> value
    options: dict[str, list[str]] = field(default_factory=dict)  # select name -> option values

    def with_values(self, values: dict[str, str], *, drop: tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """The fields with ``values`` set (added when absent), ``drop`` left out."""
        out = [(k, values.get(k, v)) for k, v in self.fields if k not in drop]
        present = {k for k, _ in out}
        out += [(k, v) for k, v in values.items() if k not in present]
        return out


@dataclass(slots=True)
class LoginPage:
    form: Form
    message: str | None  # lblMessage text, None when empty
    refusal: str | None  # 'invalid_credentials' | 'captcha' | 'account_locked' | None
    captcha: bool


@dataclass(slots=True)
class RawRow:
    """One grid row: cell texts by column key, as written. ``problem`` when the row is unreadable."""

    index: int  # 1-based among the grid's data rows
    cells: dict[str, str]
    problem: str | None = None
    raw: str | None = None  # the whole row's text, for a rejection when ``problem`` is set


@dataclass(slots=True)
class Pager:
    current: int | None  # the page number shown as a <span>; None when there is no pager row
    links: dict[int, str]  # page number -> __doPostBack event target

    def target_for(self, page_no: int) -> str | None:
        """The event target to post for ``page_no`` if the pager offers it, or a later page."""
        if page_no in self.links:
            return self.links[page_no]
        later = [n for n in self.links if n > page_no]
        return self.links[min(later)] if later else None


@dataclass(slots=True)
class ListPage:
    form: Form
    count_label: str  # lblCount as written
    rows: list[RawRow]
    pager: Pager
    empty: bool  # the grid's `<tr class="empty">` row


@dataclass(slots=True)
class DetailPage:
    identity: dict[str, str]  # span id -> text as written ('' for an empty span)
    credits: list[RawRow]
    credit_total: RawRow | None
    targets: list[RawRow]
    performance: list[RawRow]


class NotFoundPage:
    """`lblNotFound`: the project has no record for that year (or no longer exists)."""


NOT_FOUND = NotFoundPage()


# --- recognising pages --------------------------------------------------------------------------


def parse(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


def index_ids(root: Tag) -> dict[str, list[Tag]]:
    """Every element under ``root`` (not ``root`` itself) by its id, in document order.

    One walk over the tree instead of a ``find(id=...)`` per element looked up: a page is read
    with a dozen or more such look-ups, and each ``find`` walks the tree again.
    """
    ids: dict[str, list[Tag]] = {}
    for element in root.descendants:
        if isinstance(element, Tag):
            element_id = element.get("id")
            if element_id is not None:
                ids.setdefault(element_id, []).append(element)
    return ids


def first(ids: dict[str, list[Tag]], element_id: str, name: str | None = None) -> Tag | None:
    """The first element with that id (and tag name, if given), as ``find(name, id=...)`` would."""
    return next((e for e in ids.get(element_id, ()) if name is None or e.name == name), None)


def children(tag: Tag, *names: str) -> list[Tag]:
    """The element's own child elements named ``names``, as ``find_all(names, recursive=False)``."""
    return [c for c in tag.children if isinstance(c, Tag) and c.name in names]


def transient_fault(status: int, headers, html: str) -> Fault | None:
    """The ASP.NET error page or the maintenance page served with status 200 (§5), else None."""
    if status != 200:
        return None
    if _RUNTIME_ERROR_TITLE.search(html):
        return Fault("ASP.NET Runtime Error page (status 200)")
    if _ERROR_MARKERS.search(html):
        soup = parse(html)
        maintenance = soup.find(id=MAINTENANCE_ID)
        if maintenance is not None and maintenance.get_text(strip=True):  # an empty one, a master page's hidden slot, is none
            return Fault("maintenance page (status 200)",
                         parse_retry_after(headers.get("Retry-After")))
        error = soup.find("span", id=ERROR_ID)
        if error is not None and error.get_text(strip=True):  # an empty label is no error
            return Fault(f"error page lblError {error.get_text(' ', strip=True)!r} (status 200)")
    return None


_PASSWORD_FIELD = re.compile(r"""name\s*=\s*["']?""" + PASSWORD_INPUT + r"""\b""")


def is_login_page(html: str) -> bool:
    """Whether an answer is the login page (some servers show it instead of redirecting)."""
    return _PASSWORD_FIELD.search(html) is not None


def is_login_location(location: str | None) -> bool:
    """Whether a redirect goes to the login page (with or without ReturnUrl)."""
    if not location:
        return False
    # by its last segment: a relative Location ("Login.aspx?ReturnUrl=…") is one too
    return urlsplit(location).path.lower().rstrip("/").rsplit("/", 1)[-1] == LOGIN_PATH.lower().lstrip("/")


def describe(soup: BeautifulSoup) -> str:
    """A short account of what a page is, for a LayoutChanged message."""
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    ids = [t.get("id") for t in soup.find_all(["table", "form", "div", "span"]) if t.get("id")]
    shown = ", ".join(ids[:12]) + (", ..." if len(ids) > 12 else "")
    return f"page titled {title!r} with ids [{shown}]"


def _layout(page: str, expected: str, found: str) -> LayoutChanged:
    return LayoutChanged(SOURCE, page, expected, found)


# --- forms ---------------------------------------------------------------------------------------


def read_form(form: Tag, page_url: str) -> Form:
    fields: list[tuple[str, str]] = []
    buttons: dict[str, str] = {}
    options: dict[str, list[str]] = {}
    for element in form.find_all(["input", "select", "textarea"]):
        name = element.get("name")
        if not name:
            continue
        if element.name == "select":
            opts = element.find_all("option")
            options[name] = [o.get("value", o.get_text()) for o in opts]
            chosen = [o for o in opts if o.has_attr("selected")] or opts[:1]
            if chosen:
                fields.append((name, chosen[0].get("value", chosen[0].get_text())))
            continue
        if element.name == "textarea":
            fields.append((name, element.get_text()))
            continue
        kind = (element.get("type") or "text").lower()
        if kind in ("submit", "button", "image", "reset"):
            if kind == "submit":
                buttons[name] = element.get("value", "")
            continue
        if kind in ("checkbox", "radio") and not element.has_attr("checked"):
            continue
        fields.append((name, element.get("value", "")))
    return Form(urljoin(page_url, form.get("action") or page_url), fields, buttons, options)


def read_login_page(html: str, page_url: str) -> LoginPage:
    soup = parse(html)
    password = soup.find("input", attrs={"name": PASSWORD_INPUT})
    form = password.find_parent("form") if password else None
    if form is None or soup.find("input", attrs={"name": USER_INPUT}) is None:
        raise _layout("Login.aspx", f"a form with inputs {USER_INPUT} and {PASSWORD_INPUT}",
                      describe(soup))
    label = soup.find(id="lblMessage")
    message = label.get_text(" ", strip=True) if label else ""
    captcha = (soup.find(id=CAPTCHA_IMAGE_ID) is not None
               or soup.find("input", attrs={"name": CAPTCHA_INPUT}) is not None)
    refusal = LOGIN_MESSAGES.get(text_key(message))
    if captcha:
        refusal = "captcha"
    return LoginPage(read_form(form, page_url), message or None, refusal, captcha)


# --- grids --------------------------------------------------------------------------------------


def _rows(table: Tag) -> list[Tag]:
    """The table's own rows (not those of a nested pager table), with or without <tbody>."""
    rows = children(table, "tr")
    for section in children(table, "thead", "tbody", "tfoot"):
        rows += children(section, "tr")
    return rows


def _classes(tr: Tag) -> set[str]:
    return set(tr.get("class") or ())


def _cell_text(cell: Tag) -> str:
    """``cell.get_text()``; the usual cell, holding one plain string or nothing, without the walk.

    Only a child of exactly NavigableString takes the short way (a comment, a script string or a
    nested tag goes through get_text, which decides what counts), and it comes back as a plain str.
    """
    contents = cell.contents
    if not contents:
        return ""
    if len(contents) == 1 and type(contents[0]) is NavigableString:
        return str(contents[0])  # a plain str, as get_text returns (no tree attached to it)
    return cell.get_text()


# Headers repeat on every page: their keys are worth remembering (text_key is a pure function,
# and comparing headers is a large share of the reading after parsing: docs/benchmarks.md,
# figures behind the comments).
_header_key = lru_cache(maxsize=1024)(text_key)


def _check_header(table: Tag, page: str, grid: str, columns) -> list[Tag]:
    """The data rows (and special rows) after a header that matches the contract. A grid of its
    `empty` row alone may have no header: an ASP.NET GridView writes its empty-data row without one
    (a review of the contract: an incremental run's list with no match, or a project awaiting its
    agreement, stopped the sync as a changed layout)."""
    rows = _rows(table)
    header = next((r for r in rows if "header" in _classes(r) or children(r, "th")), None)
    expected = [title for _, title in columns]
    if header is None and rows and all("empty" in _classes(r) for r in rows):
        return rows
    if header is None:
        raise _layout(page, f"{grid} header {expected}", f"{grid} without a header row")
    found = [_cell_text(c).strip() for c in children(header, "th", "td")]
    if len(found) != len(expected) or any(
        _header_key(f) != _header_key(e) for f, e in zip(found, expected)
    ):
        raise _layout(page, f"{grid} header {expected}", f"{grid} header {found}")
    return [r for r in rows if r is not header]


def _raw_row(tr: Tag, index: int, columns) -> RawRow:
    cells = children(tr, "td", "th")
    texts = [_cell_text(c) for c in cells]
    if len(cells) != len(columns):
        return RawRow(index, {}, f"row has {len(cells)} cells, the header {len(columns)}",
                      " | ".join(t.strip() for t in texts))
    return RawRow(index, {key: text for (key, _), text in zip(columns, texts)})


def _read_grid(ids: dict[str, list[Tag]], html: str, page: str, spec
               ) -> tuple[list[RawRow], RawRow | None]:
    """A detail-page grid: data rows and the `total` row, if any; `empty` rows mean no data."""
    grid_id, columns = spec
    table = first(ids, grid_id, "table")
    if table is None:
        raise _layout(page, f"table#{grid_id}", describe(parse(html)))
    rows: list[RawRow] = []
    total: RawRow | None = None
    for tr in _check_header(table, page, grid_id, columns):
        classes = _classes(tr)
        if "empty" in classes or "pager" in classes:
            continue
        if "total" in classes:
            total = _raw_row(tr, 0, columns)
            continue
        rows.append(_raw_row(tr, len(rows) + 1, columns))
    return rows, total


# --- the project list ---------------------------------------------------------------------------


def _read_pager(tr: Tag) -> Pager:
    current = None
    links: dict[int, str] = {}
    for a in tr.find_all("a"):
        m = _PAGE_LINK.search(a.get("href", "") + " " + a.get("onclick", ""))
        if m:
            links[int(m.group(2))] = m.group(1)
    for span in tr.find_all("span"):
        digits = to_ascii_digits(span.get_text()).strip()
        if digits.isdecimal():
            current = int(digits)
            break
    return Pager(current, links)


def read_list_page(html: str, page_url: str, page: str = "ProjectList.aspx") -> ListPage:
    # Parsed whole: the form (which holds the grid) is nearly the whole page, so a strainer would
    # build almost the same tree (measured no faster: docs/benchmarks.md, figures behind the
    # comments).
    soup = parse(html)
    ids = index_ids(soup)
    table = first(ids, GRID_ID, "table")
    if table is None:
        raise _layout(page, f"table#{GRID_ID}", describe(soup))
    count = first(ids, COUNT_ID)
    if count is None:
        raise _layout(page, f"span#{COUNT_ID}", describe(soup))
    form_tag = table.find_parent("form")
    if form_tag is None or not form_tag.find("input", attrs={"name": "__VIEWSTATE"}):
        raise _layout(page, "the grid inside a form with __VIEWSTATE", describe(soup))
    form = read_form(form_tag, page_url)
    if YEAR_INPUT not in form.options:
        raise _layout(page, f"select {YEAR_INPUT}", describe(soup))
    rows: list[RawRow] = []
    pager = Pager(None, {})
    empty = False
    for tr in _check_header(table, page, GRID_ID, LIST_COLUMNS):
        classes = _classes(tr)
        if "pager" in classes:
            pager = _read_pager(tr)
        elif "empty" in classes:
            empty = True
        elif "row" in classes or "altrow" in classes:  # the contract's data rows; a footer or spacer is none
            row = _raw_row(tr, len(rows) + 1, LIST_COLUMNS)
            if row.problem is None:
                cells = children(tr, "td", "th")
                link = cells[-1].find("a", href=True)
                row.cells["portal_id"] = _query_value(link["href"], "id") if link else ""
            rows.append(row)
    return ListPage(form, count.get_text(), rows, pager, empty)


def _query_value(href: str, name: str) -> str:
    values = parse_qs(urlsplit(href).query, keep_blank_values=True).get(name)
    if values is None:  # the parameter name in another case
        query = parse_qs(urlsplit(href).query.lower(), keep_blank_values=True)
        values = query.get(name.lower())
    return values[0] if values else ""


# --- the project detail -------------------------------------------------------------------------


# Only what the reader needs of a detail page is built into a tree: SoupStrainer decides per start
# tag that has no kept ancestor, so each element carrying one of these ids comes out with its whole
# subtree (a pager or any table nested in it included), and every element with one of these ids,
# wherever it sits, is kept, in document order -- ``first(ids, ...)`` picks what it picks in the full
# tree. The identity spans are not in the strainer: they are read only inside table#tblInfo, which
# is kept whole. A page that lacks what it should have is parsed again in full, for ``describe``.
# The saving is small, because the page is mostly these tables and bs4's cost is per element built;
# with _cell_text and _header_key it is worth keeping (docs/benchmarks.md, figures behind the
# comments; measured with bench/pages.py).
_DETAIL_IDS = (INFO_TABLE_ID, NOT_FOUND_ID, CREDITS_GRID[0], TARGETS_GRID[0], PERFORMANCE_GRID[0])
_DETAIL_STRAINER = SoupStrainer(id=list(_DETAIL_IDS))


def read_detail_page(html: str, page: str) -> DetailPage | NotFoundPage:
    soup = BeautifulSoup(html, "lxml", parse_only=_DETAIL_STRAINER)
    ids = index_ids(soup)
    info = first(ids, INFO_TABLE_ID, "table")
    if info is None:
        if first(ids, NOT_FOUND_ID) is not None:
            return NOT_FOUND
        raise _layout(page, f"table#{INFO_TABLE_ID} or span#{NOT_FOUND_ID}", describe(parse(html)))
    identity: dict[str, str] = {}
    missing = []
    info_ids = index_ids(info)
    for span_id in IDENTITY_SPANS:
        span = first(info_ids, span_id)
        if span is None:
            if span_id not in OPTIONAL_SPANS:
                missing.append(span_id)
            identity[span_id] = ""
        else:
            identity[span_id] = _cell_text(span)
    if missing:
        raise _layout(page, f"spans {', '.join(missing)} in table#{INFO_TABLE_ID}",
                      f"table#{INFO_TABLE_ID} without them")
    credits, total = _read_grid(ids, html, page, CREDITS_GRID)
    if first(ids, TARGETS_GRID[0], "table") is None and _header_key(identity[STATUS_SPAN]) in _NOT_EXCHANGED:
        targets = []  # "missing while the agreement is not exchanged": the grid may be left out whole
    else:
        targets, _ = _read_grid(ids, html, page, TARGETS_GRID)
    performance, _ = _read_grid(ids, html, page, PERFORMANCE_GRID)
    return DetailPage(identity, credits, total, targets, performance)

