"""The nightly reconciliation, back to back with an older tree (a script, not a test).

    .venv/bin/python bench/nightly.py --database postgresql+psycopg://postgres@127.0.0.1:5432/test --old /tmp/old
    .venv/bin/python bench/nightly.py --size 30000 --rounds 6            # SQLite, this tree only
    .venv/bin/python bench/nightly.py --database … --old /tmp/old --full  # and --full beside each

The case issue 17 sets "≤ 15 % of a full run" for, measured the way sessions 27–29 compared two
trees: one store, the run alone, many rounds, each tree right after the other. bench/reconcile.py
times each step once, whole commands included, and a single 1 % run there swings by ±15 % from one
minute to the next (docs/benchmarks.md, session 26 on).

It generates one store with bench/reconcile.py's generator (N projects, N/2 expense agreements:
1,000,000 performance rows at 100,000), records its first run as of 1405/01/20 with this tree, and
keeps it as a template: on PostgreSQL vacuumed and checkpointed, as autovacuum would leave a store
after a first run (the test server runs none). Each round, for each tree: a copy of the template
(PostgreSQL: ``CREATE DATABASE … TEMPLATE … STRATEGY FILE_COPY``, beside the URL's database, its
checkpoints made before the run rather than during it; SQLite: the file), 1 % of its subjects changed as
a sync would (bench/reconcile.py ``change_one_percent``), and an incremental run the next day
(1405/01/21) in a child process of that tree (``PYTHONPATH=TREE``); with ``--full`` a full run that
day after it, on the same copy (it pairs every finding with a deviation the nightly run opened: the
stricter comparison, the one sessions 27–40 reported); with ``--instead`` a full run that day on a
second copy changed alike, in the nightly run's place (the same change judged whole: what the
nightly run saves a night, its openings included on both sides). The time printed is the run's own, as it records it
(``reconcile_run.stats``: no start-up, no output). The order of the trees alternates from round to
round, so that neither always meets the other's after-effects (a server's cache, a checkpoint).
Both trees must open the template's schema (a tree from before a migration cannot). Each child
says which files it ran: a tree that lacks a package would run this checkout's (an editable install
answers for what ``PYTHONPATH`` lacks), and stops the benchmark instead. The store's URL goes to the
child in its environment, never in its arguments (a process list shows those).

Prints each round, then each tree's median and range, and the new tree's median against the old's.
Each nightly run says how busy the machine's cores were while its child process ran (start-up and
the statistics refreshed after the run included): near 100 %, the run is bound by CPU, and only
less work, not work moved between the run and its helper, makes it quicker (docs/benchmarks.md,
session 33).
Needs the right to create databases on PostgreSQL (the machine's server has it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from foundation.jalali import parse_day  # noqa: E402
from reconcile import engine as reconcile_engine  # noqa: E402
from reconcile.settings import ReconcileConfig  # noqa: E402
from store.db import open_store  # noqa: E402

# run in the tree's own interpreter: the run as of a day, then its recorded seconds and scope
CHILD = """
import json, os, sys
import sqlalchemy as sa
from foundation.jalali import parse_day
from reconcile import engine
from reconcile.settings import ReconcileConfig
from store.db import open_store
url, (day, mode) = os.environ["BW_NIGHTLY_URL"], sys.argv[1:3]
store = open_store(url)
engine.run(store, ReconcileConfig(), as_of=parse_day(day), incremental=mode == "incremental", keep=False)
with store.connect() as conn:
    stats = conn.execute(sa.text("SELECT stats FROM reconcile_run ORDER BY id DESC LIMIT 1")).scalar_one()
store.dispose()
stats = json.loads(stats) if isinstance(stats, str) else stats
print(json.dumps({"seconds": stats["seconds"], "scope": stats["scope"], "findings": stats["findings"],
                  "code": engine.__file__}))
"""


def _generator():  # bench/reconcile.py's generator and change (a script, not a package)
    spec = importlib.util.spec_from_file_location("bench_reconcile", Path(__file__).with_name("reconcile.py"))
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


class Copies:
    """A template store and its copies: databases beside the URL's on PostgreSQL, files on SQLite."""

    def __init__(self, database: str | None, tmp: Path) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.tmp = tmp
        if database and not database.startswith("postgresql"):
            raise SystemExit(f"--database takes a PostgreSQL URL (SQLite is the default), not {database.split(':')[0]}")
        if database and database.startswith("postgresql://"):  # as store.db.make_engine reads it
            database = "postgresql+psycopg://" + database.removeprefix("postgresql://")
        self.url = sa.engine.make_url(database) if database else None
        self.admin = (sa.create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
                      if self.url is not None else None)
        self.made: list[str] = []

    def _name(self, label: str) -> str:
        return f"bw_nightly_{self.tag}_{label}"

    def _url(self, name: str) -> str:
        if self.url is None:
            return f"sqlite:///{self.tmp / (name + '.db')}"
        return self.url.set(database=name).render_as_string(hide_password=False)

    def template(self) -> str:
        name = self._name("template")
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.made.append(name)
        return self._url(name)

    def settle(self) -> None:
        """PostgreSQL: the template vacuumed (visibility and hint bits set once, not in every copy's
        run) and its pages written out."""
        if self.admin is None:
            return
        engine = sa.create_engine(self._url(self._name("template")), isolation_level="AUTOCOMMIT",
                                  poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("VACUUM (ANALYZE)"))
                conn.execute(sa.text("CHECKPOINT"))
        finally:
            engine.dispose()

    @contextmanager
    def copy(self, label: str) -> Iterator[str]:
        source, name = self._name("template"), self._name(label)
        if self.admin is not None:
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{source}" STRATEGY FILE_COPY'))
        else:
            for suffix in ("", "-wal"):  # the log too, should a checkpoint have left one
                if (self.tmp / f"{source}.db{suffix}").exists():
                    shutil.copyfile(self.tmp / f"{source}.db{suffix}", self.tmp / f"{name}.db{suffix}")
        try:
            yield self._url(name)
        finally:
            self._drop(name)

    def _drop(self, name: str) -> None:
        if self.admin is not None:  # FORCE: a child killed by Ctrl-C may leave its server process behind
            with self.admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.tmp / name}.db{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        """Drop the template: every drop tried, a failure said rather than raised over the error that
        ended the benchmark."""
        for name in self.made:
            try:
                self._drop(name)
            except Exception as exc:  # noqa: BLE001 - said, and the next one is tried
                print(f"could not drop {name}: {exc}", file=sys.stderr)
        if self.admin is not None:
            self.admin.dispose()


def _busy() -> tuple[float, float]:
    """The machine's busy and all core-seconds so far (Linux's /proc/stat; zeros elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(t) for t in stat.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0
    per_second = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / per_second, sum(ticks) / per_second  # less idle and iowait


def run_in(tree: Path, url: str, day: str, mode: str, cwd: Path) -> dict:
    """One run of `tree`'s engine on `url`, in a child process: its recorded seconds, scope, findings,
    and the share of the machine's cores busy while the child ran (`busy`: the run, its helper and
    the database server, and whatever else the machine did; 1.0 is every core all the time)."""
    env = dict(os.environ, PYTHONPATH=str(tree), BW_NIGHTLY_URL=url)
    busy_before, all_before = _busy()
    done = subprocess.run([sys.executable, "-c", CHILD, day, mode], env=env, cwd=cwd, capture_output=True, text=True)
    busy_after, all_after = _busy()
    if done.returncode != 0:
        raise SystemExit(f"{tree}: the {mode} run failed ({done.returncode}): {done.stderr[-3000:]}")
    said = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(said["code"]).is_relative_to(tree):
        raise SystemExit(f"{tree}: the run's code came from {said['code']}, not from the tree")
    said["busy"] = (busy_after - busy_before) / (all_after - all_before) if all_after > all_before else 0.0
    return said


def _summary(label: str, values: list[float]) -> str:
    return (f"  {label:<6} median {statistics.median(values):6.3f} s, "
            f"{min(values):.3f}–{max(values):.3f} s over {len(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="projects (default 100,000)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds, each tree once a round (default 10)")
    parser.add_argument("--database", help="PostgreSQL URL (databases are made beside it and dropped); "
                                           "default: SQLite files in a temporary folder")
    parser.add_argument("--old", type=Path, help="a tree to compare with (e.g. `git worktree add /tmp/old <commit>`)")
    parser.add_argument("--full", action="store_true", help="also a full run after each nightly one")
    parser.add_argument("--change", choices=("lower", "mixed"), default="lower",
                        help="how the 1 %% changes (bench/reconcile.py CHANGES): lower, every changed operation "
                             "breaking both year-to-date rules (the default, the worst case), or mixed")
    parser.add_argument("--instead", action="store_true",
                        help="also a full run in the nightly one's place: a second copy, the same change, the same day")
    args = parser.parse_args()
    generator = _generator()
    trees = {"new": ROOT} | ({"old": args.old.resolve()} if args.old else {})
    for name, tree in trees.items():
        if not (tree / "reconcile" / "engine.py").is_file():
            raise SystemExit(f"the {name} tree {tree} holds no reconcile/engine.py")
    runs: dict[str, list[float]] = {name: [] for name in trees}
    fulls: dict[str, list[float]] = {name: [] for name in trees}
    insteads: dict[str, list[float]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="bw-nightly-") as tmp_name:
        tmp = Path(tmp_name)
        copies = Copies(args.database, tmp)
        try:
            url = copies.template()
            store = open_store(url)
            try:
                started = time.perf_counter()
                counts = generator.generate(store, args.size)
                generated = time.perf_counter() - started
                started = time.perf_counter()
                reconcile_engine.run(store, ReconcileConfig(), as_of=parse_day(generator.AS_OF), keep=False)
                first = time.perf_counter() - started
            finally:
                store.dispose()
            copies.settle()
            print(f"{sa.engine.make_url(url).get_backend_name()}, N = {args.size:,}: {counts['projects']:,} projects, "
                  f"{counts['performance']:,} performance rows (generated in {generated:.1f} s; the first run "
                  f"{first:.1f} s, this tree); each round: 1 % changed ({args.change}), judged on {generator.NEXT_DAY}")
            for k in range(args.rounds):
                order = list(trees) if k % 2 == 0 else list(reversed(trees))
                said = []
                for name in order:
                    with copies.copy(f"{name}_{k}") as copy:
                        changed = generator.change_one_percent(copy, 7 + k % 50, args.change)
                        night = run_in(trees[name], copy, generator.NEXT_DAY, "incremental", tmp)
                        if night["scope"] != "incremental":
                            raise SystemExit(f"{name}: the nightly run judged {night['scope']}, not incrementally")
                        runs[name].append(night["seconds"])
                        line = (f"{name} {night['seconds']:6.3f} s ({night['findings']:,} findings, {changed:,} rows, "
                                f"cores {night['busy']:.0%} busy)")
                        if args.full:
                            full = run_in(trees[name], copy, generator.NEXT_DAY, "full", tmp)
                            fulls[name].append(full["seconds"])
                            line += f", --full {full['seconds']:6.3f} s ({night['seconds'] / full['seconds']:.1%})"
                    if args.instead:
                        with copies.copy(f"{name}_{k}_instead") as copy:
                            generator.change_one_percent(copy, 7 + k % 50, args.change)
                            whole = run_in(trees[name], copy, generator.NEXT_DAY, "full", tmp)
                            if whole["scope"] != "full":
                                raise SystemExit(f"{name}: the run in the nightly run's place judged {whole['scope']}")
                            insteads[name].append(whole["seconds"])
                            line += (f", --instead {whole['seconds']:6.3f} s "
                                     f"({night['seconds'] / whole['seconds']:.1%})")
                    said.append(line)
                print(f"  round {k + 1:>2}: " + "; ".join(said), flush=True)
        finally:
            copies.close()
    for name in trees:
        print(_summary(name, runs[name]))
        if fulls[name]:
            print(_summary(f"{name} --full", fulls[name]) + f"; the nightly run's median "
                  f"{statistics.median(runs[name]) / statistics.median(fulls[name]):.1%} of --full's")
        if insteads[name]:
            print(_summary(f"{name} --instead", insteads[name]) + f"; the nightly run's median "
                  f"{statistics.median(runs[name]) / statistics.median(insteads[name]):.1%} of --instead's")
    if args.old:
        print(f"  new ÷ old, medians: {statistics.median(runs['new']) / statistics.median(runs['old']):.3f}; "
              f"rounds where new was quicker: {sum(n < o for n, o in zip(runs['new'], runs['old']))} of {args.rounds}")


if __name__ == "__main__":
    main()
