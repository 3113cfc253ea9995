"""The simulator process: both portals on loopback ports, faults, and the request log.

`Simulator(config)` generates the world and, on `start()` (or `with`), serves Nezarat-4 and SABA
from two stdlib `ThreadingHTTPServer`s in background threads. Every request goes through one
pipeline: draw the faults for it from the seeded fault RNG (latency, reset, maintenance, errors,
session drop / token revocation), let the portal answer, send the exact bytes, log
(portal, endpoint, status). A reset closes the socket with SO_LINGER 0, so the client sees a
connection reset and no response at all.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections import Counter
from datetime import timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from simulator.config import Faults, SimulatorConfig
from simulator.nezarat import NezaratPortal
from simulator.saba import SabaPortal
from simulator.wire import FaultDraw, Request, Response
from simulator.world import World

CREDENTIALS = {
    "nezarat4": ("budget.user", "demo-password"),
    "saba": ("budget.user", "demo-password"),
}
LOCKED_USER = ("locked.user", "demo-password")
RESET = 0  # the status logged for a connection reset without a response


class RequestLog:
    """Counts of requests by (portal, endpoint, status); status 0 = connection reset."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._grew = threading.Condition(self._lock)
        self._entries: list[tuple[str, str, int]] = []  # (portal, endpoint, status)

    def record(self, portal: str, endpoint: str, status: int) -> None:
        with self._lock:
            self._entries.append((portal, endpoint, status))
            self._grew.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until `count` requests are logged (True), or `timeout` seconds pass (False).

        For tests that act at a point of a client's progress (kill a sync after its n-th request).
        """
        with self._grew:
            return self._grew.wait_for(lambda: len(self._entries) >= count, timeout)

    def counts(self) -> dict[tuple[str, str, int], int]:
        with self._lock:
            return dict(Counter(self._entries))

    def total(self, portal: str | None = None, endpoint: str | None = None, status: int | None = None) -> int:
        with self._lock:
            return sum(
                1 for p, e, s in self._entries
                if (portal is None or p == portal) and (endpoint is None or e == endpoint)
                and (status is None or s == status)
            )

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()


class Simulator:
    """Both portals, in-process. See the package README for the interface."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.world = World.generate(self.config.seed, self.config.projects, self.config.agreements,
                                    self.config.clock)
        self.credentials = dict(CREDENTIALS)
        self.locked_user = LOCKED_USER
        self.log = RequestLog()
        self._fault_lock = threading.Lock()
        self.set_faults(self.config.faults)
        self.nezarat = NezaratPortal(self)
        self.saba = SabaPortal(self)
        self._servers: list[ThreadingHTTPServer] = []
        self._threads: list[threading.Thread] = []
        self.nezarat_url = ""
        self.saba_url = ""

    # ---------------------------------------------------------------- faults

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Switch faults while running; the fault RNG restarts from (config seed, faults.seed)."""
        with self._fault_lock:
            self._faults = faults
            self._fault_rng = random.Random(f"faults:{self.config.seed}:{faults.seed}")
            self.world.malformed_active = faults.malformed
            self.world.reset_shifts(faults.shift_changes)

    def draw(self, portal: str) -> FaultDraw:
        """Decide this request's faults. Always the same number of draws, so runs are reproducible."""
        with self._fault_lock:
            f, rng = self._faults, self._fault_rng
            rolls = [rng.random() for _ in range(9)]
        delay = (f.latency_ms + rolls[0] * f.latency_jitter_ms) / 1000.0
        nezarat = portal == "nezarat4"
        return FaultDraw(
            reset=rolls[1] < f.reset_rate,
            maintenance=rolls[2] < f.maintenance_rate,
            maintenance_page=nezarat and rolls[3] < 0.5,
            error500=rolls[4] < f.error500_rate,
            error200=nezarat and rolls[5] < f.error200_rate,
            error200_lbl=rolls[6] < 0.5,
            drop_session=nezarat and rolls[7] < f.drop_session_rate,
            revoke_token=not nezarat and rolls[8] < f.revoke_token_rate,
            delay_seconds=delay,
        )

    # ---------------------------------------------------------------- helpers for tests

    def reset_login_failures(self) -> None:
        """Forget failed logins (the captcha counter is per client IP, and tests share 127.0.0.1)."""
        self.nezarat.reset_login_failures()

    def drop_sessions(self) -> int:
        """Drop every Nezarat-4 session now; returns how many there were."""
        return self.nezarat.drop_sessions()

    def revoke_tokens(self) -> None:
        """Revoke every SABA token now."""
        self.saba.revoke_all()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Simulator:
        if self._servers:
            return self
        cfg = self.config
        for portal, app, port in (("nezarat4", self.nezarat, cfg.nezarat_port), ("saba", self.saba, cfg.saba_port)):
            server = _Server((cfg.host, port), _handler_for(self, portal, app))
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"simulator-{portal}", daemon=True)
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        host = cfg.host if ":" not in cfg.host else f"[{cfg.host}]"
        self.nezarat_url = f"http://{host}:{self._servers[0].server_address[1]}"
        self.saba_url = f"http://{host}:{self._servers[1].server_address[1]}"
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _handler_for(sim: Simulator, portal: str, app) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.sim, Handler.portal, Handler.app = sim, portal, app
    Handler.server_version = "Microsoft-IIS/10.0" if portal == "nezarat4" else "nginx"
    return Handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed after a minute
    sim: Simulator
    portal: str
    app: object

    def setup(self) -> None:
        super().setup()
        # One write per response and no Nagle delay: keep-alive clients get answers in microseconds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence stderr
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        # The simulated clock, not the wall clock: the same seed serves the same bytes.
        return format_datetime(self.sim.world.now.astimezone(timezone.utc), usegmt=True)

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                          self.client_address[0])
        app = self.app
        endpoint = app.endpoint(request)
        draw = self.sim.draw(self.portal)
        if draw.delay_seconds > 0:
            time.sleep(draw.delay_seconds)
        if draw.reset:
            self.sim.log.record(self.portal, endpoint, RESET)
            self._reset()
            return
        if draw.maintenance:
            response = app.maintenance(draw.maintenance_page) if self.portal == "nezarat4" else app.maintenance()
        elif draw.error500:
            response = app.runtime_error(500) if self.portal == "nezarat4" else app.error500()
        elif draw.error200:
            response = app.error_fa() if draw.error200_lbl else app.runtime_error(200)
        else:
            try:
                response = app.handle(request, draw)
            except Exception:  # a simulator bug must look like the portal's own error page
                response = app.runtime_error(500) if self.portal == "nezarat4" else app.error500()
        # Log and apply the after-hook before the bytes leave: once a client holds the answer, the
        # log counts it and the world has already shifted (no race with the client's next request).
        self.sim.log.record(self.portal, endpoint, response.status)
        if response.after is not None:
            response.after()
        self._send(response, head=(method == "HEAD"))

    def _send(self, response: Response, head: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if not head:
            self._headers_buffer.append(b"\r\n" + response.body)
            self.flush_headers()
        else:
            self.end_headers()

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 then close sends an RST, and no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            # The descriptor really closes (with the RST) when finish() closes rfile, its last user.
            self.connection.close()
        except OSError:
            pass
