"""The sync process bench/sync.py starts: `budgetwatch sync`, with the SABA rate limit the benchmark sets.

The configuration caps the SABA client at the contract's 10 requests a second; the benchmark lifts
the simulator's limit to measure the engine itself, and this child lifts the client's to match.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetwatch.config import load_config  # noqa: E402
from connectors.settings import portal_settings  # noqa: E402
from store.db import open_store  # noqa: E402
from sync import run_sync  # noqa: E402
from sync.sources import source_sync  # noqa: E402


class Clients:
    """The product's clients, with SABA's rate limit lifted."""

    def __init__(self, sources, rate: str | None) -> None:
        self.sources, self.rate = sources, rate

    def __call__(self, source: str):
        settings = portal_settings(self.sources, source)
        if source == "saba" and self.rate:
            settings = dataclasses.replace(settings, rate_limit_per_second=float(self.rate))
        return source_sync(source).connect(settings)


def main() -> None:
    config = load_config(sys.argv[1]).config
    full = "--full" in sys.argv[2:]
    sources = os.environ.get("BUDGETWATCH_BENCH_SOURCES", "nezarat4,saba").split(",")
    clients = Clients(config.sources, os.environ.get("BUDGETWATCH_BENCH_SABA_RATE"))
    engine = open_store(config.database_url)
    for o in run_sync(engine, config.sources, sources, full=full, client_factory=clients):
        print(f"  {o.source}: {o.status} {o.mode}; announced {o.announced}, read {o.read}, new {o.inserted}, "
              f"changed {o.updated}, unchanged {o.unchanged}, gone {o.gone}, rejected {o.rejected}, "
              f"requests {o.requests}{'; ' + o.error if o.error else ''}")
        if not o.ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
