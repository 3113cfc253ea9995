"""SABA client: a bearer token, the paged agreement listing, and operations + performance per id.

The conversation with the JSON API (saba.md §1–5): a token from ``POST /api/v1/auth/token``, then
GETs with ``Authorization: Bearer``. A ``401 token_expired`` gets a new token and the call is
repeated once; a second one in a row for the same call is a :class:`ProtocolError`. Requests start
no faster than ``settings.rate_limit_per_second`` (the portal allows 10/s per token) and a 429
waits ``Retry-After`` before the call is repeated; both live in
:class:`~connectors.http.PortalHttp`, as do the other retries; the token shared by concurrent
calls is a :class:`~connectors.session.Login`. Field names are read by
``payloads.py`` and values by ``canonical.py``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import httpx

from foundation.jalali import TEHRAN

from ..errors import AuthenticationFailed, ProtocolError
from ..http import PortalHttp
from ..paging import asked_again
from foundation.records import AgreementDetail, AgreementListPage
from ..session import CHURN_LIMIT, Login, LoginUnderway
from ..settings import PortalSettings
from . import canonical, payloads

SOURCE = "saba"


class SabaClient:
    """One token's worth of SABA. Use as ``async with SabaClient(settings) as sb``."""

    def __init__(self, settings: PortalSettings,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._http = PortalHttp(SOURCE, settings, transport,
                                rate_limit_per_second=settings.rate_limit_per_second)
        self._token: str | None = None
        self._tokens = Login(self._http, self._request_token)  # which token is current

    async def __aenter__(self) -> SabaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def stats(self) -> dict[str, int]:
        """Counters under stable keys: requests, retries, relogins (new tokens), rejections, ..."""
        return dict(self._http.stats)

    # --- token --------------------------------------------------------------------------------

    async def login(self) -> None:
        """Get a token now (otherwise done on the first call). Raises AuthenticationFailed."""
        await self._tokens.login()

    async def _request_token(self) -> None:
        """Ask for a token; returns once ``self._token`` holds the new one."""
        endpoint = "POST " + payloads.TOKEN_PATH
        response = await self._http.send("POST", payloads.TOKEN_PATH, json={
            "username": self.settings.username,
            "password": self.settings.password.get_secret_value(),
        }, urgent=True)
        if response.status_code == 200:
            body = payloads.parse_body(response.text, endpoint,
                                       response.headers.get("Content-Type"))
            self._token = payloads.read_token(body, endpoint)
            return
        error = payloads.error_code(response.text)
        user = self.settings.username
        if response.status_code == 423 or error == "account_locked":
            raise AuthenticationFailed(SOURCE, "account_locked", f"the account {user!r} is "
                                       "locked: ask the portal admin to unlock it")
        if response.status_code == 401:
            raise AuthenticationFailed(SOURCE, "invalid_credentials", f"login refused for user "
                                       f"{user!r}: check sources.saba.username and the password "
                                       "in $SABA_PASSWORD")
        raise ProtocolError(SOURCE, f"{endpoint} answered HTTP {response.status_code} "
                                    f"(error {error!r})")

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    # --- calls --------------------------------------------------------------------------------

    async def _get_json(self, path: str, endpoint: str, params: dict[str, Any] | None = None,
                        *, urgent: bool = False) -> Any | None:
        """GET a JSON body; None on 404. A 401 gets a new token and the call is repeated.

        ``token_expired`` is the contract's word; any other 401 on a data call (a token the server
        no longer knows) is treated alike. The contract's "second token_expired in a row for the
        same call" is read as: this call got a new token, and that token was refused before it
        had answered any call (new tokens that do not work would loop for ever). A token that
        had worked and is revoked later is a new loss; a 401 for a token another task has
        replaced, or renewed, is that task's to judge.
        """
        renewed_by_me = False
        for _ in range(CHURN_LIMIT):
            on_wire = [await self._tokens.ensure()]

            def before_send() -> None:
                on_wire[0] = self._tokens.stamp()

            try:
                response = await self._http.send("GET", path, params=params, headers=self._auth,
                                                 before_send=before_send, urgent=urgent)
            except LoginUnderway:
                continue  # nothing was sent: wait for the new token
            if response.status_code == 401:
                token = on_wire[0]
                if token != self._tokens.current:
                    continue  # carried a token already replaced
                if renewed_by_me and token > self._tokens.proven:
                    raise ProtocolError(SOURCE, f"{endpoint}: 401 "
                                                f"{payloads.error_code(response.text) or ''} "
                                                "again right after a new token (a second one "
                                                "in a row)")
                renewed_by_me = await self._tokens.renew(token, "token expired; getting a new one")
                continue
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise ProtocolError(SOURCE, f"{endpoint} answered HTTP {response.status_code}")
            self._tokens.prove(on_wire[0])
            return payloads.parse_body(response.text, endpoint,
                                       response.headers.get("Content-Type"))
        raise ProtocolError(SOURCE, f"{endpoint}: the token kept being replaced")

    async def list_agreements(self, fiscal_year: int, modified_since: datetime | None = None
                              ) -> AsyncGenerator[AgreementListPage, int | None]:
        """One pass over the agreements of ``fiscal_year``: page 1, 2, ... until the last.

        The last page is the one with fewer items than the page size, or where page x page size
        reaches totalCount. The page size is ``settings.page_size``, or the smaller one the portal
        says it used. ``modified_since`` without a time zone is taken as Tehran time.
        """
        endpoint = "GET " + payloads.AGREEMENTS_PATH
        params: dict[str, Any] = {"fiscalYear": fiscal_year, "pageSize": self.settings.page_size}
        if modified_since is not None:
            if modified_since.tzinfo is None:
                modified_since = modified_since.replace(tzinfo=TEHRAN)
            params["modifiedSince"] = modified_since.isoformat()
        async def read(page_no: int) -> tuple[AgreementListPage, bool]:
            body = await self._get_json(payloads.AGREEMENTS_PATH, endpoint,
                                        {**params, "page": page_no}, urgent=True)
            if body is None:
                raise ProtocolError(SOURCE, f"{endpoint} answered HTTP 404")
            checked = payloads.read_agreements(body, endpoint)
            page_size = self.settings.page_size
            if 0 < checked.envelope["pageSize"] < page_size:
                page_size = checked.envelope["pageSize"]
            page = canonical.agreement_page(checked, fiscal_year, page_no, page_size)
            self._http.count("pages")
            self._http.count("rejections", len(page.rejections))
            last = checked.item_count < page_size or page_no * page_size >= checked.envelope["totalCount"]
            return page, last

        page_no = 1
        while True:
            page, last = await read(page_no)
            ask = yield page
            while (again := asked_again(ask, page_no)) is not None:  # connectors.paging
                ask = yield (await read(again))[0]
            if last:
                return
            page_no += 1

    async def agreement_detail(self, portal_id: int) -> AgreementDetail | None:
        """Operations and performance of one agreement (two calls); None if the id is unknown."""
        ops_path = payloads.operations_path(portal_id)
        perf_path = payloads.performance_path(portal_id)
        ops_body = await self._get_json(ops_path, "GET " + ops_path)
        perf_body = None if ops_body is None else await self._get_json(perf_path,
                                                                        "GET " + perf_path)
        self._http.count("details")
        if ops_body is None or perf_body is None:
            self._http.count("not_found")
            return None
        operations = payloads.read_operations(ops_body, "GET " + ops_path)
        reports = payloads.read_performance(perf_body, "GET " + perf_path)
        detail = canonical.agreement_detail(portal_id, operations, reports)
        self._http.count("rejections", len(detail.rejections))
        return detail
