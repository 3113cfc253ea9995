"""How to reach one portal: the part of config.yaml a connector needs, already validated.

Built by the configuration layer (budgetwatch.config) from ``sources.<portal>`` and the password's
environment variable or file. The password is a pydantic ``SecretStr`` so that printing, logging or
raising this object can never show it.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from budgetwatch import __version__

USER_AGENT = f"budgetwatch/{__version__} (Khuzestan MPO budget monitoring)"
MAX_CONCURRENCY = 8  # both contracts: never more than 8 requests in flight


@dataclass(frozen=True)
class PortalSettings:
    base_url: str
    username: str
    password: SecretStr
    concurrency: int = 4  # requests in flight at most (1..8)
    timeout_seconds: float = 60.0  # one request; slow answers of tens of seconds are normal
    max_attempts: int = 6  # per request, transient faults included
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
