"""The service's section of config.yaml: ``schedule``, when ``budgetwatch serve`` runs each job."""

from __future__ import annotations

from pydantic import field_validator

from foundation.settings import Strict


class ScheduleConfig(Strict):
    timezone: str = "Asia/Tehran"
    sync: str = "0 2 * * *"  # crontab fields: minute hour day month weekday
    reconcile: str = "30 3 * * *"
    alerts: str = "0 7 * * 6-3"  # Saturday to Wednesday, the Iranian working week

    @field_validator("sync", "reconcile", "alerts")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("must be a crontab expression of 5 fields, e.g. '0 2 * * *'")
        return value
