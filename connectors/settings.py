"""How to reach the portals: the ``sources`` section of config.yaml and what a connector needs.

``SourcesConfig`` is the validated ``sources`` section; ``portal_settings`` turns one source's
section into ``PortalSettings``, reading the password from its environment variable or file. The password is a pydantic ``SecretStr`` so that printing, logging or
raising this object can never show it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from foundation import __version__
from foundation.settings import ConfigError, Strict, WithPassword, read_password
from foundation.vocabulary import FIRST_YEAR, LAST_YEAR, Source  # noqa: F401 - the years a portal can hold, re-exported

USER_AGENT = f"budgetwatch/{__version__} (Khuzestan MPO budget monitoring)"
MAX_CONCURRENCY = 8  # both contracts: never more than 8 requests in flight


@dataclass(frozen=True)
class PortalSettings:
    base_url: str
    username: str
    password: SecretStr
    concurrency: int = 4  # requests in flight at most (1..8)
    timeout_seconds: float = 60.0  # one request; slow answers of tens of seconds are normal
    max_attempts: int = 6  # per request, transient faults included (a 429 is waited out: max_retry_seconds bounds it)
    max_retry_seconds: float = 300.0  # total time one request may spend retrying
    backoff_initial_seconds: float = 1.0  # exponential backoff with jitter starts here
    backoff_max_seconds: float = 60.0
    page_pause_seconds: float = 0.2  # Nezarat-4: pause between postbacks of one session
    rate_limit_per_second: float = 8.0  # SABA: stay below its 10/s per token
    page_size: int = 200  # SABA listing page size (1..200)
    verify_tls: bool = True
    user_agent: str = USER_AGENT
    parse_workers: int = 1  # Nezarat-4: worker processes reading pages; 0 = on the event loop

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be 1..{MAX_CONCURRENCY}, got {self.concurrency}")
        if self.parse_workers < 0:
            raise ValueError(f"parse_workers must be 0 or more, got {self.parse_workers}")


# --- the sources section of config.yaml -----------------------------------------------------




class SourceConfig(WithPassword):
    enabled: bool = True
    base_url: str
    username: str = ""
    password_env: str | None = None
    password_file: Path | None = None
    fiscal_years: list[int] = Field(default_factory=list)  # empty: current and previous year
    concurrency: int = Field(default=4, ge=1, le=MAX_CONCURRENCY)
    timeout_seconds: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    max_retry_seconds: float = Field(default=300.0, gt=0, le=86400)  # a day at most: it alone bounds a 429
    backoff_initial_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=60.0, gt=0)
    overlap_days: int = Field(default=1, ge=0, le=30)  # look-back of incremental syncs
    verify_tls: bool = True

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local simulator)")
        if "@" in value:  # said without the address, which may hold a password (one with / # ? in it too)
            raise ValueError("carries a user name or password: give the user as username and the password "
                             "in password_env or password_file")
        if any(c.isspace() for c in value):
            raise ValueError(f"{value!r} contains a space")
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError(f"{value!r} has a port that is not a number") from None
        if not parts.hostname:
            raise ValueError(f"{value!r} names no host (e.g. https://nezarat.mpo-kz.ir)")
        return value.rstrip("/")

    @field_validator("fiscal_years")
    @classmethod
    def _years(cls, value: list[int]) -> list[int]:
        for year in value:
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise ValueError(f"{year} is not a Jalali fiscal year (e.g. 1405)")
        return sorted(set(value))

    def password(self, source: str) -> SecretStr:
        """Read the password now, from the environment variable or the file the config names."""
        return read_password(f"sources.{source}", self.password_env, self.password_file,
                             missing=f"sources.{source}: set password_env or password_file for the password")

    def credential_problems(self, source: str) -> list[str]:
        """What stops this source from logging in, checked before any request: an empty user name (a
        login attempt with none counts as a failed login, and failed logins lead the portal to
        captcha and lock) and a password that cannot be read. Empty: ready."""
        problems = []
        if not self.username.strip():
            problems.append(f"sources.{source}.username: empty: set the portal account's user name")
        try:
            self.password(source)
        except ConfigError as exc:
            problems.extend(exc.problems)
        return problems


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


class SourcesConfig(Strict):
    nezarat4: Nezarat4Config = Field(default_factory=Nezarat4Config)
    saba: SabaConfig = Field(default_factory=SabaConfig)


def portal_settings(sources: SourcesConfig, source: Source) -> PortalSettings:
    """What a connector needs, with the password read from the environment now."""
    src = getattr(sources, source)
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
