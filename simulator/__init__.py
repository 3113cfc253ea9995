"""Simulator of the Nezarat-4 (HTML) and SABA (JSON) portals, with faults on demand.

    from simulator import SimulatorConfig, Faults, Simulator

    with Simulator(SimulatorConfig(seed=7, projects=600, agreements=300)) as sim:
        sim.nezarat_url, sim.saba_url, sim.credentials, sim.world, sim.log
        sim.set_faults(Faults(error500_rate=0.1))

A separate top-level package: the product never imports it, and it imports nothing of the product.
See README.md in this directory for the design, the planted situations and the fault switches.
"""

from simulator.config import Faults, ManualClock, SimulatorConfig, default_clock
from simulator.server import RequestLog, Simulator
from simulator.world import World

__all__ = ["Faults", "ManualClock", "RequestLog", "Simulator", "SimulatorConfig", "World", "default_clock"]
