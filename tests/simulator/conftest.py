"""Fixtures for the simulator's tests: in-process simulators on free ports and plain clients."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from simhelpers import Nezarat, Saba, make_sim  # noqa: E402

from simulator import ManualClock  # noqa: E402


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def sim(clock):
    simulator = make_sim(clock)
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def big_sim():
    """Enough projects for more than 20 list pages (pager blocks 1-10, 11-20, 21-...)."""
    simulator = make_sim(ManualClock(0.0), projects=1300, agreements=120, seed=11)
    yield simulator
    simulator.stop()


@pytest.fixture
def nezarat(sim):
    client = Nezarat(sim)
    yield client
    client.close()


@pytest.fixture
def saba(sim):
    client = Saba(sim)
    yield client
    client.close()
