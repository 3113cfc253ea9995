"""Schedules are validated by the library that runs them (APScheduler 3, zoneinfo): `check-config`
refuses what `serve` could not run, naming the key (issue 12, item 11)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from budgetwatch.cli import main
from budgetwatch.config import load_config
from foundation.jalali import TEHRAN
from service.settings import ScheduleConfig, build_trigger, interval_of

SHIPPED = Path(__file__).resolve().parents[2] / "config.yaml"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("BUDGETWATCH_CONFIG", "BUDGETWATCH_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def check_config(capsys: pytest.CaptureFixture[str], tmp_path: Path, schedule: dict) -> tuple[int, str]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"schedule": schedule}), encoding="utf-8")
    code = main(["--config", str(path), "check-config"])
    captured = capsys.readouterr()
    return code, " ".join(captured.err.split())


@pytest.mark.parametrize(("schedule", "expected"), [
    ({"sync": "99 2 * * *"}, ("schedule.sync = '99 2 * * *': Error validating expression '99': the last value (99) "
                              "is higher than the maximum value (59)")),
    ({"timezone": "Asia/Tehrn"}, "schedule.timezone = 'Asia/Tehrn': unknown time zone 'Asia/Tehrn'"),
    ({"alerts": "0 7 * * 6-3"}, "schedule.alerts = '0 7 * * 6-3': weekday '6-3': write day names"),
    ({"alerts": "0 7 * * sat-wed"}, ("a range cannot wrap past the week's end: list the days, e.g. "
                                     "'sat,sun,mon,tue,wed'")),
    ({"reconcile": "0 2 * *"}, "schedule.reconcile = '0 2 * *': must be a crontab expression of 5 fields"),
    ({"dispatch": "every 0 minutes"}, "schedule.dispatch = 'every 0 minutes': an interval must be at least 1"),
    ({"sync": {"sabaa": "0 2 * * *"}}, "unknown source 'sabaa' (sources: nezarat4, saba)"),
    # an operator's trial: accepted, and serve said "next run -"
    ({"housekeeping": "0 7 31 2 *"}, "schedule.housekeeping = '0 7 31 2 *': '0 7 31 2 *' never comes"),
])
def test_check_config_refuses_a_schedule_the_scheduler_could_not_run(capsys, tmp_path, schedule, expected):
    code, err = check_config(capsys, tmp_path, schedule)
    assert code == 2
    assert expected in err, err
    assert "Traceback" not in err


def test_the_shipped_schedule_is_valid_and_alerts_fall_on_the_iranian_working_week() -> None:
    schedule = load_config(SHIPPED).config.schedule
    trigger = schedule.trigger(schedule.alerts)
    fired, moment = [], datetime(2026, 12, 4, 8, 0, tzinfo=TEHRAN)  # a Friday, after 07:00
    for _ in range(7):
        moment = trigger.get_next_fire_time(None, moment)
        fired.append(moment.strftime("%a %H:%M"))
        moment += timedelta(seconds=1)
    assert fired == ["Sat 07:00", "Sun 07:00", "Mon 07:00", "Tue 07:00", "Wed 07:00", "Sat 07:00", "Sun 07:00"]


def test_a_weekday_number_is_refused_because_cron_and_apscheduler_disagree_on_it() -> None:
    # cron: 0 = Sunday; APScheduler 3: 0 = Monday. '0 7 * * 5' would mean Saturday to one reader and
    # Friday (a holiday) to the scheduler.
    with pytest.raises(ValueError, match="write day names"):
        build_trigger("0 7 * * 5", "Asia/Tehran")


def test_interval_form_and_per_source_sync(capsys, tmp_path) -> None:
    schedule = ScheduleConfig.model_validate({"sync": {"nezarat4": "every 90 seconds", "saba": "15 2 * * *"}})
    assert schedule.sync_for("nezarat4") == "every 90 seconds"
    now = datetime(2026, 12, 3, 12, 0, tzinfo=TEHRAN)
    assert interval_of(schedule.trigger(schedule.sync_for("nezarat4")), now) == timedelta(seconds=90)
    assert interval_of(schedule.trigger(schedule.sync_for("saba")), now) == timedelta(days=1)
    assert interval_of(schedule.trigger(schedule.full_sync), now) == timedelta(days=7)
    code, err = check_config(capsys, tmp_path, {"sync": {"saba": "every 3 hours"}})
    assert code == 0, err
    assert ScheduleConfig.model_validate({"sync": {"saba": "every 3 hours"}}).sync_for("nezarat4") is None


def test_a_schedule_that_comes_rarely_is_not_taken_for_one_that_never_comes() -> None:
    # review: 29 February on a Sunday comes in 2004, 2032, 2060: refused by a first check's 4 years
    from service.settings import build_trigger

    for spec in ("0 7 29 2 *", "0 7 29 2 sun", "0 7 29 2 mon"):
        assert build_trigger(spec, "Asia/Tehran") is not None
