"""Memory and CPU of a process and all its descendants, for the benchmarks (Linux /proc)."""

from __future__ import annotations

import os
import threading


def tree_usage(root: int) -> dict[int, tuple[int, float]]:
    """{pid: (proportional resident memory in kB, CPU seconds)} of `root` and its descendants now.

    The sync runs each source in a process of its own and Nezarat-4 pages are read in a worker;
    PSS shares the pages they have in common (the forkserver's imports) fairly among them, so the
    sum is what the sync really occupies.
    """
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                    parents[int(entry)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    usage = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
                pss = next((int(line.split()[1]) for line in rollup if line.startswith("Pss:")), 0)
            with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            usage[pid] = (pss, (int(fields[11]) + int(fields[12])) / ticks)
        except (OSError, IndexError, ValueError):
            continue
    return usage


class TreeSampler:
    """Samples a process tree every `interval` seconds in a thread: peak PSS sum (kB), CPU seconds."""

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root, self.interval = root, interval
        self.peak_kb = 0
        self._cpu: dict[int, float] = {}  # the last CPU time seen of each process of the tree
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu.values())  # misses at most the last interval of each process

    def _sample(self) -> None:
        while True:
            usage = tree_usage(self.root)
            self.peak_kb = max(self.peak_kb, sum(pss for pss, _ in usage.values()))
            self._cpu.update({pid: seconds for pid, (_, seconds) in usage.items()})
            if self._done.wait(self.interval):
                return
