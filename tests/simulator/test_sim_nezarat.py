"""Nezarat-4 over real HTTP, page by page, against nezarat4.md and examples/nezarat4-*.html."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from simhelpers import (
    EXAMPLES,
    F_COUNTY,
    F_MODIFIED,
    F_SEARCH,
    F_YEAR,
    Nezarat,
    ascii_digits,
    canonical_text,
    cell_text,
    form_fields,
    match_key,
    read_date,
    read_number,
    soup,
)
from bs4 import BeautifulSoup

from simulator.reference import COUNTIES

# ------------------------------------------------------------------ structure helpers


def example(name: str) -> BeautifulSoup:
    return BeautifulSoup((EXAMPLES / name).read_text(encoding="utf-8"), "lxml")


def skeleton(page: BeautifulSoup) -> list[tuple]:
    """The page's structure: element names with their ids, classes and input names/types."""
    out = []
    for element in page.find_all(True):
        if element.name in ("tr", "td", "a", "span", "option") and not element.get("id"):
            continue
        out.append((element.name, element.get("id"), tuple(element.get("class") or ()), element.get("name"),
                    element.get("type")))
    return out


def header_texts(table) -> list[str]:
    return [th.get_text() for th in table.find("tr", class_="header").find_all("th")]


def data_rows(table) -> list:
    return table.find_all("tr", class_=["row", "altrow"])


# ------------------------------------------------------------------ login and session


def test_login_page_has_the_contract_form(nezarat):
    response = nezarat.http.get("/Login.aspx")
    assert response.status_code == 200
    page = soup(response)
    assert skeleton(page) == skeleton(example("nezarat4-login.html"))
    form = page.find("form", id="form1")
    assert form["method"] == "post" and form["action"] == "./Login.aspx"
    assert {i["name"] for i in form.find_all("input", type="hidden")} == {
        "__VIEWSTATE", "__VIEWSTATEGENERATOR", "__EVENTVALIDATION"}
    assert page.find("input", attrs={"name": "txtPassword"})["type"] == "password"
    assert page.find("input", attrs={"name": "btnLogin"})["value"] == "ورود"
    assert page.find("span", id="lblMessage").get_text() == ""


def test_login_success_redirects_to_default_with_both_cookies(nezarat):
    response = nezarat.login()
    assert response.status_code == 302
    assert response.headers["location"] == "/Default.aspx"
    assert {"ASP.NET_SessionId", ".ASPXAUTH"} <= set(nezarat.http.cookies.keys())
    assert nezarat.http.get("/Default.aspx").status_code == 200


def test_protected_page_redirects_to_login_with_encoded_return_url(nezarat):
    response = nezarat.http.get("/Projects/ProjectDetail.aspx?id=5&year=1405")
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert location.path == "/Login.aspx"
    assert "%2F" in location.query and "%3F" in location.query  # path and query, url-encoded
    assert parse_qs(location.query)["ReturnUrl"] == ["/Projects/ProjectDetail.aspx?id=5&year=1405"]


def test_login_with_return_url_goes_back_there(nezarat):
    login_page = soup(nezarat.http.get("/Login.aspx", params={"ReturnUrl": "/Projects/ProjectList.aspx"}))
    assert login_page.find("form")["action"] == "./Login.aspx?ReturnUrl=%2FProjects%2FProjectList.aspx"
    response = nezarat.login(return_url="/Projects/ProjectList.aspx")
    assert response.status_code == 302
    assert response.headers["location"] == "/Projects/ProjectList.aspx"
    assert nezarat.list().status_code == 200


def test_wrong_password_shows_lbl_message(nezarat):
    response = nezarat.login(password="nope")
    assert response.status_code == 200
    message = soup(response).find("span", id="lblMessage")
    assert message["class"] == ["error"]
    assert message.get_text() == "نام کاربری یا کلمه عبور اشتباه است"
    assert ".ASPXAUTH" not in nezarat.http.cookies


def test_captcha_after_three_failed_logins_until_reset(sim, nezarat):
    for _ in range(3):
        assert soup(nezarat.login(password="nope")).find("img", id="imgCaptcha") is None
    response = nezarat.login()  # even the right password: the captcha is demanded first
    page = soup(response)
    assert response.status_code == 200
    assert page.find("img", id="imgCaptcha")["src"].startswith("Captcha.ashx?")
    assert page.find("input", attrs={"name": "txtCaptcha"}) is not None
    assert page.find("span", id="lblMessage").get_text() == "لطفا کد امنیتی را وارد کنید"
    assert skeleton(soup(nezarat.http.get("/Login.aspx"))) == skeleton(example("nezarat4-login-captcha.html"))
    assert nezarat.http.get("/Captcha.ashx?t=1").headers["content-type"] == "image/gif"
    sim.reset_login_failures()
    assert nezarat.login().status_code == 302


def test_captcha_threshold_is_configurable(clock):
    from simhelpers import make_sim

    simulator = make_sim(clock, captcha_after=1, projects=10, agreements=5)
    try:
        client = Nezarat(simulator)
        client.login(password="nope")
        assert soup(client.login()).find("img", id="imgCaptcha") is not None
    finally:
        simulator.stop()


def test_locked_account(nezarat):
    response = nezarat.login(user="locked.user", password="demo-password")
    assert response.status_code == 200
    assert soup(response).find("span", id="lblMessage").get_text() == "حساب کاربری شما غیرفعال شده است"


def test_session_expires_after_idle_time_on_the_injected_clock(sim, clock, nezarat):
    nezarat.login()
    assert nezarat.list().status_code == 200
    clock.advance(sim.config.session_idle_seconds - 1)
    assert nezarat.list().status_code == 200  # activity renews the idle timer
    clock.advance(sim.config.session_idle_seconds + 0.5)
    response = nezarat.http.get("/Projects/ProjectList.aspx")
    assert response.status_code == 302
    assert response.headers["location"] == "/Login.aspx?ReturnUrl=%2FProjects%2FProjectList.aspx"


def test_postback_with_expired_session_redirects_to_login(sim, clock, nezarat):
    nezarat.login()
    nezarat.list()
    clock.advance(sim.config.session_idle_seconds + 1)
    response = nezarat.goto(2)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/Login.aspx?ReturnUrl=")


def test_dropped_session_redirects_and_a_new_login_works(sim, nezarat):
    nezarat.login()
    nezarat.list()
    assert sim.drop_sessions() == 1
    response = nezarat.http.get("/Projects/ProjectList.aspx?x=1")
    assert response.status_code == 302
    assert response.headers["location"] == "/Login.aspx?ReturnUrl=%2FProjects%2FProjectList.aspx%3Fx%3D1"
    nezarat.login()
    assert nezarat.list().status_code == 200


# ------------------------------------------------------------------ project list


def test_list_page_structure_matches_the_example(sim, nezarat):
    nezarat.login()
    page = soup(nezarat.list())
    reference = example("nezarat4-list-page1.html")
    assert skeleton(page) == skeleton(reference)
    grid = page.find("table", id="ctl00_ContentPlaceHolder1_gvProjects")
    assert grid["class"] == ["grid"]
    assert header_texts(grid) == header_texts(reference.find("table", id="ctl00_ContentPlaceHolder1_gvProjects"))
    fields = form_fields(page)
    assert set(fields) == {"__EVENTTARGET", "__EVENTARGUMENT", "__VIEWSTATE", "__VIEWSTATEGENERATOR",
                           "__EVENTVALIDATION", F_YEAR, F_COUNTY, F_MODIFIED}
    assert fields[F_YEAR] == str(sim.world.epoch.current_year)  # the current year is selected on GET
    assert fields[F_COUNTY] == "0"
    assert page.find("input", attrs={"name": F_SEARCH})["value"] == "جستجو"
    options = [o["value"] for o in page.find("select", attrs={"name": F_COUNTY}).find_all("option")]
    assert options == ["0"] + [c.code for c in COUNTIES]


def test_list_rows_are_the_years_projects_in_code_order(sim, nezarat):
    nezarat.login()
    world = sim.world
    year = world.epoch.current_year
    expected = world.project_rows(year)
    page = soup(nezarat.list())
    count = page.find("span", id="ctl00_ContentPlaceHolder1_lblCount").get_text()
    assert count.startswith("تعداد رکوردها: ")
    assert int(ascii_digits(count.split(": ")[1]).replace("٬", "")) == len(expected)
    rows = data_rows(page.find("table", id="ctl00_ContentPlaceHolder1_gvProjects"))
    assert len(rows) == min(50, len(expected))
    for i, (row, (project, record)) in enumerate(zip(rows, expected), start=1):
        cells = row.find_all("td")
        assert len(cells) == 9
        assert row["class"] == (["row"] if i % 2 else ["altrow"])
        assert int(ascii_digits(cell_text(cells[0]))) == i
        assert ascii_digits(cell_text(cells[1])) == project.code
        assert match_key(cells[2].get_text()) == match_key(project.title)
        assert match_key(cells[3].get_text()) == match_key(project.agency.name)
        county_keys = {match_key(n) for n in (project.county.name, *project.county.variants)}
        assert match_key(cells[4].get_text()) in county_keys
        assert read_number(cells[5].get_text()) == record.approved_total
        latest = record.latest_report()
        assert read_number(cells[6].get_text()) == (latest.progress if latest else None)
        assert read_date(cells[7].get_text()) == record.last_modified.date().isoformat()
        assert cells[8].find("a")["href"] == f"ProjectDetail.aspx?id={project.portal_id}"
        assert cells[8].get_text() == "جزئیات"


def test_pager_blocks_and_postback_paging_across_the_block_boundary(big_sim):
    client = Nezarat(big_sim)
    client.login()
    year = big_sim.world.epoch.current_year
    all_codes = [p.code for p, _ in big_sim.world.project_rows(year)]
    assert len(all_codes) > 20 * 50

    def pager_cells():
        pager = client.page.find("tr", class_="pager")
        return [(td.find("span") is not None, td.get_text(),
                 td.find("a")["href"] if td.find("a") else None) for td in pager.find("table").find_all("td")]

    def codes_on_page():
        grid = client.page.find("table", id="ctl00_ContentPlaceHolder1_gvProjects")
        return [ascii_digits(cell_text(r.find_all("td")[1])) for r in data_rows(grid)]

    client.list()
    cells = pager_cells()
    assert [text for _, text, _ in cells] == [str(n) for n in range(1, 11)] + ["..."]
    assert cells[0][0] and cells[0][2] is None  # the current page is a span
    assert cells[-1][2] == "javascript:__doPostBack('ctl00$ContentPlaceHolder1$gvProjects','Page$11')"
    seen = codes_on_page()
    for n in range(2, 13):  # 11 is across the first block boundary, 12 as in the example
        assert client.goto(n).status_code == 200
        seen += codes_on_page()
    cells = pager_cells()
    assert [text for _, text, _ in cells] == ["..."] + [str(n) for n in range(11, 21)] + ["..."]
    assert cells[0][2].endswith("'Page$10')") and cells[-1][2].endswith("'Page$21')")
    assert [current for current, _, _ in cells].index(True) == 2  # page 12
    assert seen == all_codes[: 12 * 50]
    first_row = client.page.find("tr", class_="row").find("td")
    assert int(ascii_digits(cell_text(first_row))) == 551
    assert client.goto("...").status_code == 500  # not a page number: WebForms throws
    client.close()


def test_stale_and_foreign_viewstates_answer_500(big_sim):
    first, second = Nezarat(big_sim), Nezarat(big_sim)
    first.login()
    second.login()
    first.list()
    stale = form_fields(first.page)
    assert first.goto(2).status_code == 200
    response = first.goto(3, fields=stale)  # the viewstate of an older page
    assert response.status_code == 500
    assert "<title>Runtime Error</title>" in response.text
    second.list()
    foreign = form_fields(second.page)
    assert first.goto(3, fields=foreign).status_code == 500  # another session's viewstate
    assert first.goto(3).status_code == 200  # the latest page's viewstate still works
    first.close()
    second.close()


def test_search_filters_year_county_and_modified_from(sim, nezarat):
    world = sim.world
    nezarat.login()
    nezarat.list()
    previous = world.epoch.previous_year

    def listed(response):
        grid = soup(response).find("table", id="ctl00_ContentPlaceHolder1_gvProjects")
        return [ascii_digits(cell_text(r.find_all("td")[1])) for r in data_rows(grid)]

    response = nezarat.search(year=previous)
    assert listed(response) == [p.code for p, _ in world.project_rows(previous)][:50]
    assert form_fields(nezarat.page)[F_YEAR] == str(previous)

    county = max(COUNTIES, key=lambda c: len(world.project_rows(previous, c.code)))
    response = nezarat.search(year=previous, county=county.code)
    assert listed(response) == [p.code for p, _ in world.project_rows(previous, county.code)]
    assert len(listed(response)) > 0

    from simulator.nezarat import parse_jalali_day

    year = world.epoch.current_year
    modified = sorted(r.last_modified for _, r in world.project_rows(year))[len(world.project_rows(year)) // 2]
    from simulator import calendar as cal

    y, m, d = cal.to_jalali(modified.date())
    typed = f"{y}/{m}/{d}".translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹"))  # Persian, unpadded
    response = nezarat.search(year=year, modified=typed)
    cutoff = parse_jalali_day(typed)
    expected = [p.code for p, r in world.project_rows(year) if r.last_modified >= cutoff]
    assert 0 < len(expected) < len(world.project_rows(year))
    assert listed(response) == expected[:50]
    assert all(r.last_modified >= cutoff for _, r in world.project_rows(year, None, cutoff))
    assert nezarat.page.find("input", attrs={"name": F_MODIFIED})["value"] == typed


def test_search_without_match_shows_the_empty_row_and_no_pager(sim, nezarat):
    nezarat.login()
    nezarat.list()
    response = nezarat.search(modified="1499/01/01")
    page = soup(response)
    grid = page.find("table", id="ctl00_ContentPlaceHolder1_gvProjects")
    empty = grid.find("tr", class_="empty")
    assert empty.find("td")["colspan"] == "9" and empty.get_text() == "رکوردی یافت نشد"
    assert grid.find("tr", class_="pager") is None and not data_rows(grid)
    assert page.find("span", id="ctl00_ContentPlaceHolder1_lblCount").get_text() == "تعداد رکوردها: ۰"
    assert skeleton(page) == skeleton(example("nezarat4-list-empty.html"))


def test_one_page_has_no_pager_row(sim, nezarat):
    nezarat.login()
    nezarat.list()
    world = sim.world
    year = world.epoch.current_year
    county = next(c for c in COUNTIES if 0 < len(world.project_rows(year, c.code)) <= 50)
    grid = soup(nezarat.search(county=county.code)).find("table", id="ctl00_ContentPlaceHolder1_gvProjects")
    assert grid.find("tr", class_="pager") is None
    assert len(data_rows(grid)) == len(world.project_rows(year, county.code))


def test_invalid_date_filter_answers_the_error_page(sim, nezarat):
    nezarat.login()
    nezarat.list()
    assert nezarat.search(modified="1405/13/40").status_code == 500


# ------------------------------------------------------------------ project detail

SPANS = ["lblProjectCode", "lblProjectTitle", "lblPlanCode", "lblPlanTitle", "lblAgencyCode", "lblAgencyName",
         "lblCounty", "lblLocation", "lblStartYear", "lblEndYear", "lblTotalCost", "lblProgressAtYearStart",
         "lblAgreementNo", "lblAgreementDate", "lblAgreementStatus", "lblLastModified"]
STATUS = {"مبادله شده": "exchanged", "در انتظار مبادله": "awaiting", "اصلاحیه": "amended", "لغو شده": "cancelled"}
COMPTROLLER = {"تأیید شده": "approved", "در انتظار تأیید": "pending", "رد شده": "rejected"}
PERIODS = {"سه‌ماهه اول": 1, "سه‌ماهه دوم": 2, "سه‌ماهه سوم": 3, "سه‌ماهه چهارم": 4}


def read_detail(page: BeautifulSoup) -> dict:
    """The detail page, read back into the export format (text compared by match key)."""
    info = {span: page.find("span", id=span).get_text() for span in SPANS}
    credits = []
    grid = page.find("table", id="gvCredits")
    for row in data_rows(grid):
        cells = row.find_all("td")
        amounts = [read_number(c.get_text()) or 0 for c in cells[1:]]
        credits.append({"source": canonical_text(cells[0].get_text()),
                        **dict(zip(["approved", "notified", "allocated", "absorbed"], amounts))})
    total = [read_number(c.get_text()) or 0 for c in grid.find("tr", class_="total").find_all("td")[1:]]
    targets = {}
    for row in data_rows(page.find("table", id="gvTargets")):
        period, value = row.find_all("td")
        targets[str(PERIODS[spelled(period.get_text(), PERIODS)])] = read_number(value.get_text())
    reports = []
    for row in data_rows(page.find("table", id="gvPerformance")):
        cells = row.find_all("td")
        remarks = canonical_text(cells[6].get_text())
        reports.append({
            "quarter": PERIODS[spelled(cells[0].get_text(), PERIODS)],
            "reported_on": read_date(cells[1].get_text()),
            "progress": read_number(cells[2].get_text()),
            "absorbed": read_number(cells[3].get_text()),
            "comptroller_status": COMPTROLLER[canonical_text(cells[4].get_text())],
            "decided_on": read_date(cells[5].get_text()),
            "remarks": None if remarks in ("", "-", "—") else remarks,
        })
    return {"info": info, "credits": credits, "total": total, "targets": targets, "reports": reports}


def spelled(text: str, names) -> str:
    """The one of `names` that `text` spells, up to the portal's quirks."""
    key = match_key(text)
    return next(name for name in names if match_key(name) == key)


def test_detail_page_has_every_span_and_grid_and_matches_the_truth(sim, nezarat):
    nezarat.login()
    world = sim.world
    truth = {(t["project_code"], t["fiscal_year"]): t for t in world.truth_projects()}
    reference = example("nezarat4-detail.html")
    reference_skeleton = skeleton(reference)
    reference_headers = {t: header_texts(reference.find("table", id=t)) for t in ("gvCredits", "gvTargets",
                                                                                  "gvPerformance")}
    checked = 0
    for (code, year), expected in truth.items():
        project = world.projects[code]
        page = soup(nezarat.detail(project.portal_id, year))
        if checked % 10 == 0:
            assert skeleton(page) == reference_skeleton, code
        for table, headers in reference_headers.items():
            assert header_texts(page.find("table", id=table)) == headers
        got = read_detail(page)
        info = got["info"]
        assert ascii_digits(info["lblProjectCode"]) == code
        assert match_key(info["lblProjectTitle"]) == match_key(expected["title"])
        assert ascii_digits(info["lblPlanCode"]) == expected["plan_code"]
        assert match_key(info["lblPlanTitle"]) == match_key(expected["plan_title"])
        assert ascii_digits(info["lblAgencyCode"]) == expected["agency_code"]
        assert match_key(info["lblAgencyName"]) == match_key(expected["agency_name"])
        assert int(ascii_digits(info["lblStartYear"])) == expected["start_year"]
        assert int(ascii_digits(info["lblEndYear"])) == expected["end_year"]
        assert read_number(info["lblTotalCost"]) == expected["total_cost"]
        assert read_number(info["lblProgressAtYearStart"]) == expected["progress_at_year_start"]
        assert (ascii_digits(info["lblAgreementNo"]) or None) == expected["agreement_no"]
        assert STATUS[spelled(info["lblAgreementStatus"], STATUS)] == expected["agreement_status"]
        assert [c["source"] for c in sorted(got["credits"], key=lambda c: c["source"])] == [
            c["source"] for c in expected["credits"]]
        for row in got["credits"]:
            want = next(c for c in expected["credits"] if c["source"] == row["source"])
            assert row == want
        sums = [sum(c[k] for c in expected["credits"]) for k in ("approved", "notified", "allocated", "absorbed")]
        assert got["total"] == sums
        assert got["targets"] == expected["targets"]
        assert got["reports"] == expected["reports"]
        if not expected["targets"]:
            assert page.find("table", id="gvTargets").find("tr", class_="empty") is not None
        checked += 1
    assert checked == len(truth) > 100


def test_detail_year_is_optional_and_other_years_are_served(sim, nezarat):
    nezarat.login()
    world = sim.world
    project = next(p for p in world.projects.values() if len(p.years) == 2)
    current, previous = world.epoch.current_year, world.epoch.previous_year
    default = nezarat.detail(project.portal_id)
    assert default.text == nezarat.detail(project.portal_id, current).text
    other = soup(nezarat.detail(project.portal_id, previous))
    assert f"اعتبارات سال {str(previous).translate(str.maketrans('0123456789', '۰۱۲۳۴۵۶۷۸۹'))}" in other.find(
        "h3").get_text()


def test_not_found_page_for_unknown_removed_or_yearless_ids(sim, nezarat):
    nezarat.login()
    world = sim.world
    only_previous = next(p for p in world.projects.values() if list(p.years) == [world.epoch.previous_year])
    removed = next(p for p in world.projects.values() if p.case is None and p is not only_previous)
    assert world.remove_project(removed.code)
    for response in (nezarat.detail(1), nezarat.detail(removed.portal_id),
                     nezarat.detail(only_previous.portal_id, world.epoch.current_year),
                     nezarat.http.get("/Projects/ProjectDetail.aspx?id=abc")):
        assert response.status_code == 200
        page = soup(response)
        assert page.find("table", id="tblInfo") is None
        assert page.find("span", id="lblNotFound").get_text() == "پروژه مورد نظر یافت نشد"


@pytest.mark.parametrize("path", ["/Nothing.aspx", "/Projects/Other.aspx"])
def test_unknown_paths_are_404(nezarat, path):
    nezarat.login()
    assert nezarat.http.get(path).status_code == 404
