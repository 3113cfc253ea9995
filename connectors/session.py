"""One login shared by every task of a client: a portal session (Nezarat-4) or a bearer token (SABA).

Many detail reads run at once over one login. When one of them finds the login lost (a redirect to
the login page, a ``401 token_expired``), exactly one task logs in again; the others wait for it
and resend. :class:`Login` keeps that bookkeeping for both clients; how a portal logs in is the
client's own (the ``obtain`` coroutine it is given).

Logins are numbered. A request remembers the number of the login it carried (:meth:`Login.stamp`,
called right before it goes on the wire): a loss reported for a login that has been replaced since
is already dealt with, and a login that has answered a request is *proven*, which is how a client
tells "the new login did not take" (an error) from "the portal dropped a working login" (log in
again). A refused login (:class:`~connectors.errors.AuthenticationFailed`) is never tried again in
the same run: it would only count as one more failed attempt against the account.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .errors import AuthenticationFailed
from .http import PortalHttp

log = logging.getLogger(__name__)

CHURN_LIMIT = 8  # tries of one request spoilt by other tasks' re-logins before giving up


class LoginUnderway(Exception):
    """A login started while this request waited for its turn: nothing was sent; wait and resend
    (sent now, it would carry a login about to be replaced, or none)."""


class Login:
    """The current login of one client, renewed by one task at a time."""

    def __init__(self, http: PortalHttp, obtain: Callable[[], Awaitable[None]]) -> None:
        self._http = http
        self._obtain = obtain  # logs in; returns on success, raises AuthenticationFailed on refusal
        self._lock = asyncio.Lock()
        self.current = 0  # which login is current; 0 = not logged in yet
        self.underway = False
        self.proven = 0  # the latest login that has answered a request
        self._refusal: AuthenticationFailed | None = None

    async def login(self) -> None:
        """Log in now (otherwise done before the first request). Raises AuthenticationFailed."""
        async with self._lock:
            await self._login()

    async def ensure(self) -> int:
        """The current login; logs in first if there is none, waits if a login is under way."""
        if not self.current or self.underway:
            async with self._lock:
                if not self.current:
                    await self._login()
        return self.current

    def stamp(self) -> int:
        """Right before a request goes on the wire: the login it carries. Raises LoginUnderway
        when a login has started meanwhile (nothing is sent)."""
        if self.underway:
            raise LoginUnderway()
        return self.current

    def prove(self, login: int) -> None:
        """A request carrying ``login`` was answered as logged in."""
        self.proven = max(self.proven, login)

    async def renew(self, lost: int, why: str) -> bool:
        """Log in again after ``lost`` was refused, unless another task already has; whether this
        call did (``why`` is logged, e.g. "session lost; logging in again")."""
        async with self._lock:
            if self.current != lost:
                return False
            self._http.count("relogins")
            log.info("%s: %s", self._http.source, why)
            await self._login()
            return True

    async def _login(self) -> None:
        if self._refusal is not None:  # never try a refused login again in this run
            raise self._refusal
        self.underway = True
        try:
            await self._obtain()
            self.current += 1
        except AuthenticationFailed as refusal:
            self._refusal = refusal
            raise
        finally:
            self.underway = False
