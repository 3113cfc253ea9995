"""`alerts send` stopped by Ctrl-C while the mail server is silent, and a send that leaves a message
to another dispatcher's hold. An operator's trial: Ctrl-C while the server hung at DATA exited only
after the SMTP timeout (31.5 s), with no line, and the message stayed held by the dead process's claim
for its lease (~7 minutes): `alerts retry ID` refused it, and a new send skipped it and exited 0."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

import alerts
from budgetwatch.cli import main
from budgetwatch.config import parse_config
from store import alerts as store_alerts

SCRIPT = Path(sys.executable).with_name("budgetwatch")


class SilentAtData:
    """An SMTP server on loopback that takes a message's envelope and data, then answers nothing more
    on that connection (``silent``); otherwise it accepts with 250. ``data_ended`` is set once a message's end
    arrived while it was silent."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.silent = True
        self.data_ended = threading.Event()
        self.accepted = 0
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 silent.test ESMTP\r\n")
        in_data = hung = False
        for line in reader:
            if hung:  # nothing is answered any more on this connection, not even QUIT
                continue
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    if self.silent:
                        self.data_ended.set()
                        hung = True
                        continue
                    self.accepted += 1
                    conn.sendall(b"250 2.0.0 accepted\r\n")
                continue
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 silent.test\r\n")
            elif verb == b"DATA":
                in_data = True
                conn.sendall(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                break
            else:  # MAIL, RCPT, RSET, NOOP
                conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.listener.close()
        for conn in self._connections:
            conn.close()


@pytest.fixture
def store_url(tmp_path) -> str:
    """The command's behaviour, not the database's (claims on both are tested beside alerts/): SQLite."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def silent_server():
    server = SilentAtData()
    yield server
    server.close()


def _config(tmp_path: Path, port: int) -> Path:
    config = {
        "alerts": {"enabled": True, "sender": "budgetwatch@mpo-kz.ir", "min_severity": "major",
                   "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "password_env": None,
                            "timeout_seconds": 30},
                   "retry": {"attempts_per_run": 3, "first_wait_seconds": 5}},
        "experts": [{"name": "کارشناس امور اجتماعی", "email": "social@mpo-kz.ir", "groups": ["social"]}],
        "routing": {"default": "consolidation", "agencies": {"118": "social"}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def _queue_one(engine, facts, config_path: Path) -> int:
    """One digest in the outbox, queued in this process (its calendar: tests/conftest.py); its id."""
    facts.deviation("118", "major")
    cfg = parse_config(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    alerts.queue_digests(engine, cfg.alerts, cfg.experts, cfg.routing)
    with engine.connect() as conn:
        (row,) = store_alerts.list_outbox(conn, store_alerts.PENDING)
    return row.id


def _until_waiting_in_a_syscall(pid: int) -> None:
    """Until process `pid` sleeps in the kernel (its wait for the server's answer): a SIGINT landing
    between Python's last check for signals and the poll(2) is seen only when the poll ends (CPython's
    race, which would make this test wait for the 30 s timeout). At once where /proc does not say so."""
    waits = {"x86_64": {"7", "271", "45", "0"}, "aarch64": {"73", "207", "63"}}.get(platform.machine())
    deadline = time.monotonic() + 30
    while waits is not None and time.monotonic() < deadline:
        try:
            call = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            return
        if call[:1] and call[0] in waits:
            return
        time.sleep(0.01)  # polling the kernel's word: there is nothing to await


def test_ctrl_c_while_the_server_is_silent_gives_the_message_back_at_once(engine, facts, store_url, silent_server,
                                                                        tmp_path, monkeypatch, capsys):
    config = _config(tmp_path, silent_server.port)
    message = _queue_one(engine, facts, config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    env["BUDGETWATCH_DATABASE_URL"] = store_url
    proc = subprocess.Popen([str(SCRIPT), "--config", str(config), "alerts", "send"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert silent_server.data_ended.wait(30), proc.communicate(timeout=5)
        _until_waiting_in_a_syscall(proc.pid)
        proc.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        _out, err = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
    # the bug took the SMTP timeout (30 s); 10 s leaves room for a machine busy with the suite's other
    # workers (3 s failed once under four concurrent test runs on two cores)
    assert took < 10, f"exited {took:.1f} s after Ctrl-C"
    # besides the config's WARNING that no expert covers the consolidation group
    said = [line for line in err.splitlines() if line.strip() and " WARNING " not in line]
    assert (proc.returncode, said) == (130, ["interrupted"])
    with engine.connect() as conn:
        (row,) = store_alerts.list_outbox(conn, store_alerts.PENDING)
    # given back at once: no claim left, the cut try not counted, due now, the reason in `alerts list`
    assert (row.id, row.claimed_by, row.attempts) == (message, None, 0)
    assert row.last_error.startswith("the send was interrupted (Ctrl-C or SIGTERM) before the mail server answered")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    assert main(["--config", str(config), "alerts", "retry", str(message)]) == 0  # not "held by a dispatcher"
    silent_server.silent = False
    capsys.readouterr()
    assert main(["--config", str(config), "alerts", "send"]) == 0
    assert "1 sent" in capsys.readouterr().out and silent_server.accepted == 1


def test_a_send_that_leaves_a_message_to_another_dispatcher_says_until_when(engine, facts, store_url,
                                                                          silent_server, tmp_path, monkeypatch,
                                                                          capsys, caplog):
    config = _config(tmp_path, silent_server.port)
    _queue_one(engine, facts, config)
    now = datetime.now(UTC)
    with engine.begin() as conn:  # a dispatcher that died mid-send: its claim lasts the lease
        assert store_alerts.claim_next(conn, "gone-host:4242", now, now) is not None
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    code = main(["--config", str(config), "alerts", "send"])
    out, _ = capsys.readouterr()
    assert code == 0 and "0 sent" in out  # docs/operations.md: left to its holder, exit 0, and said
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]  # on stderr, as a log line
    assert any("1 message is held by another dispatcher until 14" in line for line in said), said
    assert silent_server.accepted == 0 and not silent_server.data_ended.is_set()
