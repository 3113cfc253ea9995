"""The service's section of config.yaml: ``schedule``, when ``budgetwatch serve`` runs each job.

Every schedule is validated here by the library that will run it (APScheduler 3's triggers, the time
zone through zoneinfo), so ``check-config`` refuses what ``serve`` could not run. A schedule is
either a crontab expression of five fields (minute hour day month weekday) or an interval,
``every N seconds|minutes|hours`` (sending the outbox every few minutes reads better that way, and
tests need seconds). Weekdays must be written as names (``sat,sun,mon,tue,wed``): APScheduler 3
numbers them from Monday = 0 where cron has Sunday = 0, so a number would silently mean another
day; ranges do not wrap around the week's end either (``sat-wed`` is refused: list the days).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import Field, field_validator

from foundation.settings import Strict
from foundation.vocabulary import SOURCES, Source

_EVERY = re.compile(r"^every\s+(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_DIGIT_IN_WEEKDAY = re.compile(r"\d")


class ScheduleError(ValueError):
    """A schedule the scheduler could not run; the message says what to write instead."""


def build_trigger(spec: str, timezone: str) -> BaseTrigger:
    """The APScheduler trigger of one schedule (raises ScheduleError naming what is wrong)."""
    zone = zone_info(timezone)
    text = " ".join(spec.split())
    every = _EVERY.match(text)
    if every:
        amount = int(every.group(1))
        if amount < 1:
            raise ScheduleError("an interval must be at least 1")
        seconds = amount * _UNIT_SECONDS[every.group(2)[0].lower()]
        return IntervalTrigger(seconds=seconds, timezone=zone)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ScheduleError("must be a crontab expression of 5 fields (minute hour day month weekday), "
                            "e.g. '0 2 * * *', or an interval such as 'every 5 minutes'")
    if _DIGIT_IN_WEEKDAY.search(fields[4]):
        raise ScheduleError(f"weekday {fields[4]!r}: write day names (mon, tue, ..., sat, sun), e.g. "
                            "'sat,sun,mon,tue,wed' — cron and APScheduler number weekdays differently")
    try:
        trigger = CronTrigger.from_crontab(text, timezone=zone)
    except ValueError as exc:
        message = str(exc)
        if "minimum value in a range" in message:
            message += " (a range cannot wrap past the week's end: list the days, e.g. 'sat,sun,mon,tue,wed')"
        raise ScheduleError(message) from None
    # a day no month has (31 February) is valid cron and never fires: the job would never run
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=zone)) is None:
        raise ScheduleError(f"{text!r} never comes (a day no month has?): the job would never run")
    return trigger


def zone_info(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {name!r} (an IANA name such as 'Asia/Tehran')") from None


def interval_of(trigger: BaseTrigger, now: datetime) -> timedelta:
    """How long one slot of ``trigger`` lasts around ``now`` (the gap between its next two firings)."""
    if isinstance(trigger, IntervalTrigger):
        return trigger.interval
    first = trigger.get_next_fire_time(None, now)
    if first is None:
        return timedelta(days=366)
    second = trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    return (second - first) if second is not None else timedelta(days=366)


class ScheduleConfig(Strict):
    timezone: str = "Asia/Tehran"
    # incremental sync: one schedule for every source, or one per source ({nezarat4: ..., saba: ...})
    sync: str | dict[str, str] = "0 2 * * *"
    full_sync: str = "0 4 * * fri"  # weekly: re-read everything, mark what the portals dropped as gone
    # once a day regardless (rules whose truth changes as days pass); also after every sync that changed data
    reconcile: str = "30 3 * * *"
    # digests are queued on working days (Saturday to Wednesday) and sent at once; the outbox is
    # sent again every few minutes (what failed is retried, what was queued meanwhile goes out)
    alerts: str = "0 7 * * sat,sun,mon,tue,wed"
    dispatch: str = "every 5 minutes"
    housekeeping: str = "30 4 * * *"  # planner statistics / SQLite checkpoint
    # a job missed while the service was down runs once at start if its slot is at most this old
    misfire_grace_seconds: int = Field(default=6 * 3600, ge=1)
    # SIGTERM: how long running jobs get to stop (they are cancelled at once) before the process exits
    stop_timeout_seconds: float = Field(default=30.0, gt=0)
    # status: the outbox is "stuck" when a message has waited this long unsent
    outbox_stuck_minutes: int = Field(default=60, ge=1)
    # status (exit 8) and serve's WARNING: a job still running this long after it was handed over is
    # said to be overrunning (a frozen database session, a portal that never answers). 12 h: the longest
    # run is the weekly full sync, which at 100k projects / 50k agreements reads ~185,000 SABA pages
    # (two per agreement-year, docs/benchmarks.md) at sources.saba.rate_limit_per_second 8 — about
    # 6.5 h, its reconciliation a minute more: twice that, so that a slow portal is not an alarm every
    # Friday. A store whose full sync is short can lower it (to be told of a stuck nightly sync sooner).
    job_overrun_minutes: int = Field(default=12 * 60, ge=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_info(value)
        return value

    @field_validator("full_sync", "reconcile", "alerts", "dispatch", "housekeeping")
    @classmethod
    def _schedule(cls, value: str) -> str:
        build_trigger(value, "UTC")  # the zone does not change what is valid; it is checked on its own
        return value

    @field_validator("sync")
    @classmethod
    def _sync(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(SOURCES))
            if unknown:
                raise ScheduleError(f"unknown source {unknown[0]!r} (sources: {', '.join(SOURCES)})")
        for spec in ([value] if isinstance(value, str) else value.values()):
            build_trigger(spec, "UTC")
        return value

    def sync_for(self, source: Source) -> str | None:
        """The incremental sync schedule of ``source`` (None: not scheduled)."""
        if isinstance(self.sync, str):
            return self.sync
        return self.sync.get(source)

    def trigger(self, spec: str) -> BaseTrigger:
        return build_trigger(spec, self.timezone)
