"""The completion forecast on hand-made progress histories (earned-schedule style)."""

from __future__ import annotations

from decimal import Decimal

from reports.forecast import Point, forecast


def P(year: int, quarter: int, progress) -> Point:
    return Point(year, quarter, Decimal(str(progress)))


def test_steady_pace_reaches_100_in_the_year_the_quarters_run_out():
    # 20 at the start of 1405, then 10 points a quarter: 60 at Q4 leaves 4 quarters -> Q4 of 1406
    history = [P(1405, 0, 20), P(1405, 1, 30), P(1405, 2, 40), P(1405, 3, 50), P(1405, 4, 60)]
    result = forecast(history, end_year=1407)
    assert (result.outlook, result.year, result.pace) == ("forecast", 1406, Decimal(10))
    assert not result.late


def test_a_pace_that_needs_part_of_a_quarter_rounds_up_to_the_whole_quarter():
    # 45 -> 55 over two quarters: 5 a quarter; 45 points left = 9 quarters after 1405 Q2 -> 1407 Q3
    result = forecast([P(1405, 0, 45), P(1405, 1, 50), P(1405, 2, 55)], end_year=1406)
    assert (result.outlook, result.year) == ("forecast", 1407)
    assert result.late  # after the planned end year


def test_only_the_last_four_quarters_set_the_pace():
    # fast in 1404 (20 a quarter), slow over the last four quarters (2.5 a quarter)
    history = [P(1404, 1, 10), P(1404, 2, 30), P(1404, 3, 50), P(1404, 4, 70),
               P(1405, 1, 72.5), P(1405, 2, 75), P(1405, 3, 77.5), P(1405, 4, 80)]
    result = forecast(history)
    assert result.pace == Decimal("2.5")
    assert result.year == 1407  # 20 points left = 8 quarters after 1405 Q4


def test_a_stalled_project_has_no_progress():
    result = forecast([P(1405, 0, 40), P(1405, 1, 40), P(1405, 2, 40)], end_year=1405)
    assert (result.outlook, result.year) == ("no_progress", None)
    assert result.late


def test_a_falling_report_is_no_progress_too():
    assert forecast([P(1405, 1, 50), P(1405, 2, 45)]).outlook == "no_progress"


def test_an_already_complete_project_is_complete_in_the_year_it_got_there():
    result = forecast([P(1404, 3, 90), P(1404, 4, 100), P(1405, 0, 100), P(1405, 1, 100)], end_year=1405)
    assert (result.outlook, result.year) == ("complete", 1404)
    assert not result.late


def test_one_figure_alone_gives_no_pace():
    assert forecast([P(1405, 2, 40)]).outlook == "unknown"
    assert forecast([]).outlook == "unknown"


def test_a_report_more_than_four_quarters_old_is_not_a_baseline():
    assert forecast([P(1403, 4, 10), P(1405, 1, 40)]).outlook == "unknown"


def test_a_year_start_and_the_report_of_the_quarter_before_it_are_one_moment():
    # 1404 Q4 reported 60; 1405 starts at 60 (the same moment): the pace is over 1404 Q3 -> 1405 Q1
    history = [P(1404, 3, 50), P(1404, 4, 60), P(1405, 0, 60), P(1405, 1, 70)]
    result = forecast(history)
    assert result.pace == Decimal(10)
    assert result.year == 1405  # 30 points left = 3 quarters after 1405 Q1: Q4 of 1405
