"""A visit's day has a floor, 1390/01/01 (a trial recorded a visit of 1300/01/01), as it has a ceiling
(today): `inspections import` and the console refuse a day before it, naming the line.

Store tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

import budgetwatch.commands.reconcile  # noqa: F401 - registers the commands (cli.py imports it too)
from budgetwatch.cli import main
from reconcile.inspections import InspectionFileError, import_file
from reconcile_builders import Store, day

TODAY = day("1405/09/02")
HEADER = "project_code,date,observed_progress,inspector,remarks\n"


@pytest.fixture
def store(engine):
    s = Store(engine)
    s.project("1305012007-003")
    return s


def test_the_earliest_day_a_visit_may_have_is_1390_01_01():
    from reconcile import inspections

    assert inspections.EARLIEST_VISIT == day("1390/01/01")


def test_a_visit_before_the_floor_or_after_today_is_a_bad_line_and_nothing_is_imported(engine, store, tmp_path):
    path = tmp_path / "visits.csv"
    path.write_text(HEADER
                    + "1305012007-003,1390/01/01,10,علی,\n"  # the floor itself: kept
                    + "1305012007-003,1300/01/01,20,علی,\n"
                    + "1305012007-003,۱۳۸۹/۱۲/۲۹,30,علی,\n"
                    + "1305012007-003,1950-06-01,30,علی,\n"  # ISO, a Gregorian day before it
                    + "1305012007-003,1405/09/03,40,علی,\n", encoding="utf-8")
    with pytest.raises(InspectionFileError) as caught:
        import_file(engine, path, today=TODAY)
    assert [str(p) for p in caught.value.problems] == [
        "line 3: date '1300/01/01' (1300/01/01) is before 1390/01/01, the earliest day a visit may have",
        "line 4: date '۱۳۸۹/۱۲/۲۹' (1389/12/29) is before 1390/01/01, the earliest day a visit may have",
        "line 5: date '1950-06-01' (1329/03/11) is before 1390/01/01, the earliest day a visit may have",
        "line 6: date '1405/09/03' (1405/09/03) is in the future",
    ]


def test_inspections_import_names_the_line_of_a_visit_before_the_floor(engine, store, store_url, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "old.csv"
    path.write_text(HEADER + "1305012007-003,1300/01/01,50,علی,\n", encoding="utf-8")
    code = main(["inspections", "import", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "line 2: date '1300/01/01' (1300/01/01) is before 1390/01/01" in err
