"""What an operator sees when a command cannot do what was asked: one line, the documented exit
code, nothing changed (issue 12, item 9)."""

from __future__ import annotations

import pytest

from budgetwatch.cli import main
from store.db import make_engine, upgrade


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)

    def run(*argv: str, config: str = "") -> tuple[int, str, str]:
        path = tmp_path / "config.yaml"
        path.write_text(config or "data_dir: data\n", encoding="utf-8")
        code = main(["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(("base_url", "said"), [
    ("http://", "names no host"),
    ("https://nezarat mpo.ir", "contains a space"),
    ("https://nezarat.mpo-kz.ir:port", "port that is not a number"),
    ("ftp://nezarat.mpo-kz.ir", "must start with https://"),
])
def test_a_base_url_that_cannot_be_requested_is_a_config_error(run, base_url, said):
    code, _out, err = run("check-config", config=f'sources:\n  nezarat4:\n    base_url: "{base_url}"\n')
    line = _one_line(err)
    assert code == 2 and "sources.nezarat4.base_url" in line and said in line


def test_sync_of_a_year_no_portal_holds_is_refused_before_any_request(run):
    code, _out, err = run("sync", "--year", "1300")
    assert code == 2 and "--year 1300" in _one_line(err) and "1390-1500" in err


def test_rejections_of_a_run_that_does_not_exist_are_an_error(run):
    code, _out, err = run("runs", "--rejected", "999")
    assert code == 2 and "there is no sync run 999" in _one_line(err)


def test_db_current_exits_1_when_the_schema_is_behind(run, tmp_path):
    (tmp_path / "data").mkdir()
    upgrade(make_engine(f"sqlite:///{tmp_path / 'data' / 'budgetwatch.db'}"), "0006")
    code, out, _err = run("db", "current")
    assert code == 1 and "behind" in out
    assert run("db", "upgrade")[0] == 0
    code, out, _err = run("db", "current")
    assert code == 0 and "(current)" in out
