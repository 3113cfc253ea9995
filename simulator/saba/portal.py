"""SABA's application: routing, bearer tokens, the rate limit and the agreements listing.

POST /api/v1/auth/token, GET /api/v1/agreements, GET /api/v1/agreements/{id}/operations and
/performance. Tokens expire after `token_lifetime_seconds` of the injected session clock or when
the revoke fault strikes (401 token_expired); each token may make `rate_limit_per_second` requests
in any sliding second, above that 429 with an integer Retry-After. payloads.py writes
the JSON of each item.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from simulator.saba.payloads import SabaPayloads
from simulator.wire import FaultDraw, Request, Response, seeded_digest

JSON_HEADERS = [("Content-Type", "application/json; charset=utf-8"), ("Cache-Control", "no-store")]
_DETAIL = re.compile(r"^/api/v1/agreements/([^/]+)/(operations|performance)$")
# The revoke fault spares a token's first requests, so the one repeat the contract allows after a
# new token (with up to 8 requests in flight) gets through.
FRESH_TOKEN_REQUESTS = 8


@dataclass
class Token:
    value: str
    issued_at: float
    revoked: bool = False
    served: int = 0
    window: deque = field(default_factory=deque)



class SabaPortal:
    """The SABA application: routes a Request to a Response. Thread-safe."""

    def __init__(self, sim) -> None:
        self.sim = sim
        self.world = sim.world
        self.config = sim.config
        self.payloads = SabaPayloads(sim)
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}
        self._issued = 0

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _json(status: int, payload: object, extra: list[tuple[str, str]] | None = None) -> Response:
        body = json.dumps(payload, ensure_ascii=False, separators=(", ", ": ")).encode("utf-8")
        return Response(status, body, JSON_HEADERS + (extra or []))

    def error500(self) -> Response:
        return self._json(500, {"error": "internal_error"})

    def maintenance(self) -> Response:
        return self._json(503, {"error": "service_unavailable"}, [("Retry-After", "1")])

    @staticmethod
    def endpoint(request: Request) -> str:
        path = request.path.rstrip("/")
        if path == "/api/v1/auth/token":
            return "token"
        if path == "/api/v1/agreements":
            return "agreements"
        match = _DETAIL.match(path)
        if match:
            return match.group(2)
        return "other"

    def revoke_all(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    # ---------------------------------------------------------------- routing

    def handle(self, request: Request, draw: FaultDraw) -> Response:
        endpoint = self.endpoint(request)
        if endpoint == "token":
            if request.method != "POST":
                return self._json(405, {"error": "method_not_allowed"})
            return self._token(request)
        if endpoint == "other":
            return self._json(404, {"error": "not_found"})
        if request.method != "GET":
            return self._json(405, {"error": "method_not_allowed"})
        refusal = self._authorise(request, draw)
        if refusal is not None:
            return refusal
        if endpoint == "agreements":
            return self._agreements(request)
        raw_id = _DETAIL.match(request.path.rstrip("/")).group(1)
        with self.world.lock:
            agreement = self.world.agreement_by_id(int(raw_id)) if raw_id.isdigit() else None
            if agreement is None:
                return self._json(404, {"error": "not_found"})
            if endpoint == "operations":
                return self._json(200, {"items": self.payloads.operations(agreement)})
            return self._json(200, {"items": self.payloads.performance(agreement)})

    # ---------------------------------------------------------------- auth

    def _token(self, request: Request) -> Response:
        try:
            body = json.loads(request.body.decode("utf-8") or "{}")
            user, password = str(body.get("username", "")), str(body.get("password", ""))
        except (ValueError, AttributeError, UnicodeDecodeError):
            return self._json(400, {"error": "invalid_request"})
        if user == self.sim.locked_user[0]:
            return self._json(423, {"error": "account_locked"})
        if (user, password) != self.sim.credentials["saba"]:
            return self._json(401, {"error": "invalid_credentials"})
        with self._lock:
            self._issued += 1
            n = self._issued
            digest = seeded_digest(self.config.seed, "token", n, size=30)
            signature = seeded_digest(self.config.seed, "sig", n, size=12)
            value = "eyJhbGciOiJIUzI1NiJ9." + _b64url(digest) + "." + _b64url(signature)
            self._tokens[value] = Token(value, self.config.time_source())
        lifetime = int(math.ceil(self.config.token_lifetime_seconds))
        return self._json(200, {"access_token": value, "token_type": "Bearer", "expires_in": lifetime})

    def _authorise(self, request: Request, draw: FaultDraw) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        now = self.config.time_source()
        with self._lock:
            token = self._tokens.get(value.strip()) if scheme.lower() == "bearer" else None
            if token is None:
                return self._json(401, {"error": "invalid_token"})
            if draw.revoke_token and token.served >= FRESH_TOKEN_REQUESTS:
                token.revoked = True
            if token.revoked or now - token.issued_at >= self.config.token_lifetime_seconds:
                return self._json(401, {"error": "token_expired"})
            window = token.window
            while window and now - window[0] >= 1.0:
                window.popleft()
            if len(window) >= self.config.rate_limit_per_second:
                wait = max(1, math.ceil(1.0 - (now - window[0])))
                return self._json(429, {"error": "rate_limited"}, [("Retry-After", str(wait))])
            window.append(now)
            token.served += 1
        return None

    # ---------------------------------------------------------------- agreements

    def _agreements(self, request: Request) -> Response:
        params = request.query
        try:
            year = int(params["fiscalYear"])
        except (KeyError, ValueError):
            return self._json(400, {"error": "invalid_request", "detail": "fiscalYear is required (a Jalali year)"})
        try:
            page = int(params.get("page", "1"))
            size = int(params.get("pageSize", "50"))
        except ValueError:
            return self._json(400, {"error": "invalid_request", "detail": "page and pageSize are integers"})
        if page < 1 or not 1 <= size <= 200:
            return self._json(400, {"error": "invalid_request", "detail": "page ≥ 1, pageSize 1–200"})
        since = None
        if params.get("modifiedSince"):
            since = _parse_iso(params["modifiedSince"])
            if since is None:
                return self._json(400, {"error": "invalid_request",
                                        "detail": "modifiedSince is an ISO 8601 date-time with offset"})
        world = self.world
        with world.lock:
            rows = world.agreement_rows(year, since)
            shown = rows[(page - 1) * size: page * size]
            items = [self.payloads.agreement_item(a) for a in shown]
            served = [a.portal_id for a in shown]
            total = len(rows)
        response = self._json(200, {"items": items, "page": page, "pageSize": size, "totalCount": total})
        if self.sim.faults.shift_while_paging:
            response.after = lambda: world.shift_agreements(year, served)
        return response


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_iso(text: str) -> datetime | None:
    text = text.strip().replace(" ", "+")  # a '+' that arrived unencoded in the query string
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
