"""An operator's trial: a `data_dir` that cannot be a folder passed `check-config` ("configuration
OK") and every command then ended "error: FileExistsError: [Errno 17] …", exit 1. It is a
configuration error: exit 2, one line naming data_dir and why, before anything runs."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.db import open_store
from tests.cli import command_line, one_line
from tests.reconcile.reconcile_builders import Store


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


# --- a data_dir this user may not write (an operator's trial, a PostgreSQL deployment's data_dir left
# to root): check-config said nothing, then `web` and `review approve` ended "error: PermissionError",
# exit 1. Root may write anywhere, so these run the command as another user (setpriv, util-linux):
# nothing stands in for the permission itself.
_NOBODY = 65534


def _as_another_user(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = ["setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups", sys.executable, "-c",
               "import sys; from budgetwatch.entry import main; sys.exit(main())", *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def read_only_data_dir():
    """A data_dir of mode 555 and a SQLite store beside it that anyone may write, in a folder anyone
    may enter (pytest's own temporary folders are root's alone)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run a command as a user who may not write the folder")
    top = Path(tempfile.mkdtemp(prefix="bw-ro-"))
    try:
        top.chmod(0o755)
        data, store = top / "data", top / "store"
        data.mkdir(mode=0o555)
        data.chmod(0o555)
        store.mkdir()
        store.chmod(0o777)
        url = f"sqlite:///{store / 'budgetwatch.db'}"
        engine = open_store(url)  # made by root, then handed over as an operator's would be
        Store(engine).project(year=1404)  # a period with something to report
        engine.dispose()
        for path in store.iterdir():
            path.chmod(0o666)
        config = top / "config.yaml"
        config.write_text(f"data_dir: {data}\ndatabase: {{url: '{url}'}}\n", encoding="utf-8")
        config.chmod(0o644)
        yield top, config, data
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_data_dir_this_user_may_not_write_is_said_by_check_config(read_only_data_dir):
    top, config, data = read_only_data_dir
    done = _as_another_user(["--config", str(config), "check-config"], top)
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())  # the table wraps its cells
    assert f"data_dir = '{data}': this user may not write in it (mode 555)" in said
    assert "web (its session secret) and review approve (the archive) will refuse" in said


def test_review_approve_into_a_data_dir_this_user_may_not_write_is_one_line_and_records_nothing(
        read_only_data_dir):
    top, config, data = read_only_data_dir
    done = _as_another_user(["--config", str(config), "review", "approve", "--year", "1404", "--quarter", "4",
                             "--by", "مریم احمدی"], top)
    line = one_line(done.stderr)
    assert done.returncode == 2, done.stderr
    assert line.startswith(f"error: data_dir = '{data}': the archive cannot be written there (Permission denied")
    assert "nothing was approved" in line
    engine = open_store(f"sqlite:///{top / 'store' / 'budgetwatch.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM review_signoff")).scalar_one() == 0
    finally:
        engine.dispose()
    assert list(data.iterdir()) == []


def test_the_console_with_a_data_dir_this_user_may_not_write_is_one_line(read_only_data_dir):
    top, config, data = read_only_data_dir
    with socket.socket() as probe:  # a port free now, which the console never gets to listen on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = _as_another_user(["--config", str(config), "web", "--port", str(port)], top)
    line = one_line(done.stderr)
    assert done.returncode == 2, done.stderr
    assert f"data_dir = '{data}': the console's session secret (web-secret) cannot be made or read there" in line
    assert "set BUDGETWATCH_WEB_SECRET" in line


def test_an_embedded_store_in_a_data_dir_this_user_may_not_write_says_why_it_cannot_be_opened(read_only_data_dir):
    # an operator's trial: "unable to open database file", SQLite's words alone, for a data_dir of mode 555
    top, _config, data = read_only_data_dir
    config = top / "embedded.yaml"
    config.write_text(f"data_dir: {data}\n", encoding="utf-8")
    config.chmod(0o644)
    done = _as_another_user(["--config", str(config), "db", "upgrade"], top)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (f"error: cannot open the store at sqlite:///{data}/budgetwatch.db: unable to open "
                                     f"database file (its folder {data} may not be written by this user)")


def test_check_config_names_only_the_archive_when_the_console_has_its_secret(read_only_data_dir):
    # a review: the row said web would refuse though BUDGETWATCH_WEB_SECRET gave it its secret
    top, config, data = read_only_data_dir
    command = ["setpriv", f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups", sys.executable, "-c",
               "import sys; from budgetwatch.entry import main; sys.exit(main())", "--config", str(config),
               "check-config"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    env["BUDGETWATCH_WEB_SECRET"] = "x" * 40
    done = subprocess.run(command, cwd=top, env=env, capture_output=True, text=True, timeout=120)
    said = " ".join(done.stdout.split())
    assert done.returncode == 0 and "— review approve (the archive) will refuse" in said, done.stdout
