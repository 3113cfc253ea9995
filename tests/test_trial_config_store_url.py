"""An operator's trial: a store URL that cannot be parsed (`postgresql+psycopg://u:p@[::1/x`, an
IPv6 host whose bracket is never closed) ended in a raw ValueError, exit 1. It is a configuration
error: exit 2, one line naming the key (database.url or BUDGETWATCH_DATABASE_URL), before anything
runs, and never the password."""

from __future__ import annotations

import pytest

from tests.cli import command_line, one_line
from budgetwatch.config import DATABASE_ENV, ConfigError, parse_config

PASSWORD = "s3cret-Pass"
UNREADABLE = [f"postgresql+psycopg://bw:{PASSWORD}@[::1/budgetwatch",
              f"postgresql+psycopg://bw:{PASSWORD}@db.mpo-kz.ir:54x2/budgetwatch"]


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    return command_line(tmp_path, capsys, monkeypatch)


_one_line = one_line


@pytest.mark.parametrize("url", UNREADABLE)
@pytest.mark.parametrize("argv", [["check-config"], ["runs"], ["db", "upgrade"]])
def test_a_database_url_that_cannot_be_read_is_a_configuration_error(run, url, argv):
    code, out, err = run(*argv, config=f"data_dir: data\ndatabase:\n  url: '{url}'\n")
    line = _one_line(err)
    assert code == 2 and "configuration OK" not in out
    assert "database.url = 'postgresql+psycopg:" in line and "cannot be read as a URL" in line
    assert PASSWORD not in err + out and "ValueError" not in line


@pytest.mark.parametrize("url", UNREADABLE)
@pytest.mark.parametrize("argv", [["check-config"], ["runs"]])
def test_an_override_that_cannot_be_read_is_a_configuration_error(run, monkeypatch, url, argv):
    monkeypatch.setenv(DATABASE_ENV, url)
    code, out, err = run(*argv)
    line = _one_line(err)
    assert code == 2 and "configuration OK" not in out
    assert line.startswith(f"configuration error in {DATABASE_ENV}: ") and "cannot be read as a URL" in line
    assert PASSWORD not in err + out


def test_the_url_s_problem_is_said_without_the_url(monkeypatch):
    with pytest.raises(ConfigError) as caught:
        parse_config({"database": {"url": UNREADABLE[0]}})
    [line] = caught.value.problems
    assert PASSWORD not in line and "[::1" not in line


def test_a_readable_url_still_reads(run, tmp_path):
    code, out, err = run("check-config", config=f"data_dir: data\ndatabase:\n  url: 'sqlite:///{tmp_path}/s.db'\n")
    assert code == 0, err


@pytest.mark.parametrize(("option", "said"), [("connect_timeout=abc", "bad value for connect_timeout: 'abc'"),
                                              ("bogus=1", 'invalid connection option "bogus"')])
def test_a_connection_setting_the_driver_refuses_cannot_open_the_store(run, monkeypatch, option, said):
    # the driver refuses it before it connects (no server is asked): exit 2, not "database error", exit 1
    pytest.importorskip("psycopg")
    url = f"postgresql+psycopg://bw:{PASSWORD}@127.0.0.1:9/budgetwatch?{option}"
    monkeypatch.setenv(DATABASE_ENV, url)
    code, out, err = run("status")
    assert code == 2
    line = _one_line(err)
    assert line.startswith("error: cannot open the store at postgresql+psycopg://bw:***@127.0.0.1:9/budgetwatch")
    assert line.endswith(said) and PASSWORD not in err + out
