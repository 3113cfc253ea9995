"""Both connectors over real HTTP against the project's simulator on 127.0.0.1.

What a full read returns must equal the simulator's ground truth (canonical values; text compared by
persian.text_key; a county may come in one of its known spellings, domain.md §10), with and without
each fault switch. Credentials, drift, the in-flight limit, the rate limit and session loss while
paging are checked against what the server saw (sim.log) where the client's word is not enough.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from foundation.persian import text_key
from connectors import (
    AgreementDetail,
    AuthenticationFailed,
    ExpenseAgreementRecord,
    LayoutChanged,
    Nezarat4Client,
    ProjectDetail,
    RejectedDetail,
    SabaClient,
)
from connectors.settings import SabaConfig

from connector_fakes import InFlight, fast_settings

simulator = pytest.importorskip("simulator")
if not hasattr(simulator, "Simulator"):
    pytest.skip("the simulator package does not export Simulator yet", allow_module_level=True)
from simulator import Faults, Simulator, SimulatorConfig  # noqa: E402
from simulator.reference import COUNTIES  # noqa: E402

pytestmark = pytest.mark.anyio

CURRENT_YEAR = 1405  # default_clock(): 4 Azar 1405; the world holds 1404 and 1405
COUNTY_KEY = {text_key(spelling): text_key(c.name) for c in COUNTIES
              for spelling in (c.name, *c.variants)}


@pytest.fixture(scope="module")
def sim():
    # A rate limit well above the contract's 10/s keeps the full reads fast; the rate-limit test
    # below runs against a simulator of its own at the contract's value.
    with Simulator(SimulatorConfig(seed=7, projects=120, agreements=60,
                                   rate_limit_per_second=1000)) as sim:
        yield sim


@pytest.fixture(autouse=True)
def calm(sim):
    sim.set_faults(Faults())
    sim.reset_login_failures()
    yield
    sim.set_faults(Faults())
    sim.reset_login_failures()


def nezarat_settings(sim, **overrides):
    user, password = sim.credentials["nezarat4"]
    values = dict(username=user, password=SecretStr(password), concurrency=8, max_attempts=8)
    return fast_settings(sim.nezarat_url, **(values | overrides))


def saba_settings(sim, **overrides):
    user, password = sim.credentials["saba"]
    values = dict(username=user, password=SecretStr(password), concurrency=8, max_attempts=8,
                  rate_limit_per_second=500.0, page_size=25)
    return fast_settings(sim.saba_url, **(values | overrides))


# --- reading everything, and the truth in the same shape ---------------------------------------------


def _text(value):
    return text_key(value)


def project_view(d: ProjectDetail) -> dict:
    return {
        "project_code": d.project_code, "title": _text(d.title), "plan_code": d.plan_code,
        "plan_title": _text(d.plan_title), "agency_code": d.agency_code,
        "agency_name": _text(d.agency_name), "county": COUNTY_KEY.get(_text(d.county)),
        "start_year": d.start_year, "end_year": d.end_year, "total_cost": d.total_cost,
        "fiscal_year": d.fiscal_year, "progress_at_year_start": d.progress_at_year_start,
        "agreement_no": d.agreement_no, "agreement_status": d.agreement_status,
        "credits": sorted(({"source": _text(c.source), "approved": c.approved,
                            "notified": c.notified, "allocated": c.allocated,
                            "absorbed": c.absorbed} for c in d.credits),
                          key=lambda c: c["source"]),
        "targets": {str(q): v for q, v in sorted(d.targets.items())},
        "reports": [{"quarter": r.quarter, "reported_on": r.reported_on.isoformat(),
                     "progress": r.progress, "absorbed": r.absorbed,
                     "comptroller_status": r.comptroller_status,
                     "decided_on": r.decided_on.isoformat() if r.decided_on else None,
                     "remarks": _text(r.remarks)} for r in sorted(d.reports, key=lambda r: r.quarter)],
    }


def project_truth(t: dict) -> dict:
    view = {key: t[key] for key in (
        "project_code", "plan_code", "agency_code", "start_year", "end_year", "total_cost",
        "fiscal_year", "progress_at_year_start", "agreement_no", "agreement_status", "targets")}
    view |= {"title": _text(t["title"]), "plan_title": _text(t["plan_title"]),
             "agency_name": _text(t["agency_name"]), "county": COUNTY_KEY.get(_text(t["county"]))}
    view["credits"] = sorted(({**c, "source": _text(c["source"])} for c in t["credits"]),
                             key=lambda c: c["source"])
    view["reports"] = [{**r, "remarks": _text(r["remarks"])} for r in t["reports"]]
    return view


def agreement_view(a: ExpenseAgreementRecord, d: AgreementDetail) -> dict:
    return {
        "agreement_no": a.agreement_no, "fiscal_year": a.fiscal_year, "agency_code": a.agency_code,
        "agency_name": _text(a.agency_name), "county": COUNTY_KEY.get(_text(a.county_name)),
        "program_code": a.program_code, "program_title": _text(a.program_title),
        "status": a.status,
        "credits": [{"chapter": c.chapter, "approved": c.approved, "notified": c.notified,
                     "allocated": c.allocated, "spent": c.spent} for c in a.credits],
        "operations": [{
            "code": o.code, "title": _text(o.title), "unit": _text(o.unit),
            "quarterly_targets": list(o.quarterly_targets), "unit_cost": o.unit_cost,
            "performance": [{"quarter": p.quarter, "quantity": p.quantity, "spent": p.spent,
                             "reported_on": p.reported_on.isoformat(),
                             "comptroller_status": p.comptroller_status,
                             "decided_on": p.decided_on.isoformat() if p.decided_on else None,
                             "remarks": _text(p.remarks)}
                            for p in sorted(d.performance, key=lambda p: p.quarter)
                            if p.operation_code == o.code],
        } for o in sorted(d.operations, key=lambda o: o.code)],
    }


def agreement_truth(t: dict) -> dict:
    view = {key: t[key] for key in ("agreement_no", "fiscal_year", "agency_code", "program_code",
                                    "status", "credits")}
    view |= {"agency_name": _text(t["agency_name"]), "county": COUNTY_KEY.get(_text(t["county"])),
             "program_title": _text(t["program_title"])}
    view["operations"] = [{
        **o, "title": _text(o["title"]), "unit": _text(o["unit"]),
        "performance": [{**p, "remarks": _text(p["remarks"])} for p in o["performance"]],
    } for o in t["operations"]]
    return view


async def read_projects(settings, years, transport=None, every: int = 1):
    """The whole list of each year, then the details (of every n-th row); returns (views by key,
    rejections, stats). The views of rows whose detail was not read hold only the list's code."""
    views, rejections = {}, []
    async with Nezarat4Client(settings, transport) as nz:
        for year in years:
            ids = {}
            async for page in nz.list_projects(fiscal_year=year):
                rejections += page.rejections
                ids.update((row.portal_id, row) for row in page.rows)
            chosen = list(ids)[::every]
            for i in ids:
                if i not in chosen:
                    views[(ids[i].project_code, year)] = "listed"
            details = await asyncio.gather(*(nz.project_detail(portal_id=i, fiscal_year=year)
                                             for i in chosen))
            for detail in details:
                if isinstance(detail, RejectedDetail):
                    rejections += detail.rejections
                elif detail is not None:
                    rejections += detail.rejections
                    views[(detail.project_code, year)] = project_view(detail)
        return views, rejections, nz.stats


async def read_agreements(settings, years, transport=None, every: int = 1):
    views, rejections = {}, []
    async with SabaClient(settings, transport) as sb:
        for year in years:
            listed = {}
            async for page in sb.list_agreements(fiscal_year=year):
                rejections += page.rejections
                listed.update((a.portal_id, a) for a in page.items)
            chosen = list(listed.values())[::every]
            for agreement in listed.values():
                if agreement not in chosen:
                    views[(agreement.agreement_no, year)] = "listed"
            details = await asyncio.gather(*(sb.agreement_detail(portal_id=a.portal_id)
                                             for a in chosen))
            for agreement, detail in zip(chosen, details):
                rejections += detail.rejections
                views[(agreement.agreement_no, year)] = agreement_view(agreement, detail)
        return views, rejections, sb.stats


def projects_truth(sim, years):
    return {(t["project_code"], t["fiscal_year"]): project_truth(t)
            for t in sim.world.truth_projects() if t["fiscal_year"] in years}


def agreements_truth(sim, years):
    return {(t["agreement_no"], t["fiscal_year"]): agreement_truth(t)
            for t in sim.world.truth_agreements() if t["fiscal_year"] in years}


def assert_same(read: dict, truth: dict) -> None:
    """Every record of the truth was listed, and every detail read equals its truth."""
    assert read.keys() == truth.keys()
    wrong = [key for key in truth if read[key] != "listed" and read[key] != truth[key]]
    assert not wrong, (wrong[:3], [(read[k], truth[k]) for k in wrong[:1]])


# --- full reads -------------------------------------------------------------------------------------


async def test_nezarat4_full_read_equals_truth_and_in_flight_stays_within_concurrency(sim):
    sim.set_faults(Faults(latency_ms=5))
    transport = InFlight(httpx.AsyncHTTPTransport())
    read, rejections, stats = await read_projects(nezarat_settings(sim, concurrency=3),
                                                  sim.world.years, transport)
    assert_same(read, projects_truth(sim, sim.world.years))
    assert rejections == [] and stats["retries"] == 0
    assert transport.max == 3  # used, and never exceeded


async def test_saba_full_read_equals_truth_and_in_flight_stays_within_concurrency(sim):
    sim.set_faults(Faults(latency_ms=5))
    transport = InFlight(httpx.AsyncHTTPTransport())
    read, rejections, stats = await read_agreements(saba_settings(sim, concurrency=3),
                                                    sim.world.years, transport)
    assert_same(read, agreements_truth(sim, sim.world.years))
    assert rejections == [] and stats["retries"] == 0
    assert transport.max == 3


# --- every fault switch still yields the truth ---------------------------------------------------


@pytest.mark.parametrize("faults", [
    Faults(error500_rate=0.1, seed=1),
    Faults(error200_rate=0.1, seed=2),
    Faults(maintenance_rate=0.02, seed=3),
    Faults(reset_rate=0.05, seed=4),
    Faults(latency_ms=20, latency_jitter_ms=30, seed=5),
], ids=["error500", "error200", "maintenance", "reset", "latency"])
async def test_nezarat4_transient_faults_still_yield_the_truth(sim, faults):
    sim.set_faults(faults)
    read, rejections, stats = await read_projects(nezarat_settings(sim), [CURRENT_YEAR], every=3)
    sim.set_faults(Faults())
    assert_same(read, projects_truth(sim, [CURRENT_YEAR]))
    assert rejections == []
    if faults.latency_ms == 0:
        assert stats["retries"] > 0


async def test_nezarat4_dropped_sessions_still_yield_the_truth(sim):
    # concurrency 1 keeps the order of requests, hence the seeded fault draws, reproducible: a
    # second drop right after a re-login would be a ProtocolError by the contract.
    sim.set_faults(Faults(drop_session_rate=0.04, seed=6))
    read, rejections, stats = await read_projects(nezarat_settings(sim, concurrency=1),
                                                  [CURRENT_YEAR], every=3)
    sim.set_faults(Faults())
    assert_same(read, projects_truth(sim, [CURRENT_YEAR]))
    assert stats["relogins"] > 0


@pytest.mark.parametrize("faults", [
    Faults(error500_rate=0.1, seed=1),
    Faults(maintenance_rate=0.02, seed=3),
    Faults(reset_rate=0.05, seed=4),
    Faults(revoke_token_rate=0.05, seed=7),
], ids=["error500", "maintenance", "reset", "revoke_token"])
async def test_saba_faults_still_yield_the_truth(sim, faults):
    sim.set_faults(faults)
    settings = saba_settings(sim, concurrency=1 if faults.revoke_token_rate else 8)
    read, rejections, stats = await read_agreements(settings, [CURRENT_YEAR], every=2)
    sim.set_faults(Faults())
    assert_same(read, agreements_truth(sim, [CURRENT_YEAR]))
    assert rejections == []
    assert stats["relogins" if faults.revoke_token_rate else "retries"] > 0


async def test_malformed_rows_and_items_become_rejections_and_the_rest_is_the_truth(sim):
    sim.set_faults(Faults(malformed=True))
    projects, p_rejections, _ = await read_projects(nezarat_settings(sim), sim.world.years)
    agreements, a_rejections, _ = await read_agreements(saba_settings(sim), sim.world.years)
    assert_same(projects, projects_truth(sim, sim.world.years))
    assert_same(agreements, agreements_truth(sim, sim.world.years))
    planted = sim.world.malformed_records()
    rejections = p_rejections + a_rejections
    matched = []
    for m in planted:  # each planted fault is rejected, naming its field and raw text
        field = m["field"].replace("[0]", "[]")
        found = [r for r in rejections if r.field == field and (
            r.key == m["key"] or f"id={m['portal_id']} " in r.locator + " ")]
        assert len(found) == 1, m
        matched += found
        if m["portal"] == "nezarat4":  # (SABA's record names the kind of fault, not the bytes)
            assert found[0].raw == m["raw"]
    # beyond those, only the reports of a rejected operation, which have nothing to belong to
    others = [r for r in rejections if r not in matched]
    assert {r.reason for r in others} <= {"performance for an operation the agreement does not list"}
    for rejection in rejections:
        assert rejection.reason and rejection.locator and rejection.raw is not None


async def test_shift_while_paging_one_pass_completes_with_consistent_pages(sim):
    sim.set_faults(Faults(shift_while_paging=True))
    async with Nezarat4Client(nezarat_settings(sim)) as nz:
        pages = [p async for p in nz.list_projects(fiscal_year=CURRENT_YEAR)]
    async with SabaClient(saba_settings(sim)) as sb:
        a_pages = [p async for p in sb.list_agreements(fiscal_year=CURRENT_YEAR)]
    assert [p.page_no for p in pages] == list(range(1, len(pages) + 1))
    assert all(p.rejections == [] for p in pages + a_pages)
    assert [p.page_no for p in a_pages] == list(range(1, len(a_pages) + 1))


# --- session loss mid-paging --------------------------------------------------------------------------


async def test_session_lost_mid_paging_continues_from_the_page_reached(sim):
    async with Nezarat4Client(nezarat_settings(sim)) as nz:
        calm = [p async for p in nz.list_projects(fiscal_year=CURRENT_YEAR)]
        assert len(calm) >= 3
        searches_before = sim.log.total(portal="nezarat4", endpoint="search")
        pages = []
        async for page in nz.list_projects(fiscal_year=CURRENT_YEAR):
            pages.append(page)
            if page.page_no == 2:
                assert sim.drop_sessions() >= 1
        assert nz.stats["relogins"] == 1
    assert [p.page_no for p in pages] == [p.page_no for p in calm]
    assert [[r.portal_id for r in p.rows] for p in pages] == \
        [[r.portal_id for r in p.rows] for p in calm]
    assert sim.log.total(portal="nezarat4", endpoint="search") - searches_before == 2


# --- credentials -------------------------------------------------------------------------------------


@pytest.mark.parametrize("user, password, reason, advice", [
    ("budget.user", "Wr0ng-Secret!", "invalid_credentials", "$NEZARAT4_PASSWORD"),
    ("locked.user", "demo-password", "account_locked", "ask the portal admin to unlock"),
])
async def test_nezarat4_refused_logins(sim, user, password, reason, advice):
    sim.log.reset()
    settings = nezarat_settings(sim, username=user, password=SecretStr(password))
    async with Nezarat4Client(settings) as nz:
        with pytest.raises(AuthenticationFailed) as exc:
            await nz.login()
    assert exc.value.reason == reason and advice in str(exc.value)
    assert password not in str(exc.value) and password not in repr(exc.value)
    assert sim.log.total(portal="nezarat4", endpoint="login") == 2  # one GET, one POST: no retry


async def test_nezarat4_captcha_after_failed_logins(sim):
    wrong = nezarat_settings(sim, password=SecretStr("Wr0ng-Secret!"))
    for _ in range(3):
        async with Nezarat4Client(wrong) as nz:
            with pytest.raises(AuthenticationFailed):
                await nz.login()
    async with Nezarat4Client(nezarat_settings(sim)) as nz:  # even the right password now
        with pytest.raises(AuthenticationFailed) as exc:
            await nz.login()
    assert exc.value.reason == "captcha" and "log in once in a browser" in str(exc.value)
    assert "demo-password" not in repr(exc.value)


@pytest.mark.parametrize("user, password, reason", [
    ("budget.user", "Wr0ng-Secret!", "invalid_credentials"),
    ("locked.user", "demo-password", "account_locked"),
])
async def test_saba_refused_tokens(sim, user, password, reason):
    settings = saba_settings(sim, username=user, password=SecretStr(password))
    async with SabaClient(settings) as sb:
        with pytest.raises(AuthenticationFailed) as exc:
            [p async for p in sb.list_agreements(fiscal_year=CURRENT_YEAR)]
    assert exc.value.reason == reason
    assert password not in str(exc.value) and password not in repr(exc.value)


# --- drift -----------------------------------------------------------------------------------------


async def test_renamed_list_header_is_layout_change(sim):
    sim.set_faults(Faults(layout_change="list_header"))
    async with Nezarat4Client(nezarat_settings(sim)) as nz:
        with pytest.raises(LayoutChanged) as exc:
            [p async for p in nz.list_projects(fiscal_year=CURRENT_YEAR)]
    assert "کد پروژه" in exc.value.expected and "شماره پروژه" in exc.value.found


async def test_missing_detail_span_is_layout_change(sim):
    portal_id = next(p.portal_id for p in sim.world.projects.values() if CURRENT_YEAR in p.years)
    sim.set_faults(Faults(layout_change="detail_span"))
    async with Nezarat4Client(nezarat_settings(sim)) as nz:
        with pytest.raises(LayoutChanged) as exc:
            await nz.project_detail(portal_id=portal_id, fiscal_year=CURRENT_YEAR)
    assert "lblProjectCode" in exc.value.expected


async def test_renamed_saba_field_is_layout_change(sim):
    sim.set_faults(Faults(layout_change="saba_field"))
    async with SabaClient(saba_settings(sim)) as sb:
        with pytest.raises(LayoutChanged) as exc:
            [p async for p in sb.list_agreements(fiscal_year=CURRENT_YEAR)]
    assert exc.value.page == "GET /api/v1/agreements" and "agreementNo" in exc.value.expected


# --- SABA's rate limit ----------------------------------------------------------------------------


async def test_saba_stays_below_the_rate_limit_and_survives_429():
    with Simulator(SimulatorConfig(seed=11, projects=0, agreements=0)) as small:  # 10 req/s
        user, password = small.credentials["saba"]
        truth = agreements_truth(small, [CURRENT_YEAR])

        async def read(settings, first, last):
            async with SabaClient(settings) as sb:
                listed = [a async for p in sb.list_agreements(fiscal_year=CURRENT_YEAR)
                          for a in p.items][first:last]
                details = await asyncio.gather(*(sb.agreement_detail(portal_id=a.portal_id)
                                                 for a in listed))
                views = {(a.agreement_no, a.fiscal_year): agreement_view(a, d)
                         for a, d in zip(listed, details)}
                return views, sb.stats

        # the rate SABA is read at unless config.yaml says otherwise (8/s): at 9/s the 11th start
        # came 0.11 s after the tenth's sliding second, and a CI run on a loaded machine saw one
        # request reach the simulator that much late and the next on time (a 429)
        shipped = SabaConfig.model_fields["rate_limit_per_second"].default
        polite = fast_settings(small.saba_url, username=user, password=SecretStr(password),
                               rate_limit_per_second=shipped, concurrency=4, page_size=200)
        views, stats = await read(polite, 0, 9)  # 20 requests in about 2.5 s
        assert stats["rate_limited"] == 0 and small.log.total(portal="saba", status=429) == 0
        assert all(views[key] == truth[key] for key in views)

        pushy = fast_settings(small.saba_url, username=user, password=SecretStr(password),
                              rate_limit_per_second=1000.0, concurrency=8, max_attempts=10,
                              page_size=200)
        views, stats = await read(pushy, 9, 19)
        assert small.log.total(portal="saba", status=429) > 0 and stats["rate_limited"] > 0
        assert len(views) == 10 and all(views[key] == truth[key] for key in views)


# --- a page read again, as the listing's reader asks (connectors.paging) --------------------------


async def _pages_with_asks(pages, asks: dict[int, list[int]]) -> list[tuple[int, list]]:
    """Drive a listing generator, asking after page n (read in order) for the pages asks[n] again."""
    got, pending, ask = [], [], None
    while True:
        try:
            page = await pages.asend(ask)
        except StopAsyncIteration:
            return got
        rows = [getattr(r, "project_code", None) or getattr(r, "agreement_no") for r in
                (page.rows if hasattr(page, "rows") else page.items)]
        got.append((page.page_no, rows))
        if not pending and page.page_no in asks and len([g for g in got if g[0] == page.page_no]) == 1:
            pending = list(asks[page.page_no])
        ask = pending.pop(0) if pending else None


async def test_a_page_asked_for_again_is_read_again_and_paging_goes_on_after_the_page_reached():
    # 1,200 projects: more than ten pages in a year, so page 11's pager reaches page 10 only
    # through its "..." link (the start of a block)
    with Simulator(SimulatorConfig(seed=3, projects=1200, agreements=300, rate_limit_per_second=1000)) as big:
        year = big.world.years[-1]
        async with Nezarat4Client(nezarat_settings(big), None) as nz:
            plain = await _pages_with_asks(nz.list_projects(fiscal_year=year), {})
            asked = await _pages_with_asks(nz.list_projects(fiscal_year=year), {3: [2, 3], 11: [10]})
        async with SabaClient(saba_settings(big), None) as sb:
            plain_a = await _pages_with_asks(sb.list_agreements(fiscal_year=year), {})
            asked_a = await _pages_with_asks(sb.list_agreements(fiscal_year=year), {2: [1]})
    assert len(plain) > 11
    by_no = dict(plain)
    # page 10 ends a pager block and does not link page 12: the client goes on through page 11
    expected = [(n, by_no[n]) for n in [1, 2, 3, 2, 3, *range(4, 12), 10, 11, *range(12, len(plain) + 1)]]
    assert asked == expected
    by_no_a = dict(plain_a)
    assert len(plain_a) > 2
    assert asked_a == [(n, by_no_a[n]) for n in [1, 2, 1, *range(3, len(plain_a) + 1)]]
