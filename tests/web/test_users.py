"""`budgetwatch users add|passwd|disable|enable|list`, the demo user, and the admin's Users page."""

from __future__ import annotations

import io
import sys

import pytest

from budgetwatch.cli import main
from store.db import open_store
from store.users import get_user, recent_actions
from tests.web.conftest import PASSWORD, SECRET, console_config, csrf_of, post_login
from web import auth, create_app, demo_user


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    engine = open_store(url)

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))  # not a terminal: one line is the password
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    run.engine = engine  # type: ignore[attr-defined]
    yield run
    engine.dispose()


def _user(engine, name):
    with engine.connect() as conn:
        return get_user(conn, name)


def test_users_are_added_with_a_password_from_stdin_never_an_argument(cli):
    code, out, err = cli("users", "add", "Ali", "--role", "expert", "--group", "social,production", "--name", "علی",
                         stdin="a long enough secret\n")
    assert code == 0, err
    assert "user ali added (expert; social,production)" in out
    user = _user(cli.engine, "ali")
    assert user.groups == ("social", "production") and user.display_name == "علی"
    assert auth.check_password(user.password_hash, "a long enough secret")
    assert "a long enough secret" not in out + err
    code, _out, err = cli("users", "add", "ali", "--role", "expert", "--group", "social", stdin="another secret!\n")
    assert code == 2 and "exists already" in err


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (("--role", "boss"), "a long enough secret\n", "role 'boss'"),
    (("--role", "expert"), "a long enough secret\n", "at least one group"),
    (("--role", "expert", "--group", "finance"), "a long enough secret\n", "group 'finance'"),
    (("--role", "admin"), "short\n", "at least 10 characters"),
    (("--role", "admin"), " " * 10 + "\n", "must not be blank"),  # ten characters, and no password
    (("--role", "admin"), "", "no password on standard input"),
])
def test_a_bad_user_is_one_line_naming_what_is_wrong(cli, argv, stdin, message):
    code, _out, err = cli("users", "add", "x", *argv, stdin=stdin)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert _user(cli.engine, "x") is None


def test_passwd_disable_enable_and_list(cli):
    cli("users", "add", "sara", "--role", "consolidation", stdin="first password!\n")
    assert cli("users", "passwd", "sara", stdin="second password!\n")[0] == 0
    assert auth.check_password(_user(cli.engine, "sara").password_hash, "second password!")
    assert cli("users", "disable", "sara")[0] == 0 and _user(cli.engine, "sara").disabled
    code, out, _ = cli("users", "list")
    assert code == 0 and "sara" in out and "disabled" in out
    assert cli("users", "enable", "sara")[0] == 0 and not _user(cli.engine, "sara").disabled
    code, _out, err = cli("users", "passwd", "nobody", stdin="whatever password\n")
    assert code == 2 and "no user 'nobody'" in err
    with cli.engine.connect() as conn:
        assert [a.action for a in recent_actions(conn)][:4] == ["user_enable", "user_disable", "user_password", "user_add"]


def test_the_demo_user_signs_in_with_the_password_it_was_given(tmp_path):
    from fastapi.testclient import TestClient

    engine = open_store(f"sqlite:///{tmp_path / 'demo.db'}")
    name, password = demo_user(engine)
    again_name, again = demo_user(engine)  # a second demo run: same user, new password
    assert name == again_name == "demo" and again != password
    client = TestClient(create_app(engine, console_config(tmp_path), secret=SECRET))
    assert post_login(client, {"username": name, "password": password}).status_code == 401
    assert post_login(client, {"username": name, "password": again}, follow_redirects=False).status_code == 303
    assert "گروه تلفیق بودجه" in client.get("/").text
    engine.dispose()


def test_an_admin_adds_and_disables_users_on_the_page(sqlite_store):
    admin = sqlite_store.client("admin")
    response = admin.post("/users", data={"csrf": csrf_of(admin), "username": "reza", "display_name": "رضا",
                                          "role": "expert", "group": ["infrastructure"], "password": PASSWORD})
    assert response.status_code == 200 and "کاربر reza افزوده شد" in response.text
    assert _user(sqlite_store.engine, "reza").groups == ("infrastructure",)
    log = admin.get("/users").text
    log = log[log.index("کارهای اخیر"):]  # the log of acts in Persian (its details were the CLI's English)
    assert "کاربر \u2066reza\u2069" in log and "نقش کارشناس بودجه؛ گروه‌ها: امور زیربنایی" in log
    assert "role expert" not in log
    response = admin.post("/users/reza/disable", data={"csrf": csrf_of(admin)})
    assert _user(sqlite_store.engine, "reza").disabled
    response = admin.post("/users/admin/disable", data={"csrf": csrf_of(admin)})
    assert "نمی‌توانید خودتان را غیرفعال کنید" in response.text and not _user(sqlite_store.engine, "admin").disabled
    # every refusal on the page is in Persian (a new user saw the terminal's English ones there)
    expert = {"role": "expert", "group": ["social"], "password": PASSWORD}
    for data, words, english in (({**expert, "username": "reza"}, "پیش‌تر افزوده شده", "exists already"),
                                 ({**expert, "username": "a b"}, "بدون فاصله", "without spaces"),
                                 # trial: accepted, then its page's address was another page's
                                 ({**expert, "username": "a/b"}, "فقط از حرف، رقم", "only"),
                                 ({**expert, "username": ".."}, "فقط از حرف، رقم", "only"),
                                 ({**expert, "username": "sara", "group": []}, "دست‌کم یک گروه", "at least one group"),
                                 ({**expert, "username": "sara", "password": "short"}, "گذرواژه دست‌کم", "characters"),
                                 ({**expert, "username": "sara", "password": " " * 10}, "فقط فاصله", "blank")):
        refused = admin.post("/users", data={"csrf": csrf_of(admin), **data})
        assert "کاربر افزوده نشد" in refused.text and words in refused.text and english not in refused.text, data
    expert = sqlite_store.client("social")
    assert expert.get("/users").status_code == 403
    assert expert.post("/users", data={"csrf": csrf_of(expert), "username": "x", "role": "admin",
                                       "password": PASSWORD}).status_code == 403


def test_a_display_name_longer_than_a_name_is_refused_on_the_page_and_in_the_terminal(cli, sqlite_store):
    # a trial: a 5,000-character name was added, and the users table pushed its controls off the screen
    from store.users import DISPLAY_NAME_MAX

    admin = sqlite_store.client("admin")
    assert f'name="display_name" maxlength="{DISPLAY_NAME_MAX}"' in admin.get("/users").text
    data = {"csrf": csrf_of(admin), "username": "hamid", "role": "consolidation", "password": PASSWORD}
    refused = admin.post("/users", data={**data, "display_name": "ح" * (DISPLAY_NAME_MAX + 1)})
    assert "کاربر افزوده نشد" in refused.text and "نام حداکثر ۱۰۰ نویسه باشد" in refused.text
    assert _user(sqlite_store.engine, "hamid") is None
    added = admin.post("/users", data={**data, "display_name": "ح" * DISPLAY_NAME_MAX})
    assert "کاربر hamid افزوده شد" in added.text and '<td data-label="نام" class="who">' in added.text
    code, _out, err = cli("users", "add", "x", "--role", "admin", "--name", "n" * 101, stdin="a long enough secret\n")
    assert code == 2 and "a display name of at most 100 characters" in err and _user(cli.engine, "x") is None


def test_a_password_of_spaces_only_is_refused_everywhere(cli, sqlite_store):
    # ten spaces passed the rule of ten characters, on the users page and in `users add|passwd`
    code, _out, err = cli("users", "add", "x", "--role", "admin", stdin=" " * 12 + "\n")
    assert code == 2 and "must not be blank" in err and _user(cli.engine, "x") is None
    assert cli("users", "add", "x", "--role", "admin", stdin="a long enough secret\n")[0] == 0
    code, _out, err = cli("users", "passwd", "x", stdin="\t" + " " * 11 + "\n")
    assert code == 2 and "must not be blank" in err
    assert auth.check_password(_user(cli.engine, "x").password_hash, "a long enough secret")
    admin = sqlite_store.client("admin")
    response = admin.post("/users/social/password", data={"csrf": csrf_of(admin), "password": " " * 10})
    assert "گذرواژه نمی‌تواند فقط فاصله باشد" in response.text
    assert post_login(sqlite_store.client(), {"username": "social", "password": PASSWORD},
                      follow_redirects=False).status_code == 303  # unchanged
    with pytest.raises(auth.WeakPassword):
        auth.hash_password(" " * 20)
    assert auth.hash_password("  a  " * 2)  # spaces around a character are a password
