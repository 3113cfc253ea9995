"""`budgetwatch simulator`: the simulated portals on loopback, the front door to simulator/."""

from __future__ import annotations

from datetime import datetime

import typer

from budgetwatch.app import UserError, app, can_listen
from foundation.jalali import TEHRAN

LOOPBACK = "127.0.0.1"  # the simulated portals are for this machine only


@app.command()
def simulator(
    seed: int = typer.Option(7, help="Seed of the generated province (same seed, same data)."),
    projects: int = typer.Option(600, help="Capital projects to generate."),
    agreements: int = typer.Option(300, help="Expense agreements to generate."),
    nezarat_port: int = typer.Option(8401, help="Port of the Nezarat-4 simulator (0: any free port)."),
    saba_port: int = typer.Option(8402, help="Port of the SABA simulator (0: any free port)."),
    clock: str = typer.Option(None, help="The simulated now, Jalali or ISO day (default: 1405/09/04, fixed, "
                                         "so that a seed serves the same pages every day)."),
    latency_ms: int = typer.Option(0, help="Latency added to every answer."),
    session_idle_seconds: float = typer.Option(1200, help="Nezarat-4 session idle expiry."),
    error_rate: float = typer.Option(0.0, help="Share of answers that are server errors (500 / error pages)."),
    maintenance_rate: float = typer.Option(0.0, help="Share of answers that are maintenance pages (503)."),
    reset_rate: float = typer.Option(0.0, help="Share of connections reset without an answer."),
    malformed: bool = typer.Option(False, help="Plant a few malformed rows and items."),
    shift_while_paging: bool = typer.Option(False, help="Edit and insert items while a client pages."),
    layout_change: str = typer.Option(None, help="Simulate drift: list_header | detail_span | saba_field."),
) -> None:
    """Serve simulated Nezarat-4 and SABA portals on loopback (for demos, tests and benchmarks)."""
    # a port taken (or the same for both) is one line before the world is generated, not an OSError
    if nezarat_port and nezarat_port == saba_port:
        raise UserError(f"--saba-port {saba_port}: the same port as --nezarat-port (give another, or 0)")
    can_listen(LOOPBACK, nezarat_port, "--nezarat-port", any_port=True)
    can_listen(LOOPBACK, saba_port, "--saba-port", any_port=True)
    from simulator import Faults  # the product never imports the simulator; this command is its front door
    from simulator.cli import serve

    faults = Faults(error500_rate=error_rate, maintenance_rate=maintenance_rate, reset_rate=reset_rate,
                    malformed=malformed, shift_while_paging=shift_while_paging, layout_change=layout_change,
                    latency_ms=latency_ms)
    serve(seed=seed, projects=projects, agreements=agreements, nezarat_port=nezarat_port, saba_port=saba_port,
          clock=_clock(clock), faults=faults, latency_ms=latency_ms,
          session_idle_seconds=session_idle_seconds, host=LOOPBACK)


def _clock(raw: str | None) -> datetime | None:
    if not raw:
        return None
    from foundation.jalali import parse_day

    day = parse_day(raw)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=TEHRAN)
