"""`budgetwatch demo` (the README's first command) shows a new user every part that tells people:
the sample experts' digests as .eml files they can open, a console user that signs in, and a short
summary instead of every deviation.
"""

from __future__ import annotations

import email
import re
from email import policy
from pathlib import Path

import pytest

from budgetwatch.cli import main
from store.db import make_engine
from store.users import get_user
from web.auth import check_password


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BUDGETWATCH_CONFIG", "BUDGETWATCH_DATABASE_URL", "NEZARAT4_PASSWORD", "SABA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_demo_writes_the_digests_and_a_console_user_and_says_how_to_open_them(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["--version"])
    assert code == 0 and re.fullmatch(r"budgetwatch \d+\.\d+\.\d+\n", capsys.readouterr().out)

    code = main(["demo", "--projects", "60", "--agreements", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err

    mails = sorted((tmp_path / "data" / "demo-mail").glob("*.eml"))
    assert mails, out
    assert f"{len(mails)} .eml file(s) in data/demo-mail" in " ".join(out.split())
    message = email.message_from_bytes(mails[0].read_bytes(), policy=policy.default)
    html = message.get_body(("html",)).get_content()
    assert 'dir="rtl"' in html and message["Message-ID"] and message["To"].endswith("@demo.mpo-kz.ir>")

    signed_in = re.search(r"sign in as (\S+) with the password (\S+)", out)
    assert signed_in, out
    with make_engine(f"sqlite:///{tmp_path}/data/demo.db").connect() as conn:
        user = get_user(conn, signed_in.group(1))
    assert user is not None and user.role == "consolidation"
    assert check_password(user.password_hash, signed_in.group(2))

    # the summary leads; the whole list is one command away, not hundreds of lines
    assert len(out.splitlines()) < 150, f"{len(out.splitlines())} lines"
    assert "budgetwatch deviations list" in out
