"""Starting worker processes: one multiprocessing context for every part of budgetwatch that does.

Users: the page readers of the connectors (connectors/offload.py). (The reconciliation's workers,
reconcile/parallel.py, went when the rules became set-wise. Its one helper process,
reconcile/helper.py, is a plain ``python -m`` child and not started here: docs/decisions.md, "No pool
of workers; one helper process, and a reading thread".)

Never ``fork``: the parent runs threads (rich's progress refresh, the page readers' start-up), and a
forked child may inherit a lock another thread held. The forkserver (Linux, macOS) forks children
from a clean server process that has imported the ``preload`` modules once, so a child starts in
milliseconds; where there is none, ``spawn`` starts each child from scratch.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import threading
from collections.abc import Sequence

# forkserver where there is one (Linux, macOS); spawn elsewhere. Never fork: the parent runs threads.
_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
_CONTEXT = multiprocessing.get_context(_METHOD)
_preload: set[str] = set()
_preload_lock = threading.Lock()


def process_context(preload: Sequence[str]) -> multiprocessing.context.BaseContext:
    """The context, told to have the forkserver import ``preload`` (until the server starts).

    The forkserver starts at the first child of this process; what is asked for after that is
    imported by each child itself.
    """
    if _METHOD == "forkserver":
        with _preload_lock:
            if not _preload.issuperset(preload):
                _preload.update(preload)
                _CONTEXT.set_forkserver_preload(sorted(_preload))
    return _CONTEXT
