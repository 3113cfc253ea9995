"""Run the simulator from a terminal: both portals on loopback ports until Ctrl-C.

`serve()` is what the `budgetwatch simulator` command calls; `python -m simulator` wraps it with
argparse flags (see __main__.py). Its banner ends with `config_snippet()`: the `sources:` section
that points budgetwatch at these portals, and the `export` lines of the demo passwords.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

from simulator.config import TEHRAN, Faults, SimulatorConfig, default_clock
from simulator.server import Simulator

# The product's default password variables (connectors/settings.py). The simulator may not import
# the product (tests/test_layers.py); tests/simulator/test_sim_cli.py loads the snippet through the
# product's own config loader, so a rename there fails that test.
PASSWORD_ENV = {"nezarat4": "NEZARAT4_PASSWORD", "saba": "SABA_PASSWORD"}


def config_snippet(sim: Simulator) -> str:
    """A config file for budgetwatch that syncs from `sim`, and the shell lines for its passwords.

    Values are written as JSON strings, which YAML reads as they are (a host like ::1 included);
    the fiscal years are the world's, which a --clock away from today would not make the default.
    """
    urls = {"nezarat4": sim.nezarat_url, "saba": sim.saba_url}
    years = ", ".join(str(y) for y in sim.world.years)
    lines = ["sources:"]
    for source, url in urls.items():
        user, _password = sim.credentials[source]
        lines += [
            f"  {source}:",
            f"    base_url: {json.dumps(url)}",
            f"    username: {json.dumps(user)}",
            f"    password_env: {PASSWORD_ENV[source]}",
            f"    fiscal_years: [{years}]",
        ]
    lines += [f"export {PASSWORD_ENV[source]}={shlex.quote(sim.credentials[source][1])}" for source in urls]
    return "\n".join(lines)


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
        active = {k: v for k, v in dataclasses.asdict(faults).items() if v != getattr(Faults(), k)}
        print(f"faults: {active or 'none'}", file=out)
        print("\nbudgetwatch against these portals: save the sources: block below as sim.yaml (or put it in place\n"
              "of config.yaml's sources:), run the export lines (demo passwords, not secrets), then\n"
              f"  {_budgetwatch()} --config sim.yaml sync\n", file=out)
        print(config_snippet(sim) + "\n", file=out)
        print("Press Ctrl-C to stop.", file=out, flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def _budgetwatch() -> str:
    """The budgetwatch command as it runs from any shell: the script beside this Python, if installed."""
    script = Path(sys.executable).parent / "budgetwatch"
    return shlex.quote(str(script)) if script.exists() else "budgetwatch"
