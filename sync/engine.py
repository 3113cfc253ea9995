"""The sync engine: from the first request to the last commit, for each source.

A run of one source, for each fiscal year it syncs:

1. Decide the mode. ``full`` re-reads every detail and marks what the portal no longer lists as
   gone; it is also owed when an earlier full run was interrupted. Otherwise the run is incremental:
   the list is filtered from the stored high-water mark minus ``overlap_days``, and only items whose
   listed last-modified differs from the stored one (or that are new) have their details read.
2. Read the list in passes. The portals compute their listing per request, so an item can move
   between pages while a client pages through. Insertions only push items forward (seen twice,
   de-duplicated); a removal can pull an unread item back onto a page already read. So a pass
   during which the announced count fell is followed by another pass, up to ``MAX_PASSES``; the
   union of the passes holds every item that existed for the whole run.
3. Read details concurrently (the connector keeps at most ``concurrency`` requests in flight) while
   the list is still being paged, and commit them in batches, in a writer thread (:class:`_Batches`:
   the event loop keeps answering the portal while a batch commits). Each batch is one transaction;
   a kill at any moment loses at most the uncommitted batches, which the next run reads again
   because the store does not yet hold their new last-modified.
4. Only when every detail of the year is committed: mark gone (full mode) and move the high-water
   mark. The run ends ``success``, ``incomplete`` (it read fewer items than the portal announced and
   cannot account for the difference) or ``failed`` (the source stopped: auth, drift, outage).

Both sources run side by side on one event loop; one failing does not stop the other. (Each source
in a process of its own was tried and measured: 5 % faster, 150 MB more; see docs/benchmarks.md.)
Two syncs of one source never run at once (store.locks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the app's whole Config, until the layer takes only its own section
    from budgetwatch.config import Config

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from foundation.jalali import TEHRAN, fiscal_year_of, today_tehran
from connectors import Nezarat4Client, SabaClient
from connectors.errors import ConnectorError
from foundation.records import (
    AgreementDetail,
    ExpenseAgreementRecord,
    ProjectDetail,
    ProjectListRow,
    Rejection,
)
from store import runs, writes
from store.db import refresh_statistics
from store.models import utcnow
from store.locks import LockHeld, exclusive

log = logging.getLogger(__name__)

Source = Literal["nezarat4", "saba"]
SOURCES: tuple[Source, ...] = ("nezarat4", "saba")
MAX_PASSES = 3
BATCH = 25  # details per transaction
AHEAD = 100  # details the list may run ahead of (queued, not yet read)


class SyncObserver:
    """Progress hooks for the CLI (rich) or tests; every method is optional to override."""

    def started(self, source: str, run_id: int, years: Sequence[int], mode: str) -> None: ...
    def page(self, source: str, year: int, page_no: int, rows: int, announced: int) -> None: ...
    def details_queued(self, source: str, n: int) -> None: ...
    def detail_done(self, source: str) -> None: ...
    def rejected(self, source: str, n: int) -> None: ...
    def note(self, source: str, text: str) -> None: ...
    def finished(self, outcome: SourceOutcome) -> None: ...


@dataclass
class SourceOutcome:
    source: str
    run_id: int | None
    status: str  # success | incomplete | failed | locked | disabled
    mode: str = ""
    years: list[int] = field(default_factory=list)
    announced: int = 0
    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    gone: int = 0
    rejected: int = 0
    requests: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("success", "disabled")


ClientFactory = Callable[[str], Any]  # source -> connector client (tests inject transports)


def default_years(config: Config, source: Source) -> list[int]:
    configured = getattr(config.sources, source).fiscal_years
    if configured:
        return list(configured)
    current = fiscal_year_of(today_tehran())
    return [current - 1, current]


def run_sync(
    engine: Engine,
    config: Config,
    sources: Sequence[Source] = SOURCES,
    *,
    full: bool = False,
    years: Sequence[int] | None = None,
    observer: SyncObserver | None = None,
    client_factory: ClientFactory | None = None,
) -> list[SourceOutcome]:
    """Sync the given sources side by side; returns one outcome per source."""
    return asyncio.run(
        sync_sources(engine, config, sources, full=full, years=years, observer=observer, client_factory=client_factory)
    )


async def sync_sources(
    engine: Engine,
    config: Config,
    sources: Sequence[Source] = SOURCES,
    *,
    full: bool = False,
    years: Sequence[int] | None = None,
    observer: SyncObserver | None = None,
    client_factory: ClientFactory | None = None,
) -> list[SourceOutcome]:
    observer = observer or SyncObserver()
    jobs = [
        _SourceSync(engine, config, source, full=full, years=years, observer=observer, client_factory=client_factory).run()
        for source in sources
    ]
    outcomes = list(await asyncio.gather(*jobs))
    await asyncio.to_thread(_refresh_statistics, engine, outcomes)
    return outcomes


def _refresh_statistics(engine: Engine, outcomes: Sequence[SourceOutcome]) -> None:
    """PostgreSQL: fresh planner statistics for the tables the runs wrote (store.db.refresh_statistics),
    once both sources are done (it would hold up the other source's I/O otherwise). The data is
    committed whatever happens here: a failure is a warning, never the run's outcome."""
    tables: dict[str, sa.Table] = {}
    for o in outcomes:
        if o.inserted or o.updated or o.gone:
            tables.update((t.name, t) for t in writes.TABLES_WRITTEN[o.source])
    if not tables:
        return
    try:
        refresh_statistics(engine, list(tables.values()))
    except Exception:  # noqa: BLE001
        log.warning("could not refresh the store's statistics after the sync", exc_info=True)


class _SourceSync:
    """One run of one source."""

    def __init__(self, engine: Engine, config: Config, source: Source, *, full: bool, years: Sequence[int] | None,
                 observer: SyncObserver, client_factory: ClientFactory | None) -> None:
        self.engine = engine
        self.config = config
        self.source = source
        self.settings = getattr(config.sources, source)
        self.full = full
        self.years = list(years) if years else default_years(config, source)
        self.observer = observer
        self.client_factory = client_factory
        self.outcome = SourceOutcome(source=source, run_id=None, status="running", years=self.years)

    # --- run frame ------------------------------------------------------------------------

    async def run(self) -> SourceOutcome:
        if not self.settings.enabled:
            self.outcome.status = "disabled"
            self.observer.finished(self.outcome)
            return self.outcome
        try:
            with exclusive(self.engine, f"sync:{self.source}"):
                await self._locked_run()
        except LockHeld as exc:
            self.outcome.status = "locked"
            self.outcome.error = str(exc)
        self.observer.finished(self.outcome)
        return self.outcome

    async def _locked_run(self) -> None:
        self._close_abandoned_runs()
        self.outcome.mode = "full" if self.full else "incremental"
        run_id = self._open_run()
        self.outcome.run_id = run_id
        self.observer.started(self.source, run_id, self.years, self.outcome.mode)
        client = None
        try:
            client = self.client_factory(self.source) if self.client_factory else self._client()
            async with client:
                # A year's list is read while the previous year's details are still arriving: the
                # lists go one after another (one portal session, one view state), the details
                # share the connector's in-flight limit, and each year closes when its own last
                # detail is committed.
                closing: list[asyncio.Task] = []
                try:
                    for year in self.years:
                        read_year = self._sync_nezarat_year if self.source == "nezarat4" else self._sync_saba_year
                        close_year = await read_year(client, year)
                        closing.append(asyncio.ensure_future(close_year()))
                    await asyncio.gather(*closing)
                except BaseException:
                    for task in closing:
                        task.cancel()
                    await asyncio.gather(*closing, return_exceptions=True)
                    raise
            if self.outcome.status == "running":
                self.outcome.status = "success"
        except ConnectorError as exc:
            self.outcome.status = "failed"
            self.outcome.error = str(exc)
        except asyncio.CancelledError:
            self.outcome.status = "interrupted"
            self.outcome.error = "interrupted"
            raise
        except Exception as exc:  # a bug or the store failing: record it, never leave 'running'
            log.exception("sync of %s failed", self.source)
            self.outcome.status = "failed"
            self.outcome.error = f"{type(exc).__name__}: {exc}"
        finally:
            if client is not None:
                self.outcome.requests = int(getattr(client, "stats", {}).get("requests", 0))
            self._close_run()

    def _client(self) -> Any:
        settings = self.config.portal_settings(self.source)
        return Nezarat4Client(settings) if self.source == "nezarat4" else SabaClient(settings)

    def _close_abandoned_runs(self) -> None:
        runs.close_abandoned_runs(self.engine, self.source)  # we hold the lock: they were killed

    def _open_run(self) -> int:
        return runs.open_run(self.engine, self.source, self.outcome.mode, self.years)

    def _close_run(self) -> None:
        o = self.outcome
        counts = dict(announced=o.announced, read=o.read, inserted=o.inserted, updated=o.updated,
                      unchanged=o.unchanged, gone=o.gone, rejected=o.rejected, requests=o.requests)
        runs.close_run(self.engine, o.run_id, status=o.status, counts=counts, error=o.error,
                       stats={"notes": o.notes, "mode": o.mode})

    # --- shared helpers -------------------------------------------------------------------

    def _state(self, year: int) -> dict[str, Any]:
        return runs.get_state(self.engine, self.source, year)

    def _set_state(self, conn: sa.Connection, year: int, **values: Any) -> None:
        runs.set_state(conn, self.source, year, self.outcome.run_id, **values)

    def _year_mode(self, year: int) -> tuple[bool, datetime | None]:
        """(full?, modified-from) for this year."""
        state = self._state(year)
        full = self.full or bool(state["full_pending"])
        if full:
            with self.engine.begin() as conn:
                self._set_state(conn, year, full_pending=True, full_started_at=utcnow())
            if not self.full:
                self._note(f"{year}: completing a full sync an earlier run did not finish")
            return True, None
        hwm = state["high_water_mark"]
        if hwm is None:
            return False, None
        return False, hwm - timedelta(days=self.settings.overlap_days)

    def _note(self, text: str) -> None:
        self.outcome.notes.append(text)
        self.observer.note(self.source, text)

    def _reject(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        with self.engine.begin() as conn:
            writes.save_rejections(conn, self.outcome.run_id, rejections)
        self.outcome.rejected += len(rejections)
        self.observer.rejected(self.source, len(rejections))

    def _add(self, counts: writes.WriteCounts) -> None:
        self.outcome.inserted += counts.inserted
        self.outcome.updated += counts.updated
        self.outcome.unchanged += counts.unchanged
        self.outcome.gone += counts.gone

    async def _paged_passes(
        self,
        year: int,
        pages: Callable[[], Any],
        key_of: Callable[[Any], str],
        items_of: Callable[[Any], list],
        on_new: Callable[[list], Awaitable[None]],
    ) -> tuple[set[str], int, int, bool]:
        """Read the listing in passes until one pass saw the list hold still (see module doc).

        Returns (keys seen, announced count of the last pass, rows rejected, settled?).
        """
        seen: set[str] = set()
        rejected_rows: set[tuple] = set()
        announced = 0
        for pass_no in range(1, MAX_PASSES + 1):
            shrank = False
            previous: int | None = None
            async for page in pages():
                if previous is not None and page.announced_total < previous:
                    shrank = True
                previous = page.announced_total
                announced = page.announced_total
                fresh_rejections = [r for r in page.rejections if (r.key, r.field, r.raw) not in rejected_rows]
                rejected_rows.update((r.key, r.field, r.raw) for r in page.rejections)
                self._reject(fresh_rejections)
                items = items_of(page)
                new = [item for item in items if key_of(item) not in seen]
                seen.update(key_of(item) for item in new)
                self.observer.page(self.source, year, page.page_no, len(items), page.announced_total)
                if new:
                    await on_new(new)
            if not shrank:
                return seen, announced, len(rejected_rows), True
            self._note(f"{year}: the list shrank while being read (pass {pass_no}); reading it again")
        return seen, announced, len(rejected_rows), False

    def _judge_completeness(self, year: int, seen: int, announced: int, rejected: int, settled: bool) -> bool:
        """Count the year in; False (and the run incomplete) when its listing can't be trusted whole."""
        self.outcome.announced += announced
        self.outcome.read += seen
        if seen + rejected < announced:
            self.outcome.status = "incomplete"
            self._note(f"{year}: the portal announced {announced} items, {seen} were read and {rejected} rejected")
            return False
        if not settled:
            self.outcome.status = "incomplete"
            self._note(f"{year}: the list kept changing for {MAX_PASSES} passes; items removed meanwhile may hide others")
            return False
        return True

    def _close_year(self, year: int, full: bool, seen: set[str], announced: int, rejected: int, settled: bool,
                    max_modified: datetime | None, mark_gone: Callable[..., int]) -> None:
        """Every detail of the year is committed: judge completeness, mark gone, move the mark."""
        year_ok = self._judge_completeness(year, len(seen), announced, rejected, settled)
        if not year_ok:
            return
        with self.engine.begin() as conn:
            values: dict[str, Any] = {}
            if full:
                self.outcome.gone += mark_gone(conn, self.outcome.run_id, year, seen)
                values["full_pending"] = False
            if max_modified is not None:
                old = self._state(year)["high_water_mark"]
                values["high_water_mark"] = max(old, max_modified) if old else max_modified
            if values:
                self._set_state(conn, year, **values)

    # --- Nezarat-4 ------------------------------------------------------------------------

    async def _sync_nezarat_year(self, client: Nezarat4Client, year: int) -> Callable[[], Awaitable[None]]:
        """Read the year's list (passes) while its details are fetched; return what closes the year."""
        full, modified_from = self._year_mode(year)
        modified_day = modified_from.astimezone(TEHRAN).date() if modified_from else None
        tasks: set[asyncio.Task] = set()
        max_modified: datetime | None = None
        failure: list[BaseException] = []

        def save(batch: list[ProjectDetail]) -> writes.WriteCounts:
            with self.engine.begin() as conn:
                return writes.save_project_details(conn, self.outcome.run_id, batch)

        batches = _Batches(save, self._add, failure)

        async def fetch(row: ProjectListRow) -> None:
            try:
                detail = await client.project_detail(row.portal_id, year)
            except ConnectorError as exc:
                failure.append(exc)
                return
            self.observer.detail_done(self.source)
            if detail is None:
                with self.engine.begin() as conn:
                    self.outcome.gone += writes.mark_project_gone(conn, self.outcome.run_id, year, row.project_code)
                return
            if not isinstance(detail, ProjectDetail):  # RejectedDetail: identity unreadable
                self._reject(detail.rejections)
                return
            self._reject(detail.rejections)
            await batches.add(detail)

        async def on_new(rows: list[ProjectListRow]) -> None:
            nonlocal max_modified
            for row in rows:
                if max_modified is None or row.last_modified > max_modified:
                    max_modified = row.last_modified
            if full:
                wanted = rows
            else:
                with self.engine.connect() as conn:
                    stored = writes.stored_project_versions(conn, year, [r.project_code for r in rows])
                wanted = [r for r in rows if stored.get(r.project_code, None) != r.last_modified or r.project_code not in stored]
                self.outcome.unchanged += len(rows) - len(wanted)
            self.observer.details_queued(self.source, len(wanted))
            for row in wanted:
                _spawn(tasks, fetch(row))
            await _hold_back(tasks, failure)

        try:
            seen, announced, rejected, settled = await self._paged_passes(
                year, lambda: client.list_projects(fiscal_year=year, modified_from=modified_day),
                key_of=lambda r: r.project_code, items_of=lambda p: p.rows, on_new=on_new,
            )
        except BaseException:
            await _cancel(tasks)
            await batches.close()
            raise

        async def close_year() -> None:
            await _drain(tasks, failure, batches)
            self._close_year(year, full, seen, announced, rejected, settled, max_modified, writes.mark_projects_gone)

        return close_year

    # --- SABA -----------------------------------------------------------------------------

    async def _sync_saba_year(self, client: SabaClient, year: int) -> Callable[[], Awaitable[None]]:
        """Read the year's listing, queue operations + performance; return what closes the year."""
        full, modified_since = self._year_mode(year)
        tasks: set[asyncio.Task] = set()
        failure: list[BaseException] = []
        max_modified: datetime | None = None
        detail_changed: set[int] = set()
        new_ids: set[int] = set()
        changed_ids: set[int] = set()
        portal_ids: dict[int, int] = {}

        def save(batch: list[tuple[int, AgreementDetail]]) -> set[int]:
            with self.engine.begin() as conn:
                return writes.save_agreement_details(conn, self.outcome.run_id, batch)[1]

        batches = _Batches(save, detail_changed.update, failure)

        async def fetch(agreement_id: int, portal_id: int) -> None:
            try:
                detail = await client.agreement_detail(portal_id)
            except ConnectorError as exc:
                failure.append(exc)
                return
            self.observer.detail_done(self.source)
            if detail is None:  # 404: gone between the list and the detail
                self._reject([Rejection("saba", f"agreement id={portal_id}", "404: the agreement is no longer there")])
                with self.engine.begin() as conn:
                    self.outcome.gone += writes.mark_agreement_gone_by_id(conn, self.outcome.run_id, agreement_id)
                return
            self._reject(detail.rejections)
            await batches.add((agreement_id, detail))

        def schedule(owed: list[tuple[int, int]]) -> None:
            self.observer.details_queued(self.source, len(owed))
            for agreement_id, portal_id in owed:
                _spawn(tasks, fetch(agreement_id, portal_id))

        async def on_new(items: list[ExpenseAgreementRecord]) -> None:
            nonlocal max_modified
            for item in items:
                if max_modified is None or item.modified_at > max_modified:
                    max_modified = item.modified_at
            with self.engine.begin() as conn:
                saved = writes.save_agreements(conn, self.outcome.run_id, items)
            new_ids.update(saved.new_ids)
            changed_ids.update(saved.changed_ids)
            by_key = {(item.agreement_no, item.fiscal_year): item.portal_id for item in items}
            portal_ids.update({store_id: by_key[key] for key, store_id in saved.ids.items()})
            owed = saved.owed
            if full:  # a full sync re-reads every agreement's details
                owed = [(store_id, portal_ids[store_id]) for store_id in saved.ids.values()]
            schedule(owed)
            await _hold_back(tasks, failure)

        try:
            # details an interrupted run still owes, even if the listing no longer shows them as changed
            with self.engine.connect() as conn:
                owed_before = writes.agreements_owing_detail(conn, year)
            if owed_before and not full:
                self._note(f"{year}: finishing {len(owed_before)} agreements an earlier run left unfinished")
                schedule(owed_before)
            seen, announced, rejected, settled = await self._paged_passes(
                year, lambda: client.list_agreements(fiscal_year=year, modified_since=modified_since),
                key_of=lambda a: a.agreement_no, items_of=lambda p: p.items, on_new=on_new,
            )
        except BaseException:
            await _cancel(tasks)
            await batches.close()
            raise

        async def close_year() -> None:
            await _drain(tasks, failure, batches)
            # an agreement counts once: new, else changed (itself or its details), else unchanged
            listed = set(portal_ids)
            updated = ((changed_ids | detail_changed) & listed) - new_ids
            self.outcome.inserted += len(new_ids)
            self.outcome.updated += len(updated)
            self.outcome.unchanged += len(listed - new_ids - updated)
            self._close_year(year, full, seen, announced, rejected, settled, max_modified, writes.mark_agreements_gone)

        return close_year


def _spawn(tasks: set[asyncio.Task], coro: Awaitable[None]) -> None:
    """Start a detail read; the set holds it until it is done."""
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _hold_back(tasks: set[asyncio.Task], failure: list[BaseException]) -> None:
    """Keep the list at most AHEAD details ahead of the details read; stop at the first error."""
    if failure:
        raise failure[0]
    while len(tasks) > AHEAD:
        await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
        if failure:
            raise failure[0]


async def _drain(tasks: set[asyncio.Task], failure: list[BaseException], batches: _Batches) -> None:
    """Wait for every queued detail and every batch to be committed; the first error (a connector's,
    or the store's while committing a batch) stops the source."""
    try:
        while tasks:
            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_COMPLETED)
            if failure:
                raise failure[0]
        if failure:
            raise failure[0]
    except BaseException:
        await _cancel(tasks)
        raise
    finally:
        await batches.close()


class _Batches:
    """Details committed BATCH at a time, each batch one transaction, in a writer thread.

    Committing a batch takes tens of milliseconds (SQLite, 25 project details: ~25 ms). On the event
    loop that time would hold back every answer arriving meanwhile while the request slots idle; in
    a thread the loop goes on (the database driver releases the GIL while it works, and Python work
    shares it in 5 ms slices). One batch is written at a time; the task that filled a batch waits for
    its commit, so the details in flight stay bounded. What a batch wrote is counted on the loop,
    also when the task that waited for it was cancelled (the thread cannot be stopped: its batch is
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


__all__ = ["SourceOutcome", "SyncObserver", "run_sync", "sync_sources", "default_years", "SOURCES"]
