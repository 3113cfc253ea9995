"""config.yaml: one file, validated before anything runs.

Defaults live here in code; the shipped config.yaml documents every key. An unknown key is an error
naming its path (a misspelt threshold must not silently fall back to its default). Errors are
reported as one line per problem: the key's path, the value found, and what is expected.

Credentials never live in the file: a source names the environment variable (or a file outside the
repository) that holds its password, and the password is read only when a connector needs it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr, ValidationError, field_validator, model_validator

from connectors.settings import MAX_CONCURRENCY, PortalSettings

CONFIG_ENV = "BUDGETWATCH_CONFIG"
DATABASE_ENV = "BUDGETWATCH_DATABASE_URL"
DEFAULT_CONFIG_FILE = "config.yaml"

Group = Literal["social", "infrastructure", "production", "consolidation"]
Severity = Literal["minor", "major", "critical"]
SEVERITIES: tuple[str, ...] = ("minor", "major", "critical")


class ConfigError(Exception):
    """The configuration is unusable. ``problems`` holds one line per problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- sources ----------------------------------------------------------------------------------


class SourceConfig(_Strict):
    enabled: bool = True
    base_url: str
    username: str = ""
    password_env: str | None = None
    password_file: Path | None = None
    fiscal_years: list[int] = Field(default_factory=list)  # empty: current and previous year
    concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    max_retry_seconds: float = Field(default=300.0, gt=0)
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=60.0, gt=0)
    overlap_days: int = Field(default=1, ge=0, le=30)  # look-back of incremental syncs
    verify_tls: bool = True

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        return value.rstrip("/")

    @field_validator("fiscal_years")
    @classmethod
    def _years(cls, value: list[int]) -> list[int]:
        for year in value:
            if not 1390 <= year <= 1500:
                raise ValueError(f"{year} is not a Jalali fiscal year (e.g. 1405)")
        return sorted(set(value))

    def password(self, source: str) -> SecretStr:
        """Read the password now, from the environment variable or the file the config names."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value:
                return SecretStr(value)
            if not self.password_file:
                raise ConfigError(
                    "environment",
                    [f"sources.{source}.password_env: the variable {self.password_env} is not set"],
                )
        if self.password_file:
            try:
                return SecretStr(self.password_file.expanduser().read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(
                    "environment",
                    [f"sources.{source}.password_file: cannot read {self.password_file} ({exc.strerror})"],
                ) from None
        raise ConfigError(
            "config", [f"sources.{source}: set password_env or password_file for the password"]
        )


class Nezarat4Config(SourceConfig):
    base_url: str = "https://nezarat.mpo-kz.ir"
    password_env: str | None = "NEZARAT4_PASSWORD"
    page_pause_seconds: float = Field(default=0.2, ge=0)


class SabaConfig(SourceConfig):
    base_url: str = "https://saba.mpong.ir"
    password_env: str | None = "SABA_PASSWORD"
    page_size: int = Field(default=200, ge=1, le=200)
    # the contract's limit is 10 a second per token; raise it only where a portal's operators allow
    # more (the simulator in tests and benchmarks does)
    rate_limit_per_second: float = Field(default=8.0, gt=0, le=1000)


class SourcesConfig(_Strict):
    nezarat4: Nezarat4Config = Field(default_factory=Nezarat4Config)
    saba: SabaConfig = Field(default_factory=SabaConfig)


# --- reconciliation ---------------------------------------------------------------------------


class _Rule(_Strict):
    enabled: bool = True


class ProgressLagRule(_Rule):
    """gap = target − actual in points: minor ≥ minor, major ≥ major, critical ≥ critical."""

    minor: float = 5
    major: float = 15
    critical: float = 30


class MissingReportRule(_Rule):
    pass


class ApprovalOverdueRule(_Rule):
    pass


class ProgressRegressionRule(_Rule):
    tolerance: float = 0.5  # points a report may fall below the previous one before it flags


class SpendProgressGapRule(_Rule):
    major: float = 0.30  # spend_share − physical_share
    critical: float = 0.50


class CreditInconsistencyRule(_Rule):
    tolerance: float = 0.5  # million rials by which one stage may exceed the one before it


class CompletionOverdueRule(_Rule):
    major_years: int = 2  # years past the planned end year (1 year is minor)
    critical_years: int = 3


class InspectionMismatchRule(_Rule):
    major: float = 10  # points between observed and reported progress
    critical: float = 25


class OperationShortfallRule(_Rule):
    threshold: float = 0.85  # flags when actual_cum / planned_cum is below this
    minor: float = 0.70  # ratio ≥ minor is minor
    major: float = 0.40  # minor > ratio ≥ major is major; below major is critical


class UnitCostOverrunRule(_Rule):
    minor: float = 1.20  # (spent_cum / actual_cum) / unitCost ≥ minor flags
    major: float = 1.50


class RulesConfig(_Strict):
    progress_lag: ProgressLagRule = Field(default_factory=ProgressLagRule)
    missing_report: MissingReportRule = Field(default_factory=MissingReportRule)
    approval_overdue: ApprovalOverdueRule = Field(default_factory=ApprovalOverdueRule)
    progress_regression: ProgressRegressionRule = Field(default_factory=ProgressRegressionRule)
    spend_progress_gap: SpendProgressGapRule = Field(default_factory=SpendProgressGapRule)
    credit_inconsistency: CreditInconsistencyRule = Field(default_factory=CreditInconsistencyRule)
    completion_overdue: CompletionOverdueRule = Field(default_factory=CompletionOverdueRule)
    inspection_mismatch: InspectionMismatchRule = Field(default_factory=InspectionMismatchRule)
    operation_shortfall: OperationShortfallRule = Field(default_factory=OperationShortfallRule)
    unit_cost_overrun: UnitCostOverrunRule = Field(default_factory=UnitCostOverrunRule)


class ReconcileConfig(_Strict):
    as_of: date | None = None  # None: today in Asia/Tehran
    report_due_days: int = Field(default=15, ge=0, le=120)
    approval_due_days: int = Field(default=15, ge=0, le=120)
    # processes that read and judge a large store's chunks; None: one per CPU (at most 4) from
    # 20,000 subjects up, 0: always in the run's own process (reconcile/parallel.py)
    workers: int | None = Field(default=None, ge=0, le=16)
    rules: RulesConfig = Field(default_factory=RulesConfig)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: Any) -> Any:
        if isinstance(value, str):
            from budgetwatch.jalali import parse_day

            return parse_day(value)
        return value


# --- schedule, alerts, people -----------------------------------------------------------------


class ScheduleConfig(_Strict):
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


class SmtpConfig(_Strict):
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = "BUDGETWATCH_SMTP_PASSWORD"
    timeout_seconds: float = Field(default=30.0, gt=0)


class AlertsConfig(_Strict):
    enabled: bool = False
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    sender: EmailStr | None = None
    min_severity: Severity = "major"

    @model_validator(mode="after")
    def _sender_when_enabled(self) -> AlertsConfig:
        if self.enabled and not self.sender:
            raise ValueError("sender is required when alerts are enabled")
        return self


class Expert(_Strict):
    name: str
    email: EmailStr
    group: Group


class RoutingConfig(_Strict):
    default: Group = "consolidation"
    agencies: dict[str, Group] = Field(default_factory=dict)  # agency code -> group

    @field_validator("agencies", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        if isinstance(value, dict):
            from budgetwatch.persian import to_ascii_digits

            return {to_ascii_digits(str(k)).strip(): v for k, v in value.items()}
        return value


class Config(_Strict):
    data_dir: Path = Path("data")
    database: DatabaseConfig = Field(default_factory=lambda: DatabaseConfig())
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    reconcile: ReconcileConfig = Field(default_factory=ReconcileConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    experts: list[Expert] = Field(default_factory=list)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)

    @property
    def database_url(self) -> str:
        """The store's URL: BUDGETWATCH_DATABASE_URL, else database.url, else SQLite in data_dir."""
        override = os.environ.get(DATABASE_ENV)
        if override:
            if not override.startswith(("sqlite", "postgresql")):
                from store.db import safe_url

                raise ConfigError(DATABASE_ENV, [f"{DATABASE_ENV} = {safe_url(override)!r}: must be a sqlite:/// "
                                                 "or postgresql+psycopg:// URL"])
            return override
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data_dir / 'budgetwatch.db').as_posix()}"

    def portal_settings(self, source: Literal["nezarat4", "saba"]) -> PortalSettings:
        """What a connector needs, with the password read from the environment now."""
        src = getattr(self.sources, source)
        extra: dict[str, Any] = {}
        if isinstance(src, Nezarat4Config):
            extra["page_pause_seconds"] = src.page_pause_seconds
        if isinstance(src, SabaConfig):
            extra["page_size"] = src.page_size
            extra["rate_limit_per_second"] = src.rate_limit_per_second
        return PortalSettings(
            base_url=src.base_url,
            username=src.username,
            password=src.password(source),
            concurrency=src.concurrency,
            timeout_seconds=src.timeout_seconds,
            max_attempts=src.max_attempts,
            max_retry_seconds=src.max_retry_seconds,
            backoff_initial_seconds=src.backoff_initial_seconds,
            backoff_max_seconds=src.backoff_max_seconds,
            verify_tls=src.verify_tls,
            **extra,
        )


class DatabaseConfig(_Strict):
    url: str | None = None  # None: sqlite:///<data_dir>/budgetwatch.db

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value


Config.model_rebuild()


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: str  # where it came from ("<defaults>" when no file)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if loc.endswith("url") and isinstance(err.get("input"), str):
            from store.db import safe_url  # a URL may carry a password: never echo it

            err = {**err, "input": safe_url(err["input"])}
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (is it misspelt?)")
        elif err["type"] == "missing":
            lines.append(f"{loc}: required key is missing")
        else:
            lines.append(f"{loc} = {_describe(err.get('input'))}: {message}")
    return lines


def parse_config(data: Any, path: str = "<config>") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["the file must hold a mapping of sections (database:, sources:, ...)"])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, _problems(exc)) from None


def load_config(path: str | os.PathLike[str] | None = None) -> LoadedConfig:
    """Load and validate: --config, else $BUDGETWATCH_CONFIG, else ./config.yaml, else defaults."""
    explicit = path or os.environ.get(CONFIG_ENV)
    candidate = Path(explicit) if explicit else Path(DEFAULT_CONFIG_FILE)
    if not candidate.exists():
        if explicit:
            raise ConfigError(str(candidate), ["file not found"])
        return LoadedConfig(parse_config({}, "<defaults>"), "<defaults>")
    try:
        data = yaml.safe_load(candidate.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(str(candidate), [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    config = parse_config(data, str(candidate))
    # relative paths in the file are relative to the file, not to where the command runs
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": (candidate.parent / config.data_dir)})
    return LoadedConfig(config, str(candidate))


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)
