"""The sync engine: from the first request to the last commit, for each source.

A run of one source (:class:`sync.frame.SourceRun`), for each fiscal year it syncs:

1. Decide the mode. ``full`` re-reads every detail and marks what the portal no longer lists as
   gone; it is also owed when an earlier full run was interrupted. Otherwise the run is incremental:
   the list is filtered from the stored high-water mark minus ``overlap_days``, and only items whose
   listed last-modified differs from the stored one (or that are new) have their details read.
2. Read the list (:mod:`sync.listing`): where the list changed between two pages, the pages either
   side are read again at once; a pass that still leaves a range uncertain is followed by another,
   up to ``MAX_PASSES``; the union of the reads holds every item that existed for the whole run.
3. Read details concurrently (the connector keeps at most ``concurrency`` requests in flight) while
   the list is still being paged, and commit them in batches, in a writer thread (:mod:`sync.tasks`:
   the event loop keeps answering the portal while a batch commits). Each batch is one transaction;
   a kill at any moment loses at most the uncommitted batches, which the next run reads again
   because the store does not yet hold their new last-modified.
4. Only when every detail of the year is committed: mark gone (full mode) and move the high-water
   mark. The run ends ``success``, ``incomplete`` (it read fewer items than the portal announced and
   cannot account for the difference), ``failed`` (the source stopped: auth, drift, outage) or
   ``interrupted`` (cancelled: nothing half-done is committed, the lock is released).

What each portal lists, reads and stores is its module in :mod:`sync.sources` (found through the
registry ``SOURCE_SYNCS``). Both sources run side by side on one event loop; one failing does not
stop the other (a process per source was measured and not kept, see docs/benchmarks.md). Two syncs
of one source never run at once (store.locks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.settings import SourcesConfig
from foundation.vocabulary import SOURCES, Source
from store.db import refresh_statistics
from sync.frame import ClientFactory, SourceRun
from sync.outcome import SourceOutcome, SyncObserver
from sync.sources import source_sync

log = logging.getLogger(__name__)


async def sync_sources(
    engine: Engine,
    sources: SourcesConfig,
    names: Sequence[Source] = SOURCES,
    *,
    full: bool = False,
    years: Sequence[int] | None = None,
    observer: SyncObserver | None = None,
    client_factory: ClientFactory | None = None,
) -> list[SourceOutcome]:
    """Sync the named sources side by side; one outcome per source, in the order named.

    ``full`` re-reads everything and marks what is no longer listed as gone; ``years`` overrides
    each source's configured fiscal years; ``client_factory(source)`` gives the connector client
    (tests inject transports). Cancelling this coroutine ends each running source's run as
    ``interrupted``: nothing half-done is committed and the locks are released.
    """
    observer = observer or SyncObserver()
    jobs = [
        SourceRun(engine, sources, source_sync(name), full=full, years=years, observer=observer,
                  client_factory=client_factory).run()
        for name in names
    ]
    outcomes = list(await asyncio.gather(*jobs))
    await asyncio.to_thread(_refresh_statistics, engine, outcomes)
    return outcomes


def run_sync(engine: Engine, sources: SourcesConfig, names: Sequence[Source] = SOURCES,
             **options: Any) -> list[SourceOutcome]:
    """:func:`sync_sources` in an event loop of its own; ``options`` are its keyword arguments
    (``full``, ``years``, ``observer``, ``client_factory``)."""
    return asyncio.run(sync_sources(engine, sources, names, **options))


def _refresh_statistics(engine: Engine, outcomes: Sequence[SourceOutcome]) -> None:
    """PostgreSQL: fresh planner statistics for the tables the runs wrote (store.db.refresh_statistics),
    once both sources are done (it would hold up the other source's I/O otherwise). The data is
    committed whatever happens here: a failure is a warning, never the run's outcome."""
    tables: dict[str, sa.Table] = {}
    for o in outcomes:
        if o.inserted or o.updated or o.gone:
            tables.update((t.name, t) for t in source_sync(o.source).tables_written)
    if not tables:
        return
    try:
        refresh_statistics(engine, list(tables.values()))
    except Exception:  # noqa: BLE001
        log.warning("could not refresh the store's statistics after the sync", exc_info=True)


__all__ = ["SOURCES", "SourceOutcome", "SyncObserver", "run_sync", "sync_sources"]
