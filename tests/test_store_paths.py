"""A store path that does not lead anywhere is refused, not created (issue 12, item 8)."""

from __future__ import annotations

import pytest

from budgetwatch.cli import main
from store.db import StoreError, make_engine


def test_a_sqlite_url_in_a_missing_folder_is_refused_naming_the_folder(tmp_path):
    missing = tmp_path / "no" / "such" / "folder"
    with pytest.raises(StoreError, match=f"its folder {missing} does not exist"):
        make_engine(f"sqlite:///{missing / 'store.db'}")
    assert not (tmp_path / "no").exists()  # nothing was created on the way


def test_the_command_says_it_in_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo" / "budgetwatch.db"
    config = tmp_path / "config.yaml"
    config.write_text(f'database:\n  url: "sqlite:///{missing}"\n', encoding="utf-8")
    code = main(["--config", str(config), "runs"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"its folder {missing.parent} does not exist" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not missing.parent.exists()


def test_the_embedded_default_makes_its_own_data_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text("data_dir: fresh-data\n", encoding="utf-8")
    assert main(["--config", str(config), "db", "upgrade"]) == 0, capsys.readouterr().err
    assert (tmp_path / "fresh-data" / "budgetwatch.db").is_file()


def test_two_commands_creating_one_new_store_at_once_both_find_it_made(tmp_path):
    # issue 12, item 9: two syncs started together on a new SQLite store; the loser met "database
    # is locked" while both ran the migrations. Real processes, started together.
    import subprocess
    import sys

    from store.db import current_revision, head_revision

    url = f"sqlite:///{tmp_path / 'new.db'}"
    code = f"from store.db import open_store; open_store({url!r}).dispose(); print('ok')"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-500:] for _out, err in results]
    assert current_revision(make_engine(url)) == head_revision()


def test_a_new_sqlite_store_is_closed_to_other_users(tmp_path):
    # a security review: `budgetwatch web` run by hand (umask 022) made the store, with the console's
    # password hashes, readable by every user of the machine
    import os
    import stat

    from store.db import open_store

    import sqlalchemy as sa

    old = os.umask(0o022)
    try:
        engine = open_store(f"sqlite:///{tmp_path / 'new.db'}")
        with engine.begin() as conn:  # a write: the -wal and -shm files are there while the engine is
            conn.execute(sa.text("CREATE TABLE probe (x integer)"))
        files = sorted(tmp_path.glob("new.db*"))
        assert {f.name for f in files} >= {"new.db", "new.db-wal", "new.db-shm"}, files
        for file in files:  # a review: -wal and -shm were 0644, the -wal holding a new password's hash
            if file.name.endswith("create-lock"):
                continue
            mode = stat.S_IMODE(file.stat().st_mode)
            assert mode & 0o007 == 0 and mode & 0o600 == 0o600, (file.name, oct(mode))
        engine.dispose()
        older = tmp_path / "older.db"  # a store made before: its files lose other users' bits when opened
        os.rename(tmp_path / "new.db", older)
        os.chmod(older, 0o644)
        open_store(f"sqlite:///{older}").dispose()
        assert stat.S_IMODE(older.stat().st_mode) == 0o640
    finally:
        os.umask(old)
