"""The one small interface a portal's sync implements; the run frame (sync.frame) does the rest.

A source module says which connector reads the portal (:meth:`SourceSync.connect`), which tables
its store mapping writes (:attr:`SourceSync.tables_written`, for the statistics refreshed after a
run), and how one fiscal year is read and stored (:meth:`SourceSync.read_year`): the listing in
passes (sync.listing), the details it owes read and committed in batches (sync.tasks), and the
year closed through the frame. Adding a portal is one connector package, one module here, one
store mapping, and a line in ``sync.sources.SOURCE_SYNCS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import sqlalchemy as sa

from connectors.settings import PortalSettings
from foundation.vocabulary import Source

if TYPE_CHECKING:  # the frame hands itself in; no import at run time (the frame imports this)
    from sync.frame import SourceRun


class PortalClient(Protocol):
    """What the frame needs of a connector's client: ``async with`` and its counters."""

    async def __aenter__(self) -> Any: ...
    async def __aexit__(self, *exc_info: object) -> None: ...

    @property
    def stats(self) -> dict[str, int]: ...


class SourceSync:
    """One portal's sync, made for one run (``run``) with one open client (``client``)."""

    source: ClassVar[Source]
    tables_written: ClassVar[tuple[sa.Table, ...]]

    def __init__(self, run: SourceRun, client: Any) -> None:
        self.run = run
        self.client = client

    @staticmethod
    def connect(settings: PortalSettings) -> PortalClient:
        """The connector's client for this portal (not yet entered)."""
        raise NotImplementedError

    async def read_year(self, year: int) -> Callable[[], Awaitable[None]]:
        """Read the year's listing while its details are read; return what closes the year (it
        waits for the year's last detail to be committed, then calls ``run.close_year``)."""
        raise NotImplementedError
