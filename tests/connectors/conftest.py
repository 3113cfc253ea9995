"""Fixtures of the connector tests; the fakes and helpers themselves are in connector_fakes.py."""

from __future__ import annotations

import pytest

from connector_fakes import FakeNezarat4, FakeSaba


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def nezarat() -> FakeNezarat4:
    return FakeNezarat4()


@pytest.fixture
def saba() -> FakeSaba:
    return FakeSaba()
