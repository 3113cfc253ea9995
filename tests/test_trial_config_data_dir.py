"""An operator's trial: a `data_dir` that cannot be a folder passed `check-config` ("configuration
OK") and every command then ended "error: FileExistsError: [Errno 17] …", exit 1. It is a
configuration error: exit 2, one line naming data_dir and why, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import command_line, one_line


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    return command_line(tmp_path, capsys, monkeypatch)


_one_line = one_line


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "hostname"
    path.write_text("bw-host\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("argv", [["check-config"], ["runs"], ["db", "current"]])
def test_a_data_dir_that_is_a_file_is_a_configuration_error(run, a_file, argv):
    code, out, err = run(*argv, config=f"data_dir: {a_file}\n")
    line = _one_line(err)
    assert code == 2 and "configuration OK" not in out
    assert line.startswith("configuration error in ") and f"data_dir = '{a_file}': is a file, not a folder" in line


def test_a_data_dir_under_a_file_says_which_file(run, a_file):
    code, _out, err = run("runs", config=f"data_dir: {a_file / 'data'}\n")
    assert code == 2 and f"is under {a_file}, which is a file" in _one_line(err)


def test_a_data_dir_that_is_a_file_is_refused_with_a_store_elsewhere_too(run, a_file, tmp_path):
    # the console's secret and the signed archive live in data_dir whatever the store
    config = f"data_dir: {a_file}\ndatabase: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\n"
    code, out, err = run("check-config", config=config)
    assert code == 2 and "configuration OK" not in out and "data_dir" in _one_line(err)


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc, where no folder can be made")
@pytest.mark.parametrize("argv", [["check-config"], ["runs"]])
def test_a_data_dir_that_cannot_be_made_is_a_configuration_error(run, argv):
    # /proc/nope: the folder above exists and looks writable to root; only making it tells
    code, out, err = run(*argv, config="data_dir: /proc/nope\n")
    line = _one_line(err)
    assert code == 2 and "configuration OK" not in out
    assert "data_dir = '/proc/nope': cannot make this folder (No such file or directory)" in line


def test_a_data_dir_still_to_be_made_is_made_as_before(run, tmp_path):
    code, out, err = run("check-config", config="data_dir: new/data\n")
    assert code == 0, err
    assert "configuration OK" in out and (tmp_path / "new" / "data").is_dir()


def test_reading_the_configuration_alone_makes_no_folder(run, tmp_path):
    code, _out, err = run("sync", "--help", config="data_dir: not-yet\n")
    assert code == 0, err
    assert not (tmp_path / "not-yet").exists()
