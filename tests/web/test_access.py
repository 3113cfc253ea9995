"""Who gets in: sessions, the login limit, CSRF on every form, the session secret, /healthz."""

from __future__ import annotations

import os
import re
import stat

import pytest
from fastapi.routing import APIRoute

from store.users import get_user, recent_actions
from tests.web.conftest import PASSWORD, csrf_of, login, post_login
from web import auth
from web.users import set_disabled

PUBLIC = {"/login", "/healthz", "/static/fonts/{name}"}  # the typeface: the sign-in page is set in it


def _flat(routes):
    """Every route, those of included routers too (FastAPI wraps an included router's routes)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _flat(route.original_router.routes)
        else:
            yield route


def _routes(app, method: str) -> list[str]:
    paths = []
    for route in _flat(app.routes):
        if isinstance(route, APIRoute) and method in route.methods and route.path not in PUBLIC:
            # a concrete URL for each path parameter
            paths.append(route.path.replace("{deviation_id}", "1").replace("{action}", "acknowledge")
                         .replace("{code}", "x").replace("{agreement_no}", "x").replace("{run_id}", "1")
                         .replace("{username}", "social"))
    return paths


def test_no_page_answers_without_a_session(sqlite_store):
    client = sqlite_store.client()
    gets = _routes(client.app, "GET")
    assert {"/", "/deviations", "/deviations/1", "/visits", "/reconcile", "/runs", "/users"} <= set(gets)
    for path in [*gets, "/no-such-page"]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path
    for path in _routes(client.app, "POST"):
        response = client.post(path, data={"reason": "x"}, follow_redirects=False)
        if path == "/logout":  # out already: to the sign-in page, with no "what you sent was lost"
            assert response.status_code == 303 and response.headers["location"] == "/login"
        else:
            assert response.status_code == 401, path


def test_a_form_sent_after_the_session_ended_says_so_in_persian_and_returns_to_its_page(sqlite_store):
    # found by a new user: the answer was a bare English "sign in first"
    client = sqlite_store.client()
    base = str(client.base_url)
    sent = client.post("/deviations/7/acknowledge", data={"reason": "x"}, follow_redirects=False,
                       headers={"referer": f"{base}/deviations/7?tab=history"})
    assert sent.status_code == 401 and 'dir="rtl"' in sent.text
    assert "نشست شما به پایان رسیده بود" in sent.text and "sign in" not in sent.text
    assert 'name="next" value="/deviations/7?tab=history"' in sent.text
    foreign = client.post("/deviations/7/acknowledge", data={"reason": "x"}, follow_redirects=False,
                          headers={"referer": "https://evil.example/deviations/7"})
    assert 'name="next" value="/"' in foreign.text
    # found by a new user: the page's sign-in form carried no token, so the first sign-in from it
    # was refused as a stale form; one sign-in from it must take the person back
    again = client.post("/deviations/7/acknowledge", data={"reason": "x"}, follow_redirects=False,
                        headers={"referer": f"{base}/deviations/7?tab=history"})
    token = re.search(r'name="csrf" value="([^"]+)"', again.text)[1]
    signed_in = client.post("/login", data={"username": "social", "password": PASSWORD, "csrf": token,
                                            "next": "/deviations/7?tab=history"}, follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/deviations/7?tab=history"


def test_login_page_healthz_and_static_answer_without_a_session(sqlite_store):
    client = sqlite_store.client()
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").json() == {"status": "ok"}
    css = client.get("/static/console.css")
    assert css.status_code == 200 and "Vazirmatn" in css.text


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(sqlite_store):
    client = sqlite_store.client()
    refused = post_login(client, {"username": "social", "password": "wrong password!"})
    assert refused.status_code == 401
    assert "نام کاربری یا گذرواژه درست نیست" in refused.text
    with sqlite_store.engine.connect() as conn:  # the admin's log shows the failed attempt
        [failed] = [a for a in recent_actions(conn, username="social") if a.action == "login_failed"]
        assert failed.detail.startswith("from ")
    assert client.get("/", follow_redirects=False).status_code == 303
    signed_in = post_login(client, {"username": "Social", "password": PASSWORD, "next": "/runs"},
                            follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/runs"
    page = client.get("/")
    assert page.status_code == 200 and 'dir="rtl"' in page.text and 'lang="fa"' in page.text


def test_after_login_only_a_path_of_this_site_is_followed(sqlite_store):
    client = sqlite_store.client()
    response = post_login(client, {"username": "social", "password": PASSWORD,
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/"


def test_a_disabled_user_is_out_at_the_next_click_and_cannot_sign_in(sqlite_store):
    client = sqlite_store.client("social")
    assert client.get("/").status_code == 200
    set_disabled(sqlite_store.engine, "social")
    assert client.get("/", follow_redirects=False).status_code == 303
    again = post_login(client, {"username": "social", "password": PASSWORD}, follow_redirects=False)
    assert again.status_code == 401


def test_failed_logins_are_limited_per_user_and_address(sqlite_store):
    now = [1000.0]
    limiter = auth.LoginLimiter(max_failures=3, window_seconds=60, clock=lambda: now[0])
    client = sqlite_store.client(limiter=limiter)
    for _ in range(3):
        assert post_login(client, {"username": "social", "password": "guess guess"}).status_code == 401
    blocked = post_login(client, {"username": "social", "password": PASSWORD}, follow_redirects=False)
    assert blocked.status_code == 429  # even the right password waits out the window
    assert "دقیقه" in blocked.text
    # another user from the same address, and the same user from another address, are not held up
    assert post_login(client, {"username": "infra", "password": PASSWORD},
                       follow_redirects=False).status_code == 303
    assert limiter.blocked_for("social", "10.0.0.9") == 0
    now[0] += 61
    assert post_login(client, {"username": "social", "password": PASSWORD},
                       follow_redirects=False).status_code == 303


def test_every_form_refuses_a_post_without_the_sessions_csrf_token(sqlite_store):
    client = sqlite_store.client("tolfiq")
    for path in _routes(client.app, "POST"):
        for token in (None, "forged-token"):
            data = {"reason": "x", "password": "p" * 12, "username": "zz", "role": "admin"}
            if token:
                data["csrf"] = token
            response = client.post(path, data=data, follow_redirects=False)
            assert response.status_code == 403, (path, token)
    dev = sqlite_store.deviation(status="open")
    with sqlite_store.engine.connect() as conn:
        from reconcile.deviations import get

        row, history = get(conn, dev["id"])
    assert row.status == "open" and len(history) == 1


def test_logout_needs_the_token_and_ends_the_session(sqlite_store):
    client = sqlite_store.client("social")
    assert client.post("/logout", data={}, follow_redirects=False).status_code == 403
    assert client.post("/logout", data={"csrf": csrf_of(client)}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_signing_out_says_so_on_the_sign_in_page(sqlite_store):
    client = sqlite_store.client("social")
    response = client.post("/logout", data={"csrf": csrf_of(client)})
    assert response.url.path == "/login" and '<p class="flash ok" role="status">از سامانه خارج شدید.</p>' in response.text
    assert "از سامانه خارج شدید" not in client.get("/login").text  # once


def test_a_persian_name_signs_in_typed_with_arabic_letters(sqlite_store):
    # a common keyboard layout types ي ك for ی ک: «علي» could not sign in as «علی»
    from web.users import create

    create(sqlite_store.engine, "علی", PASSWORD, role="consolidation")
    create(sqlite_store.engine, "كاظم", PASSWORD, role="consolidation")  # created typed so: kept as کاظم
    with sqlite_store.engine.connect() as conn:
        assert get_user(conn, "کاظم").username == "کاظم" and get_user(conn, "Social").username == "social"
    for typed in ("علی", "علي", "كاظم", "کاظم", "Social"):
        client = sqlite_store.client()
        response = post_login(client, {"username": typed, "password": PASSWORD}, follow_redirects=False)
        assert response.status_code == 303, typed
    # one name, one count of failures, whichever letters it is typed with
    client = sqlite_store.client()
    for typed in ("علي", "علی") * 3:
        post_login(client, {"username": typed, "password": "wrong password!"})
    assert post_login(client, {"username": "علی", "password": PASSWORD}, follow_redirects=False).status_code == 429


def test_a_name_stored_with_arabic_letters_before_still_signs_in(sqlite_store):
    # a user added before names were canonicalised keeps their Arabic ي in the store
    import sqlalchemy as sa

    from store.users import users

    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.username == "tolfiq").values(username="علي"))
    for typed in ("علي", "علی"):
        client = sqlite_store.client()
        assert post_login(client, {"username": typed, "password": PASSWORD},
                          follow_redirects=False).status_code == 303, typed
    set_disabled(sqlite_store.engine, "علی", True)  # found however it is typed, to change it too
    with sqlite_store.engine.connect() as conn:
        assert get_user(conn, "علي").disabled


def test_two_users_stored_before_as_two_spellings_stay_two_users(sqlite_store):
    # review: with «علي» (expert) and «علی» (admin) both stored before names were canonicalised,
    # every lookup of «علي» found the admin: a session came back as the admin, and disabling or a
    # new password for «علي» reached the admin
    import sqlalchemy as sa

    from store.users import users

    with sqlite_store.engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.username == "social").values(username="علي"))
        conn.execute(sa.update(users).where(users.c.username == "admin").values(username="علی"))
    with sqlite_store.engine.connect() as conn:
        assert (get_user(conn, "علي").role, get_user(conn, "علی").role) == ("expert", "admin")
    client = sqlite_store.client()
    assert post_login(client, {"username": "علي", "password": PASSWORD}, follow_redirects=False).status_code == 303
    assert client.get("/users").status_code == 403  # the expert, not the admin
    set_disabled(sqlite_store.engine, "علي", True)
    with sqlite_store.engine.connect() as conn:
        assert get_user(conn, "علي").disabled and not get_user(conn, "علی").disabled


def test_pages_forbid_framing_scripts_and_caching(sqlite_store):
    response = sqlite_store.client("social").get("/")
    assert "script-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "<script" not in response.text


def test_the_session_secret_is_generated_once_private_and_refused_when_readable(tmp_path, monkeypatch):
    monkeypatch.delenv(auth.SECRET_ENV, raising=False)
    first = auth.session_secret(tmp_path)
    path = tmp_path / auth.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth.session_secret(tmp_path) == first and len(first) >= 32
    os.chmod(path, 0o644)
    with pytest.raises(auth.SecretError, match="chmod 600"):
        auth.session_secret(tmp_path)
    monkeypatch.setenv(auth.SECRET_ENV, "e" * 40)
    assert auth.session_secret(tmp_path) == "e" * 40
    monkeypatch.setenv(auth.SECRET_ENV, "short")
    with pytest.raises(auth.SecretError, match="too short"):
        auth.session_secret(tmp_path)


def test_a_cookie_signed_with_another_secret_is_no_session(sqlite_store):
    from fastapi.testclient import TestClient

    from web import create_app

    client = sqlite_store.client("social")
    assert client.get("/", follow_redirects=False).status_code == 200
    stranger = TestClient(create_app(sqlite_store.engine, sqlite_store.config, secret="t" * 48))
    stranger.cookies.update(client.cookies)  # the same cookie, checked with another secret
    assert stranger.get("/", follow_redirects=False).status_code == 303


def test_passwords_are_stored_as_argon2_hashes_only(sqlite_store):
    import sqlalchemy as sa

    from store.users import users

    with sqlite_store.engine.connect() as conn:
        hashes = conn.execute(sa.select(users.c.password_hash)).scalars().all()
    assert hashes and all(h.startswith("$argon2") and PASSWORD not in h for h in hashes)


def test_login_is_recorded_with_who_and_when(sqlite_store):
    from store.users import get_user, recent_actions

    login(sqlite_store.client(), "infra")
    with sqlite_store.engine.connect() as conn:
        acts = recent_actions(conn, username="infra")
    assert acts and acts[0].action == "login" and acts[0].at is not None


def test_production_hashes_use_argon2s_default_cost(monkeypatch):
    monkeypatch.undo()  # the module's own hasher, not the tests' cheap one (conftest.quick_hashes)
    digest = auth.hash_password("y" * 12)
    assert digest.startswith("$argon2id$") and "m=65536,t=3,p=4" in digest
    assert auth.check_password(digest, "y" * 12) and not auth.check_password(digest, "z" * 12)
    # an unknown name is checked against a hash of the same cost, so it takes as long as a wrong password
    assert not auth.check_password(None, "y" * 12)
    assert [h for h in auth._dummy_hashes.values() if "m=65536,t=3,p=4" in h]


def test_signing_in_needs_the_token_of_the_sign_in_form(sqlite_store):
    # found by a new user: every form carried a token but the sign-in form, so a page elsewhere could
    # sign a browser in as the attacker's own user (login CSRF)
    client = sqlite_store.client()
    bare = client.post("/login", data={"username": "social", "password": PASSWORD}, follow_redirects=False)
    assert bare.status_code == 403 and "دوباره وارد شوید" in bare.text
    assert client.get("/", follow_redirects=False).status_code == 303  # not signed in
    other = sqlite_store.client()
    foreign = re.search(r'name="csrf" value="([^"]+)"', other.get("/login").text)[1]
    forged = client.post("/login", data={"username": "social", "password": PASSWORD, "csrf": foreign},
                         follow_redirects=False)
    assert forged.status_code == 403
    # the refusal's page is a fresh form that signs in
    token = re.search(r'name="csrf" value="([^"]+)"', forged.text)[1]
    signed_in = client.post("/login", data={"username": "social", "password": PASSWORD, "csrf": token},
                            follow_redirects=False)
    assert signed_in.status_code == 303 and client.get("/").status_code == 200


def test_a_database_error_in_a_page_is_one_line_in_the_log_and_a_persian_page(sqlite_store, caplog):
    # the store failing under a page (here: a table gone): 503 with a sentence, one log line in the
    # database's words, no traceback (its database message may quote a row) unless --debug
    client = sqlite_store.client("social")
    assert client.get("/deviations").status_code == 200
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE deviation RENAME TO deviation_gone")
    with caplog.at_level("INFO", logger="web.app"):  # as the console logs without --debug
        response = client.get("/deviations")
    assert response.status_code == 503 and "پایگاه داده اکنون پاسخ نمی‌دهد" in response.text
    assert response.headers["x-frame-options"] and "نمای کلی" in response.text  # the console's page
    said = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in said] == ["GET /deviations: database error: no such table: deviation"]
    assert all(not r.exc_info for r in said), [r.exc_info for r in said]


def test_a_store_that_fails_before_the_page_says_so_without_a_traceback(sqlite_store, caplog):
    client = sqlite_store.client("social")
    with sqlite_store.engine.begin() as conn:  # the signed-in user is read before any page
        conn.exec_driver_sql("ALTER TABLE console_user RENAME TO console_user_gone")
    with caplog.at_level("INFO", logger="web.app"):  # as the console logs without --debug
        response = client.get("/deviations")
    assert response.status_code == 503 and "پایگاه داده اکنون پاسخ نمی‌دهد" in response.text
    assert response.headers["x-frame-options"]
    said = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in said] == ["GET /deviations: database error: no such table: console_user"]
    assert all(not r.exc_info for r in said)


def test_a_sign_in_the_log_of_acts_cannot_keep_signs_no_one_in(sqlite_store, caplog):
    client = sqlite_store.client()
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE console_action RENAME TO console_action_gone")
    with caplog.at_level("INFO", logger="web.app"):
        response = post_login(client, {"username": "social", "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 503 and "شاید آنچه فرستادید ثبت شده باشد" in response.text
    assert client.get("/", follow_redirects=False).status_code == 303  # still signed out
    said = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert said == ["POST /login: database error: no such table: console_action"]
