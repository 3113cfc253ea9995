"""The request and response shapes the two portal applications work with, apart from the socket code,
and the seeded digest both derive their ids, cookies, tokens and viewstates from."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Request:
    method: str
    target: str  # path and query as sent ('/Projects/ProjectList.aspx?x=1')
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client: str  # client IP
    path: str = ""
    query: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    _form: dict[str, str] | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.target)
        self.path = parts.path
        self.query = dict(parse_qsl(parts.query, keep_blank_values=True))
        for piece in self.headers.get("cookie", "").split(";"):
            name, sep, value = piece.strip().partition("=")
            if sep:
                self.cookies[name] = value

    @property
    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (UTF-8)."""
        if self._form is None:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            self._form = dict(parse_qsl(text, keep_blank_values=True))
        return self._form


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    after: Callable[[], None] | None = None  # run once the page is rendered, before sending (shifts)


@dataclass(frozen=True)
class FaultDraw:
    """What the fault RNG decided for one request; the applications act on the portal-specific parts."""

    reset: bool = False
    maintenance: bool = False
    maintenance_page: bool = False  # Nezarat-4: 200 maintenance page instead of 503
    error500: bool = False
    error200: bool = False
    error200_lbl: bool = False  # Nezarat-4: the lblError page instead of Runtime Error
    drop_session: bool = False
    revoke_token: bool = False
    delay_seconds: float = 0.0


def seeded_digest(seed: int, *parts: object, size: int) -> bytes:
    """Random-looking bytes that are the same for one seed and `parts`: one seed serves the same bytes."""
    return hashlib.blake2b("|".join(map(str, (seed, *parts))).encode(), digest_size=size).digest()
