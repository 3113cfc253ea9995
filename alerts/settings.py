"""The alerts' section of config.yaml (``alerts``) and the experts who receive them (``experts``)."""

from __future__ import annotations

from typing import Literal

from pydantic import EmailStr, Field, model_validator

from foundation.settings import Strict
from foundation.vocabulary import Group, Severity


class SmtpConfig(Strict):
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = "BUDGETWATCH_SMTP_PASSWORD"
    timeout_seconds: float = Field(default=30.0, gt=0)


class AlertsConfig(Strict):
    enabled: bool = False
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    sender: EmailStr | None = None
    min_severity: Severity = "major"

    @model_validator(mode="after")
    def _sender_when_enabled(self) -> AlertsConfig:
        if self.enabled and not self.sender:
            raise ValueError("sender is required when alerts are enabled")
        return self


class Expert(Strict):
    name: str
    email: EmailStr
    group: Group
