"""What an operator sees when a command cannot do what was asked: one line, the documented exit
code, nothing changed (issue 12, item 9)."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from budgetwatch.cli import main
from tests.cli import command_line, one_line
from store.db import make_engine, upgrade

SCRIPT = Path(sys.executable).with_name("budgetwatch")


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    return command_line(tmp_path, capsys, monkeypatch)


_one_line = one_line


@pytest.mark.parametrize(("base_url", "said"), [
    ("http://", "names no host"),
    ("https://nezarat mpo.ir", "contains a space"),
    ("https://nezarat.mpo-kz.ir:port", "port that is not a number"),
    ("ftp://nezarat.mpo-kz.ir", "must start with https://"),
    # an operator's trial: accepted, and check-config printed the password
    ("https://bw:s3cret-pass@nezarat.mpo-kz.ir", "carries a user name or password"),
    ("https://bw:s3cret/pass@nezarat.mpo-kz.ir", "carries a user name or password"),  # review: / ends netloc
    ("https://bw:1234/s3cret@nezarat.mpo-kz.ir", "carries a user name or password"),
])
def test_a_base_url_that_cannot_be_requested_is_a_config_error(run, base_url, said):
    code, _out, err = run("check-config", config=f'sources:\n  nezarat4:\n    base_url: "{base_url}"\n')
    line = _one_line(err)
    assert code == 2 and "sources.nezarat4.base_url" in line and said in line and "s3cret" not in err


def test_sync_of_a_year_no_portal_holds_is_refused_before_any_request(run):
    code, _out, err = run("sync", "--year", "1300")
    assert code == 2 and "--year 1300" in _one_line(err) and "1390-1500" in err
    # a trial: Persian digits were refused in pydantic's words ("Input should be a valid integer…")
    for typed in ("۱۳۰۰", "abc"):
        code, _out, err = run("sync", "--year", typed)
        assert code == 2 and _one_line(err).startswith(f"error: --year {typed}: not a Jalali fiscal year a portal "
                                                       "can hold (1390-1500"), err


def test_a_year_in_persian_digits_is_the_year(run):
    assert run("db", "upgrade")[0] == 0
    assert run("export", "projects", "--year", "۱۴۰۵") == (0, "", "")  # an empty store: no line, no error
    code, _out, err = run("export", "projects", "--year", "۱۳")
    assert code == 2 and _one_line(err).startswith("error: --year ۱۳: not a Jalali fiscal year a portal can hold (1390-1500")


def test_rejections_of_a_run_that_does_not_exist_are_an_error(run):
    assert run("db", "upgrade")[0] == 0  # a store to read
    code, _out, err = run("runs", "--rejected", "999")
    assert code == 2 and "there is no sync run 999" in _one_line(err)


def test_a_store_written_by_a_newer_release_is_called_ahead_not_behind(run, tmp_path):
    # an operator who goes back to an older release must not be told to run its `db upgrade`
    (tmp_path / "data").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'budgetwatch.db'}")
    upgrade(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    code, out, _err = run("db", "current")
    assert code == 1 and "ahead" in out and "behind" not in out
    code, _out, err = run("runs")
    assert code == 2 and "newer than this budgetwatch" in _one_line(err) and "db upgrade" not in err


def test_db_current_exits_1_when_the_schema_is_behind(run, tmp_path):
    (tmp_path / "data").mkdir()
    upgrade(make_engine(f"sqlite:///{tmp_path / 'data' / 'budgetwatch.db'}"), "0006")
    code, out, _err = run("db", "current")
    assert code == 1 and "behind" in out
    assert run("db", "upgrade")[0] == 0
    code, out, _err = run("db", "current")
    assert code == 0 and "(current)" in out


# --- credentials, checked before the first request (issue 12, items 6 and 7) -------------------

def _sources(nezarat4: str) -> str:
    """A config with saba off and nezarat4 as given (YAML lines under `nezarat4:`)."""
    return (f'sources:\n  saba:\n    enabled: false\n  nezarat4:\n    base_url: "http://127.0.0.1:9"\n'
            f'{nezarat4}data_dir: data\n')


@pytest.mark.parametrize(("setup", "said"), [
    ("env", "the variable BW_TEST_UNSET_PASSWORD is not set"),
    ("missing", "cannot read"),
    ("directory", "Is a directory"),
    ("cp1256", "is not UTF-8 text"),
    ("empty", "is empty"),
])
def test_an_unusable_password_stops_sync_before_any_request(run, tmp_path, monkeypatch, setup, said):
    monkeypatch.delenv("BW_TEST_UNSET_PASSWORD", raising=False)
    secret = tmp_path / "secret.pw"
    if setup == "directory":
        secret.mkdir()
    elif setup == "cp1256":
        secret.write_bytes("رمز".encode("cp1256"))
    elif setup == "empty":
        secret.write_text("\n", encoding="utf-8")
    source = ("    username: u\n    password_env: BW_TEST_UNSET_PASSWORD\n" if setup == "env" else
              f"    username: u\n    password_env: null\n    password_file: {secret}\n")
    code, _out, err = run("sync", config=_sources(source))
    assert code == 2 and said in _one_line(err)
    assert not (tmp_path / "data" / "budgetwatch.db").exists()  # refused before the store was even opened


def test_an_empty_username_is_a_config_error_never_a_login(run, tmp_path):
    secret = tmp_path / "secret.pw"
    secret.write_text("pw", encoding="utf-8")
    code, _out, err = run("sync", config=_sources(f"    username: ''\n    password_env: null\n    password_file: {secret}\n"))
    assert code == 2 and "sources.nezarat4.username: empty" in _one_line(err)


def test_check_config_tells_whether_credentials_are_ready(run, tmp_path):
    code, out, _err = run("check-config", config=_sources("    username: ''\n    password_env: BW_TEST_UNSET_PASSWORD\n"))
    assert code == 0 and "sources.nezarat4.username: empty" in out and "sync will refuse to start" in out


def test_a_relative_password_file_is_read_from_the_config_files_folder(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "nezarat4.pw").write_text("secret-value\n", encoding="utf-8")
    config = folder / "config.yaml"
    config.write_text(_sources("    username: u\n    password_env: null\n    password_file: nezarat4.pw\n"),
                      encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["--config", str(config), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "credentials nezarat4" in out and "ready" in out and "secret-value" not in out


def test_a_password_file_inside_the_repository_is_refused(run):
    from budgetwatch.config import REPOSITORY

    code, _out, err = run("check-config", config=_sources(
        f"    username: u\n    password_env: null\n    password_file: {REPOSITORY / 'nezarat4.pw'}\n"))
    assert code == 2 and "is inside the budgetwatch repository" in _one_line(err)


# --- usage errors: click's message in one line, exit code 2 (found by a new user) ------------------

@pytest.mark.parametrize(("argv", "said"), [
    (("reconsile",), "No such command 'reconsile'"),
    (("reconcile", "--bogus"), "No such option: --bogus"),
    (("deviations", "ack", "abc", "--by", "x", "--reason", "y"), "Invalid value for 'ID'"),
    (("runs", "--rejected", "abc"), "Invalid value for '--rejected'"),
    (("--log-format", "yaml", "check-config"), "Invalid value for --log-format: 'yaml'"),
])
def test_a_usage_error_is_one_line_and_exit_code_2(run, tmp_path, argv, said):
    # they were click's boxed panel under a usage line, over five lines or more
    code, out, err = run(*argv)
    line = _one_line(err)
    assert code == 2 and said in line and "╭" not in line and out == "", err
    assert line.startswith("error: ") and "--help')" in line, line
    assert not (tmp_path / "data").exists()  # refused before anything ran


def test_a_bad_log_format_from_the_environment_names_the_variable(run, monkeypatch, tmp_path):
    # a trial: BUDGETWATCH_LOG_FORMAT=xml was refused as "--log-format", which nobody had typed
    monkeypatch.setenv("BUDGETWATCH_LOG_FORMAT", "xml")
    code, out, err = run("check-config")
    line = _one_line(err)
    assert code == 2 and "Invalid value for BUDGETWATCH_LOG_FORMAT (--log-format): 'xml'" in line and out == ""
    code, _out, err = run("--log-format", "yaml", "check-config")  # typed, it wins and is named as typed
    assert code == 2 and "Invalid value for --log-format: 'yaml'" in _one_line(err)
    assert not (tmp_path / "data").exists()


def test_a_usage_error_names_the_help_of_the_command_it_is_about(run):
    _code, _out, err = run("reconcile", "--bogus")
    assert "(try 'budgetwatch reconcile --help')" in _one_line(err)


def test_an_unknown_command_is_one_line_from_the_console_script(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    done = subprocess.run([str(SCRIPT), "reconsile"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=60)
    line = _one_line(done.stderr)
    assert done.returncode == 2 and "'reconsile'" in line and "(try 'budgetwatch --help')" in line, line


def test_an_option_missing_its_value_still_points_at_help(run):
    # review: an error click raises without its command's context had no hint
    code, _out, err = run("reconcile", "--format")
    line = _one_line(err)
    assert code == 2 and "'--format' requires an argument" in line
    assert line.endswith("(try 'budgetwatch --help')")


def test_help_still_shows_and_exits_0(run):
    code, out, err = run("reconcile", "--help")
    assert code == 0 and "--format" in out and err == ""


@pytest.mark.parametrize(("written", "shown"), [("36h", "36h"), ("36 hours", "36h"), ("2 days", "2d"),
                                               ("1 hour", "1h"), ("90 minutes", "90m"), ("7200", "2h")])
def test_a_duration_is_read_in_letters_or_words_alike(run, written, shown):
    # an operator's trial: "2 days" was taken (pydantic's reading) and "36 hours" refused
    code, out, err = run("check-config", config=f"data_dir: data\nalerts:\n  give_up_after: {written}\n")
    assert code == 0, err
    assert f"given up after {shown}" in " ".join(out.split())


def test_a_duration_that_is_no_duration_is_one_line_naming_its_key(run, tmp_path):
    code, _out, err = run("check-config", config="data_dir: data\nalerts:\n  give_up_after: forever\n")
    line = _one_line(err)
    assert code == 2 and "alerts.give_up_after = 'forever': must be a duration such as 2d, 36h or 90m" in line
    assert "timedelta" not in line


def test_ctrl_c_at_the_password_prompt_is_an_interruption(tmp_path):
    # review: click turns Ctrl-C at a prompt into its Abort, which was said as "aborted", exit 1; the
    # README's exit codes give 130 for an interruption. A real terminal (a pseudo-terminal) and a real SIGINT.
    import select
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    (tmp_path / "config.yaml").write_text("data_dir: data\n", encoding="utf-8")
    terminal, its_end = os.openpty()
    argv = [str(SCRIPT), "--config", "config.yaml", "users", "add", "ali", "--role", "consolidation"]
    proc = subprocess.Popen(argv, stdin=its_end, stdout=its_end, stderr=subprocess.PIPE, cwd=tmp_path,
                            env=env)
    os.close(its_end)
    shown = b""
    try:
        while b"password" not in shown.lower():  # the prompt is up: the process waits on the terminal
            ready, _, _ = select.select([terminal], [], [], 60)
            assert ready, f"no prompt: {shown!r}"
            shown += os.read(terminal, 1024)
        # SIGINT only once the process sleeps in its read of the terminal: one that lands between
        # Python's last check for signals and that read(2) is never seen, and the read waits forever
        # (CPython's own race, not budgetwatch's; it hung this test once under a loaded suite)
        _until_reading_the_terminal(proc.pid)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        os.close(terminal)
    assert proc.returncode == 130 and _one_line(err.decode()).strip() == "interrupted", (proc.returncode, err)


def _until_reading_the_terminal(pid: int) -> None:
    """Until process `pid` is asleep in read(2), at its prompt the terminal's (/proc/PID/syscall
    starts with the call's number); at once where /proc does not say so."""
    read = {"x86_64": "0", "aarch64": "63"}.get(platform.machine())
    deadline = time.monotonic() + 60
    while read is not None and time.monotonic() < deadline:
        try:
            call = Path(f"/proc/{pid}/syscall").read_text().split()
        except OSError:
            return
        if call[:1] == [read]:
            return
        time.sleep(0.01)  # polling the kernel's word: there is nothing to await
    assert read is None, f"process {pid} never read its terminal"


# --- inputs a new user gave that ended in a Python exception's name and exit code 1 ----------------

def test_a_config_path_that_is_a_folder_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w").mkdir()
    code = main(["--config", "w/", "check-config"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and line.startswith("configuration error in w: is a folder"), line


@pytest.mark.parametrize(("content", "said"), [
    (b"\xff\xfe data_dir: x\n", "line 1, column 1: not UTF-8 text (byte 0xff; it looks like UTF-16)"),
    ("data_dir: data\n# بودجه\n".encode("cp1256"), "line 2, column 3: not UTF-8 text (byte 0xc8)"),
    # the column counts characters, as YAML's errors do, not bytes
    ("# بودجه ".encode() + b"\xe9\n", "line 1, column 9: not UTF-8 text (byte 0xe9)"),
])
def test_a_config_file_that_is_not_utf8_says_where_its_first_bad_byte_is(tmp_path, capsys, content, said):
    config = tmp_path / "config.yaml"
    config.write_bytes(content)
    code = main(["--config", str(config), "check-config"])
    line = _one_line(capsys.readouterr().err)
    assert code == 2 and line.startswith(f"configuration error in {config}: {said}") and "UTF-8" in line, line


@pytest.mark.parametrize("argv", [("runs",), ("db", "current"), ("db", "upgrade")])
def test_a_store_url_at_a_file_that_is_no_database_is_one_line_and_the_file_is_kept(run, tmp_path, argv):
    text = tmp_path / "notadb.txt"
    text.write_text("a note, not a store\n" * 200, encoding="utf-8")
    code, _out, err = run(*argv, config=f'database:\n  url: "sqlite:///{text}"\n')
    line = _one_line(err)
    assert code == 2 and f"cannot open the store at sqlite:///{text}: file is not a database" in line, line
    assert "sqlalche.me" not in line
    assert text.read_text(encoding="utf-8") == "a note, not a store\n" * 200  # nothing lost
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "notadb.txt"]  # nor made beside it


@pytest.fixture
def busy_port():
    """A port of 127.0.0.1 another program listens on."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("option", ["--nezarat-port", "--saba-port"])
def test_the_simulator_on_a_busy_port_is_one_line_naming_the_option(run, busy_port, option):
    other = "--saba-port" if option == "--nezarat-port" else "--nezarat-port"
    code, out, err = run("simulator", "--projects", "5", "--agreements", "5", option, str(busy_port),
                         other, "0")
    line = _one_line(err)
    assert code == 2 and out == ""
    assert line == (f"error: {option} {busy_port}: cannot listen on 127.0.0.1:{busy_port} "
                   "(Address already in use)")


def test_the_simulator_refuses_one_port_for_both_portals(run):
    code, out, err = run("simulator", "--nezarat-port", "8499", "--saba-port", "8499")
    line = _one_line(err)
    assert code == 2 and out == "" and "--saba-port 8499: the same port as --nezarat-port" in line, line


def test_the_web_console_on_a_busy_port_is_one_line(run, busy_port):
    code, _out, err = run("web", "--port", str(busy_port))
    line = _one_line(err)
    assert code == 2
    assert line == (f"error: --port {busy_port}: cannot listen on 127.0.0.1:{busy_port} "
                   "(Address already in use)")


def test_a_database_error_in_a_rule_is_one_line_naming_the_rule_and_recorded_so(run, tmp_path):
    # a store that lost a table a rule reads: the driver's words and the rule, never the statement
    assert run("db", "upgrade")[0] == 0
    store = tmp_path / "data" / "budgetwatch.db"
    with contextlib.closing(sqlite3.connect(store)) as conn:
        conn.execute("ALTER TABLE expense_credit RENAME TO expense_credit_gone")
        conn.commit()
    code, _out, err = run("reconcile", "--year", "1404")
    said = ("database error: no such table: expense_credit "
            "(while reading the rows of expense.credit_inconsistency)")
    assert code == 1 and _one_line(err) == f"error: {said} (run with --debug for details)"
    with contextlib.closing(sqlite3.connect(store)) as conn:
        status, stats = conn.execute("SELECT status, stats FROM reconcile_run ORDER BY id DESC").fetchone()
    assert status == "failed" and json.loads(stats) == {"error": said}


def _last_line_after_traceback(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("Traceback"), err
    return lines[-1]


def test_debug_adds_the_traceback_and_changes_neither_the_line_nor_the_exit_code(run, tmp_path):
    # bad input (exit 2), a configuration error (exit 2), an unexpected error (exit 1): with --debug
    # the same code and the same line, the traceback above it (README, "Exit codes")
    code, _out, err = run("--debug", "sync", "--year", "1300")
    assert code == 2 and "--year 1300" in _last_line_after_traceback(err)
    code, _out, err = run("--debug", "check-config", config="data_dir: data\nschedul: {}\n")
    assert code == 2 and "configuration error" in _last_line_after_traceback(err)
    assert run("db", "upgrade")[0] == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "budgetwatch.db")) as conn:
        conn.execute("ALTER TABLE expense_credit RENAME TO expense_credit_gone")
        conn.commit()
    code, _out, err = run("--debug", "reconcile", "--year", "1404")
    assert code == 1 and _last_line_after_traceback(err) == (
        "error: database error: no such table: expense_credit (while reading the rows of "
        "expense.credit_inconsistency)")


def test_ctrl_c_while_the_commands_load_is_an_interruption(tmp_path):
    # review (a new user): a SIGINT in the first second, while budgetwatch.cli imports the commands,
    # was a KeyboardInterrupt traceback and a death by SIGINT. Sent once SQLAlchemy is being loaded
    # (its modules mapped into the process), mid-import; landing later, the command's own handling
    # says the same.
    import signal

    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    (tmp_path / "config.yaml").write_text("data_dir: data\n", encoding="utf-8")
    proc = subprocess.Popen([str(SCRIPT), "--config", "config.yaml", "check-config"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path, env=env)
    try:
        deadline = time.monotonic() + 60
        while "sqlalchemy" not in Path(f"/proc/{proc.pid}/maps").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "SQLAlchemy never loaded"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and _one_line(err.decode()) == "interrupted", (proc.returncode, err)


@pytest.mark.parametrize("argv", [
    ("export", "projects", "--output", "data/archive/1405-Q2/report.html"),
    ("reconcile", "--output", "data/archive/1405-Q2/../1405-Q2/report.html"),
    ("deviations", "list", "--output", "data/archive/report.html"),
])
def test_no_output_is_written_into_the_signed_archive(run, tmp_path, argv):
    # review: the report commands refused it, the others overwrote a signed file (root ignores 0444)
    signed = tmp_path / "data" / "archive" / "1405-Q2"
    signed.mkdir(parents=True)
    (signed / "report.html").write_bytes(b"signed")
    assert run("db", "upgrade")[0] == 0  # a store to read
    code, _out, err = run(*argv)
    assert code == 2 and "inside the signed archive" in _one_line(err)
    assert (signed / "report.html").read_bytes() == b"signed"


def test_with_json_logs_the_last_line_is_a_json_object_too(tmp_path):
    # an operator's trial: `journalctl -o cat | jq` (docs/deploy.md, "Logs") stopped at the first plain
    # line: a configuration error, "another serve runs" (exit 3), a usage error. The installed command,
    # as the service runs it (its logging set up once, in its own process)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    for argv, config, said in [
        (("check-config",), "data_dir: data\nschedul: {}\n", "configuration error in"),
        (("sync", "--bogus"), "data_dir: data\n", "error: No such option: --bogus"),
    ]:
        (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
        done = subprocess.run([str(SCRIPT), "--log-format", "json", "--config", "config.yaml", *argv], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=60)
        record = json.loads(_one_line(done.stderr))
        assert done.returncode == 2 and record["level"] == "ERROR" and record["message"].startswith(said), done.stderr
    # with --debug too: the traceback inside the object (``exc_info``), not plain lines after it
    (tmp_path / "config.yaml").write_text("data_dir: data\nschedul: {}\n", encoding="utf-8")
    done = subprocess.run([str(SCRIPT), "--log-format", "json", "--debug", "--config", "config.yaml", "check-config"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    records = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and records[-1]["message"].startswith("configuration error in"), done.stderr
    assert "Traceback (most recent call last)" in records[-1]["exc_info"]


def _a_run_rejecting(run, tmp_path: Path, hostile: str, locator: str) -> int:
    """A failed sync run of a new store whose error quotes `hostile` and whose one rejected row holds it raw."""
    from foundation.records import Rejection
    from store.db import open_store
    from store.runs import close_run, open_run, save_rejections

    assert run("db", "upgrade")[0] == 0
    engine = open_store(f"sqlite:///{tmp_path / 'data' / 'budgetwatch.db'}")
    run_id = open_run(engine, "saba", "incremental", [1405])
    with engine.begin() as conn:
        save_rejections(conn, run_id, [Rejection("saba", locator, "not a status", "status", hostile, "[k]")])
    close_run(engine, run_id, status="failed", counts={}, error=f"the portal said: {hostile}", stats={})
    engine.dispose()
    return run_id


def test_a_portals_text_in_runs_is_shown_as_written_never_as_markup(run, tmp_path):
    # a security review: a status of "[/]" ended `runs --rejected` in a MarkupError, and "[link=…]"
    # became a hidden hyperlink in the operator's terminal
    run_id = _a_run_rejecting(run, tmp_path, "DRAFT [/] [link=http://evil.example/relogin]re-enter password[/link]",
                              "agreement [b]x[/b]")
    for argv in (("runs", "--rejected", str(run_id)), ("runs",)):
        code, out, err = run(*argv)
        assert code == 0, err
        flat = "".join(out.split())  # the table folds long cells
        assert "[link=http://evil.example/relogin]" in flat and "\x1b]8;" not in out, out
    assert "agreement[b]x[/b]" in "".join(run("runs", "--rejected", str(run_id))[1].split())


def test_a_portals_control_characters_in_runs_are_shown_not_obeyed(run, tmp_path):
    # a security trial: a rejected row keeps the portal's value raw, and `runs --rejected` wrote its
    # escape sequences to the terminal (window title set, screen cleared); the JSON output escapes them
    run_id = _a_run_rejecting(run, tmp_path, "\x1b]0;PWNED\x07\x1b[2J\x1b[31mDRAFT\x9b", "agreement 1")
    for argv in (("runs", "--rejected", str(run_id)), ("runs",)):
        code, out, err = run(*argv)
        assert code == 0, err
        assert not any(c in out for c in "\x1b\x07\x9b"), repr(out)
        flat = "".join(out.split())  # the table folds long cells
        assert "\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[31mDRAFT\\x9b" in flat, out


@pytest.mark.parametrize("argv", [("deviations", "show"), ("deviations", "ack"), ("alerts", "retry"),
                                  ("runs", "--rejected")])
def test_an_id_beyond_the_stores_integers_is_a_usage_error(run, argv):
    # a security review: 99999999999999999999999 reached the driver, "error: OverflowError: …", exit 1
    code, _out, err = run(*argv, "99999999999999999999999")
    line = _one_line(err)
    assert code == 2 and "less than or equal to 9223372036854775807" in line and "Overflow" not in line


def test_approving_a_year_the_store_does_not_hold_is_bad_input(run):
    # an expert's trial: "error: ReportError: the store holds no project or agreement of 1399 … (run
    # with --debug for details)", exit 1 (unexpected), where `report --year 1399` says it as bad input
    import sqlalchemy as sa

    from store.models import Agency, ExpenseAgreement

    assert run("db", "upgrade")[0] == 0
    engine = make_engine(f"sqlite:///{Path('data') / 'budgetwatch.db'}")
    with engine.begin() as conn:  # a store of 1405
        conn.execute(sa.insert(Agency.__table__).values(code="161", name="آب و فاضلاب", name_key="آبوفاضلاب"))
        conn.execute(sa.insert(ExpenseAgreement.__table__).values(
            agreement_no="1405-161-15004", fiscal_year=1405, agency_code="161", program_code="15004", status="exchanged"))
    engine.dispose()
    for argv in (("review", "approve", "--year", "1399", "--quarter", "4", "--by", "talfiq"),
                 ("report", "--year", "1399", "--quarter", "4", "--output", "r.xlsx")):
        code, _out, err = run(*argv)
        line = _one_line(err)
        assert code == 2 and "1399" in line and "ReportError" not in line and "--debug" not in line, (argv, line)


def test_an_empty_store_has_no_period_to_report_or_approve(run, tmp_path):
    # an expert's trial: on an empty store `review approve --year 1399` signed an archive of zeros
    assert run("db", "upgrade")[0] == 0
    for argv in (("review", "approve", "--year", "1405", "--quarter", "1", "--by", "talfiq"),
                 ("report", "--year", "1405", "--quarter", "1", "--output", "r.html")):
        code, _out, err = run(*argv)
        line = _one_line(err)
        assert code == 2 and "it is empty: sync first" in line, (argv, line)
    assert not (tmp_path / "data" / "archive").exists() and not (tmp_path / "r.html").exists()


def test_serve_whose_database_server_does_not_answer_is_started_again_by_its_unit(run, monkeypatch):
    # an operator's trial: exit 2 (a configuration error), which deploy/budgetwatch.service does not
    # restart, so a PostgreSQL up after this machine's reboot left the service down for good
    off = "data_dir: data\nsources:\n  nezarat4: {enabled: false}\n  saba: {enabled: false}\n"
    with socket.socket() as unused:  # a port no server listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{port}/budgetwatch")
    from budgetwatch.commands import service

    monkeypatch.setattr(service, "STORE_PATIENCE_SECONDS", 0.6)  # five minutes in the unit
    monkeypatch.setattr(service, "STORE_RETRY_SECONDS", 0.2)
    started = time.monotonic()
    code, _out, err = run("serve", config=off)
    assert code == 75 and "Connection refused" in err and "started again later" in err, err
    assert 0.4 <= time.monotonic() - started < 5  # it waited for the server before giving up
    unit = (Path(__file__).parents[1] / "deploy" / "budgetwatch.service").read_text(encoding="utf-8")
    assert "RestartPreventExitStatus=2 3\n" in unit  # 75 is restarted
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", "sqlite:////nonexistent/folder/store.db")
    assert run("serve", config=off)[0] == 2  # a SQLite file that cannot be opened will not open later


def test_a_sigterm_while_serve_waits_for_the_database_stops_it_with_exit_0(tmp_path):
    # an operator's trial: `systemctl stop` while serve waited for a PostgreSQL that did not answer
    # ended "interrupted (SIGTERM)", exit 143, where docs/deploy.md gives 0 for serve stopped by a
    # signal. A real process and a real signal, sent once serve says it waits (its 10 s between tries)
    with socket.socket() as unused:  # a port no server listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    env["BUDGETWATCH_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{port}/budgetwatch"
    (tmp_path / "config.yaml").write_text(
        "data_dir: data\nsources:\n  nezarat4: {enabled: false}\n  saba: {enabled: false}\n", encoding="utf-8")
    argv = [str(SCRIPT), "--log-format", "json", "--config", "config.yaml", "serve"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
                            env=env)
    try:
        said = []
        while not said or "trying again every" not in said[-1]:
            line = proc.stderr.readline()
            assert line, f"serve ended (exit {proc.wait(60)}) without waiting for the database: {said}"
            said.append(line)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, (proc.returncode, rest)
    [last] = [json.loads(line) for line in rest.splitlines()]
    assert last["level"] == "INFO"
    assert last["message"] == "SIGTERM received while waiting for the database: stopped (nothing had started)"


@pytest.mark.postgres
def test_serve_waits_for_a_database_server_that_comes_up_after_it(monkeypatch, pg_store_url):
    # after this machine's reboot PostgreSQL may answer later than serve starts: a port that answers
    # only after a second (a forwarder to the test server, started late) stands in for it
    import sqlalchemy as sa

    from budgetwatch.commands import service

    target = sa.engine.make_url(pg_store_url)  # an empty store in a schema of its own
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    stop = threading.Event()

    def forward() -> None:
        time.sleep(1.0)
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(0.2)
            while not stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection((target.host or "127.0.0.1", target.port or 5432))
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    forwarder = threading.Thread(target=forward, daemon=True)
    forwarder.start()
    monkeypatch.setattr(service, "STORE_RETRY_SECONDS", 0.3)
    try:
        engine = service._open_when_it_answers(target.set(port=port).render_as_string(hide_password=False))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
        engine.dispose()
    finally:
        stop.set()
        forwarder.join(5)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)


@pytest.mark.postgres
def test_serve_refused_by_the_database_server_is_a_configuration_error_at_once(run, monkeypatch, pg_store_url):
    # a review: every PostgreSQL error at connect was "not answering", so a database that does not
    # exist (or a wrong user or password) made serve wait five minutes, exit 75 and restart for ever
    import sqlalchemy as sa

    off = "data_dir: data\nsources:\n  nezarat4: {enabled: false}\n  saba: {enabled: false}\n"
    url = sa.engine.make_url(pg_store_url)
    for wrong in (url.set(database="bw_no_such_database"), url.set(username="bw_no_such_role")):
        monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", wrong.render_as_string(hide_password=False))
        started = time.monotonic()
        code, _out, err = run("serve", config=off)
        assert code == 2 and "does not exist" in err and time.monotonic() - started < 10, err
        assert "application_name" not in err and "keepalives" not in err  # serve's own keywords, not shown


def test_a_listing_into_a_pipe_its_reader_closed_ends_quietly_with_exit_0(tmp_path):
    # a trial: `deviations list | head -1` and `export projects | head -1` ended with exit 1 and
    # nothing said (click and rich turn a broken pipe into a silent exit 1), failing `set -o pipefail`
    # scripts, while `runs` and `status` ended as the reader's choice
    from store.db import open_store
    from tests.reconcile.reconcile_builders import Store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = open_store(url)
    store = Store(engine)
    store.report(store.project(), 1, 30, reported_on="1405/04/05")
    engine.dispose()
    (tmp_path / "config.yaml").write_text(f"database:\n  url: '{url}'\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    for argv in (("export", "projects"), ("deviations", "list")):  # written directly, and through rich
        read, write = os.pipe()
        os.close(read)  # the reader gone before the first line: every write meets a broken pipe
        try:
            done = subprocess.run([str(SCRIPT), "--config", "config.yaml", *argv], cwd=tmp_path, env=env,
                                  stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
        finally:
            os.close(write)
        said = [line for line in done.stderr.splitlines() if not line.startswith("what-if")]
        assert (done.returncode, said) == (0, []), (argv, done.returncode, done.stderr)
