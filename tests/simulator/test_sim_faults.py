"""Every fault switch produces what the contracts say, reproducibly."""

from __future__ import annotations

import time

import httpx
import pytest
from simhelpers import Nezarat, Saba, ascii_digits, form_fields, make_sim, soup

from simulator import Faults, ManualClock


def test_rates_are_validated():
    with pytest.raises(ValueError):
        Faults(error500_rate=1.5)
    with pytest.raises(ValueError):
        Faults(layout_change="everything")


def test_latency_and_jitter(sim, nezarat):
    sim.set_faults(Faults(latency_ms=120))
    started = time.perf_counter()
    nezarat.http.get("/Login.aspx")
    assert time.perf_counter() - started >= 0.12
    sim.set_faults(Faults(latency_jitter_ms=80, seed=3))
    delays = [sim.draw("saba").delay_seconds for _ in range(50)]
    assert all(0 <= d <= 0.08 for d in delays) and len(set(delays)) > 40
    sim.set_faults(Faults(latency_jitter_ms=80, seed=3))
    assert [sim.draw("saba").delay_seconds for _ in range(50)] == delays  # the same seed, the same delays


def test_error500_on_both_portals(sim, nezarat, saba):
    saba.authenticate()
    nezarat.login()
    sim.set_faults(Faults(error500_rate=1.0))
    response = nezarat.http.get("/Projects/ProjectList.aspx")
    assert response.status_code == 500 and "<title>Runtime Error</title>" in response.text
    response = saba.get("/api/v1/agreements", fiscalYear=1405)
    assert (response.status_code, response.json()) == (500, {"error": "internal_error"})
    assert sim.log.counts()[("nezarat4", "list", 500)] == 1
    assert sim.log.counts()[("saba", "agreements", 500)] == 1


def test_error200_serves_an_error_page_with_status_200(sim, nezarat):
    nezarat.login()
    sim.set_faults(Faults(error200_rate=1.0))
    bodies = [nezarat.http.get("/Projects/ProjectList.aspx") for _ in range(16)]
    assert {r.status_code for r in bodies} == {200}
    runtime = [r for r in bodies if "<title>Runtime Error</title>" in r.text]
    lbl = [r for r in bodies if soup(r).find("span", id="lblError") is not None]
    assert runtime and lbl and len(runtime) + len(lbl) == 16
    assert soup(lbl[0]).find("span", id="lblError").get_text() == "خطا در پردازش درخواست"
    assert all("gvProjects" not in r.text for r in bodies)


def test_maintenance_503_with_retry_after_or_the_maintenance_page(sim, nezarat, saba):
    sim.set_faults(Faults(maintenance_rate=1.0))
    answers = [nezarat.http.get("/Login.aspx") for _ in range(16)]
    unavailable = [r for r in answers if r.status_code == 503]
    pages = [r for r in answers if r.status_code == 200]
    assert unavailable and pages
    assert all(r.headers["retry-after"] == "1" for r in unavailable)
    assert all(soup(r).find("div", id="maintenance").get_text() == "سامانه در حال بروزرسانی است" for r in answers)
    response = saba.http.post("/api/v1/auth/token", json={"username": "budget.user", "password": "demo-password"})
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


def test_drop_session_redirects_to_login_with_return_url(sim, nezarat):
    nezarat.login()
    sim.set_faults(Faults(drop_session_rate=1.0))
    # a fresh session's first 8 requests are spared: the request repeated after a login gets through
    for _ in range(8):
        assert nezarat.http.get("/Default.aspx").status_code == 200
    response = nezarat.http.get("/Projects/ProjectDetail.aspx?id=3")
    assert response.status_code == 302
    assert response.headers["location"] == "/Login.aspx?ReturnUrl=%2FProjects%2FProjectDetail.aspx%3Fid%3D3"
    sim.set_faults(Faults())
    assert nezarat.http.get("/Default.aspx").status_code == 302  # the session is really gone


def test_revoke_token_answers_token_expired(sim, clock, saba):
    sim.set_faults(Faults(revoke_token_rate=1.0))
    assert saba.authenticate().status_code == 200
    for _ in range(8):  # a fresh token's first 8 requests are spared
        assert saba.get("/api/v1/agreements", fiscalYear=1405).status_code == 200
    clock.advance(1)
    response = saba.get("/api/v1/agreements", fiscalYear=1405)
    assert (response.status_code, response.json()) == (401, {"error": "token_expired"})
    sim.set_faults(Faults())
    assert saba.get("/api/v1/agreements", fiscalYear=1405).status_code == 401  # revoked for good


def test_reset_closes_the_connection_without_a_response(sim):
    sim.set_faults(Faults(reset_rate=1.0))
    for url in (sim.nezarat_url + "/Login.aspx", sim.saba_url + "/api/v1/agreements"):
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(url, timeout=5)
    assert sim.log.counts() == {("nezarat4", "login", 0): 1, ("saba", "agreements", 0): 1}


def test_partial_rates_are_about_right_and_reproducible(clock):
    def statuses(fault_seed: int) -> list[int]:
        simulator = make_sim(ManualClock(0), projects=10, agreements=10)
        try:
            simulator.set_faults(Faults(error500_rate=0.3, maintenance_rate=0.2, seed=fault_seed))
            with httpx.Client(base_url=simulator.nezarat_url) as http:
                return [http.get("/Login.aspx").status_code for _ in range(150)]
        finally:
            simulator.stop()

    first = statuses(1)
    assert first == statuses(1)
    assert first != statuses(2)
    errors = first.count(500) / len(first)
    assert 0.15 < errors < 0.45
    assert 0.05 < (first.count(503) + sum(1 for s in first if s == 200)) / len(first) < 0.95


def test_layout_change_list_header(sim, nezarat):
    nezarat.login()
    sim.set_faults(Faults(layout_change="list_header"))
    headers = [th.get_text() for th in soup(nezarat.list()).find("tr", class_="header").find_all("th")]
    assert headers[1] != "کد پروژه" and len(headers) == 9


def test_layout_change_detail_span(sim, nezarat):
    nezarat.login()
    project = next(iter(sim.world.projects.values()))
    sim.set_faults(Faults(layout_change="detail_span"))
    page = soup(nezarat.detail(project.portal_id, next(iter(project.years))))
    assert page.find("table", id="tblInfo") is not None
    assert page.find("span", id="lblProjectCode") is None


def test_layout_change_saba_field(sim, saba):
    saba.authenticate()
    sim.set_faults(Faults(layout_change="saba_field"))
    item = saba.get("/api/v1/agreements", fiscalYear=1405).json()["items"][0]
    assert "agreementNo" not in item and "agreementNumber" in item


# ------------------------------------------------------------------ malformed


def test_malformed_rows_and_items_are_served_as_planted(sim, nezarat, saba):
    world = sim.world
    records = world.malformed_records()
    kinds = {(m["portal"], m["where"], m["field"]) for m in records}
    assert {("nezarat4", "list", "approved_credit"), ("nezarat4", "list", "progress"),
            ("nezarat4", "list", "last_modified"), ("nezarat4", "detail", "lblProjectCode"),
            ("nezarat4", "detail", "period"), ("nezarat4", "detail", "reported_on"), ("nezarat4", "detail", "progress"),
            ("saba", "agreements", "status"), ("saba", "agreements", "credits[0].chapter"),
            ("saba", "agreements", "credits[0].approved"), ("saba", "operations", "unitCost"),
            ("saba", "operations", "quarterlyTargets"), ("saba", "performance", "comptroller.status"),
            ("saba", "performance", "quantity"), ("saba", "performance", "reportedAt"),
            ("saba", "performance", "quarter"), ("saba", "performance", "operationCode")} == kinds
    truth_before = world.truth_projects(), world.truth_agreements()
    expected_before = world.expected_deviations()
    nezarat.login()
    saba.authenticate()

    def list_row(code, year):
        nezarat.list()
        page = soup(nezarat.search(year=year))
        while True:
            for row in page.find_all("tr", class_=["row", "altrow"]):
                if ascii_digits(row.find_all("td")[1].get_text().strip()) == code:
                    return row.get_text("|")
            pager = page.find("tr", class_="pager")
            current = int(pager.find("span").get_text())
            if not pager.find("a", string=str(current + 1)) and not pager.find_all("a")[-1].get_text() == "...":
                return None
            page = soup(nezarat.goto(current + 1))

    nezarat_list = [m for m in records if m["where"] == "list"]
    clean = {m["key"]: list_row(m["key"], m["fiscal_year"]) for m in nezarat_list}
    sim.set_faults(Faults(malformed=True))
    for m in nezarat_list:
        row = list_row(m["key"], m["fiscal_year"])
        assert m["raw"] in row and m["raw"] not in clean[m["key"]]
    for m in (m for m in records if m["portal"] == "nezarat4" and m["where"] == "detail"):
        assert m["raw"] in nezarat.detail(m["portal_id"], m["fiscal_year"]).text
    for m in (m for m in records if m["portal"] == "saba"):
        if m["where"] == "agreements":
            items = saba.get("/api/v1/agreements", fiscalYear=m["fiscal_year"], pageSize=200).json()["items"]
            item = next(i for i in items if i["id"] == m["portal_id"])
            served = item["status"] if m["field"] == "status" else item["credits"][0][m["field"].split(".")[1]]
            assert served == m["raw"]
        else:
            body = saba.get(f"/api/v1/agreements/{m['portal_id']}/{m['where']}").json()["items"]
            text = repr(body)
            if m["field"] == "quarterlyTargets":
                op = next(i for i in body if i["code"] == m["locator"])
                assert len(op["quarterlyTargets"]) == 3
            elif m["field"] == "unitCost":
                assert isinstance(next(i for i in body if i["code"] == m["locator"])["unitCost"], str)
            elif m["field"] == "quantity":
                assert any(isinstance(i["quantity"], str) for i in body)
            else:
                assert repr(m["raw"]) in text
    # What a correct client ends with: the broken records, rows and items are absent …
    projects, agreements = world.truth_projects(), world.truth_agreements()
    absent = {(m["key"], m["fiscal_year"]) for m in records if m["effect"] == "record_absent"}
    present = {(p["project_code"], p["fiscal_year"]) for p in projects}
    present |= {(a["agreement_no"], a["fiscal_year"]) for a in agreements}
    assert not absent & present
    assert len(projects) == len(truth_before[0]) - sum(1 for m in records if m["portal"] == "nezarat4"
                                                        and m["effect"] == "record_absent")
    assert sum(len(p["reports"]) for p in projects) == sum(len(p["reports"]) for p in truth_before[0]
                                                           if (p["project_code"], p["fiscal_year"]) not in absent) - 3
    assert world.truth_projects(exclude_malformed=False) == truth_before[0]
    assert world.expected_deviations() == expected_before  # no planted case is a malformation host
    sim.set_faults(Faults())
    assert world.truth_agreements() == truth_before[1]


# ------------------------------------------------------------------ shift while paging


def test_shift_while_paging_moves_items_between_pages(clock):
    simulator = make_sim(clock, projects=400, agreements=250)
    try:
        world = simulator.world
        year = world.epoch.current_year
        before = {p.code for p, _ in world.project_rows(year)}
        simulator.set_faults(Faults(shift_while_paging=True))
        client = Nezarat(simulator)
        client.login()
        client.list()
        seen = []
        pages = 1
        while True:
            grid = client.page.find("table", id="ctl00_ContentPlaceHolder1_gvProjects")
            seen += [ascii_digits(r.find_all("td")[1].get_text().strip())
                     for r in grid.find_all("tr", class_=["row", "altrow"])]
            pager = grid.find("tr", class_="pager")
            if pager.find_all("td")[-1].find("span"):
                break
            pages += 1
            assert client.goto(pages).status_code == 200
        after = {p.code for p, _ in world.project_rows(year)}
        assert before != after
        naive = set(seen)
        # a naive pager both repeats and misses projects when the list shifts under it
        assert len(seen) != len(naive) or (before & after) - naive
        assert any(code not in naive for code in before & after) or len(seen) > len(naive)
        truth_codes = {t["project_code"] for t in world.truth_projects() if t["fiscal_year"] == year}
        assert truth_codes == after

        saba = Saba(simulator)
        saba.authenticate()
        ids_before = [a.portal_id for a in world.agreement_rows(year)]
        first = saba.get("/api/v1/agreements", fiscalYear=year, pageSize=20).json()
        clock.advance(1)
        second = saba.get("/api/v1/agreements", fiscalYear=year, page=2, pageSize=20).json()
        ids_after = [a.portal_id for a in world.agreement_rows(year)]
        assert ids_before != ids_after
        served = [i["id"] for i in first["items"] + second["items"]]
        assert served != ids_before[:40]  # an item moved from page 2 to page 1 and was skipped
        client.close()
        saba.close()
    finally:
        simulator.stop()


def test_shift_is_reproducible():
    def run() -> list:
        simulator = make_sim(ManualClock(0), projects=200, agreements=20,
                             faults=Faults(shift_while_paging=True))
        try:
            client = Nezarat(simulator)
            client.login()
            client.list()
            out = [client.page.text]
            fields = form_fields(client.page)
            out.append(client.goto(2, fields).text)
            out.append(client.goto(3).text)
            return out
        finally:
            simulator.stop()

    assert run() == run()
