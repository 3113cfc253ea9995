"""Sync: bring what the portals hold into the store, one run per source (see sync.engine).

    from sync import run_sync
    outcomes = run_sync(engine, config.sources)            # both sources, incremental
    outcomes = run_sync(engine, config.sources, ["saba"], full=True, years=[1405])

``sync_sources`` is the same as a coroutine (for a caller with its own event loop).
"""

from sync.engine import run_sync, sync_sources
from sync.frame import default_years
from sync.outcome import SourceOutcome, SyncObserver

__all__ = ["SourceOutcome", "SyncObserver", "default_years", "run_sync", "sync_sources"]
