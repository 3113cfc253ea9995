"""A real SMTP server in the test process (aiosmtpd on 127.0.0.1, a free port) that keeps every
message it accepts and can be told to answer the next messages otherwise (4xx, 5xx); and one that
greylists every recipient."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default

import pytest
from aiosmtpd.controller import Controller

from tests.alerts.builders import Facts


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


class Mailbox:
    """The aiosmtpd handler: what arrived, and the answers owed to the next DATA commands."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: deque[str] = deque()  # e.g. "421 try later"; empty: accept
        self.data_commands = 0
        self.on_accept: Callable[[Received], None] | None = None
        self.delay = 0.0  # seconds each DATA takes: a slow server
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        with self._lock:
            self.data_commands += 1
            if self.answers:
                return self.answers.popleft()
            got = Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content),
                           email.message_from_bytes(envelope.original_content, policy=default))
            self.received.append(got)
        if self.on_accept:
            self.on_accept(got)
        return "250 2.0.0 accepted"

    def message_ids(self) -> Counter:
        return Counter(r.message_id for r in self.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]


class Greylisting(Mailbox):
    """A server greylisting every recipient: ``451 4.7.1`` to each RCPT (a kill/fault trial's), the
    tries counted per recipient. ``on_refusal`` (when set) hears the count of refusals so far."""

    ANSWER = "451 4.7.1 greylisted, try again later"

    def __init__(self) -> None:
        super().__init__()
        self.refused: Counter = Counter()  # recipient -> RCPTs refused
        self.on_refusal: Callable[[int], None] | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.delay:  # a slow server: a pass over the outbox takes longer than the backoff
            await asyncio.sleep(self.delay)
        with self._lock:
            self.refused[address.lower()] += 1
            total = self.refused.total()
        if self.on_refusal:
            self.on_refusal(total)
        return self.ANSWER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpServer:
    """Start and stop a real SMTP server on one port (stopped: connections are refused)."""

    def __init__(self, mailbox: Mailbox | None = None, **controller_options) -> None:
        self.port = free_port()
        self.mailbox = mailbox or Mailbox()
        self.options = controller_options
        self._controller: Controller | None = None

    def start(self) -> SmtpServer:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **self.options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running SMTP server."""
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """An SMTP server not started yet: its port refuses connections until the test starts it."""
    server = SmtpServer()
    yield server
    server.stop()


@pytest.fixture
def greylisting() -> Iterator[SmtpServer]:
    """A running SMTP server that greylists every recipient (:class:`Greylisting`)."""
    server = SmtpServer(Greylisting()).start()
    yield server
    server.stop()


@pytest.fixture
def facts(engine) -> Facts:
    return Facts(engine)
