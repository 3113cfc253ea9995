"""serve's signal handling (service/scheduler.py): the handler only notes the signal.

The handler runs in the main thread between any two bytecodes; a lock it took (logging's, an
Event's condition) could be one the main thread already holds there, and serve would hang at a
SIGTERM — CI saw serve fall silent and never exit once. So the handler takes no lock and logs
nothing; the main thread, polling, says which signal came and goes on stopping. Real signals, sent
to this process; the previous handlers are restored.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from service import scheduler


@pytest.fixture
def handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_sigterm_is_noted_by_the_handler_and_said_by_the_main_thread(handlers, caplog):
    caplog.set_level(logging.INFO, logger="budgetwatch.service")
    received: list[int] = []
    scheduler._on_signals(received)
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(1000):  # a few bytecodes: the main thread runs the Python handler between them
        if received:
            break
    assert received == [signal.SIGTERM]
    assert not [r for r in caplog.records if "received" in r.getMessage()]  # the handler said nothing
    scheduler._wait_for_signal(received)
    assert [r.getMessage() for r in caplog.records if "received" in r.getMessage()] == ["SIGTERM received"]


def test_the_handler_waits_for_no_lock_another_thread_holds(handlers, caplog):
    """A SIGINT while another thread holds the log handler's lock (as it does while it writes a
    line): the handler must not wait for it. Had it logged, the main thread would wait until that
    thread let go (here: 5 s; in the case seen, never)."""
    caplog.set_level(logging.INFO, logger="budgetwatch.service")
    received: list[int] = []
    scheduler._on_signals(received)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        caplog.handler.acquire()
        try:
            held.set()
            release.wait(5)
        finally:
            caplog.handler.release()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            if received:
                break
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert received == [signal.SIGINT] and took < 2
