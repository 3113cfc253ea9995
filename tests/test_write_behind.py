"""store.driver.WriteBehind: a connection's writes run in order by a thread behind the caller.

The contract a run relies on (reconcile/lifecycle.py, Found with ``behind``): every write runs, in
the order given, in one thread; the caller waits when `depth` writes are queued; the first error
is raised to the caller (at its next submit or at wait) and nothing after it runs; close() waits for
the write in hand and runs none of the queued, so that the caller may roll back a connection no one
else uses. Plain functions stand in for writes: the thread does not know what it runs. A real
database behind it: tests/reconcile/test_open_as_judged.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from store.driver import WriteBehind


def test_writes_run_in_order_in_one_thread_other_than_the_callers():
    done: list[tuple[int, str]] = []
    behind = WriteBehind("test-writer", depth=2)
    try:
        for i in range(50):
            behind.submit(lambda i=i: done.append((i, threading.current_thread().name)))
        behind.wait()
    finally:
        behind.close()
    assert [i for i, _ in done] == list(range(50))
    assert {name for _, name in done} == {"test-writer"}


def test_the_caller_waits_while_depth_writes_are_queued():
    release = threading.Event()
    started = threading.Event()
    behind = WriteBehind("test-writer", depth=1)
    try:
        behind.submit(lambda: (started.set(), release.wait(10)))  # in hand
        assert started.wait(10)
        behind.submit(lambda: None)  # queued: the queue is full now
        third = threading.Thread(target=behind.submit, args=(lambda: None,))
        third.start()
        third.join(0.2)
        assert third.is_alive()  # waits for room
        release.set()
        third.join(10)
        assert not third.is_alive()
        behind.wait()
    finally:
        release.set()
        behind.close()


def test_the_first_error_is_raised_to_the_caller_and_nothing_after_it_runs():
    done: list[int] = []
    failed = threading.Event()
    behind = WriteBehind("test-writer", depth=8)

    def fail() -> None:
        failed.set()
        raise OSError("disk full")

    try:
        behind.submit(lambda: done.append(1))
        behind.submit(fail)
        behind.submit(lambda: done.append(3))
        with pytest.raises(OSError, match="disk full"):
            behind.wait()
        behind.submit(lambda: done.append(4))  # raised once: the caller is on its way out
        behind.wait()
    finally:
        behind.close()
    assert failed.is_set() and done == [1]


def test_an_error_is_raised_at_the_next_submit_too():
    failed = threading.Event()
    behind = WriteBehind("test-writer")

    def fail() -> None:
        try:
            raise ValueError("bad row")
        finally:
            failed.set()

    try:
        behind.submit(fail)
        assert failed.wait(10)
        behind._queue.join()  # the thread has recorded it
        with pytest.raises(ValueError, match="bad row"):
            behind.submit(lambda: None)
    finally:
        behind.close()


def test_close_waits_for_the_write_in_hand_and_runs_none_of_the_queued():
    release = threading.Event()
    started = threading.Event()
    done: list[str] = []
    behind = WriteBehind("test-writer", depth=4)
    behind.submit(lambda: (started.set(), release.wait(10), done.append("in hand")))
    behind.submit(lambda: done.append("queued"))
    assert started.wait(10)
    closer = threading.Thread(target=behind.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # the write in hand is not cut short
    release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert done == ["in hand"]
    assert not any(t.name == "test-writer" for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="closed"):
        behind.submit(lambda: None)
    behind.close()  # twice: nothing


def test_close_interrupted_by_ctrl_c_still_waits_for_the_write_in_hand():
    # A second Ctrl-C while a failed run closes its writer: close must not return (raising) while
    # the thread still runs a statement on the connection the caller rolls back next. A real
    # SIGINT to this process, taken by Python's default handler in the main thread.
    assert threading.current_thread() is threading.main_thread()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    release, started = threading.Event(), threading.Event()
    done: list[str] = []
    behind = WriteBehind("test-writer", depth=1)
    behind.submit(lambda: (started.set(), release.wait(10), time.sleep(0.05), done.append("in hand")))
    behind.submit(lambda: done.append("queued"))  # the queue is full now
    assert started.wait(10)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    threading.Timer(0.6, release.set).start()
    with pytest.raises(KeyboardInterrupt):
        behind.close()
    assert release.is_set() and done == ["in hand"]  # raised only once the write had ended
    assert not any(t.name == "test-writer" for t in threading.enumerate())
