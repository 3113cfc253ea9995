"""The login shared by a client's concurrent requests (connectors/session.py), on its own.

The clients' tests show it at work over HTTP (re-logins after a lost session or an expired token);
these pin the rules themselves: many tasks that find one login lost log in once, a loss reported
for a login already replaced logs nobody in, and a refused login is never tried again.
"""

from __future__ import annotations

import asyncio

import pytest

from connectors.errors import AuthenticationFailed
from connectors.http import PortalHttp
from connectors.session import Login, LoginUnderway

from connector_fakes import fast_settings


class Portal:
    """Counts logins; refuses them when told to. Each login yields to the loop, as a request would."""

    def __init__(self, refuse: bool = False) -> None:
        self.logins = 0
        self.refuse = refuse

    async def obtain(self) -> None:
        self.logins += 1
        await asyncio.sleep(0.01)
        if self.refuse:
            raise AuthenticationFailed("saba", "invalid_credentials", "login refused for user 'budget.user'")


async def _with_login(portal: Portal, check) -> None:
    http = PortalHttp("saba", fast_settings())
    try:
        await check(Login(http, portal.obtain), http)
    finally:
        await http.aclose()


@pytest.mark.anyio
async def test_many_tasks_that_find_one_login_lost_log_in_once():
    portal = Portal()

    async def check(login: Login, http: PortalHttp) -> None:
        first = await login.ensure()
        renewed = await asyncio.gather(*(login.renew(first, "token expired") for _ in range(5)))
        assert sorted(renewed) == [False] * 4 + [True]
        assert (login.current, portal.logins, http.stats["relogins"]) == (2, 2, 1)

    await _with_login(portal, check)


@pytest.mark.anyio
async def test_a_loss_of_a_login_already_replaced_logs_nobody_in():
    portal = Portal()

    async def check(login: Login, http: PortalHttp) -> None:
        first = await login.ensure()
        assert await login.renew(first, "lost") is True
        assert await login.renew(first, "lost again, but by an older request") is False
        assert portal.logins == 2

    await _with_login(portal, check)


@pytest.mark.anyio
async def test_a_request_stamped_while_a_login_is_under_way_is_not_sent():
    portal = Portal()

    async def check(login: Login, http: PortalHttp) -> None:
        first = await login.ensure()
        renewal = asyncio.ensure_future(login.renew(first, "lost"))
        await asyncio.sleep(0)  # the renewal has started and waits on its request
        with pytest.raises(LoginUnderway):
            login.stamp()
        await renewal
        assert login.stamp() == 2 and login.proven == 0
        login.prove(2)
        assert login.proven == 2

    await _with_login(portal, check)


@pytest.mark.anyio
async def test_a_refused_login_is_never_tried_again():
    portal = Portal(refuse=True)

    async def check(login: Login, http: PortalHttp) -> None:
        for _ in range(3):
            with pytest.raises(AuthenticationFailed):
                await login.ensure()
        assert (portal.logins, login.current, login.underway) == (1, 0, False)

    await _with_login(portal, check)
