"""figures.json holds every figure the report shows, and `review diff` lists each in the report's terms.

A trial by a consolidation-group user: after 1405 Q2 was approved, a project's planned end year moved
1407 -> 1409 in the store and `review diff` said the store agrees with the archive, though the
archived report.xlsx read 1407 and a fresh one 1409; a delivered quantity corrected downwards was
listed alone, without the achievement and the cost ratio the report shows beside it; and the diff
wrote an operation's unit of measure after a money figure: «spent, cumulative (million rials) (جلسه)».
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from foundation.jalali import parse_day, quarter_end
from reports import archive
from store import reviews
from store.models import SyncRun
from tests.reports import test_archive, test_reports_cli
from tests.reports.test_archive import _correct, settings

# the figures compared are the report model's, read on both databases by test_model.py and test_archive.py: PostgreSQL with -m slow
pytestmark = pytest.mark.slow_on_postgresql

approved = test_archive.approved  # the fixture: 1405 Q2 of the hand-made province, approved

P1 = "(SELECT py.id FROM project_year py JOIN project p ON p.id = py.project_id WHERE p.code = 'P-1')"


def _diff(engine, tmp_path) -> dict[str, archive.Change]:
    return {c.key: c for c in archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))[1]}


def _shown(change: archive.Change) -> tuple[str, str, str, str]:
    return change.subject, change.figure, change.archived_text, change.now_text


def _read_by_a_sync_begun(engine, moment: datetime) -> int:
    """A sync run begun at `moment`; its id, for the rows it reads."""
    with engine.begin() as conn:
        return conn.execute(sa.insert(SyncRun.__table__).values(
            source="nezarat4", mode="incremental", fiscal_years="1405", started_at=moment, finished_at=moment,
            status="success").returning(SyncRun.__table__.c.id)).scalar_one()


P2 = P1.replace("P-1", "P-2")


@pytest.mark.parametrize("later", [True, False], ids=["read after the sign-off", "read before the sign-off"])
def test_a_report_entered_on_the_sign_off_day_counts_by_when_the_store_read_it(engine, approved, tmp_path, later):
    # P-2's second report and A-1's approval, both dated the sign-off day (1405/09/04; the sign-off at
    # 11:00 Tehran): entered after the sign-off, the nightly sync reads them; `review diff` listed them
    # as changes of the period's discipline (reports entered 1 -> 2), which the archive could not have
    # counted (a trial). Read before it (the archive missed them for another reason), they are changes.
    entry, _ = approved
    run = _read_by_a_sync_begun(engine, entry.approved_at + (timedelta(hours=5) if later else -timedelta(hours=1)))
    _correct(engine, "INSERT INTO progress_report (project_year_id, quarter, reported_on, progress, "
                     f"comptroller_status, first_run_id, last_run_id) VALUES ({P2}, 2, '2026-11-25', 15, 'pending', "
                     f"{run}, {run})")
    _correct(engine, "UPDATE operation_performance SET comptroller_status = 'approved', decided_on = '2026-11-25', "
                     f"last_run_id = {run} WHERE quarter = 2")
    changes = _diff(engine, tmp_path)
    assert changes["project/P-2/q2/reported"].now == "15"  # what the store holds is shown either way
    discipline = {k for k in changes if k.rsplit("/", 1)[-1] in ("reports_entered", "reports_approved",
                                                                "reports_overdue")}
    if later:
        assert discipline == set(), "entered and approved after the sign-off: not the sign-off day's discipline"
    else:
        assert {"total/reports_entered", "total/reports_approved", "total/reports_overdue"} <= discipline


def test_a_projects_planned_end_year_moved_after_the_sign_off_is_listed(engine, approved, tmp_path):
    _correct(engine, f"UPDATE project_year SET end_year = 1409 WHERE id = {P1}")
    changes = _diff(engine, tmp_path)
    assert changes, "the store does not agree with the archive: the report now shows another end year"
    for q in (1, 2):  # the report shows it on each of the project's rows
        assert _shown(changes[f"project/P-1/q{q}/end_year"]) == (f"project P-1, Q{q}", "planned end year",
                                                                 "1407", "1409")


def test_an_end_year_moved_before_the_forecast_marks_the_forecast_late(engine, approved, tmp_path):
    # P-1 gains 10 points a quarter from 20 at the year's start: 100% in 1406, late once it ends in 1405
    _correct(engine, f"UPDATE project_year SET end_year = 1405 WHERE id = {P1}")
    changes = _diff(engine, tmp_path)
    assert _shown(changes["project/P-1/q2/end_year"])[2:] == ("1407", "1405")
    late = changes["project/P-1/q2/forecast_late"]
    assert (late.archived_text, late.now_text) == ("no", "yes")
    assert "project/P-1/q2/forecast_year" not in changes  # the forecast itself did not move


def test_a_corrected_progress_lists_the_gap_and_the_pace_the_report_shows(engine, approved, tmp_path):
    _correct(engine, f"UPDATE progress_report SET progress = 42 WHERE quarter = 2 AND project_year_id = {P1}")
    changes = _diff(engine, tmp_path)
    # target 45: the gap as the report's column writes it, in percentage points, no '%'
    assert _shown(changes["project/P-1/q2/gap"]) == (
        "project P-1, Q2", "gap from target, target - reported (percentage points)", "5", "3")
    # 20 -> 40 over two quarters, then 20 -> 42: the workbook's one place
    assert _shown(changes["project/P-1/q2/pace"]) == (
        "project P-1, Q2", "pace of progress (percentage points per quarter)", "10.0", "11.0")


def test_a_corrected_delivered_quantity_lists_the_achievement_and_cost_ratio_derived_from_it(engine, approved,
                                                                                            tmp_path):
    # A-1's op-1 plans 200 through Q2 and delivered 90 + 80 for 200 + 180 million rials at 2 a unit
    _correct(engine, "UPDATE operation_performance SET quantity = 30 WHERE quarter = 2")
    changes = _diff(engine, tmp_path)
    subject = "agreement A-1, operation op-1"
    assert _shown(changes["operation/A-1/op-1/delivered"]) == (
        subject, "delivered quantity, cumulative (نفر-ساعت)", "170", "120")
    # 85% is operation_shortfall's threshold: 60% is now well below it
    assert _shown(changes["operation/A-1/op-1/achievement"]) == (
        subject, "achievement (delivered / planned)", "85%", "60%")
    assert _shown(changes["operation/A-1/op-1/actual_unit_cost"]) == (
        subject, "actual unit cost, spent / delivered (million rials)", "2.24", "3.17")
    assert _shown(changes["operation/A-1/op-1/cost_ratio"]) == (
        subject, "actual / approved unit cost", "111.8%", "158.3%")
    # what did not change is not listed
    assert not {"operation/A-1/op-1/planned", "operation/A-1/op-1/spent", "operation/A-1/op-1/unit_cost"} & set(changes)


def test_a_ratio_near_its_threshold_is_shown_apart_from_it_as_the_report_shows_it(engine, approved, tmp_path):
    # 169.988 of 200 is 84.994%: the report reads «۸۴٫۹۹٪» beside operation_shortfall's 85%, never «۸۵٪»
    _correct(engine, "UPDATE operation_performance SET quantity = 79.988 WHERE quarter = 2")
    achievement = _diff(engine, tmp_path)["operation/A-1/op-1/achievement"]
    assert (achievement.archived_text, achievement.now_text, achievement.finer) == ("85%", "84.99%", False)


def test_a_money_figure_carries_no_unit_of_measure(engine, approved, tmp_path):
    _correct(engine, "UPDATE operation SET unit = 'جلسه'")
    _correct(engine, "UPDATE operation_performance SET spent = 330, quantity = 75 WHERE quarter = 2")
    changes = _diff(engine, tmp_path)
    assert changes["operation/A-1/op-1/spent"].figure == "spent, cumulative (million rials)"
    assert _shown(changes["operation/A-1/op-1/spent"])[2:] == ("380", "530")
    assert changes["operation/A-1/op-1/delivered"].figure == "delivered quantity, cumulative (جلسه)"
    # the unit of measure goes with the quantities alone: never after money, a ratio or a percentage
    assert not [c.figure for c in changes.values() if "جلسه" in c.figure and not c.key.endswith(("/planned",
                                                                                               "/delivered"))]


def test_the_cycles_days_and_states_and_the_open_deviations_by_rule_are_figures_too(engine, approved, tmp_path):
    _, folder = approved
    held = json.loads((folder / "figures.json").read_text(encoding="utf-8"))
    assert held["edition"] == str(archive.EDITION)
    assert held["cover/service_days"] == "10"
    assert held["rule/capital/progress_lag/minor"] == "1" and held["rule/capital/progress_lag/all"] == "1"
    assert (held["cycle/305/q1/report_days"], held["cycle/305/q1/report_state"]) == ("5", "done")
    # after the sign-off: P-1's first report was in fact entered on 1405/04/15 and approved on 04/20,
    # and its minor progress_lag resolved
    entered, approved_on = parse_day("1405/04/15").isoformat(), parse_day("1405/04/20").isoformat()
    _correct(engine, f"UPDATE progress_report SET reported_on = '{entered}', decided_on = '{approved_on}' "
                     f"WHERE quarter = 1 AND project_year_id = {P1}")
    _correct(engine, "UPDATE deviation SET status = 'resolved' WHERE subject = 'P-1'")
    changes = _diff(engine, tmp_path)
    subject = "monitoring cycle, agency 305 اداره کل راه و شهرسازی, Q1"
    assert _shown(changes["cycle/305/q1/reported_on"]) == (subject, "report entered on", "1405/04/05", "1405/04/15")
    assert _shown(changes["cycle/305/q1/report_days"]) == (subject, "days from the quarter's end to the report",
                                                           "5", "15")
    assert _shown(changes["cycle/305/q1/report_state"]) == (subject, "report step", "done", "done late")
    assert "cycle/305/q1/approval_days" not in changes  # five days from the report either way
    # the cover's table of open deviations by rule changes with the deviation
    assert _shown(changes["rule/capital/progress_lag/all"]) == ("rule progress_lag (capital)",
                                                                "open deviations, all severities", "1",
                                                                "(not in store)")


def test_a_deviations_threshold_is_listed_in_the_reports_words_and_the_terminals_digits(engine, approved,
                                                                                        tmp_path):
    # P-1's progress_lag judged again with its limit kept: the «آستانه» column now reads it
    _correct(engine, """UPDATE deviation SET numbers = '{"threshold": 5}' WHERE subject = 'P-1'""")
    threshold = _diff(engine, tmp_path)["deviation/capital/progress_lag/P-1/q2/threshold"]
    assert _shown(threshold) == ("deviation progress_lag, P-1, Q2", "threshold it was flagged by", "(none)",
                                 "عقب‌ماندگی 5 واحد درصد یا بیشتر")
    assert threshold.now == "عقب‌ماندگی ۵ واحد درصد یا بیشتر"  # figures.json keeps the report's own text


def test_every_key_of_figures_json_is_named_and_shown_in_its_unit(approved):
    """Every part of the report has its figures, and none reaches the diff as a bare key: each has its
    subject and its name (``_describe``)."""
    _, folder = approved
    held = json.loads((folder / "figures.json").read_text(encoding="utf-8"))
    assert {k.partition("/")[0] for k in held} == {"edition", "cover", "total", "group", "county", "agency", "rule",
                                                   "project", "operation", "deviation", "cycle"}
    names = archive._Names({}, {}, {})
    unnamed = [k for k in held if k != "edition" and archive._describe(k, names)[1] == ""]
    assert unnamed == []


def test_every_column_of_the_workbook_has_its_figure(engine, approved):
    """Each figure column of the projects', agreements' and cycle's sheets has a key in figures.json."""
    _, folder = approved
    held = set(json.loads((folder / "figures.json").read_text(encoding="utf-8")))
    fields = {key.rpartition("/")[2] for key in held}
    assert {"target", "reported", "gap", "comptroller", "reported_on", "visited_on", "observed", "forecast_year",
            "forecast", "forecast_late", "end_year", "pace"} <= fields
    assert {"planned", "delivered", "achievement", "spent", "unit_cost", "actual_unit_cost", "cost_ratio"} <= fields
    assert {"severity", "status", "planned", "actual", "threshold"} <= fields
    assert {"due", "entered", "approved", *(f"{s}_{x}" for s in ("report", "approval", "review")
                                           for x in ("days", "state"))} <= fields


# An archive approved before figures.json held these figures must still be compared fairly: its
# figures.json is what it is (signed), so the figures added since are no changes of the store.

ADDED = {  # the figures added to figures.json by this change: section -> fields (None: all of it)
    "cover": None, "rule": None, "project": {"gap", "forecast_late", "end_year", "pace"},
    "operation": {"achievement", "actual_unit_cost", "cost_ratio"}, "deviation": {"threshold"},
    "cycle": {f"{step}_{what}" for step in ("report", "approval", "review") for what in ("days", "state")},
}


def _added(key: str) -> bool:
    section, field = key.partition("/")[0], key.rpartition("/")[2]
    return section in ADDED and (ADDED[section] is None or field in ADDED[section])


def _as_before_this_change(engine, folder: Path) -> None:
    """Rewrite an archive as an approval before this change left it: figures.json without its edition
    and the figures added since, the manifest's digest of it and the store's digest of the manifest
    made again as approve makes them, so that the archive passes its check."""
    figures, manifest = folder / "figures.json", folder / "manifest.json"
    old = {k: v for k, v in json.loads(figures.read_bytes()).items() if k != "edition" and not _added(k)}
    content = (json.dumps(old, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")
    listed = json.loads(manifest.read_bytes())
    for f in listed["files"]:
        if f["name"] == "figures.json":
            f["bytes"], f["sha256"] = len(content), hashlib.sha256(content).hexdigest()
    written = (json.dumps(listed, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode("utf-8")
    for path, data in ((figures, content), (manifest, written)):
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        path.write_bytes(data)
    _correct(engine, f"UPDATE review_signoff SET manifest_sha256 = '{hashlib.sha256(written).hexdigest()}' "
                     "WHERE fiscal_year = 1405 AND quarter = 2")
    with engine.connect() as conn:
        assert archive.intact(reviews.signoff(conn, 1405, 2))  # what `review list` calls intact


def test_an_archive_made_before_the_new_figures_is_compared_on_those_it_holds_and_says_so_once(
        engine, approved, tmp_path, caplog):
    _, folder = approved
    _as_before_this_change(engine, folder)
    with caplog.at_level(logging.WARNING, logger="budgetwatch.reports"):
        assert archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))[1] == []
    said = [r.getMessage() for r in caplog.records if r.name == "budgetwatch.reports"]
    assert len(said) == 1, said  # once for the period, not once for each row
    assert said[0].startswith("1405 Q2: the archive was approved before figures.json held these figures")
    assert "projects: " in said[0] and "planned end year" in said[0] and "achievement (delivered / planned)" in said[0]
    # corrections after it: the figures it holds are listed, those it could not hold are not
    _correct(engine, "UPDATE operation_performance SET quantity = 30 WHERE quarter = 2")
    _correct(engine, f"UPDATE project_year SET end_year = 1409 WHERE id = {P1}")
    changes = _diff(engine, tmp_path)
    assert _shown(changes["operation/A-1/op-1/delivered"])[2:] == ("170", "120")
    assert not [k for k in changes if _added(k)]


def test_compare_takes_an_archives_edition_from_its_figures(engine, approved, tmp_path):
    """The comparison alone: an edition-1 figures.json (no "edition") against the archive's report
    made again from the store."""
    _, folder = approved
    held = json.loads((folder / "figures.json").read_text(encoding="utf-8"))
    old = {k: v for k, v in held.items() if k != "edition" and not _added(k)}
    with engine.connect() as conn:
        entry = reviews.signoff(conn, 1405, 2)
        report = archive._period_report(conn, 1405, 2, entry.as_of, entry.approved_at, settings(tmp_path / "a"))
    assert archive.compare(held, report).changes == [] and archive.compare(held, report).not_held == []
    found = archive.compare(old, report)
    assert found.changes == []
    assert any(part.startswith("monitoring cycle: ") for part in found.not_held)
    # edition 1 wrote an entry day the portal left empty (P-2's first report) as the quarter's last day:
    # the same fact as the empty day shown now, not a change; in an edition-2 archive it would be one
    written = quarter_end(1405, 1).isoformat()
    assert held["project/P-2/q1/reported_on"] is None
    assert archive.compare({**old, "project/P-2/q1/reported_on": written}, report).changes == []
    [change] = archive.compare({**held, "project/P-2/q1/reported_on": written}, report).changes
    assert change.key == "project/P-2/q1/reported_on"
    # a figure of edition 2 missing from an edition-2 archive is a change, as any other
    partial = {k: v for k, v in held.items() if k != "project/P-1/q2/end_year"}
    [change] = archive.compare(partial, report).changes
    assert (change.key, change.archived_text, change.now_text) == ("project/P-1/q2/end_year", "(not in archive)",
                                                                  "1407")


cli = test_reports_cli.cli  # the fixture: budgetwatch's command line on the hand-made province


@pytest.mark.slow_on_postgresql
def test_review_diff_on_the_command_line_names_the_trials_figures_in_their_units(cli, engine):
    assert cli("review", "approve", "--year", "1405", "--quarter", "2", "--by", "مریم احمدی")[0] == 0
    _correct(engine, "UPDATE operation SET unit = 'جلسه'")
    _correct(engine, f"UPDATE project_year SET end_year = 1409 WHERE id = {P1}")
    _correct(engine, "UPDATE operation_performance SET quantity = 30, spent = 230 WHERE quarter = 2")
    code, out, _ = cli("review", "diff", "--year", "1405", "--quarter", "2")
    assert code == 4 and "agrees" not in out
    assert re.search(r"project P-1, Q2 +│ planned end year +│ +1407 │ +1409 ", out), out
    assert re.search(r"operation op-1 +│ delivered quantity, cumulative \(جلسه\) +│ +170 │ +120 ", out), out
    assert re.search(r"operation op-1 +│ achievement \(delivered / planned\) +│ +85% │ +60% ", out), out
    assert re.search(r"operation op-1 +│ spent, cumulative \(million rials\) +│ +380 │ +430 ", out), out
    assert re.search(r"operation op-1 +│ actual / approved unit cost +│ +111\.8% │ +179\.2% ", out), out
    assert "(جلسه)" not in "".join(line for line in out.splitlines() if "quantity" not in line)
