"""Reading pages off the event loop, in worker processes.

Reading a page (an HTML tree, then canonical values) costs milliseconds of CPU. On the event loop
that time is taken from the I/O: at a few dozen answers a second the loop saturates and requests
wait for it rather than for the portal. A :class:`PageReader` runs the reading in worker processes
instead, so the loop only does I/O; with ``workers=0`` it reads on the loop.

* What it runs is a module-level function (pickled by name) of picklable arguments, returning a
  picklable value, with no side effects: a page reads the same wherever it is read. Exceptions come
  back as raised (connector errors define ``__reduce__``), with the worker's traceback as their
  ``__cause__``; one that cannot be pickled is raised by reading that page again on the loop.
* The loop talks to each worker over two pipes, one job at a time per worker, and hears the answer
  through ``add_reader``: no helper threads in the parent, so the loop never waits for the GIL
  while a job is handed over. A worker reads its job while the loop goes on with the I/O.
* Start-up: the workers are forked by multiprocessing's forkserver (safe when the parent process
  runs threads; "spawn" where there is no forkserver), which imports the ``preload`` modules once
  per process; the first start of the forkserver is slow (it imports them) and is waited for in
  a helper thread, later workers start quickly. Until a worker has said it is ready, pages are
  read on the loop, so starting never delays a run.
* A worker that dies (killed, crashed) ends the pool with a warning; pages are then read on the
  loop, including those it had been given.
* Workers ignore SIGINT (the parent handles Ctrl-C and closes the pool) and exit when their job
  pipe closes: on ``close()``, and when the parent process dies, however it dies.
* As with any use of multiprocessing, a worker imports the parent's ``__main__`` module (as
  ``__mp_main__``): a script that uses a connector must keep its work under
  ``if __name__ == "__main__":``, or set ``parse_workers=0``. The ``budgetwatch`` script's main
  module imports nothing until it runs (budgetwatch/entry.py), so a worker holds only what reading
  pages needs.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from foundation.workers import process_context

log = logging.getLogger(__name__)

T = TypeVar("T")

# --- in the worker ------------------------------------------------------------------------------

_READY = ("ready",)
_AGAIN = ("again",)  # the answer cannot cross: read the page on the loop


def _serve(jobs: Connection, answers: Connection) -> None:
    """The worker's life: answer jobs one by one until the job pipe closes.

    Its end is never a traceback: a parent gone (killed, its output piped into a reader that
    closed, a layout change that stopped the source) shows here as a closed pipe, on the first
    word as on any later one, and the worker just ends (issue 12, item 10).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # ended with its parent's group: quietly
    _yield_to_the_loop()
    try:
        answers.send_bytes(pickle.dumps(_READY))
    except OSError:  # BrokenPipeError included: the reader is gone before the worker was ready
        return
    while True:
        try:
            job = jobs.recv_bytes()
        except (EOFError, OSError):  # closed by the reader, or the parent process is gone
            return
        try:
            answers.send_bytes(_answer(job))
        except OSError:  # nobody is listening any more
            return


def _yield_to_the_loop() -> None:
    """Linux: a job handed over must not preempt the event loop that handed it over.

    A woken process may take the CPU of the process that woke it; on a busy machine the loop then
    waits out the worker's time slice before it can go on with the I/O. SCHED_BATCH workers never
    preempt on wake-up (they run on an idle core, or when the loop next waits).
    """
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed: only scheduling is lost
        pass


def _answer(job: bytes) -> bytes:
    try:
        fn, args = pickle.loads(job)  # e.g. a function of an unimportable module: not here
    except Exception:
        return pickle.dumps(_AGAIN)
    try:
        value = fn(*args)
    except Exception as exc:
        remote = "".join(traceback.format_exception(exc))
        try:
            answer = pickle.dumps(("raised", exc, remote), pickle.HIGHEST_PROTOCOL)
            pickle.loads(answer)  # an exception may pickle and yet not unpickle
            return answer
        except Exception:
            return pickle.dumps(_AGAIN)
    try:
        return pickle.dumps(("ok", value), pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps(_AGAIN)


class RemoteTraceback(Exception):
    """The ``__cause__`` of an exception raised in a worker: the traceback it had there."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


# --- in the client ------------------------------------------------------------------------------


class _WorkerLost(Exception):
    """The worker died or the reader closed before the answer came: read on the loop."""


class _Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, jobs: Connection,
                 answers: Connection) -> None:
        self.process = process
        self.jobs = jobs  # the loop writes jobs here
        self.answers = answers  # and hears the answers here (add_reader)
        self.ready = False
        self.job: asyncio.Future | None = None

    def close(self) -> None:
        self.jobs.close()  # the worker reads EOF and exits
        self.answers.close()


class PageReader:
    """Runs reading functions in ``workers`` worker processes (0: on the event loop).

    ``start()`` when the client opens (in the event loop), ``close()`` when it closes; between the
    two, ``await read(fn, *args)`` returns ``fn(*args)`` or raises what it raised.
    """

    def __init__(self, source: str, workers: int, preload: Sequence[str] = ()) -> None:
        self.source = source
        self.workers = workers
        self._preload = tuple(preload)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._all: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._queue: deque[tuple[asyncio.Future, Callable[..., Any], tuple]] = deque()
        self._closed = False
        self._settled: asyncio.Event | None = None  # every worker ready, or given up

    # --- life ---

    def start(self) -> None:
        if self.workers <= 0 or self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._settled = asyncio.Event()
        threading.Thread(target=self._launch, args=(self._loop,), daemon=True,
                         name=f"{self.source}-reader-start").start()

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        """In a helper thread: starting a process waits for the forkserver."""
        context = process_context(self._preload)
        for _ in range(self.workers):
            if self._closed:
                return
            its_jobs, jobs = context.Pipe(duplex=False)  # (read end, write end)
            answers, its_answers = context.Pipe(duplex=False)
            try:
                process = context.Process(target=_serve, args=(its_jobs, its_answers),
                                          daemon=True, name=f"{self.source}-page-reader")
                process.start()
            except BaseException as exc:  # noqa: BLE001 - reported on the loop
                jobs.close()
                answers.close()
                self._call_soon(loop, self._give_up, f"could not start ({exc!r})")
                return
            finally:  # the worker holds its ends now; closing ours lets EOF mean what it says
                its_jobs.close()
                its_answers.close()
            worker = _Worker(process, jobs, answers)
            if not self._call_soon(loop, self._attach, worker):
                worker.close()
                return

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
        try:
            loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # the loop is closed: nobody is left to use the worker
            return False

    def _attach(self, worker: _Worker) -> None:
        if self._closed:
            worker.close()
            return
        self._all.append(worker)
        try:
            self._loop.add_reader(worker.answers.fileno(), self._on_answer, worker)
        except NotImplementedError:  # a loop without add_reader (Windows' proactor)
            self._all.remove(worker)
            worker.close()
            self._give_up("cannot be heard by this event loop")

    def close(self) -> None:
        """Let the workers go (they exit); reads still waiting for one are done on the loop."""
        if self._closed:
            return
        self._closed = True
        self._end_workers()

    def _give_up(self, why: str) -> None:
        if self._closed:
            return
        log.warning("%s: the page-reading worker process %s; reading pages on the event loop "
                    "from now on", self.source, why)
        self._closed = True
        self._end_workers()

    def _end_workers(self) -> None:
        for worker in self._all:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(worker.answers.fileno())
            if worker.job is not None and not worker.job.done():
                worker.job.set_exception(_WorkerLost())
            worker.close()
        self._all.clear()
        self._idle.clear()
        while self._queue:
            future, _, _ = self._queue.popleft()
            if not future.done():
                future.set_exception(_WorkerLost())
        if self._settled is not None:
            self._settled.set()

    async def started(self, timeout: float | None = None) -> bool:
        """Wait until every worker is ready (or the pool was given up); True when ready."""
        if self._settled is None:
            return False
        try:
            await asyncio.wait_for(self._settled.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return self._ready()

    def _ready(self) -> bool:
        return not self._closed and any(w.ready for w in self._all)

    # --- jobs ---

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._ready() or asyncio.get_running_loop() is not self._loop:
            return fn(*args)
        future = self._loop.create_future()
        self._queue.append((future, fn, args))
        self._dispatch()
        try:
            answer = await future
        except _WorkerLost:
            return fn(*args)
        if answer[0] == "ok":
            return answer[1]
        if answer[0] == "raised":
            _, exc, remote = answer
            exc.__cause__ = RemoteTraceback(remote)
            raise exc
        return fn(*args)  # _AGAIN

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            future, fn, args = self._queue.popleft()
            if future.done():  # the reader was cancelled meanwhile
                continue
            try:
                job = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - not for a worker: read on the loop
                future.set_result(_AGAIN)
                continue
            worker = self._idle.pop()
            try:
                # The worker is idle, blocked reading its pipe: the job goes straight through.
                worker.jobs.send_bytes(job)
            except OSError:
                future.set_exception(_WorkerLost())
                self._give_up(f"{worker.process.name} is gone (exit code "
                              f"{worker.process.exitcode})")
                return
            worker.job = future

    def _on_answer(self, worker: _Worker) -> None:
        try:
            answer = pickle.loads(worker.answers.recv_bytes())
        except (EOFError, OSError):
            self._give_up(f"{worker.process.name} exited")
            return
        except Exception as exc:  # noqa: BLE001 - an answer that does not unpickle
            answer = _AGAIN
            log.debug("%s: an answer of the page reader did not unpickle: %r", self.source, exc)
        if not worker.ready:
            worker.ready = True
            if all(w.ready for w in self._all) and len(self._all) == self.workers:
                self._settled.set()
        else:
            future, worker.job = worker.job, None
            if future is not None and not future.done():
                future.set_result(answer)
        self._idle.append(worker)
        self._dispatch()
