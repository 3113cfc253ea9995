"""Each source's sync in a process of its own.

The two portals share nothing but the store, yet on one event loop they share one CPU: each
answer's HTTP handling, canonicalisation and commit holds up the other portal's requests. Measured
on the full-size benchmark (docs/benchmarks.md), the second portal on the same loop added ~10 % to
the wall time of the first. So :func:`run_sync` with more than one source runs each in a child
process (:func:`run_in_processes`), with the same engine code as a single-source run:

* The child gets the store URL, the configuration and the parent's environment (passwords are read
  from it when the client opens, as in-process), runs ``run_sync`` for its one source, and reports
  every observer event and its outcome over a pipe; the parent replays them to its observer
  (the CLI's progress bars), in order per source.
* A child exits when the parent process dies, however it dies: it watches a pipe only the parent
  holds open. A child stopped this way (or killed) leaves the store as a kill does: consistent,
  its run still ``running`` until the next sync of that source closes it as interrupted.
* A child that ends without an outcome is reported ``failed`` with its exit code.
* Ctrl-C reaches the children too (the terminal signals the whole process group; a parent
  interrupted otherwise passes it on): each records its run as interrupted, and the parent waits
  for them before raising ``KeyboardInterrupt``.

The children are started by the forkserver of :mod:`connectors.offload` (safe while the parent runs
threads, such as rich's progress refresh); ``client_factory`` must then be picklable (a
module-level function or class), which is why tests that inject transports run in-process.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from sqlalchemy.engine import Engine

from budgetwatch.config import Config
from connectors.offload import process_context

# what the forkserver imports once, so that each child starts in milliseconds, not seconds
PRELOAD = ("sync.engine", "store.db", "connectors", "budgetwatch.config")
_STOP_WAIT_SECONDS = 30.0  # after Ctrl-C: how long the children get to record their runs


def run_in_processes(engine: Engine, config: Config, sources: Sequence[str], *, full: bool,
                     years: Sequence[int] | None, observer: Any, client_factory: Any = None) -> list[Any]:
    """Run each source's sync in a child process; returns the outcomes in the order of `sources`."""
    from sync.engine import SourceOutcome

    context = process_context(PRELOAD)
    url = engine.url.render_as_string(hide_password=False)
    children: dict[Connection, tuple[str, Any]] = {}
    lifelines: list[Connection] = []
    try:
        for source in sources:
            events, its_events = context.Pipe(duplex=False)
            its_lifeline, lifeline = context.Pipe(duplex=False)
            process = context.Process(
                target=_child, name=f"budgetwatch-sync-{source}",
                args=(url, config, source, full, list(years) if years else None, client_factory,
                      dict(os.environ), its_events, its_lifeline),
            )
            process.start()
            its_events.close()  # the child holds its ends now: EOF means it is gone
            its_lifeline.close()
            children[events] = (source, process)
            lifelines.append(lifeline)
        outcomes = _relay(children, observer)
    except KeyboardInterrupt:
        _stop(children)
        raise
    finally:
        for source, process in children.values():
            process.join(_STOP_WAIT_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for lifeline in lifelines:
            lifeline.close()
    result = []
    for source in sources:
        outcome = outcomes.get(source)
        if outcome is None:
            process = next(p for s, p in children.values() if s == source)
            outcome = SourceOutcome(source=source, run_id=None, status="failed",
                                    error=f"the {source} sync process ended (exit code {process.exitcode}) "
                                          "before reporting; the next sync completes its run")
            observer.finished(outcome)
        result.append(outcome)
    return result


def _relay(children: dict[Connection, tuple[str, Any]], observer: Any) -> dict[str, Any]:
    """Replay the children's observer events until every child has hung up; their outcomes."""
    outcomes: dict[str, Any] = {}
    open_pipes = list(children)
    while open_pipes:
        for pipe in wait(open_pipes):
            try:
                method, args = pipe.recv()
            except (EOFError, OSError):
                open_pipes.remove(pipe)
                pipe.close()
                continue
            if method == "finished":
                outcomes[args[0].source] = args[0]
            getattr(observer, method)(*args)
    return outcomes


def _stop(children: dict[Connection, tuple[str, Any]]) -> None:
    """Ctrl-C in the parent: make sure each child heard it, then wait for them to record their runs."""
    for _source, process in children.values():
        if process.is_alive() and process.pid:
            try:
                os.kill(process.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    for _source, process in children.values():
        process.join(_STOP_WAIT_SECONDS)


# --- in the child ---------------------------------------------------------------------------------


class _Relay:
    """The child's observer: every event goes to the parent as (method, args)."""

    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe

    def __getattr__(self, method: str) -> Any:
        def send(*args: Any) -> None:
            try:
                self._pipe.send((method, args))
            except (BrokenPipeError, OSError):  # the parent is gone; the lifeline ends this process
                pass
        return send


def _child(url: str, config: Config, source: str, full: bool, years: list[int] | None, client_factory: Any,
           environ: dict[str, str], events: Connection, lifeline: Connection) -> None:
    threading.Thread(target=_watch, args=(lifeline,), daemon=True, name="parent-watch").start()
    os.environ.clear()
    os.environ.update(environ)
    from store.db import open_store
    from sync.engine import run_sync

    engine = open_store(url)
    try:
        run_sync(engine, config, [source], full=full, years=years, observer=_Relay(events),
                 client_factory=client_factory, processes=False)
    except KeyboardInterrupt:
        pass  # the run is recorded as interrupted and the parent was told; exit quietly
    finally:
        engine.dispose()
        events.close()


def _watch(lifeline: Connection) -> None:
    """Exit as soon as the parent process is gone (its end of the lifeline closes)."""
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(70)
