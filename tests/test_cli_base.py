"""The command line's foundation: --help, check-config, the config file's selection, db upgrade/current,
and the store's schema check every store-opening command makes.

Commands run in-process through ``budgetwatch.cli.main`` (what the console script calls), once as a
real subprocess to prove the installed ``budgetwatch`` script works.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from budgetwatch.cli import main
from store.db import head_revision, make_engine, upgrade

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config.yaml"
SCRIPT = Path(sys.executable).with_name("budgetwatch")
COMMANDS = ("check-config", "db", "sync", "export", "runs", "simulator", "demo")
UPGRADE_HINT = "run `budgetwatch db upgrade`"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient config or store: each test runs in an empty directory."""
    for name in ("BUDGETWATCH_CONFIG", "BUDGETWATCH_DATABASE_URL", "NEZARAT4_PASSWORD", "SABA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def flat(text: str) -> str:
    """Text with rich's line wrapping undone (for messages whose wording, not layout, is tested)."""
    return " ".join(text.split())


def store_config(tmp_path: Path, url: str | None = None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"database:\n  url: {url or f'sqlite:///{tmp_path}/store.db'}\n", encoding="utf-8")
    return path


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUDGETWATCH_")}
    env.update(COLUMNS="80", **extra)
    return env


# --- help -------------------------------------------------------------------------------------


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert f" {command} " in out, command


def test_console_script_help_lists_every_command(tmp_path: Path) -> None:
    done = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, cwd=tmp_path,
                          env=subprocess_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert f" {command} " in done.stdout, command


def test_db_help_lists_upgrade_and_current(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "db", "--help")
    assert code == 0
    assert " upgrade " in out and " current " in out


# --- check-config -----------------------------------------------------------------------------


def test_check_config_accepts_the_shipped_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config", str(SHIPPED), "check-config")
    assert code == 0, err
    assert "configuration OK" in out
    assert str(SHIPPED) in flat(out)


def test_check_config_rejects_a_broken_file_naming_key_value_and_expectation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  nezarat4:\n    concurrency: 12\n", encoding="utf-8")
    code, out, err = run(capsys, "--config", str(bad), "check-config")
    assert code == 2
    assert "configuration OK" not in out
    assert "Traceback" not in err
    lines = err.splitlines()
    assert any("sources.nezarat4.concurrency = 12" in line and "less than or equal to 8" in line for line in lines), err


def test_check_config_shows_every_job_and_whether_the_mail_settings_can_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found by a new user: the schedule row left out dispatch, full sync and housekeeping, and a mail
    # password that cannot be read was first said by `alerts send`
    monkeypatch.delenv("BW_TEST_UNSET_SMTP", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text("alerts:\n  enabled: true\n  sender: budgetwatch@mpo-kz.ir\n  smtp:\n    username: bw\n"
                    "    password_env: BW_TEST_UNSET_SMTP\n", encoding="utf-8")
    code, out, err = run(capsys, "--config", str(path), "check-config")
    said = flat(out)
    assert code == 0, err
    assert all(f"{job} '" in said for job in ("full sync", "dispatch", "housekeeping")), said
    assert "BW_TEST_UNSET_SMTP" in said and "alerts send and serve will refuse" in said
    # an operator's trial: the portals said where their password comes from, the mail server did not
    # the row as written (the table may wrap it at any space: compared without the frame's cells)
    row = re.sub(r"[\s│]+", " ", out)
    assert "(starttls; user bw, password from $BW_TEST_UNSET_SMTP); given up after 2d" in row, said


def test_check_config_shows_the_reports_section(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # found by a new user: `reports.service_days` took effect in the report and went unsaid here
    path = tmp_path / "config.yaml"
    path.write_text("reports:\n  service_days: 3\n", encoding="utf-8")
    code, out, err = run(capsys, "--config", str(path), "check-config")
    assert code == 0, err
    assert "each step of the monitoring cycle may take 3 days" in flat(out)


def test_check_config_names_an_unknown_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("reconcile:\n  rules:\n    progress_lag:\n      minr: 3\n", encoding="utf-8")
    code, _, err = run(capsys, "--config", str(bad), "check-config")
    assert code == 2
    assert any("reconcile.rules.progress_lag.minr: unknown key" in line for line in err.splitlines()), err


def test_a_broken_file_stops_every_command_not_only_check_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  enabled: true\n", encoding="utf-8")
    for argv in (["runs"], ["export", "projects"], ["db", "current"]):
        code, out, err = run(capsys, "--config", str(bad), *argv)
        assert code == 2, argv
        assert "alerts.sender: required key is missing (alerts are enabled)" in err, argv
        assert "Traceback" not in err
    assert not (tmp_path / "store.db").exists()


def test_invalid_yaml_is_reported_with_line_and_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("database: [unclosed\n", encoding="utf-8")
    code, _, err = run(capsys, "--config", str(bad), "check-config")
    assert code == 2
    assert "Traceback" not in err
    assert any("line 2, column 1: not valid YAML" in line for line in err.splitlines()), err


def test_broken_file_problem_is_one_line_in_the_console_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  nezarat4:\n    concurrency: 12\n", encoding="utf-8")
    done = subprocess.run([str(SCRIPT), "--config", str(bad), "check-config"], capture_output=True, text=True,
                          cwd=tmp_path, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert any("sources.nezarat4.concurrency = 12" in line for line in done.stderr.splitlines()), done.stderr


def test_long_problem_line_is_not_wrapped(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources:\n  saba:\n    base_url: ftp://saba.mpong.ir/api/v1\n", encoding="utf-8")
    done = subprocess.run([str(SCRIPT), "--config", str(bad), "check-config"], capture_output=True, text=True,
                          cwd=tmp_path, env=subprocess_env(), timeout=60)
    assert done.returncode == 2
    expected = "sources.saba.base_url = 'ftp://saba.mpong.ir/api/v1': must start with https:// (or http:// for a local simulator)"
    assert any(line.strip().endswith(expected) for line in done.stderr.splitlines()), done.stderr


def test_missing_config_file_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--config", "missing.yaml", "check-config")
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    assert "missing.yaml" in err and "file not found" in err
    assert len(err.strip().splitlines()) == 1  # the file and the reason on one line


def test_budgetwatch_config_env_selects_the_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = tmp_path / "chosen.yaml"
    chosen.write_text("routing:\n  default: social\n  agencies: {'۳۰۵': production}\n", encoding="utf-8")
    (tmp_path / "config.yaml").write_text("bogus_key: 1\n", encoding="utf-8")  # ./config.yaml must be ignored
    monkeypatch.setenv("BUDGETWATCH_CONFIG", str(chosen))
    code, out, err = run(capsys, "check-config")
    assert code == 0, err
    assert str(chosen) in flat(out)
    assert "1 agencies routed; default group social" in flat(out)


def test_budgetwatch_config_env_naming_a_missing_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUDGETWATCH_CONFIG", str(tmp_path / "gone.yaml"))
    code, _, err = run(capsys, "check-config")
    assert code == 2
    assert "gone.yaml" in err and "file not found" in err


def test_config_option_wins_over_the_env(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BUDGETWATCH_CONFIG", str(tmp_path / "gone.yaml"))
    code, out, _ = run(capsys, "--config", str(SHIPPED), "check-config")
    assert code == 0
    assert "configuration OK" in out


def test_check_config_never_shows_passwords(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEZARAT4_PASSWORD", "nz-Secret-7731")
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", "postgresql+psycopg://bw:db-Secret-9042@dbhost/budgetwatch")
    code, out, err = run(capsys, "--config", str(SHIPPED), "check-config")
    assert code == 0, err
    assert "nz-Secret-7731" not in out + err
    assert "db-Secret-9042" not in out + err
    assert "$NEZARAT4_PASSWORD" in out
    assert "bw:***@dbhost" in out


# --- the store's schema -----------------------------------------------------------------------


def test_db_upgrade_then_current(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = store_config(tmp_path)
    code, out, err = run(capsys, "--config", str(config), "db", "upgrade")
    assert code == 0, err
    assert f"upgraded: empty -> {head_revision()}" in flat(out)
    code, out, _ = run(capsys, "--config", str(config), "db", "current")
    assert code == 0
    assert f"schema {head_revision()} (current)" in flat(out)
    code, out, _ = run(capsys, "--config", str(config), "db", "upgrade")  # safe to run again
    assert code == 0
    assert "is current" in flat(out)


def test_db_current_on_an_empty_store_says_behind(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "--config", str(store_config(tmp_path)), "db", "current")
    assert code == 1  # behind: a script can tell (issue 12, item 9)
    assert "schema none" in flat(out) and UPGRADE_HINT in flat(out)


def test_database_env_overrides_the_file_for_db_commands(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = store_config(tmp_path)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", f"sqlite:///{tmp_path}/override.db")
    code, _, err = run(capsys, "--config", str(config), "db", "upgrade")
    assert code == 0, err
    assert (tmp_path / "override.db").exists()
    assert not (tmp_path / "store.db").exists()


def test_a_command_creates_an_empty_store_at_head(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = store_config(tmp_path)
    code, _, err = run(capsys, "--config", str(config), "reconcile")  # a command that writes
    assert code == 0, err
    with make_engine(f"sqlite:///{tmp_path}/store.db").connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()


def test_store_without_a_schema_version_stops_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = store_config(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    with engine.begin() as conn:  # data from before migrations existed: not empty, no version
        conn.execute(sa.text("CREATE TABLE legacy_notes (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    for argv in (["runs"], ["export", "projects"]):
        code, out, err = run(capsys, "--config", str(config), *argv)
        assert code == 2, argv
        assert UPGRADE_HINT in flat(err), err
        assert "Traceback" not in err
    # the operator's fix works, and the command runs afterwards
    assert run(capsys, "--config", str(config), "db", "upgrade")[0] == 0
    assert run(capsys, "--config", str(config), "runs")[0] == 0


def test_store_at_an_unknown_revision_stops_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = store_config(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path}/store.db")
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000_older'"))
    engine.dispose()
    code, _, err = run(capsys, "--config", str(config), "export", "agreements")
    assert code == 2
    assert "0000_older" in flat(err) and UPGRADE_HINT in flat(err)
    code, out, _ = run(capsys, "--config", str(config), "db", "current")
    assert code == 1 and "behind" in flat(out)


def test_unreachable_store_is_one_line_without_its_password(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = store_config(tmp_path, "postgresql+psycopg://bw:pg-Secret-5521@127.0.0.1:1/budgetwatch")
    code, _, err = run(capsys, "--config", str(config), "runs")
    assert code == 2
    assert "cannot open the store" in flat(err)
    assert "pg-Secret-5521" not in err
    assert "Traceback" not in err


def test_db_commands_on_a_database_that_does_not_exist_are_one_line(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    # found by a new user: `db current` printed the driver's OperationalError and its link
    from tests.conftest import PG_SKIP_REASON, _pg_url

    if not _pg_url():
        pytest.skip(PG_SKIP_REASON)
    missing = sa.engine.make_url(_pg_url()).set(database="budgetwatch_no_such_db", password="pg-Secret-5521")
    config = store_config(tmp_path, missing.render_as_string(hide_password=False))
    for argv in (["db", "current"], ["db", "upgrade"]):
        code, out, err = run(capsys, "--config", str(config), *argv)
        assert code == 2, argv
        assert "cannot open the store" in flat(err) and "budgetwatch_no_such_db" in flat(err), err
        assert "OperationalError" not in err and "sqlalche.me" not in err and "pg-Secret-5521" not in err


def test_an_output_file_that_cannot_be_written_stops_the_command_before_it_works(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = str(store_config(tmp_path))
    assert run(capsys, "--config", config, "db", "upgrade")[0] == 0  # a store to read
    code, _, err = run(capsys, "--config", config, "export", "projects", "--year", "13")
    assert code == 2 and "--year 13: not a Jalali fiscal year" in flat(err)
    for argv in (["export", "projects", "-o"], ["reconcile", "-o"], ["deviations", "list", "--output"]):
        code, _, err = run(capsys, "--config", config, *argv, str(tmp_path / "no-such-folder" / "out.txt"))
        assert code == 2, argv
        assert f"--output {tmp_path / 'no-such-folder' / 'out.txt'}: cannot write there" in flat(err), err
        assert "FileNotFoundError" not in err
    with make_engine(f"sqlite:///{tmp_path}/store.db").connect() as conn:  # the run did not happen
        assert conn.execute(sa.text("SELECT count(*) FROM reconcile_run")).scalar() == 0
    # files written whole after the work: refused before it, and no folder is made (a new user's
    # `alerts preview --html /nonexistent/x.html` made /nonexistent; `report -o /proc/x.html` traced back)
    missing = tmp_path / "no-such-folder" / "x.html"
    with open(config, "a", encoding="utf-8") as more:  # an expert, so that preview gets as far as writing
        more.write("experts:\n  - name: کارشناس\n    email: a@b.ir\n    groups: [social]\n")
    for argv in (["report", "--as-of", "1405/09/04", "--output", str(missing)],
                 ["alerts", "preview", "--expert", "a@b.ir", "--html", str(missing)],
                 ["report", "--as-of", "1405/09/04", "--output", str(tmp_path)]):
        code, _, err = run(capsys, "--config", config, *argv)
        assert code == 2 and err.startswith("error: --") and len(err.strip().splitlines()) == 1, (argv, err)
    assert not missing.parent.exists()


def test_the_console_refuses_a_port_it_cannot_listen_on_in_one_line(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    import socket

    config = str(store_config(tmp_path))
    code, out, err = run(capsys, "--config", config, "web", "--port", "99999")
    assert code == 2 and "--port 99999: use 1 to 65535" in err and "Traceback" not in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(capsys, "--config", config, "web", "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err
    assert "console on" not in out  # not announced before it fails


# --- the demo (the README's first command) ------------------------------------------------------


def test_demo_refuses_to_run_while_the_store_is_overridden_by_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # found in review: BUDGETWATCH_DATABASE_URL (a production store) won over the demo's own store
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", f"sqlite:///{tmp_path}/production.db")
    code, _, err = run(capsys, "demo", "--projects", "30", "--agreements", "15")
    assert code == 2 and "BUDGETWATCH_DATABASE_URL is set" in flat(err)
    assert not (tmp_path / "production.db").exists() and not (tmp_path / "data" / "demo.db").exists()


def test_demo_runs_end_to_end_and_brings_its_own_older_store_up_to_date(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # a demo store left by an older budgetwatch (schema 0001): the demo upgrades its own store
    (tmp_path / "data").mkdir()
    upgrade(make_engine(f"sqlite:///{tmp_path}/data/demo.db"), "0001")
    code, out, err = run(capsys, "demo", "--projects", "30", "--agreements", "15")
    assert code == 0, err
    text = flat(out)
    assert "budgetwatch demo" in text and "sqlite:///data/demo.db" in text
    assert "success" in text and "field visits from" in text
    with make_engine(f"sqlite:///{tmp_path}/data/demo.db").connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert conn.execute(sa.text("SELECT count(*) FROM deviation")).scalar() > 0
        assert conn.execute(sa.text("SELECT status FROM reconcile_run")).scalars().all() == ["success"]
    # the commands it suggests use its store and its routing: with config.yaml's, every simulated
    # agency fell to the default group and `--group social` listed nothing (found by a new user)
    explore = tmp_path / "data" / "demo-config.yaml"
    assert "--config data/demo-config.yaml deviations list" in text
    code, out, err = run(capsys, "--config", str(explore), "deviations", "list", "--group", "social", "--format", "json")
    assert code == 0, err
    assert json.loads(out), "the demo's social group has deviations"
    code, out, err = run(capsys, "--config", str(explore), "alerts", "preview", "--expert", "social.expert@demo.mpo-kz.ir")
    assert code == 0 and "Subject:" in out, err  # its sample experts are in its config too


def test_a_commands_help_is_worded_in_whole_paragraphs(capsys: pytest.CaptureFixture[str]) -> None:
    # an operator's trial: typer kept the docstring's source line breaks, so at 80 columns
    # `reconcile --help` printed "A run judges only what" alone on a line, then the rest
    code, out, _ = run(capsys, "reconcile", "--help")
    assert code == 0
    words = " ".join(line.strip() for line in out.splitlines())
    assert "A run judges only what changed since the last recorded run unless --full;" in words
    lines = [line.strip() for line in out.splitlines()]
    for short, following in zip(lines, lines[1:]):  # a line ended well short of 80 mid-sentence
        assert not (short.endswith("what") and following.startswith("changed")), out
