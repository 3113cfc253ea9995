"""The registry of sources a sync knows: one module per portal, each a :class:`SourceSync`."""

from __future__ import annotations

from foundation.vocabulary import Source
from sync.sources.base import SourceSync
from sync.sources.nezarat4 import Nezarat4Sync
from sync.sources.saba import SabaSync

SOURCE_SYNCS: dict[str, type[SourceSync]] = {sync.source: sync for sync in (Nezarat4Sync, SabaSync)}


def source_sync(source: Source | str) -> type[SourceSync]:
    """The sync of a source by its name; a name no module registers is a ValueError naming it."""
    try:
        return SOURCE_SYNCS[source]
    except KeyError:
        raise ValueError(f"no sync for source {source!r} (known: {', '.join(SOURCE_SYNCS)})") from None


__all__ = ["SOURCE_SYNCS", "SourceSync", "source_sync"]
