"""Sync: bring what the portals hold into the store, one run per source (see sync.engine).

    from sync import run_sync
    outcomes = run_sync(engine, config.sources)            # both sources, incremental
    outcomes = run_sync(engine, config.sources, ["saba"], full=True, years=[1405])

``sync_sources`` is the same as a coroutine (for a caller with its own event loop).
"""

from foundation.lazy import lazy_exports

# Exported lazily (PEP 562): a command that only names an outcome (the CLI's progress observer)
# does not load the connectors, their HTML parser and HTTP client; those load when a sync runs.
_WHERE = {"run_sync": "sync.engine", "sync_sources": "sync.engine", "default_years": "sync.frame",
          "SourceOutcome": "sync.outcome", "SyncObserver": "sync.outcome"}


__getattr__ = lazy_exports(__name__, _WHERE)

__all__ = ["SourceOutcome", "SyncObserver", "default_years", "run_sync", "sync_sources"]
