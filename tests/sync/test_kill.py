"""A sync killed at any moment leaves a consistent store, and the next run finishes the job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simulator import Faults
from store.db import open_store
from tests.sync.conftest import YEARS
from tests.sync.test_sync import _assert_store_equals_truth

pytestmark = pytest.mark.slow


def _config_file(tmp_path: Path, sim, store_url: str) -> tuple[Path, dict[str, str]]:
    env = dict(os.environ)
    sources = {}
    for name, url in (("nezarat4", sim.nezarat_url), ("saba", sim.saba_url)):
        user, password = sim.credentials[name]
        env[f"KILL_TEST_{name.upper()}_PASSWORD"] = password
        sources[name] = dict(base_url=url, username=user, password_env=f"KILL_TEST_{name.upper()}_PASSWORD",
                             fiscal_years=YEARS, backoff_initial_seconds=0.01, backoff_max_seconds=0.05,
                             **({"rate_limit_per_second": 500} if name == "saba" else {"page_pause_seconds": 0}))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": store_url}, "sources": sources}), encoding="utf-8")
    return path, env


def _sync_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "budgetwatch.cli", "--config", str(config), "sync"]


def test_killed_syncs_then_one_more_run_equal_an_uninterrupted_run(simulator_factory, sqlite_url, tmp_path):
    # Each attempt is killed right after the portals have answered a random number of requests:
    # kill points spread over the whole sync, whatever the interpreter's start-up time.
    sim = simulator_factory(projects=80, agreements=40)
    sim.set_faults(Faults(latency_ms=3))
    store_url = sqlite_url
    config, env = _config_file(tmp_path, sim, store_url)
    rng = random.Random(20261125)
    kills = 0
    for _ in range(4):
        sim.log.reset()
        proc = subprocess.Popen(_sync_command(config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        reached = sim.log.wait_for(rng.randint(5, 200), timeout=60)  # a full sync makes ~300
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += reached
        else:
            proc.wait()
    assert kills >= 2, "the sync finished too fast for the kills to mean anything"
    finished = subprocess.run(_sync_command(config), env=env, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    engine = open_store(store_url)
    _assert_store_equals_truth(engine, sim)
    with engine.connect() as conn:
        statuses = conn.exec_driver_sql("select status from sync_run order by id").scalars().all()
    assert "interrupted" in statuses and statuses[-2:] == ["success", "success"]
