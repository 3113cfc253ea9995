"""The sign-off: archives are byte-stable, never rewritten, and `diff` names a changed figure
without touching them. Hand-made province (tests/reports/test_model.py) on each backend."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from reconcile.settings import RoutingConfig
from reports import archive
from reports.archive import ReviewError, Settings
from store.db import open_store
from store.reviews import all_signoffs
from tests.reports.builders import Province, make_province

NOW = datetime(2026, 11, 25, 7, 30, tzinfo=UTC)  # 1405/09/04 in Tehran: Q2 of 1405 is closed
ROUTING = RoutingConfig(agencies={"305": "infrastructure", "118": "social"})
FILES = ("figures.json", "manifest.json", "report.html", "report.xlsx")


def settings(folder: Path) -> Settings:
    return Settings(folder, ROUTING, report_due_days=15, service_days=10)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def approved(engine, tmp_path):
    make_province(engine)
    entry = archive.approve(engine, 1405, 2, by="مریم احمدی", note="بدون ملاحظه", settings=settings(tmp_path / "a"),
                            now=NOW)
    return entry, Path(entry.archive_path)


def test_approval_archives_the_reports_with_a_manifest_and_records_who_and_when(engine, approved):
    entry, folder = approved
    assert folder == Path(entry.archive_path) and folder.name == "1405-Q2"
    assert sorted(p.name for p in folder.iterdir()) == list(FILES)
    manifest = (folder / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == entry.manifest_sha256
    listed = {f["name"]: f["sha256"] for f in json.loads(manifest)["files"]}
    assert listed == {k: v for k, v in digests(folder).items() if k != "manifest.json"}
    with engine.connect() as conn:
        [stored] = all_signoffs(conn)
    assert (stored.approved_by, stored.note, stored.approved_at, stored.manifest_sha256) == (
        "مریم احمدی", "بدون ملاحظه", NOW, entry.manifest_sha256)
    assert all(not (p.stat().st_mode & stat.S_IWUSR) for p in folder.iterdir())  # read-only
    assert "بررسی نهایی گروه تلفیق: ۱۴۰۵/۰۹/۰۴" in (folder / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_the_same_data_approved_in_another_store_gives_the_same_bytes(approved, tmp_path):
    _, folder = approved
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        make_province(other)
        entry = archive.approve(other, 1405, 2, by="مریم احمدی", note="بدون ملاحظه", settings=settings(tmp_path / "b"),
                                now=NOW)
    finally:
        other.dispose()
    assert digests(Path(entry.archive_path)) == digests(folder)


def test_an_approved_period_is_never_approved_or_written_again(engine, approved, tmp_path):
    _, folder = approved
    before = digests(folder)
    with pytest.raises(ReviewError, match="approved by مریم احمدی") as err:
        archive.approve(engine, 1405, 2, by="دیگری", note=None, settings=settings(tmp_path / "a"), now=NOW)
    assert err.value.exit_code == 3
    assert digests(folder) == before


def test_an_open_quarter_cannot_be_approved(engine, tmp_path):
    make_province(engine)
    with pytest.raises(ReviewError, match="not closed") as err:
        archive.approve(engine, 1405, 3, by="مریم احمدی", note=None, settings=settings(tmp_path), now=NOW)
    assert err.value.exit_code == 3
    assert not (tmp_path / "archive").exists()


def test_a_leftover_folder_is_not_overwritten(engine, tmp_path):
    make_province(engine)
    leftover = archive.folder(tmp_path, 1405, 2)
    leftover.mkdir(parents=True)
    with pytest.raises(ReviewError, match="already exists"):
        archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=NOW)
    with engine.connect() as conn:
        assert all_signoffs(conn) == []


def test_diff_is_empty_on_unchanged_data_and_names_a_late_correction(engine, approved, tmp_path):
    entry, folder = approved
    assert archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))[1] == []
    before = digests(folder)
    with engine.begin() as conn:  # the agency corrects P-1's second quarter on the portal: 40 -> 42
        conn.execute(sa.text("UPDATE progress_report SET progress = 42 WHERE quarter = 2 AND project_year_id = "
                             "(SELECT py.id FROM project_year py JOIN project p ON p.id = py.project_id "
                             "WHERE p.code = 'P-1')"))
    _, changes = archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    by_key = {c.key: (c.archived, c.now) for c in changes}
    assert by_key["project/P-1/q2/reported"] == ("40", "42")
    assert by_key["total/reported_progress"] == ("40", "42")
    assert digests(folder) == before and archive.intact(entry)


def _correct(engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(sql))



@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_names_each_figure_by_its_subject_and_shows_it_as_the_report_does(engine, approved, tmp_path):
    # the agency corrects P-2's first quarter (10 -> 14) and A-1's second chapter spends 30.4, not 25
    _correct(engine, "UPDATE progress_report SET progress = 14 WHERE quarter = 1 AND progress = 10")
    _correct(engine, "UPDATE expense_credit SET spent = 30.4 WHERE chapter = 2")
    _, changes = archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    shown = {c.key: (c.subject, c.figure, c.archived_text, c.now_text, c.finer) for c in changes}
    # a percentage as the page and the workbook show it: up to one place, no trailing zero
    assert shown["project/P-2/q1/reported"] == ("project P-2, Q1", "reported progress", "10%", "14%", False)
    # million rials to up to two places, as the report's columns (whole, they hid a credit break the
    # rule flags); the ratio as a percentage with one place
    assert shown["total/absorbed"] == ("province total", "absorbed credit (million rials)", "775", "780.4",
                                       False)
    assert shown["total/absorption"] == ("province total", "absorption (absorbed / allocated)", "53.4%",
                                         "53.8%", False)
    assert shown["agency/118/absorbed"][0] == "agency 118 اداره کل آموزش و پرورش"
    assert shown["group/social/absorbed"][0] == "group social"
    assert shown["county/دزفول/absorbed"][0] == "county دزفول"
    # the store keeps 0.6585714285714285714285714286: the people's text never does
    assert all(len(text) <= 12 for c in changes for text in (c.archived_text, c.now_text))
    assert changes[0].key.startswith("total/")  # the report's order: the province first


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_shows_a_change_below_the_reports_rounding_with_the_places_it_takes(engine, approved, tmp_path):
    _correct(engine, "UPDATE progress_report SET progress = 40.000001 WHERE quarter = 2 AND progress = 40")
    _correct(engine, "UPDATE progress_report SET progress = 14 WHERE quarter = 1 AND progress = 10")
    _, changes = archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    by_key = {c.key: c for c in changes}
    finer = by_key["project/P-1/q2/reported"]  # the report shows 40% both times: still a change
    assert (finer.archived, finer.now) == ("40", "40.000001")
    assert (finer.archived_text, finer.now_text, finer.finer) == ("40.000000%", "40.000001%", True)
    coarse = by_key["project/P-2/q1/reported"]
    assert (coarse.archived_text, coarse.now_text, coarse.finer) == ("10%", "14%", False)


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_names_days_in_jalali_and_a_deviations_figures_in_their_unit(engine, approved, tmp_path):
    _correct(engine, "UPDATE field_inspection SET visited_on = '2026-09-12'")
    _correct(engine, "UPDATE deviation SET planned = 45, actual = 31.75 WHERE subject = 'P-1'")
    _correct(engine, "UPDATE operation_performance SET quantity = 85.5 WHERE quarter = 2")
    _, changes = archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    shown = {c.key: (c.subject, c.figure, c.archived_text, c.now_text) for c in changes}
    assert shown["project/P-1/q2/visited_on"] == ("project P-1, Q2", "latest field visit on", "1405/06/20",
                                                  "1405/06/21")
    assert shown["deviation/capital/progress_lag/P-1/q2/planned"] == (
        "deviation progress_lag, P-1, Q2", "planned figure", "(none)", "45%")
    # a deviation's figure as its rule writes it (present.figure: up to two places), as the report shows it
    assert shown["deviation/capital/progress_lag/P-1/q2/actual"][3] == "31.75%"
    assert shown["operation/A-1/op-1/delivered"] == (
        "agreement A-1, operation op-1", "delivered quantity, cumulative (نفر-ساعت)", "170", "175.5")


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_says_a_row_new_since_the_sign_off_and_a_severity_left_without_deviations(engine, approved,
                                                                                       tmp_path):
    Province(engine).project("P-4", agency="305", county="اهواز")  # a project the portal listed late
    _correct(engine, "UPDATE deviation SET status = 'resolved' WHERE subject = 'P-1'")  # P-1's minor one
    _, changes = archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    shown = {c.key: (c.subject, c.figure, c.archived_text, c.now_text) for c in changes}
    assert shown["project/P-4/q1/target"] == ("project P-4, Q1", "planned progress (target)",
                                              "(not in archive)", "30%")
    # the report shows a severity without deviations as 0; figures.json leaves it out
    assert shown["total/deviations_minor"] == ("province total", "open deviations, minor", "1", "0")
    assert shown["total/projects"][2:] == ("3", "4")


def test_diff_of_an_unapproved_period_says_so(engine, tmp_path):
    make_province(engine)
    with pytest.raises(ReviewError, match="not approved"):
        archive.diff(engine, 1405, 1, settings=settings(tmp_path))


def test_periods_show_their_state_and_an_altered_archive(engine, approved):
    _, folder = approved
    states = {(p.fiscal_year, p.quarter): (p.state, p.intact) for p in archive.periods(engine, today=NOW.date())}
    assert states == {(1405, 1): ("open", None), (1405, 2): ("approved", True), (1405, 3): ("not_closed", None),
                      (1405, 4): ("not_closed", None)}
    html = folder / "report.html"
    os.chmod(html, stat.S_IRUSR | stat.S_IWUSR)
    altered = html.read_bytes().replace("۴۰٪".encode(), "۹۰٪".encode(), 1)
    assert altered != html.read_bytes()
    html.write_bytes(altered)
    [period] = [p for p in archive.periods(engine, today=NOW.date()) if p.state == "approved"]
    assert period.intact is False


def test_a_race_lost_to_another_approval_leaves_no_second_archive(engine, approved, tmp_path, monkeypatch):
    # Two reviewers pressing at the same moment cannot be timed reliably in a test: the loser's
    # check is made to see no sign-off (as if it ran just before the winner committed), so its
    # insert meets the database's unique key, as it would in the race.
    entry, folder = approved
    monkeypatch.setattr(archive.reviews, "signoff", lambda conn, year, quarter: None)
    with pytest.raises(ReviewError, match="someone else meanwhile"):
        archive.approve(engine, 1405, 2, by="دیگری", note=None, settings=settings(tmp_path / "b"), now=NOW)
    # the sign-off's row is the claim, taken before any file is written: the loser wrote nothing
    assert not (tmp_path / "b" / "archive").exists()
    assert archive.intact(entry)


# A trial by a consolidation group member: `review list` said ALTERED OR MISSING while `review diff`
# compared with the forged figures.json as if it were the archive, and with report.html moved out
# said the store agrees with the archive. diff checks the archive as `review list` does first.

def _writable(path: Path) -> None:
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_refuses_an_archive_whose_figures_were_altered(engine, approved, tmp_path):
    entry, folder = approved
    figures = folder / "figures.json"
    data = json.loads(figures.read_text(encoding="utf-8"))
    assert data["project/P-1/q2/reported"] == "40"
    data["project/P-1/q2/reported"] = "90"  # forged, so the store's 40 would read as a correction
    _writable(figures)
    figures.write_text(json.dumps(data), encoding="utf-8")
    assert not archive.intact(entry)
    with pytest.raises(ReviewError) as err:
        archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    assert err.value.exit_code == 3
    assert "archive of 1405 Q2" in str(err.value) and "figures.json altered" in str(err.value)
    assert archive.problems(entry) == ["figures.json altered (its SHA-256 is not the manifest's)"]


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_refuses_an_archive_missing_a_file(engine, approved, tmp_path):
    entry, folder = approved
    (folder / "report.html").rename(tmp_path / "report.html")  # moved out of the archive
    assert not archive.intact(entry)
    with pytest.raises(ReviewError) as err:
        archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    assert err.value.exit_code == 3
    assert "archive of 1405 Q2" in str(err.value) and "report.html missing" in str(err.value)


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_diff_refuses_an_archive_whose_manifest_was_rewritten_to_match_a_forgery(engine, approved, tmp_path):
    entry, folder = approved
    figures, manifest = folder / "figures.json", folder / "manifest.json"
    forged = figures.read_bytes().replace(b'"40"', b'"90"', 1)
    listed = json.loads(manifest.read_bytes())
    for f in listed["files"]:
        if f["name"] == "figures.json":
            f["sha256"] = hashlib.sha256(forged).hexdigest()
    for path, content in ((figures, forged), (manifest, json.dumps(listed).encode())):
        _writable(path)
        path.write_bytes(content)
    with pytest.raises(ReviewError, match="manifest.json altered") as err:
        archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    assert err.value.exit_code == 3


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_a_missing_archive_folder_is_refused_by_diff(engine, approved, tmp_path):
    entry, folder = approved
    folder.rename(tmp_path / "elsewhere")
    with pytest.raises(ReviewError, match="archive folder .* missing"):
        archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    assert [p.intact for p in archive.periods(engine, today=NOW.date()) if p.state == "approved"] == [False]


# The same trial: after 1405 Q1 was approved, `review diff` of Q2 listed ~40 «monitoring cycle … Q1 │
# reviewed by the consolidation group on │ (none) │ 1405/09/16»: the rebuild took every sign-off of
# the year. It sees those made by the archive's own approval moment.

@pytest.mark.slow_on_postgresql  # what it shows or keeps, not the database: its SQLite variant stays in the default run
@pytest.mark.parametrize("later", [timedelta(days=12), timedelta(hours=2)], ids=["days later", "same day"])
def test_a_quarter_approved_after_the_archive_does_not_show_in_its_diff(engine, approved, tmp_path, later):
    entry, _ = approved
    archive.approve(engine, 1405, 1, by="مریم احمدی", note=None, settings=settings(tmp_path / "a"), now=NOW + later)
    assert archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))[1] == []


@pytest.mark.slow_on_postgresql  # the comparison and the archive's files, not the store: approval and diff run on PostgreSQL in this module's other tests
def test_a_quarter_approved_before_the_archive_is_its_review_day_in_the_diff(engine, tmp_path):
    make_province(engine)
    first = archive.approve(engine, 1405, 1, by="مریم احمدی", note=None, settings=settings(tmp_path),
                            now=NOW - timedelta(days=3))
    archive.approve(engine, 1405, 2, by="مریم احمدی", note=None, settings=settings(tmp_path), now=NOW)
    figures = json.loads((archive.folder(tmp_path, 1405, 2) / "figures.json").read_text(encoding="utf-8"))
    assert figures["cycle/305/q1/reviewed_on"] == archive.tehran_day(first.approved_at).isoformat()
    assert archive.diff(engine, 1405, 2, settings=settings(tmp_path))[1] == []


def test_a_report_entered_after_the_sign_off_shows_on_its_row_not_in_the_cycle_as_it_stood(engine, approved,
                                                                                          tmp_path):
    # P-2's second quarter, missing at the sign-off on 1405/09/04, entered and approved after it
    with engine.connect() as conn:
        py_id = conn.execute(sa.text("SELECT py.id FROM project_year py JOIN project p ON p.id = py.project_id "
                                     "WHERE p.code = 'P-2'")).scalar_one()
    Province(engine).report(SimpleNamespace(id=py_id), 2, 15, reported_on="1405/09/10", decided_on="1405/09/11")
    _, changes = archive.diff(engine, 1405, 2, settings=settings(tmp_path / "a"))
    keys = {c.key for c in changes}
    assert {"project/P-2/q2/reported", "project/P-2/q2/reported_on", "project/P-2/q2/comptroller"} <= keys
    assert not [k for k in keys if k.startswith("cycle/") or k.endswith(("/reports_entered", "/reports_approved",
                                                                          "/reports_overdue"))]
