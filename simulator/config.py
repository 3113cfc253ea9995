"""Configuration of a simulator run: what world to build, where to listen, which faults to inject.

`SimulatorConfig` decides the data (seed, sizes, the simulated "now") and the server side
(ports, session and token lifetimes, rate limit, captcha threshold). `Faults` holds every fault
switch; all are off by default and every random decision they make comes from one RNG seeded
from the config seed and `Faults.seed`, so a run is reproducible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

TEHRAN = ZoneInfo("Asia/Tehran")

LAYOUT_CHANGES = ("list_header", "detail_span", "saba_field")


def default_clock() -> datetime:
    """The simulated "now" used when none is given: 4 Azar 1405, 10:00 Tehran time."""
    return datetime(2026, 11, 25, 10, 0, tzinfo=TEHRAN)


@dataclass(frozen=True)
class Faults:
    """Fault switches. Rates are probabilities per request in [0, 1]; everything is off by default.

    latency_ms / latency_jitter_ms   fixed added latency per request, plus a uniform random extra
    error500_rate        500 with the ASP.NET Runtime Error page (Nezarat-4) / 500 JSON (SABA)
    error200_rate        Nezarat-4 only: status 200 carrying the Runtime Error page or the lblError page
    maintenance_rate     503 with ``Retry-After: 1``; Nezarat-4 also answers the 200 maintenance page
    drop_session_rate    Nezarat-4 only: the session is dropped before answering a protected page
                         (never within a session's first 8 requests: see nezarat/portal.py)
    revoke_token_rate    SABA only: the bearer token is revoked, 401 token_expired (never within a
                         token's first 8 requests)
    reset_rate           the connection is reset (RST) without any response
    malformed            a deterministic few rows/items are malformed (see World.malformed_records)
    shift_while_paging   after each list page served the world edits a record, and (while the budget
                         `shift_changes` lasts, per portal) adds or removes one, alternately
    shift_changes        how many additions/removals shift_while_paging makes per portal after the
                         faults are set (edits go on for every page); a finite budget lets a
                         multi-pass sync see the list hold still eventually
    layout_change        None | 'list_header' | 'detail_span' | 'saba_field' (drift detection)
    seed                 extra seed for the fault RNG (combined with the config seed)
    """

    latency_ms: int = 0
    latency_jitter_ms: int = 0
    error500_rate: float = 0.0
    error200_rate: float = 0.0
    maintenance_rate: float = 0.0
    drop_session_rate: float = 0.0
    revoke_token_rate: float = 0.0
    reset_rate: float = 0.0
    malformed: bool = False
    shift_while_paging: bool = False
    shift_changes: int = 6
    layout_change: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in (
            "error500_rate",
            "error200_rate",
            "maintenance_rate",
            "drop_session_rate",
            "revoke_token_rate",
            "reset_rate",
        ):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"Faults.{name} must be in [0, 1], got {value!r}")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError("Faults latency must not be negative")
        if self.shift_changes < 0:
            raise ValueError("Faults.shift_changes must not be negative")
        if self.layout_change is not None and self.layout_change not in LAYOUT_CHANGES:
            raise ValueError(
                f"Faults.layout_change must be None or one of {LAYOUT_CHANGES}, "
                f"got {self.layout_change!r}"
            )


class ManualClock:
    """A session clock tests can move by hand: sessions, tokens and the rate limit read it.

    >>> clock = ManualClock(); clock.advance(1200.5); clock()
    1200.5
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += float(seconds)
            return self._now


@dataclass
class SimulatorConfig:
    """Everything a simulator run needs. See the package README for the meaning of each field."""

    seed: int = 7
    projects: int = 600
    agreements: int = 300
    clock: datetime | None = None  # the simulated "now"; None = default_clock()
    host: str = "127.0.0.1"
    nezarat_port: int = 0  # 0 = a free port
    saba_port: int = 0
    session_idle_seconds: float = 1200
    token_lifetime_seconds: float = 900
    rate_limit_per_second: int = 10
    captcha_after: int = 3  # failed logins from one client before the captcha is demanded
    faults: Faults = field(default_factory=Faults)
    # Monotonic seconds for session idle time, token lifetime and the rate-limit window.
    # Inject a ManualClock in tests to expire sessions and tokens without sleeping.
    time_source: Callable[[], float] | None = None

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = default_clock()
        if self.clock.tzinfo is None:
            raise ValueError("SimulatorConfig.clock must be timezone-aware (Asia/Tehran)")
        if self.projects < 0 or self.agreements < 0:
            raise ValueError("projects and agreements must not be negative")
        if self.rate_limit_per_second < 1:
            raise ValueError("rate_limit_per_second must be at least 1")
        if self.time_source is None:
            self.time_source = time.monotonic
