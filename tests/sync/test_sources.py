"""The registry of source syncs (sync/sources): every source of the vocabulary has one, each names
its connector and the tables its store mapping writes, and an unknown name is an error naming it."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from connectors import Nezarat4Client, SabaClient
from connectors.settings import PortalSettings
from foundation.vocabulary import SOURCES
from store.models import METADATA
from sync.sources import SOURCE_SYNCS, source_sync


def test_every_source_has_a_sync_and_nothing_else_is_registered():
    assert set(SOURCE_SYNCS) == set(SOURCES)
    assert all(source_sync(name).source == name for name in SOURCES)


@pytest.mark.parametrize("source, client", [("nezarat4", Nezarat4Client), ("saba", SabaClient)])
def test_a_source_sync_connects_with_its_own_portals_client(source, client):
    settings = PortalSettings(base_url="https://portal.test", username="u", password=SecretStr("p"),
                              parse_workers=0)
    connected = source_sync(source).connect(settings)
    try:
        assert type(connected) is client
    finally:
        asyncio.run(connected.aclose())


@pytest.mark.parametrize("source", SOURCES)
def test_the_tables_a_source_writes_are_store_tables_with_its_run_records(source):
    tables = source_sync(source).tables_written
    assert {t.name for t in tables} <= set(METADATA.tables)
    assert {"change_log", "rejected_record"} <= {t.name for t in tables}


def test_an_unknown_source_is_named():
    with pytest.raises(ValueError, match="no sync for source 'nezarat5'"):
        source_sync("nezarat5")
