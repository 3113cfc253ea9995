"""python -m simulator --help"""

from __future__ import annotations

import argparse
from datetime import datetime

from simulator.cli import serve
from simulator.config import LAYOUT_CHANGES, Faults


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a rate is a probability in [0, 1]")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Serve simulated Nezarat-4 and SABA portals on loopback ports until Ctrl-C.",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--projects", type=int, default=600)
    parser.add_argument("--agreements", type=int, default=300)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--nezarat-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--saba-port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--clock", type=datetime.fromisoformat, default=None,
                        help="the simulated now, ISO 8601 (naive = Asia/Tehran); default 2026-11-25T10:00")
    parser.add_argument("--session-idle-seconds", type=float, default=1200)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--latency-jitter-ms", type=int, default=0)
    for name in ("error500", "error200", "maintenance", "drop-session", "revoke-token", "reset"):
        parser.add_argument(f"--{name}-rate", type=_rate, default=0.0)
    parser.add_argument("--malformed", action="store_true")
    parser.add_argument("--shift-while-paging", action="store_true")
    parser.add_argument("--layout-change", choices=LAYOUT_CHANGES, default=None)
    parser.add_argument("--fault-seed", type=int, default=0)
    args = parser.parse_args(argv)
    faults = Faults(
        latency_jitter_ms=args.latency_jitter_ms,
        error500_rate=args.error500_rate,
        error200_rate=args.error200_rate,
        maintenance_rate=args.maintenance_rate,
        drop_session_rate=args.drop_session_rate,
        revoke_token_rate=args.revoke_token_rate,
        reset_rate=args.reset_rate,
        malformed=args.malformed,
        shift_while_paging=args.shift_while_paging,
        layout_change=args.layout_change,
        seed=args.fault_seed,
    )
    serve(
        seed=args.seed, projects=args.projects, agreements=args.agreements, nezarat_port=args.nezarat_port,
        saba_port=args.saba_port, clock=args.clock, faults=faults, latency_ms=args.latency_ms,
        session_idle_seconds=args.session_idle_seconds, host=args.host,
    )


if __name__ == "__main__":
    main()
