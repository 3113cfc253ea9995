"""Start-up of a command (a script, not a test): the whole `budgetwatch` process, min and median of N runs.

    .venv/bin/python bench/startup.py                                   # db current on a scratch store
    .venv/bin/python bench/startup.py --config sim.yaml --sync          # + an incremental sync (portals up)
    .venv/bin/python bench/startup.py --old /tmp/old                    # back to back with a tree (git worktree)

References, timed in the same loop: ``python -c pass`` (the interpreter) and ``python -c "import
sqlalchemy"`` (the one library every command needs). With ``--old TREE`` (e.g. ``git worktree add
/tmp/old <commit>``) each round runs the old tree's CLI (``PYTHONPATH=TREE``, entered through
``budgetwatch.cli.main`` as scripts were before budgetwatch/entry.py) right after this one's, so both
meet the same load. ``--sync`` times ``budgetwatch sync`` against the portals of ``--config`` (start
``budgetwatch simulator`` and run one sync first: then nothing has changed). Bytecode is written
and reused as an installed service would (PYTHONDONTWRITEBYTECODE is dropped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
SCRIPT = str(Path(PYTHON).with_name("budgetwatch"))
OLD_ENTRY = "import sys; from budgetwatch.cli import main; sys.argv[0] = 'budgetwatch'; sys.exit(main())"


def timed(argv: list[str], env: dict[str, str], cwd: str) -> float:
    """Seconds of one run, in `cwd`: not the checkout, which `python -c` would put before PYTHONPATH."""
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def scratch(tmp: str, name: str) -> str:
    """A config.yaml of a new SQLite store in `tmp` (each tree makes its own, at its own schema)."""
    config = Path(tmp) / f"{name}.yaml"
    config.write_text(f'database:\n  url: "sqlite:///{tmp}/{name}.db"\n', encoding="utf-8")
    return str(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--config", help="config.yaml to use (default: a scratch SQLite store)")
    parser.add_argument("--sync", action="store_true", help="also time `budgetwatch sync` (portals of --config)")
    parser.add_argument("--old", type=Path, help="a tree to compare with, run back to back")
    parser.add_argument("--old-config", help="the old tree's config.yaml (default: --config; give one when the "
                                             "trees' schemas differ, each store at its own tree's head)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="bw-startup-") as tmp:
        config = str(Path(args.config).resolve()) if args.config else scratch(tmp, "new")
        old_config = (str(Path(args.old_config).resolve()) if args.old_config else
                      config if args.config else scratch(tmp, "old"))
        commands = [["db", "current"]] + ([["sync"]] if args.sync else [])
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": ([PYTHON, "-c", "pass"], env),
            "python -c 'import sqlalchemy'": ([PYTHON, "-c", "import sqlalchemy"], env),
        }
        for command in commands:
            cases[f"budgetwatch {' '.join(command)}"] = ([SCRIPT, "--config", config, *command], env)
            if args.old:
                old_env = dict(env, PYTHONPATH=str(args.old.resolve()))
                cases[f"budgetwatch {' '.join(command)} (old: {args.old})"] = (
                    [PYTHON, "-c", OLD_ENTRY, "--config", old_config, *command], old_env)
        if not args.config:  # `db current` reads a store, it does not create one: each scratch store upgraded
            timed([SCRIPT, "--config", config, "db", "upgrade"], env, tmp)
            if args.old:
                timed([PYTHON, "-c", OLD_ENTRY, "--config", old_config, "db", "upgrade"],
                      dict(env, PYTHONPATH=str(args.old.resolve())), tmp)
        for argv, case_env in cases.values():  # warm up: bytecode written
            timed(argv, case_env, tmp)
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (argv, case_env) in cases.items():
                seconds[name].append(timed(argv, case_env, tmp))
    load = os.getloadavg()[0]
    print(f"start-up, {args.runs} runs each, interleaved; load average {load:.1f} at the end")
    for name, values in seconds.items():
        print(f"  {name:<60} min {min(values):.3f} s   median {statistics.median(values):.3f} s")


if __name__ == "__main__":
    main()
