"""Who is signed in to the console: password hashes, the session secret, CSRF tokens, the login limit.

- Passwords are hashed with argon2 (argon2-cffi's defaults); the store keeps only the hash. A
  password has at least ``MIN_PASSWORD`` characters and is not blank (``WeakPassword`` otherwise),
  checked here so that the users page and `budgetwatch users add|passwd` refuse alike.
- Sessions live in a cookie signed with a secret (Starlette's SessionMiddleware): the secret comes
  from ``BUDGETWATCH_WEB_SECRET``, else from the file ``<data_dir>/web-secret``, which is generated
  on first start with mode 0600 and refused if others may read it. It never appears in logs or pages.
- Every session carries a random CSRF token; every POST must send it back (``csrf`` form field).
- Failed sign-ins are counted per (user name, client address): after ``MAX_FAILURES`` within
  ``WINDOW_SECONDS`` that pair is refused until the window passes, without checking the password;
  and per address: after ``MAX_ADDRESS_FAILURES`` (whatever the names) that address is.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from foundation.present import number
from store.users import canonical_username

SECRET_ENV = "BUDGETWATCH_WEB_SECRET"
SECRET_FILE = "web-secret"
MAX_FAILURES = 5
MAX_ADDRESS_FAILURES = 20  # from one address, whatever the names: one guess against many users
MAX_ENTRIES = 10_000  # keys a table of the limiter keeps (the oldest dropped first)
WINDOW_SECONDS = 15 * 60
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# verified against when the user does not exist, so an unknown name takes as long as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class SecretError(Exception):
    """The session secret cannot be had safely; the message says what to do."""


class WeakPassword(ValueError):
    """A password the console does not accept; ``persian`` says why on the users page."""

    def __init__(self, message: str, persian: str) -> None:
        super().__init__(message)
        self.persian = persian


def check_password_rule(password: str | None) -> None:
    """Refuse (WeakPassword) a password shorter than MIN_PASSWORD or blank once stripped (ten
    spaces are ten characters, and no password)."""
    if len(password or "") < MIN_PASSWORD:
        raise WeakPassword(f"the password must have at least {MIN_PASSWORD} characters",
                           f"گذرواژه دست‌کم {number(MIN_PASSWORD)} نویسه باشد.")
    if not password.strip():
        raise WeakPassword("the password must not be blank (spaces only)",
                           "گذرواژه نمی‌تواند فقط فاصله باشد.")


def hash_password(password: str) -> str:
    check_password_rule(password)
    return _hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password or "") and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def session_secret(data_dir: Path) -> str:
    """The secret sessions are signed with: the environment's, else the data directory's file."""
    from_env = os.environ.get(SECRET_ENV, "").strip()
    if from_env:
        if len(from_env) < 32:
            raise SecretError(f"{SECRET_ENV} is too short: use at least 32 random characters")
        return from_env
    path = Path(data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two consoles starting at once never overwrite each other's secret
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise SecretError(f"{path} may be read by others (mode {mode:o}): run `chmod 600 {path}`") from None
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) < 32:
            raise SecretError(f"{path} holds too short a secret: delete it to have a new one made") from None
        return secret
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secret + "\n")
    return secret


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(session_token: str | None, sent: str | None) -> bool:
    return bool(session_token) and bool(sent) and hmac.compare_digest(str(session_token), str(sent))


class LoginLimiter:
    """Failed sign-ins in a sliding window, per (user name, address) and per address; thread-safe, in
    memory. The name is counted in its canonical form: علي and علی are one name, so one count.

    A pair with ``max_failures`` failures in the window waits it out; so does an address with
    ``max_address_failures`` (one address trying a password against many names). A sign-in clears
    its pair's count, not its address's (else an attacker's own account would reset it). Each table
    keeps at most ``max_entries`` keys, the oldest failures dropped first.

    In memory on purpose: the console is one process, and a restart forgetting the count costs an
    attacker a restart of the server, which they cannot cause.
    """

    def __init__(self, max_failures: int = MAX_FAILURES, window_seconds: float = WINDOW_SECONDS,
                 clock=time.monotonic, max_address_failures: int = MAX_ADDRESS_FAILURES,
                 max_entries: int = MAX_ENTRIES) -> None:
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self.window = window_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._addresses: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, table: OrderedDict, key) -> deque[float]:
        """The key's failures in the window (an empty deque, not stored, when it has none)."""
        times = table.get(key)
        if times is None:
            return deque()
        cutoff = self._clock() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if not times:
            del table[key]
        return times

    def _wait(self, times: deque[float], most: int) -> float:
        if len(times) < most:
            return 0.0
        return max(0.0, times[-most] + self.window - self._clock())

    def blocked_for(self, username: str, address: str) -> float:
        """Seconds until this pair may try again (0: it may now)."""
        key = (canonical_username(username), address)
        with self._lock:
            return max(self._wait(self._recent(self._failures, key), self.max_failures),
                       self._wait(self._recent(self._addresses, address), self.max_address_failures))

    def _add(self, table: OrderedDict, key, now: float) -> None:
        times = self._recent(table, key)
        times.append(now)
        table[key] = times
        table.move_to_end(key)  # the most recent failure last: the first is the one to drop
        while len(table) > self.max_entries:
            table.popitem(last=False)

    def failed(self, username: str, address: str) -> None:
        now = self._clock()
        with self._lock:
            self._add(self._failures, (canonical_username(username), address), now)
            self._add(self._addresses, address, now)

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((canonical_username(username), address), None)

    def size(self) -> int:
        """Keys held, in both tables."""
        with self._lock:
            return len(self._failures) + len(self._addresses)
