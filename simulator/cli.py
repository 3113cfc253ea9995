"""Run the simulator from a terminal: both portals on loopback ports until Ctrl-C.

`serve()` is what the `budgetwatch simulator` command calls; `python -m simulator` wraps it with
argparse flags (see __main__.py).
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from datetime import datetime

from simulator.config import TEHRAN, Faults, SimulatorConfig, default_clock
from simulator.server import Simulator


def serve(
    *,
    seed: int,
    projects: int,
    agreements: int,
    nezarat_port: int,
    saba_port: int,
    clock: datetime | None,
    faults: Faults,
    latency_ms: int,
    session_idle_seconds: float,
    host: str = "127.0.0.1",
    out=None,
) -> None:
    """Start both portals, print their base URLs and the demo credentials, block until Ctrl-C."""
    out = out or sys.stdout
    # Ctrl-C and `kill` stop it even when started from a process that ignores SIGINT (Python then
    # installs no handler of its own: background shells, test runners' workers)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if latency_ms:
        faults = dataclasses.replace(faults, latency_ms=latency_ms)
    if clock is not None and clock.tzinfo is None:
        clock = clock.replace(tzinfo=TEHRAN)
    config = SimulatorConfig(
        seed=seed, projects=projects, agreements=agreements, clock=clock or default_clock(), host=host,
        nezarat_port=nezarat_port, saba_port=saba_port, session_idle_seconds=session_idle_seconds,
        faults=faults,
    )
    sim = Simulator(config).start()
    try:
        n_user, n_password = sim.credentials["nezarat4"]
        s_user, s_password = sim.credentials["saba"]
        epoch = sim.world.epoch
        print(f"Nezarat-4  {sim.nezarat_url}   user {n_user}  password {n_password}", file=out)
        print(f"SABA       {sim.saba_url}   user {s_user}  password {s_password}", file=out)
        print(f"locked account on both: {sim.locked_user[0]} (any password)", file=out)
        print(f"seed {seed}, {len(sim.world.projects)} projects, {len(sim.world.agreements)} agreement-years, "
              f"clock {config.clock.isoformat()} (fiscal year {epoch.current_year})", file=out)
        active = {k: v for k, v in dataclasses.asdict(faults).items() if v not in (0, 0.0, False, None)}
        print(f"faults: {active or 'none'}", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
