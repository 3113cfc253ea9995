"""The plumbing of detail reads: started while the list is paged, committed in batches in a thread.

A source's sync starts one task per detail it must read (the connector keeps at most
``concurrency`` requests in flight), keeps the list at most :data:`AHEAD` details ahead of the
reads, and hands what was read to :class:`Batches`, which commits :data:`BATCH` details per
transaction in a writer thread. :class:`DetailReads` holds the three together for one fiscal year:
the first error (a connector's, or the store's while committing) stops the source, and nothing is
left running when the year ends, however it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from connectors.errors import ConnectorError

BATCH = 25  # details per transaction
AHEAD = 100  # details the list may run ahead of (queued, not yet read)


class DetailReads:
    """The detail reads of one source and fiscal year, and the batches that commit them.

    ``save`` commits a batch (it runs in the writer thread, in a transaction of its own) and
    returns what it wrote; ``saved`` counts that on the event loop.
    """

    def __init__(self, save: Callable[[list], Any], saved: Callable[[Any], Any]) -> None:
        self.tasks: set[asyncio.Task] = set()
        self.failure: list[BaseException] = []
        self.batches = Batches(save, saved, self.failure)

    def spawn(self, read: Coroutine[Any, Any, None]) -> None:
        """Start a detail read; the set holds it until it is done. A connector error it raises is
        recorded in ``failure`` and stops the source at the next :meth:`hold_back` or :meth:`drain`."""
        task = asyncio.ensure_future(self._guarded(read))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        # a read cancelled before it started (the source stopped) is closed, never awaited: say so
        # to Python, which would otherwise warn "coroutine ... was never awaited"
        task.add_done_callback(lambda _task: read.close())

    async def _guarded(self, read: Awaitable[None]) -> None:
        try:
            await read
        except ConnectorError as exc:
            self.failure.append(exc)

    async def commit(self, item: Any) -> None:
        """Hand a read detail to the batches (waits while a full batch commits)."""
        await self.batches.add(item)

    async def hold_back(self) -> None:
        """Keep the list at most AHEAD details ahead of the details read; stop at the first error."""
        if self.failure:
            raise self.failure[0]
        while len(self.tasks) > AHEAD:
            await asyncio.wait(set(self.tasks), return_when=asyncio.FIRST_COMPLETED)
            if self.failure:
                raise self.failure[0]

    async def while_listing(self, listing: Awaitable[Any]) -> Any:
        """Await the listing of the year; if it fails or is cancelled, stop every read first."""
        try:
            return await listing
        except BaseException:
            await _cancel(self.tasks)
            await self.batches.close()
            raise

    async def drain(self) -> None:
        """Wait for every queued detail and every batch to be committed; the first error (a
        connector's, or the store's while committing a batch) stops the source."""
        try:
            while self.tasks:
                await asyncio.wait(set(self.tasks), return_when=asyncio.FIRST_COMPLETED)
                if self.failure:
                    raise self.failure[0]
            if self.failure:
                raise self.failure[0]
        except BaseException:
            await _cancel(self.tasks)
            raise
        finally:
            await self.batches.close()


class Batches:
    """Details committed BATCH at a time, each batch one transaction, in a writer thread.

    Committing a batch takes tens of milliseconds (docs/benchmarks.md, figures behind the
    comments). On the event loop that time would hold back every answer arriving meanwhile while
    the request slots idle; in a thread the loop goes on (the database driver releases the GIL
    while it works, and Python work shares it in 5 ms slices). One batch is written at a time; the
    task that filled a batch waits for its commit, so the details in flight stay bounded. What a batch wrote is counted on the loop, also
    when the task that waited for it was cancelled (the thread cannot be stopped: its batch is
    committed whole or not at all). A batch that fails to commit is recorded in ``failure``, which
    stops the source; :meth:`close` commits the rest and waits for every batch, so the high-water
    mark, moved after it, never runs ahead of the data.
    """

    def __init__(self, save: Callable[[list], Any], saved: Callable[[Any], Any],
                 failure: list[BaseException]) -> None:
        self._save, self._saved, self._failure = save, saved, failure
        self._items: list = []
        self._one_at_a_time = asyncio.Lock()
        self._writing: set[asyncio.Future] = set()

    async def add(self, item: Any) -> None:
        self._items.append(item)
        if len(self._items) >= BATCH:
            await self._commit()

    async def close(self) -> None:
        """Commit what is left; wait for every batch; raise the first batch's error, if any."""
        await self._commit()
        while self._writing:
            await asyncio.wait(set(self._writing))
        errors = [e for e in self._failure if not isinstance(e, ConnectorError)]
        if errors:
            raise errors[0]

    async def _commit(self) -> None:
        batch, self._items = self._items, []
        if not batch:
            return
        async with self._one_at_a_time:
            writing = asyncio.ensure_future(asyncio.to_thread(self._save, batch))
            self._writing.add(writing)
            writing.add_done_callback(self._written)
            try:
                await asyncio.shield(writing)
            except Exception:  # noqa: BLE001 - recorded in failure by _written
                pass

    def _written(self, writing: asyncio.Future) -> None:
        self._writing.discard(writing)
        if writing.cancelled():
            return
        error = writing.exception()
        if error is not None:
            self._failure.append(error)
        else:
            self._saved(writing.result())


async def _cancel(tasks: set[asyncio.Task]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
