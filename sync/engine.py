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
import signal
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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
    (``full``, ``years``, ``observer``, ``client_factory``).

    Ctrl-C (and SIGTERM, which budgetwatch.cli turns into one) cancels the runs, as ``asyncio.run``
    does: each commits the batch in flight, records its run ``interrupted`` and releases its locks;
    then KeyboardInterrupt. A run that has not wound down :data:`STOP_GRACE_SECONDS` later — a thread
    or the loop itself waiting for a database server that stopped answering (a trial's ``kill -STOP``
    of a backend: Ctrl-C did nothing, twice, until the server answered again) — is interrupted as a
    second Ctrl-C would, and its threads are not waited for: the command ends with its line, the
    process exits without them (budgetwatch.entry), and the database rolls back their unfinished
    transactions when their connections go (that run's record is marked ``interrupted`` by the next)."""
    threads = _Threads(thread_name_prefix="sync")
    loop = asyncio.new_event_loop()
    loop.set_default_executor(threads)
    task = loop.create_task(sync_sources(engine, sources, names, **options))
    stop = _Stop(loop, task)
    try:
        return loop.run_until_complete(task)
    except asyncio.CancelledError:
        if stop.signalled:
            threads.abandon()
            raise KeyboardInterrupt from None
        raise
    except BaseException:
        threads.abandon()
        raise
    finally:
        try:
            _wind_down(loop, threads)
        finally:
            stop.restore()
            loop.close()


# how long an interrupted sync gets to wind down (commit the batch in flight, record its runs) before
# it is cut short as by a second Ctrl-C, and again every AGAIN_SECONDS until it is: a KeyboardInterrupt
# in a psycopg wait cancels the statement and waits up to 5 s more for the server, which the next cuts
STOP_GRACE_SECONDS = 3.0
AGAIN_SECONDS = 0.5


class _Stop:
    """Ctrl-C while the loop runs, as asyncio.Runner handles it (the first cancels the task, a second
    raises KeyboardInterrupt), plus seconds of its own after :data:`STOP_GRACE_SECONDS`: the loop's
    thread may be stuck where no cancellation reaches it. Only in the main thread, and only over
    Python's own handler (a handler someone else set, or SIGINT ignored, is left as it is)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task) -> None:
        self.loop, self.task, self.signalled = loop, task, 0
        self._done = threading.Event()
        self._installed = (threading.current_thread() is threading.main_thread()
                           and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if self._installed:
            signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        self.signalled += 1
        if self.signalled == 1 and not self.task.done():
            self.task.cancel()
            self.loop.call_soon_threadsafe(lambda: None)  # wakes a select() with a long timeout
            threading.Thread(target=self._again, name="sync-stop", daemon=True).start()
            return
        raise KeyboardInterrupt

    def _again(self) -> None:
        if self._done.wait(STOP_GRACE_SECONDS):
            return
        log.warning("the sync did not wind down within %g s of the interruption (the database not "
                    "answering?): stopping without it", STOP_GRACE_SECONDS)
        while not self._done.is_set():
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            self._done.wait(AGAIN_SECONDS)

    def restore(self) -> None:
        self._done.set()
        if self._installed and signal.getsignal(signal.SIGINT) == self._on_sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _wind_down(loop: asyncio.AbstractEventLoop, threads: _Threads) -> None:
    """What ``asyncio.run`` does after its task: the tasks left cancelled and awaited, the async
    generators closed, the threads joined (unless abandoned)."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    if left:  # an interrupted run's tasks get a moment, not for ever: one may await a stuck thread
        loop.run_until_complete(asyncio.wait(left, timeout=1.0 if threads.abandoned else None))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


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


class _Threads(ThreadPoolExecutor):
    """The sync loop's threads (``asyncio.to_thread``): joined when the loop closes, unless abandoned
    (an interrupted sync does not wait for a thread stuck in the database)."""

    abandoned = False

    def abandon(self) -> None:
        self.abandoned = True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait and not self.abandoned, cancel_futures=cancel_futures or self.abandoned)


__all__ = ["SOURCES", "SourceOutcome", "SyncObserver", "run_sync", "sync_sources"]
