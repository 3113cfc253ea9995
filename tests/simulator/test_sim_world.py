"""The generated province and its ground truth: format, determinism, change, deviations.

How long a province-sized world takes to generate is measured, not asserted: `bench/sync.py`
prints it first (20,000 projects and 10,000 agreements by default; docs/benchmarks.md).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sim_catalogue import as_set, evaluate

from simulator import World
from simulator import calendar as cal

TEHRAN = ZoneInfo("Asia/Tehran")
PROJECT_KEYS = ["project_code", "title", "plan_code", "plan_title", "agency_code", "agency_name", "county",
                "start_year", "end_year", "total_cost", "fiscal_year", "progress_at_year_start", "agreement_no",
                "agreement_status", "credits", "targets", "reports", "gone"]
AGREEMENT_KEYS = ["agreement_no", "fiscal_year", "agency_code", "agency_name", "county", "program_code",
                  "program_title", "status", "credits", "operations", "gone"]
RULES = {
    "capital": {"progress_lag", "missing_report", "approval_overdue", "progress_regression", "spend_progress_gap",
                "credit_inconsistency", "completion_overdue", "inspection_mismatch"},
    "expense": {"operation_shortfall", "unit_cost_overrun", "missing_report", "approval_overdue",
                "credit_inconsistency"},
}


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(7, 600, 300)


def canonical(text: str | None) -> bool:
    if text is None:
        return True
    return (not re.search("[يكى\u0640\u00a0\ufb50-\ufdff\ufe70-\ufeff0-9٠-٩]", text)
            and "  " not in text and text == text.strip())


def test_truth_has_the_export_format_and_canonical_values(world):
    projects, agreements = world.truth_projects(), world.truth_agreements()
    assert len({p["project_code"] for p in projects}) == 600
    for p in projects:
        assert list(p) == PROJECT_KEYS
        assert re.fullmatch(r"\d{10}-\d{3}", p["project_code"]) and p["plan_code"] == p["project_code"][:10]
        assert re.fullmatch(r"\d{3}", p["agency_code"])
        assert all(canonical(p[k]) for k in ("title", "plan_title", "agency_name", "county"))
        assert p["agreement_status"] in {"exchanged", "awaiting", "amended", "cancelled"}
        assert (p["agreement_no"] is None) == (p["agreement_status"] == "awaiting")
        assert isinstance(p["total_cost"], Decimal) and isinstance(p["progress_at_year_start"], Decimal)
        assert [c["source"] for c in p["credits"]] == sorted(c["source"] for c in p["credits"])
        assert set(p["targets"]) <= {"1", "2", "3", "4"}
        assert [r["quarter"] for r in p["reports"]] == sorted(r["quarter"] for r in p["reports"])
        for r in p["reports"]:
            date.fromisoformat(r["reported_on"])
            assert r["comptroller_status"] in {"approved", "pending", "rejected"}
            assert (r["decided_on"] is None) == (r["comptroller_status"] == "pending")
            assert r["remarks"] is None or canonical(r["remarks"]) and r["remarks"]
        assert p["gone"] is False
    for a in agreements:
        assert list(a) == AGREEMENT_KEYS
        assert re.fullmatch(rf"{a['fiscal_year']}-\d{{3}}-\d{{5}}", a["agreement_no"])
        assert a["status"] in {"exchanged", "awaiting", "amended", "cancelled"}
        assert [c["chapter"] for c in a["credits"]] == sorted(c["chapter"] for c in a["credits"])
        assert all(1 <= c["chapter"] <= 7 for c in a["credits"])
        assert [o["code"] for o in a["operations"]] == sorted(o["code"] for o in a["operations"])
        for op in a["operations"]:
            assert len(op["quarterly_targets"]) == 4 and all(isinstance(t, Decimal) for t in op["quarterly_targets"])
            assert canonical(op["title"])
    # Persian digits inside text, ZWNJ where the true name has it
    assert any("۱۲" in p["title"] for p in projects)
    assert "دانشگاه علوم پزشکی جندی\u200cشاپور اهواز" in {p["agency_name"] for p in projects}


def test_province_reference_data(world):
    assert [c.code for c in world.counties] == [f"{i:02d}" for i in range(1, 31)]
    assert len(world.agencies) >= 40 and {a.group for a in world.agencies} == {"social", "infrastructure",
                                                                               "production"}
    assert len({a.code for a in world.agencies}) == len(world.agencies)
    years = Counter(len(p.years) for p in world.projects.values())
    assert years[2] > years[1] > 0  # most projects in both years, some in only one
    sources = Counter(c.source for p in world.projects.values() for y in p.years.values() for c in y.credits)
    assert set(sources) == {"ملی", "استانی", "درآمد اختصاصی", "سایر"}
    ids = [p.portal_id for p in world.projects.values()]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = World.generate(5, 150, 80), World.generate(5, 150, 80), World.generate(6, 150, 80)
    assert a.truth_projects() == b.truth_projects() and a.truth_agreements() == b.truth_agreements()
    assert a.expected_deviations() == b.expected_deviations() and a.inspections() == b.inspections()
    assert a.truth_projects() != c.truth_projects()


def test_changes_bump_last_modified_and_say_what_changed():
    world = World.generate(9, 200, 100)
    year = world.epoch.current_year
    expected = world.expected_deviations()
    moment = world.advance(90)
    assert moment == world.epoch.clock + timedelta(minutes=90)
    codes = world.edit_projects(3)
    assert len(codes) == 3
    assert all(world.projects[c].years[year].last_modified == moment for c in codes)
    numbers = world.edit_agreements(2)
    assert len(numbers) == 2
    edited = [a for a in world.agreements.values() if a.agreement_no in numbers and a.fiscal_year == year]
    assert all(a.modified_at == moment for a in edited)
    added = world.add_project()
    assert world.projects[added].years[year].last_modified == moment
    assert added in {t["project_code"] for t in world.truth_projects()}
    victim = codes[0]
    assert world.remove_project(victim) and not world.remove_project(victim)
    assert victim not in {t["project_code"] for t in world.truth_projects()}
    number = world.add_agreement()
    assert (number, year) in {(a["agreement_no"], a["fiscal_year"]) for a in world.truth_agreements()}
    assert world.remove_agreement(number)
    assert world.expected_deviations() == expected  # ordinary changes never create a deviation


# ------------------------------------------------------------------ reconciliation ground truth


def test_expected_deviations_agree_with_an_independent_reading_of_the_catalogue(world):
    as_of = world.epoch.today
    expected = as_set(world.expected_deviations())
    assert expected == evaluate(world, as_of)


@pytest.mark.parametrize("clock", [
    datetime(2026, 7, 10, 9, 0, tzinfo=TEHRAN),  # Q1 just overdue
    datetime(2026, 4, 20, 9, 0, tzinfo=TEHRAN),  # early in the year: planted in the previous year's Q4
    datetime(2027, 3, 5, 9, 0, tzinfo=TEHRAN),  # late in the year
])
def test_self_check_holds_for_other_clocks(clock):
    world = World.generate(3, 200, 120, clock)
    assert as_set(world.expected_deviations()) == evaluate(world, world.epoch.today)


def test_time_driven_rules_follow_the_as_of_day(world):
    py, pq = world.epoch.plant_year, world.epoch.plant_quarter
    due = cal.due_day(py, pq)
    for as_of in (due, due + timedelta(days=1), world.epoch.today - timedelta(days=30), world.epoch.next_close):
        assert as_set(world.expected_deviations(as_of)) == evaluate(world, as_of), as_of
    missing = lambda d: {e["subject"] for e in world.expected_deviations(d)  # noqa: E731
                         if e["rule"] == "missing_report" and e["quarter"] == pq and e["fiscal_year"] == py}
    assert not missing(due) and missing(due + timedelta(days=1))  # "after the due day", not on it
    with pytest.raises(ValueError):
        world.expected_deviations(world.epoch.next_close + timedelta(days=1))


def test_every_rule_is_planted_in_both_domains_with_each_severity_and_near_misses(world):
    cases = world.planted_cases()
    fired = Counter()
    for case in cases:
        for e in case["expected"]:
            domain = "expense" if world._agreement_by_key.get((e["subject"].split("/")[0], e["fiscal_year"])) \
                else "capital"
            fired[(domain, e["rule"], e["severity"])] += 1
    for domain, rules in RULES.items():
        for rule in rules:
            assert any(d == domain and r == rule for d, r, _ in fired), (domain, rule)
    severities = {
        ("capital", "progress_lag"): {"minor", "major", "critical"},
        ("capital", "spend_progress_gap"): {"major", "critical"},
        ("capital", "completion_overdue"): {"minor", "major", "critical"},
        ("capital", "inspection_mismatch"): {"major", "critical"},
        ("expense", "operation_shortfall"): {"minor", "major", "critical"},
        ("expense", "unit_cost_overrun"): {"minor", "major"},
    }
    for (domain, rule), wanted in severities.items():
        assert {s for d, r, s in fired if (d, r) == (domain, rule)} == wanted
    near_misses = [c for c in cases if not c["expected"] and c["domain"] != "malformed-host"]
    assert {c["rule"] for c in near_misses} >= RULES["capital"] | RULES["expense"]
    # every planted case fires exactly the deviations it lists, as of the clock
    everything = as_set(world.expected_deviations())
    for case in cases:
        listed = {(e["rule"], e["subject"], e["fiscal_year"], e["quarter"], e["severity"]) for e in case["expected"]}
        subject = case["subject"]
        found = {d for d in everything if d[1] == subject or d[1].startswith(subject + "/")}
        assert found == listed, case["case"]


def test_edges_use_the_catalogue_rounding(world):
    cases = {c["case"]: c for c in world.planted_cases()}
    assert cases["PL-02"]["expected"] and not cases["PL-03"]["expected"]  # 4.99995 fires, 4.99994 does not
    assert cases["SG-02"]["expected"] and not cases["SG-03"]["expected"]
    assert cases["CI-03"]["expected"] and not cases["CI-04"]["expected"]
    assert not cases["OS-03"]["expected"] and cases["OS-04"]["expected"]  # 0.84995 → 0.8500 is not below
    assert cases["UC-02"]["expected"] and not cases["UC-03"]["expected"]
    assert cases["IM-03"]["expected"] and not cases["IM-04"]["expected"]
    assert not cases["PR-01"]["expected"] and not cases["CI-01"]["expected"] and not cases["AO-02"]["expected"]


def test_inspections_have_the_documented_shape(world):
    rows = world.inspections()
    assert rows and all(list(r) == ["project_code", "date", "observed_progress", "inspector", "remarks"] for r in rows)
    assert all(re.fullmatch(r"\d{4}/\d{2}/\d{2}", r["date"]) for r in rows)
    planted = {c["subject"] for c in world.planted_cases() if c["domain"] == "inspection"}
    assert planted <= {r["project_code"] for r in rows}
