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
  and per address: after ``MAX_ADDRESS_FAILURES`` (whatever the names) that address is. A
  sign-in whose password is being checked counts as a failure until it is known not to be one.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
import threading
import time
from collections import Counter, OrderedDict, deque
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
# verified against when the user does not exist, so an unknown name takes as long as a wrong password:
# made by the hasher in use when first needed (made at import, it cost every process importing the
# console an argon2 hash, and kept the production cost where the tests hash cheaply)
_dummy_hashes: dict[tuple, str] = {}


def _dummy_hash() -> str:
    h = _hasher
    key = (h.time_cost, h.memory_cost, h.parallelism, h.hash_len, h.salt_len, h.type)
    if key not in _dummy_hashes:
        _dummy_hashes.clear()
        _dummy_hashes[key] = h.hash(secrets.token_urlsafe(16))
    return _dummy_hashes[key]


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
        return _hasher.verify(password_hash or _dummy_hash(), password or "") and password_hash is not None
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
    try:
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
    except OSError as exc:  # an operator's trial: a PermissionError, exit 1
        raise SecretError(f"data_dir = '{data_dir}': the console's session secret ({SECRET_FILE}) cannot be made or "
                          f"read there ({exc.strerror or exc}): let this user write in it, or set {SECRET_ENV}") from None


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(session_token: str | None, sent: str | None) -> bool:
    return bool(session_token) and bool(sent) and hmac.compare_digest(str(session_token), str(sent))


IN_FLIGHT_WAIT = 2.0  # seconds: a refusal while other sign-ins of the pair or address are being checked


class TooManyFailures(Exception):
    """A sign-in refused before its password is checked: its name and address, or its address, have
    had their failures in the window (attempts still being checked among them); ``wait`` is the
    seconds until one more may be tried."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"too many failed sign-ins: try again in {wait:.0f} s")
        self.wait = wait


class LoginLimiter:
    """Failed sign-ins in a sliding window, per (user name, address) and per address; thread-safe, in
    memory. The name is counted in its canonical form: علي and علی are one name, so one count.

    A pair with ``max_failures`` failures in the window waits it out; so does an address with
    ``max_address_failures`` (one address trying a password against many names). A sign-in clears
    the failures its pair had before it began, not its address's (else an attacker's own account
    would reset it). Each table keeps at most ``max_entries`` keys, the oldest failures dropped first.

    An attempt takes its slot before its password is checked (``attempt``), and counts as a failure
    until it is known not to be one: checking a password takes a while (argon2), and 200 sign-ins
    sent at once all found the count at nought and were all checked (a trial). So a burst checks at
    most the limit's number of passwords; the rest are refused (TooManyFailures) unchecked.

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
        # each failure as (when, its number): a sign-in forgives the failures numbered before it began
        self._failures: OrderedDict[tuple[str, str], deque[tuple[float, int]]] = OrderedDict()
        self._addresses: OrderedDict[str, deque[tuple[float, int]]] = OrderedDict()
        self._checking: Counter = Counter()  # attempts in flight, by pair and by address
        self._numbered = 0  # failures recorded so far
        self._lock = threading.Lock()

    def _recent(self, table: OrderedDict, key) -> deque[tuple[float, int]]:
        """The key's failures in the window (an empty deque, not stored, when it has none)."""
        times = table.get(key)
        if times is None:
            return deque()
        cutoff = self._clock() - self.window
        while times and times[0][0] <= cutoff:
            times.popleft()
        if not times:
            del table[key]
        return times

    def _wait(self, times: deque[tuple[float, int]], checking: int, most: int) -> float:
        """Seconds until the key has fewer than `most` failures and attempts in flight together."""
        if len(times) + checking < most:
            return 0.0
        if len(times) >= most:  # the failures recorded are enough: until the oldest of them leaves
            return max(0.0, times[-most][0] + self.window - self._clock())
        # full only with the attempts still being checked: they end within seconds, and the window
        # is only the wait if they fail (a review: 20 sign-ins behind one office address were told
        # to wait 15 minutes, where one a second later got in)
        return IN_FLIGHT_WAIT

    def _blocked_for(self, pair: tuple[str, str], address: str) -> float:
        return max(self._wait(self._recent(self._failures, pair), self._checking[pair], self.max_failures),
                   self._wait(self._recent(self._addresses, address), self._checking[address],
                              self.max_address_failures))

    def blocked_for(self, username: str, address: str) -> float:
        """Seconds until this pair may try again (0: it may now)."""
        with self._lock:
            return self._blocked_for((canonical_username(username), address), address)

    def attempt(self, username: str, address: str) -> LoginAttempt:
        """A slot for one sign-in of this pair, taken now (TooManyFailures when there is none): it
        counts as a failure until the attempt says how it ended; use it with ``with``, which gives
        the slot back if it ends unsaid (the store failed before the password was checked)."""
        pair = (canonical_username(username), address)
        with self._lock:
            wait = self._blocked_for(pair, address)
            if wait:
                raise TooManyFailures(wait)
            self._checking[pair] += 1
            self._checking[address] += 1
            return LoginAttempt(self, pair, address, self._numbered)

    def _end(self, attempt: LoginAttempt, outcome: str) -> None:
        with self._lock:
            for key in (attempt.pair, attempt.address):
                self._checking[key] -= 1
                if self._checking[key] <= 0:
                    del self._checking[key]
            if outcome == "failed":
                now = self._clock()
                self._numbered += 1
                self._add(self._failures, attempt.pair, (now, self._numbered))
                self._add(self._addresses, attempt.address, (now, self._numbered))
            elif outcome == "succeeded":
                # the failures the user had met before signing in: not those of attempts alongside it
                times = self._failures.get(attempt.pair)
                while times and times[0][1] <= attempt.began_after:
                    times.popleft()
                if times is not None and not times:
                    del self._failures[attempt.pair]

    def _add(self, table: OrderedDict, key, failure: tuple[float, int]) -> None:
        times = self._recent(table, key)
        times.append(failure)
        table[key] = times
        table.move_to_end(key)  # the most recent failure last: the first is the one to drop
        while len(table) > self.max_entries:
            table.popitem(last=False)

    def size(self) -> int:
        """Keys held, in both tables."""
        with self._lock:
            return len(self._failures) + len(self._addresses)


class LoginAttempt:
    """One sign-in's slot in a LoginLimiter (LoginLimiter.attempt): ``failed()`` makes it one of the
    pair's and the address's failures; ``succeeded()`` gives it back and clears the pair's failures
    from before it began; leaving the ``with`` block unsaid gives it back alone."""

    def __init__(self, limiter: LoginLimiter, pair: tuple[str, str], address: str, began_after: int) -> None:
        self._limiter = limiter
        self.pair = pair
        self.address = address
        self.began_after = began_after  # the number of the last failure recorded when it began
        self._ended = False

    def _end(self, outcome: str) -> None:
        if not self._ended:
            self._ended = True
            self._limiter._end(self, outcome)

    def failed(self) -> None:
        self._end("failed")

    def succeeded(self) -> None:
        self._end("succeeded")

    def __enter__(self) -> LoginAttempt:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._end("unsaid")
