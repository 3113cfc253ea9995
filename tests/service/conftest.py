"""Fixtures of the service's tests: `budgetwatch serve` as a real process against the simulator.

The simulator runs in the test process on loopback (tests/sync/conftest.py); serve is started as
``python -m budgetwatch.cli --log-format json serve`` with a config.yaml pointing at it, schedules
in seconds (the ``every N seconds`` form), and each portal's password given a distinctive value so
a test can grep every log line for it. :class:`Serve` reads serve's JSON log lines and waits for
events with a deadline (no sleeps). The deadlines are generous and the tests' own timeout raised
(PROCESS_TIMEOUT): on an idle machine each test takes seconds, but a machine shared by several
test runs can make a process start take tens of seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from store.db import open_store
from tests.sync.conftest import YEARS, simulator_factory, sqlite_url  # noqa: F401 - fixtures, shared

ROOT = Path(__file__).resolve().parents[2]
# distinctive: a grep for them in the logs finds them only if they leaked
PASSWORDS = {"nezarat4": "Nz-pass-7f3c9e1a-leak-canary", "saba": "Sb-pass-2d8b6f40-leak-canary"}
PROCESS_TIMEOUT = pytest.mark.timeout(400)
QUICK = {"sync": "every 2 seconds", "full_sync": "every 1 hours", "reconcile": "every 1 hours",
         "alerts": "every 1 hours", "dispatch": "every 1 hours", "housekeeping": "every 1 hours"}


def distinctive_passwords(sim: Any) -> None:
    for name, password in PASSWORDS.items():
        user, _ = sim.credentials[name]
        sim.credentials[name] = (user, password)


def write_config(tmp_path: Path, sim: Any, store_url: str, *, schedule: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> Path:
    """config.yaml for serve: both portals from password files (so a test can change one while serve
    runs), fast retries, the given schedule over QUICK's."""
    sources = {}
    for name, url in (("nezarat4", sim.nezarat_url), ("saba", sim.saba_url)):
        user, password = sim.credentials[name]
        secret = tmp_path / f"{name}.password"
        secret.write_text(password, encoding="utf-8")
        sources[name] = dict(base_url=url, username=user, password_env=None, password_file=str(secret),
                             fiscal_years=YEARS, backoff_initial_seconds=0.01, backoff_max_seconds=0.05,
                             **({"rate_limit_per_second": 500} if name == "saba" else {"page_pause_seconds": 0}))
    data = {"database": {"url": store_url}, "sources": sources, "schedule": {**QUICK, **(schedule or {})}}
    data.update(extra or {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _logged_at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["time"])


def budgetwatch(config: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "budgetwatch.cli", "--config", str(config), *args], check=False,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=_env())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("BUDGETWATCH_DATABASE_URL", None)
    return env


class Serve:
    """One `budgetwatch serve` process; its stderr (JSON log lines) goes to a file read on demand."""

    def __init__(self, config: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - the process writes to it until close()
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "budgetwatch.cli", "--config", str(config), "--log-format", "json", "serve"],
            stdout=subprocess.DEVNULL, stderr=self._log, cwd=ROOT, env=_env())
        self._seen = 0

    def lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines since this process started (a child's stray traceback is not JSON)."""
        found = []
        for line in self.lines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and "message" in event:
                found.append(event)
        return found

    def wait_for(self, what: Callable[[dict[str, Any]], bool], timeout: float = 90, *,
                 since: int = 0) -> dict[str, Any]:
        """The first event (from the ``since``-th on) for which ``what`` is true, within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events()[since:]:
                if what(event):
                    return event
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        tail = "\n".join(self.lines()[-30:])
        raise AssertionError(f"serve (exit {self.proc.poll()}) did not log the awaited event in {timeout} s:\n{tail}")

    def started(self, timeout: float = 120) -> None:
        self.wait_for(lambda e: e["message"].startswith("budgetwatch serve started"), timeout)

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM, wait for the exit; the seconds serve took from the signal to its last line
        (what it controls: cancelling, committing, releasing; not the interpreter's teardown,
        which a machine shared by many test runs can stretch)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:  # say what serve was doing (seen once in CI, not reproduced)
            tail = "\n".join(self.lines()[-40:])
            raise AssertionError(f"serve did not exit {timeout} s after SIGTERM; its last lines:\n{tail}") from None
        events = self.events()
        received = next(e for e in events if e["message"] == "SIGTERM received")
        stopped = next(e for e in events if e["message"] == "budgetwatch serve stopped")
        return (_logged_at(stopped) - _logged_at(received)).total_seconds()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()
        self._log.close()


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(config: Path, name: str = "serve") -> Serve:
        process = Serve(config, tmp_path / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def sync_runs(store_url: str) -> list[dict[str, Any]]:
    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.exec_driver_sql(
                "SELECT id, source, mode, status, inserted, updated, error FROM sync_run ORDER BY id").mappings()]
    finally:
        engine.dispose()


def due_now(config: Path, *job_ids: str) -> None:
    """Make the jobs `job_ids` due now in the store's job store, as if their slot had come (a crontab
    minute, without waiting for it): with serve not running, its next start runs them at once (a
    missed slot, within the misfire grace). The job store is first made as serve makes it (the same
    jobs, which serve then keeps), if no serve has run on the store yet."""
    from apscheduler.schedulers.base import STATE_STOPPED

    from budgetwatch.config import load_config
    from service.scheduler import _install_jobs, _scheduler

    app = load_config(config).config
    engine = open_store(app.database_url)
    scheduler = _scheduler(app, engine)
    try:
        scheduler.start(paused=True)  # nothing runs: the job store is only written
        _install_jobs(scheduler, app)
        for job_id in job_ids:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))
    finally:
        if scheduler.state != STATE_STOPPED:
            # APScheduler 3's shutdown ends the pause and processes due jobs once more: the jobs made
            # due would be handed to the executor just shut down, their slots lost (as in serve's _stop)
            scheduler._process_jobs = lambda: None  # type: ignore[method-assign]
            scheduler.shutdown(wait=False)
        engine.dispose()


def unfinished_runs(store_url: str) -> list[Any]:
    """The runs the job store records as started and not ended (store.service ``unfinished_runs``)."""
    from store.service import unfinished_runs as recorded

    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            return recorded(conn)
    finally:
        engine.dispose()


def next_run(store_url: str, job_id: str) -> datetime | None:
    from store.service import next_runs

    engine = open_store(store_url)
    try:
        with engine.connect() as conn:
            return next_runs(conn).get(job_id)
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")
