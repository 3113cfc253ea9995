"""An operator's trial: `db upgrade` on a store a newer release wrote (its alembic_version beyond
this release's migrations) ended "error: CommandError: Can't locate revision identified by
'0099_future'", exit 1, where every other command says "newer than this budgetwatch knows", exit 2.
`db current` answers its own question ("ahead", exit 1: README's command table)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from store.db import current_revision, make_engine, upgrade


@pytest.fixture
def future_store(store_url, tmp_path, monkeypatch):
    """A store on SQLite and PostgreSQL whose schema a newer release wrote, and its config."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)
    engine = make_engine(store_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_future'"))
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: data\ndatabase:\n  url: '{store_url}'\n", encoding="utf-8")
    yield engine, str(config)
    engine.dispose()


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_db_upgrade_of_a_store_a_newer_release_wrote_says_so_and_changes_nothing(future_store, capsys):
    engine, config = future_store
    code = main(["--config", config, "db", "upgrade"])
    _out, err = capsys.readouterr()
    line = _one_line(err)
    assert code == 2
    assert "the store's schema is at 0099_future, newer than this budgetwatch knows" in line
    assert "CommandError" not in line and "db upgrade" not in line
    assert current_revision(engine) == "0099_future"


def test_every_command_says_the_same_line_as_db_upgrade(future_store, capsys):
    _engine, config = future_store
    lines = []
    for argv in (["db", "upgrade"], ["runs"]):
        assert main(["--config", config, *argv]) == 2
        lines.append(_one_line(capsys.readouterr().err))
    assert lines[0] == lines[1]


def test_db_current_calls_it_ahead_with_its_own_exit_code(future_store, capsys):
    _engine, config = future_store
    code = main(["--config", config, "db", "current"])
    out, err = capsys.readouterr()
    assert code == 1 and "schema 0099_future (ahead" in out and not err.strip()
