"""A sync stopped by Ctrl-C or SIGTERM from outside: one line, its exit code, its run `interrupted`
(README, "Exit codes"). An operator's trial: Ctrl-C 6 s into `sync --full` exited 130 with nothing on
stderr (typer turned the KeyboardInterrupt into a silent exit code), and SIGTERM killed the process
by the signal, its run left `running` until the next run marked it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from simulator import Faults
from store.db import open_store
from tests.sync.conftest import YEARS

SCRIPT = Path(sys.executable).with_name("budgetwatch")


def _config_file(tmp_path: Path, sim, store_url: str) -> tuple[Path, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    sources = {}
    for name, url in (("nezarat4", sim.nezarat_url), ("saba", sim.saba_url)):
        user, password = sim.credentials[name]
        env[f"STOP_TEST_{name.upper()}_PASSWORD"] = password
        sources[name] = dict(base_url=url, username=user, password_env=f"STOP_TEST_{name.upper()}_PASSWORD",
                             fiscal_years=YEARS, rate_limit_per_second=500 if name == "saba" else None)
    sources["nezarat4"].pop("rate_limit_per_second")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": store_url}, "sources": sources}), encoding="utf-8")
    return path, env


def _stopped_mid_sync(simulator_factory, store_url: str, tmp_path: Path, signum: int, *options: str):
    """`sync --full --source saba` sent `signum` once the portal has answered 20 requests (a full sync
    of this world makes well over 100, each 20 ms late): its exit code, its stderr lines and the
    statuses of the store's sync runs."""
    sim = simulator_factory()
    sim.set_faults(Faults(latency_ms=20))
    config, env = _config_file(tmp_path, sim, store_url)
    argv = [str(SCRIPT), "--config", str(config), *options, "sync", "--full", "--source", "saba"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)
    try:
        sim.log.wait_for(20, timeout=60)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            statuses = conn.exec_driver_sql("select status from sync_run order by id").scalars().all()
    finally:
        engine.dispose()
    return proc.returncode, [line for line in err.splitlines() if line.strip()], statuses


def test_ctrl_c_during_a_sync_says_interrupted_and_exits_130(simulator_factory, sqlite_url, tmp_path):
    code, lines, statuses = _stopped_mid_sync(simulator_factory, sqlite_url, tmp_path, signal.SIGINT)
    assert (code, lines) == (130, ["interrupted"])
    assert statuses == ["interrupted"]


def test_ctrl_c_during_a_sync_with_json_logs_says_interrupted_as_json(simulator_factory, sqlite_url, tmp_path):
    code, lines, _ = _stopped_mid_sync(simulator_factory, sqlite_url, tmp_path, signal.SIGINT,
                                       "--log-format", "json")
    assert code == 130 and len(lines) == 1, lines
    said = json.loads(lines[0])
    assert (said["level"], said["message"]) == ("ERROR", "interrupted")


def test_sigterm_during_a_sync_stops_it_as_ctrl_c_does_and_exits_143(simulator_factory, sqlite_url, tmp_path):
    code, lines, statuses = _stopped_mid_sync(simulator_factory, sqlite_url, tmp_path, signal.SIGTERM)
    assert (code, lines) == (143, ["interrupted (SIGTERM)"])
    assert statuses == ["interrupted"]  # recorded by this run, not left `running` for the next
