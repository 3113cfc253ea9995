"""The run frame: one run of one source, from taking its lock to closing its run record.

:class:`SourceRun` is what every source's sync shares: the lock (two syncs of one source never run
at once, store.locks), the run record (opened before the first request, closed whatever happened,
with its counts, status and error), the mode of each fiscal year (full, or incremental from the
stored high-water mark minus ``overlap_days``), rejections, notes, and closing a year once every
one of its details is committed (completeness, ``gone`` marks, the high-water mark). What to read
and how to store it is the source's own (:mod:`sync.sources`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from connectors.errors import ConnectorError
from connectors.settings import SourcesConfig, portal_settings
from foundation.jalali import fiscal_year_of, today_tehran
from foundation.records import Rejection
from foundation.settings import ConfigError
from foundation.vocabulary import Source
from store import runs
from store.db import error_line
from store.locks import LockHeld, exclusive
from store.upsert import WriteCounts
from sync.listing import MAX_PASSES, Listing
from sync.outcome import SourceOutcome, SyncObserver
from sync.sources.base import SourceSync

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]  # source -> connector client (tests inject transports)


def default_years(sources: SourcesConfig, source: Source) -> list[int]:
    """The configured fiscal years of a source; by default the current and the previous one."""
    configured = getattr(sources, source).fiscal_years
    if configured:
        return list(configured)
    current = fiscal_year_of(today_tehran())
    return [current - 1, current]


class SourceRun:
    """One run of one source."""

    def __init__(self, engine: Engine, sources: SourcesConfig, portal: type[SourceSync], *, full: bool,
                 years: Sequence[int] | None, observer: SyncObserver, client_factory: ClientFactory | None) -> None:
        self.engine = engine
        self.sources = sources
        self.portal = portal
        self.source: Source = portal.source
        self.settings = getattr(sources, self.source)
        self.full = full
        self.years = list(years) if years else default_years(sources, self.source)
        self.observer = observer
        self.client_factory = client_factory
        self.outcome = SourceOutcome(source=self.source, run_id=None, status="running", years=self.years)

    @property
    def run_id(self) -> int:
        assert self.outcome.run_id is not None, "the run is not open"
        return self.outcome.run_id

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
        runs.close_abandoned_runs(self.engine, self.source)  # we hold the lock: they were killed
        self.outcome.mode = "full" if self.full else "incremental"
        self.outcome.run_id = runs.open_run(self.engine, self.source, self.outcome.mode, self.years)
        self.observer.started(self.source, self.outcome.run_id, self.years, self.outcome.mode)
        client = None
        try:
            client = self._client()
            async with client:
                reader = self.portal(self, client)
                # A year's list is read while the previous year's details are still arriving: the
                # lists go one after another (one portal session, one view state), the details
                # share the connector's in-flight limit, and each year closes when its own last
                # detail is committed.
                closing: list[asyncio.Task] = []
                try:
                    for year in self.years:
                        close_year = await reader.read_year(year)
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
        except ConfigError as exc:  # credentials unreadable since the command's check (an unset variable)
            self.outcome.status = "failed"
            self.outcome.error = "; ".join(exc.problems)
            log.error("sync of %s cannot log in: %s", self.source, self.outcome.error)
        except Exception as exc:  # a bug or the store failing: record it, never leave 'running'
            self.outcome.status = "failed"
            self.outcome.error = error_line(exc)
            # the traceback with --debug only: a database's message about a row may quote it
            log.error("sync of %s failed: %s", self.source, self.outcome.error, exc_info=log.isEnabledFor(logging.DEBUG))
        finally:
            if client is not None:
                self.outcome.requests = int(getattr(client, "stats", {}).get("requests", 0))
            self._close_run()

    def _client(self) -> Any:
        if self.client_factory:
            return self.client_factory(self.source)
        return self.portal.connect(portal_settings(self.sources, self.source))

    def _close_run(self) -> None:
        o = self.outcome
        counts = dict(announced=o.announced, read=o.read, inserted=o.inserted, updated=o.updated,
                      unchanged=o.unchanged, gone=o.gone, rejected=o.rejected, requests=o.requests)
        runs.close_run(self.engine, self.run_id, status=o.status, counts=counts, error=o.error,
                       stats={"notes": o.notes, "mode": o.mode, "completing_full": o.completing_full})

    # --- what a source's sync calls -------------------------------------------------------

    def _state(self, year: int) -> dict[str, Any]:
        return runs.get_state(self.engine, self.source, year)

    def _set_state(self, conn: sa.Connection, year: int, **values: Any) -> None:
        runs.set_state(conn, self.source, year, self.run_id, **values)

    def year_mode(self, year: int) -> tuple[bool, datetime | None]:
        """(full?, modified-from) for this year: full when asked for or owed by an earlier run."""
        state = self._state(year)
        full = self.full or bool(state["full_pending"])
        if full:  # owed since the run opened (store.runs.open_run), or by an earlier run
            if not self.full:
                self.note(f"{year}: completing a full sync an earlier run did not finish")
                self.outcome.completing_full.append(year)
            return True, None
        hwm = state["high_water_mark"]
        if hwm is None:
            return False, None
        return False, hwm - timedelta(days=self.settings.overlap_days)

    def year_not_offered(self, year: int, reason: str, *, held: bool) -> None:
        """The portal does not hold `year`: the run goes on with its other years. A year the store
        holds nothing of (`held`: any item of it, read whole or not) is skipped with a note (a portal
        that holds only the current year: the default years are the current and the previous one),
        and owes no full read any more; one it holds is left as it was, nothing marked gone, and the
        run is incomplete: what it held is neither confirmed nor known to be gone — until the year
        is taken out of the source's ``fiscal_years``, as the note says."""
        if held:
            self.outcome.status = "incomplete"
            self.note(f"{year}: {reason}; what the store holds of {year} is kept as it was, nothing marked gone "
                      f"(take {year} out of sources.{self.source}.fiscal_years if the portal has dropped it)")
            return
        self.note(f"{year}: {reason}; skipped (the store holds nothing of {year})")
        if year in self.outcome.completing_full:
            self.outcome.completing_full.remove(year)
        with self.engine.begin() as conn:
            self._set_state(conn, year, full_pending=False)

    def note(self, text: str) -> None:
        self.outcome.notes.append(text)
        self.observer.note(self.source, text)

    def reject(self, rejections: Sequence[Rejection]) -> None:
        if not rejections:
            return
        with self.engine.begin() as conn:
            runs.save_rejections(conn, self.run_id, rejections)
        self.outcome.rejected += len(rejections)
        self.observer.rejected(self.source, len(rejections))

    def count(self, counts: WriteCounts) -> None:
        self.outcome.inserted += counts.inserted
        self.outcome.updated += counts.updated
        self.outcome.unchanged += counts.unchanged
        self.outcome.gone += counts.gone

    def close_year(self, year: int, full: bool, listing: Listing, max_modified: datetime | None,
                   mark_gone: Callable[..., int]) -> None:
        """Every detail of the year is committed: judge completeness, mark gone, move the mark."""
        if not self._complete(year, listing):
            return
        with self.engine.begin() as conn:
            values: dict[str, Any] = {}
            if full and listing.unkeyed_rejections:
                # a rejected row whose key could not be read may be any stored item: mark none gone
                self.note(f"{year}: {listing.unkeyed_rejections} listing row(s) rejected without a readable key; "
                          "nothing marked gone this time")
            elif full:
                self.outcome.gone += mark_gone(conn, self.run_id, year, listing.listed)
            if full:
                values["full_pending"] = False
            if max_modified is not None:
                old = self._state(year)["high_water_mark"]
                values["high_water_mark"] = max(old, max_modified) if old else max_modified
            if values:
                self._set_state(conn, year, **values)

    def _complete(self, year: int, listing: Listing) -> bool:
        """Count the year in; False (and the run incomplete) when its listing can't be trusted whole."""
        seen, announced, rejected = len(listing.seen), listing.announced, listing.rejected
        self.outcome.announced += announced
        self.outcome.read += seen
        if seen + rejected < announced:
            self.outcome.status = "incomplete"
            self.note(f"{year}: the portal announced {announced} items, {seen} were read and {rejected} rejected")
            return False
        if not listing.settled:
            self.outcome.status = "incomplete"
            self.note(f"{year}: the list kept changing for {MAX_PASSES} passes and items removed meanwhile may hide "
                      "others, even after reading the pages around each change again (the uncertain ranges "
                      "are noted above)")
            return False
        return True
