"""Defects a trial of the console found: sign-ins sent at once past the limit, HEAD refused, English
error pages to people not signed in, expert groups given to an admin, a field visit of 1300/01/01."""

from __future__ import annotations

import asyncio
import html as html_lib
import io
import re
import sys
import threading
import time
from collections import Counter
from datetime import date

import httpx
import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from store.db import open_store
from store.models import FieldInspection, Project, ProjectYear
from store.users import get_user, users
from tests.web.conftest import PASSWORD, csrf_of, login, serving
from web import auth

# --- 1. sign-ins sent at once


def test_a_sign_in_being_checked_holds_its_place_in_the_count():
    limiter = auth.LoginLimiter(max_failures=2, clock=lambda: 1000.0)
    first = limiter.attempt("social", "10.0.0.9")
    second = limiter.attempt("Social", "10.0.0.9")  # one name, however typed
    with pytest.raises(auth.TooManyFailures) as refused:  # both still being checked: no third
        limiter.attempt("social", "10.0.0.9")
    # but not for the window: they end within seconds (a review: "wait 900 s" at an office's address)
    assert refused.value.wait == auth.IN_FLIGHT_WAIT < 60
    assert limiter.blocked_for("social", "10.0.0.9") > 0
    assert limiter.blocked_for("infra", "10.0.0.9") == limiter.blocked_for("social", "10.0.0.8") == 0
    with first:
        first.succeeded()  # its place given back
    third = limiter.attempt("social", "10.0.0.9")
    with second:
        second.failed()  # its place kept, now as a failure
    with third:
        pass  # ended unsaid (the store failed before the password was checked): its place given back
    with limiter.attempt("social", "10.0.0.9") as fourth:
        fourth.failed()
    with pytest.raises(auth.TooManyFailures) as refused:  # two failures: the window, from the older
        limiter.attempt("social", "10.0.0.9")
    assert refused.value.wait == limiter.window


def test_sign_ins_sent_at_once_check_at_most_the_limits_passwords(sqlite_store, monkeypatch):
    # trial: one sign-in page's token and cookie, 200 sign-ins at once (the right password among
    # them): 199 were checked (401), one signed in, and only the next burst got 429
    checked: list[str] = []
    lock = threading.Lock()
    real_check = auth.check_password

    def slow_check(password_hash, password):
        with lock:
            checked.append(password)
            among_first = len(checked) <= auth.MAX_FAILURES
        if among_first:
            time.sleep(1.0)  # argon2 at its production cost: the rest of the burst arrives meanwhile
        return real_check(password_hash, password)

    monkeypatch.setattr(auth, "check_password", slow_check)
    passwords = [f"wrong password {i}" for i in range(200)]
    passwords[2] = PASSWORD

    async def burst(port: int) -> Counter:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            page = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
        cookie = page.headers["set-cookie"].split(";")[0]
        limits = httpx.Limits(max_connections=len(passwords), max_keepalive_connections=len(passwords))
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
            answers = await asyncio.gather(*(
                client.post("/login", data={"csrf": token, "username": "admin", "password": password},
                            headers={"Cookie": cookie})
                for password in passwords))
        return Counter(a.status_code for a in answers)

    with serving(sqlite_store.app()) as port:
        statuses = asyncio.run(burst(port))
    assert len(checked) <= auth.MAX_FAILURES, statuses
    assert statuses[401] + statuses[303] == len(checked) and statuses[429] == len(passwords) - len(checked)


# --- 2. HEAD, as monitors ask


def _same_answer(client, path: str) -> None:
    got, head = client.get(path, follow_redirects=False), client.head(path, follow_redirects=False)
    assert head.status_code == got.status_code, path
    assert head.content == b"", path
    for name in ("content-type", "content-length", "location", "content-security-policy", "cache-control"):
        assert head.headers.get(name) == got.headers.get(name), (path, name)


def test_head_answers_as_get_without_the_body(sqlite_store):
    client = sqlite_store.client()
    for path in ("/healthz", "/login", "/", "/deviations?severity=major", "/static/console.css"):
        _same_answer(client, path)  # the sign-in page; a page's redirect to it
    assert client.head("/", follow_redirects=False).headers["location"] == "/login?next=/"
    login(client, "tolfiq")
    for path in ("/", "/deviations", "/visits", "/runs", "/nowhere"):
        _same_answer(client, path)
    assert client.head("/").status_code == 200
    with serving(sqlite_store.app()) as port:  # through uvicorn, as a monitor asks
        answer = httpx.head(f"http://127.0.0.1:{port}/healthz")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"


# --- 3. error pages in Persian for everyone


def _persian_page(response, status: int, heading: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="fa" dir="rtl">' in response.text and f"<h1>{heading}</h1>" in response.text
    assert "Not Found" not in response.text and "Method Not Allowed" not in response.text
    assert response.headers["x-frame-options"] == "DENY"


def test_error_pages_are_the_consoles_persian_page_signed_in_or_not(sqlite_store):
    client = sqlite_store.client()
    _persian_page(client.get("/static/nowhere.css"), 404, "صفحه پیدا نشد")
    _persian_page(client.get("/static/fonts/nowhere.woff2"), 404, "صفحه پیدا نشد")
    refused = client.put("/login")
    _persian_page(refused, 405, "این کار انجام نشد")
    assert "این نشانی این کار را نمی‌پذیرد" in refused.text and "GET" in refused.headers["allow"]
    assert "HEAD" in refused.headers["allow"]
    # what monitors read keeps a plain answer
    plain = client.delete("/healthz")
    assert plain.status_code == 405 and plain.headers["content-type"].startswith("text/plain")
    login(client, "admin")
    _persian_page(client.delete("/users"), 405, "این کار انجام نشد")
    _persian_page(client.get("/static/nowhere.css"), 404, "صفحه پیدا نشد")


# --- 4. expert groups only for experts


NO_GROUPS = "گروه کارشناسی فقط برای نقش کارشناس بودجه است"


def _user(engine, name):
    with engine.connect() as conn:
        return get_user(conn, name)


def test_the_users_page_refuses_groups_for_a_role_without_them(sqlite_store):
    admin = sqlite_store.client("admin")
    for role in ("admin", "consolidation"):
        refused = admin.post("/users", data={"csrf": csrf_of(admin), "username": f"new{role}", "role": role,
                                             "group": ["social"], "password": PASSWORD})
        assert NO_GROUPS in html_lib.unescape(refused.text), role
        assert _user(sqlite_store.engine, f"new{role}") is None
    added = admin.post("/users", data={"csrf": csrf_of(admin), "username": "newadmin", "role": "admin",
                                       "password": PASSWORD})
    assert "کاربر newadmin افزوده شد" in added.text and _user(sqlite_store.engine, "newadmin").groups == ()


def test_users_add_refuses_groups_for_a_role_without_them(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    engine = open_store(url)
    try:
        monkeypatch.setattr(sys, "stdin", io.StringIO("a long enough secret\n"))
        code = main(["users", "add", "boss", "--role", "admin", "--group", "social"])
        err = capsys.readouterr().err
        assert code == 2 and "role 'admin' has no expert groups" in err and len(err.strip().splitlines()) == 1
        assert _user(engine, "boss") is None
    finally:
        engine.dispose()


def test_groups_stored_before_for_a_role_without_them_are_not_shown(sqlite_store):
    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.username == "tolfiq").values(groups="social"))
    assert _user(sqlite_store.engine, "tolfiq").groups == ()
    page = sqlite_store.client("admin").get("/users").text
    row = page[page.index('<bdi dir="ltr">tolfiq</bdi>'):]
    row = row[:row.index("</tr>")]
    assert "امور اجتماعی" not in row


# --- 5. a visit's day


def _project(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(Project.__table__).values(id=1, code="1305012007-003"))
        conn.execute(sa.insert(ProjectYear.__table__).values(
            project_id=1, fiscal_year=1405, title="پروژه", title_key="p", agency_code="301",
            agreement_status="exchanged"))


def test_a_visit_before_1390_is_refused_in_persian_and_nothing_stored(sqlite_store):
    _project(sqlite_store.engine)
    client = sqlite_store.client("social")
    visit = {"project_code": "1305012007-003", "observed_progress": "40", "inspector": "علی رضایی"}
    for day, shown in (("1300/01/01", "۱۳۰۰/۰۱/۰۱"), ("۱۳۸۹/۱۲/۲۹", "۱۳۸۹/۱۲/۲۹")):
        refused = client.post("/visits", data={"csrf": csrf_of(client), **visit, "date": day})
        assert refused.status_code == 400, day
        assert f"تاریخ بازدید ({shown}) پیش از ۱۳۹۰/۰۱/۰۱ است" in html_lib.unescape(refused.text)
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.select(FieldInspection.__table__)).all() == []
    kept = client.post("/visits", data={"csrf": csrf_of(client), **visit, "date": "1390/01/01"})
    assert kept.status_code == 200 and "بازدید ثبت شد" in kept.text
    with sqlite_store.engine.connect() as conn:
        assert conn.execute(sa.select(FieldInspection.__table__.c.visited_on)).scalar_one() == date(2011, 3, 21)
