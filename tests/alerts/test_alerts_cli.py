"""`budgetwatch alerts send|list|preview` through budgetwatch.cli.main, with a config file and a real
SMTP server; and the alerts' configuration as config.yaml gives it."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from email.policy import default
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from budgetwatch.cli import main
from budgetwatch.config import parse_config
from foundation.settings import ConfigError
from store.alerts import AlertOutbox
from tests.alerts.builders import html_part, plain_part

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store_url(tmp_path) -> str:
    """The commands only parse and print (both databases are tested beside alerts/): SQLite only."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def cli(engine, store_url, facts, smtp, monkeypatch, tmp_path, capsys):
    """A config.yaml with alerts on (SMTP: the test server), two experts and the routing."""
    monkeypatch.delenv("BUDGETWATCH_CONFIG", raising=False)
    monkeypatch.setenv("BUDGETWATCH_DATABASE_URL", store_url)
    monkeypatch.chdir(tmp_path)
    config = {
        "alerts": {"enabled": True, "sender": "budgetwatch@mpo-kz.ir", "min_severity": "major",
                   "smtp": {"host": "127.0.0.1", "port": smtp.port, "security": "none", "password_env": None,
                            "timeout_seconds": 5},
                   "retry": {"attempts_per_run": 1, "first_wait_seconds": 0}},
        "experts": [{"name": "کارشناس امور اجتماعی", "email": "social@mpo-kz.ir", "groups": ["social"]},
                    {"name": "کارشناس تلفیق", "email": "talfiq@mpo-kz.ir", "group": "consolidation"}],
        "routing": {"default": "consolidation", "agencies": {"118": "social", "305": "infrastructure"}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    run.facts, run.smtp, run.engine = facts, smtp, engine
    return run


def test_send_delivers_then_has_nothing_more_to_send(cli):
    cli.facts.deviation("118", "major")
    cli.facts.deviation("305", "critical")
    code, out, err = cli("alerts", "send")
    assert code == 0, err
    assert "2 queued" in out and "2 sent" in out
    assert sorted(r.rcpt_tos[0] for r in cli.smtp.mailbox.received) == ["social@mpo-kz.ir", "talfiq@mpo-kz.ir"]
    code, out, _ = cli("alerts", "send")
    assert code == 0 and "0 queued" in out and "0 sent" in out
    assert len(cli.smtp.mailbox.received) == 2


def test_a_refused_message_exits_1_and_shows_in_list_failed(cli):
    cli.facts.deviation("118", "major")
    cli.smtp.mailbox.answers.append("554 5.7.1 rejected by policy")
    code, out, _ = cli("alerts", "send")
    assert code == 1 and "554 5.7.1 rejected by policy" in out
    code, out, _ = cli("alerts", "list", "--failed")
    assert code == 0 and "social@mpo-kz.ir" in out and "554 5.7.1 rejected by policy" in out
    assert re.search(r"14\d\d/\d\d/\d\d \d\d:\d\d", out) and "UTC" not in out  # Tehran, Jalali, as `runs` writes
    assert "0 pending" in out and "1 failed" in out
    code, out, _ = cli("alerts", "list", "--pending")
    assert code == 0 and "no messages pending" in out
    refused = cli.smtp.mailbox.data_commands
    code, out, _ = cli("alerts", "retry", "1")  # the relay's policy was fixed: the same message again
    assert code == 0 and "pending again" in out
    code, out, _ = cli("alerts", "send")
    assert code == 0 and "1 sent" in out and cli.smtp.mailbox.data_commands == refused + 1
    code, _, err = cli("alerts", "retry", "1")
    assert code == 2 and "message 1 was sent" in err
    # the refusal before it was sent is said as such (trial: a sent row showed it as its error)
    code, out, _ = cli("alerts", "list")
    flat = " ".join(out.split())
    assert code == 0 and "(before it was sent)" in flat and re.search(r"│ sent\s+│", out)


def change_config(tmp_path, **sections) -> None:
    """Rewrite the fixture's config.yaml: `alerts={"smtp": {...}}` merges into the alerts' keys."""
    path = tmp_path / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in sections.get("alerts", {}).items():
        config["alerts"][key] = {**config["alerts"][key], **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")


def test_smtp_unreachable_exits_3_says_why_in_words_and_costs_the_message_no_try(cli):
    cli.facts.deviation("118", "major")
    cli.smtp.stop()
    code, out, _ = cli("alerts", "send")
    refused = f"cannot connect to 127.0.0.1:{cli.smtp.port} (connection refused)"
    assert code == 3 and f"stopped: {refused}" in out and "Error" not in out
    code, out, _ = cli("alerts", "list", "--pending")
    assert "social@mpo-kz.ir" in out and "1 pending" in out
    with cli.engine.connect() as conn:
        (row,) = conn.execute(sa.select(AlertOutbox.__table__)).all()
    assert (row.attempts, row.last_error) == (0, refused)  # the server's outage is not the message's try
    cli.smtp.start()
    code, out, _ = cli("alerts", "send")  # at once: no wait was added to the message
    assert code == 0 and "1 sent" in out and len(cli.smtp.mailbox.received) == 1


def test_a_send_counts_each_message_once_and_gives_up_only_in_a_second_send(cli):
    # a kill/fault trial: after an outage past give_up_after, one send against a greylisting server
    # said "0 sent, 5 deferred, 3 failed" of a 5-message outbox and exited 1: it came back to the
    # messages it had deferred (their wait over), gave them up, and counted them twice
    from datetime import UTC, datetime, timedelta

    cli.facts.deviation("118", "major")
    cli.facts.deviation("305", "critical")
    cli.smtp.stop()
    code, out, _ = cli("alerts", "send")  # queued; the port closed: no try counted
    assert code == 3 and "2 queued" in out
    outbox = AlertOutbox.__table__
    three_days_ago = datetime.now(UTC) - timedelta(days=3)
    with cli.engine.begin() as conn:
        conn.execute(sa.update(outbox).values(created_at=three_days_ago, next_attempt_at=three_days_ago))
    cli.smtp.start()
    greylisted = "451 4.7.1 greylisted, try again later"
    cli.smtp.mailbox.answers.extend([greylisted] * 4)
    code, out, _ = cli("alerts", "send")  # attempts_per_run 1, no wait between sends (the fixture's)
    assert code == 3 and "0 sent, 2 deferred, 0 failed" in out and "failed " not in out
    assert out.count("deferred <") == 2 and cli.smtp.mailbox.data_commands == 2  # one try each
    code, out, _ = cli("alerts", "send")  # a second send of their own, refused again: given up
    assert code == 1 and "0 sent, 0 deferred, 2 failed" in out and out.count("gave up after 2 tries") == 2
    assert cli.smtp.mailbox.data_commands == 4 and cli.smtp.mailbox.received == []


def test_a_message_held_by_a_dispatcher_says_by_whom_and_until_when(cli, tmp_path):
    # trial: a dispatcher killed mid-send left its message "being sent by a dispatcher now" for
    # minutes, with no word of who held it or when the hold would lapse
    from datetime import UTC, datetime

    from store import alerts as store_alerts

    cli.facts.deviation("118", "major")
    cli.smtp.stop()
    cli("alerts", "send")  # queued, left pending by the outage
    now = datetime.now(UTC)
    with cli.engine.begin() as conn:
        held = store_alerts.claim_next(conn, "gone-host:4242", now, now)
    assert held is not None
    code, out, _ = cli("alerts", "list")
    flat = " ".join(out.split())
    assert code == 0 and "(held by gone-host:4242 until" in flat, flat  # the table may wrap the day below
    code, _, err = cli("alerts", "retry", str(held.id))
    assert code == 2 and "held by a dispatcher" in err and "the hold lapses" in err
    # a trial: preview advised `alerts retry`, which refuses a held message, and a next try already past
    code, out, _ = cli("alerts", "preview", "--expert", "social@mpo-kz.ir")
    flat = " ".join(out.split())
    assert code == 0 and f"message {held.id} " in flat and "waits in the outbox, held by gone-host:4242 until" in flat
    assert "alerts retry" not in flat
    code, out, _ = cli("alerts", "send", "--dry-run", str(tmp_path / "dry"))  # nor written as this send's
    flat = " ".join(out.split())
    assert code == 0 and "1 message held by a dispatcher, not written" in flat, flat
    assert not list((tmp_path / "dry").glob("*.eml"))
    cli.smtp.start()
    code, out, _ = cli("alerts", "send")  # a send leaves it to its holder, and says so
    assert code == 0 and "0 sent" in out and "1 message held by a dispatcher, not sent by this one" in out


@pytest.mark.parametrize("smtp_keys, said", [
    ({"username": "budgetwatch", "password_env": "BW_TEST_UNSET_PW"},
     "alerts.smtp.password_env: the variable BW_TEST_UNSET_PW is not set"),
    ({"username": "budgetwatch", "password_file": "no-such-password-file"},
     "alerts.smtp.password_file: cannot read no-such-password-file (No such file or directory)"),
    ({"security": "starttls", "ca_file": "not-a-cert.pem"},
     "alerts.smtp.ca_file: not-a-cert.pem holds no certificate"),
], ids=["password_env unset", "password_file unreadable", "ca_file no certificate"])
def test_an_smtp_setting_that_cannot_work_is_refused_in_one_line_before_any_work(cli, tmp_path, monkeypatch,
                                                                               smtp_keys, said):
    monkeypatch.delenv("BW_TEST_UNSET_PW", raising=False)
    (tmp_path / "not-a-cert.pem").write_text("not a certificate", encoding="utf-8")
    cli.facts.deviation("118", "major")
    change_config(tmp_path, alerts={"smtp": smtp_keys})
    code, out, err = cli("alerts", "send")
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert said in line
    code, out, _ = cli("alerts", "list")
    assert code == 0 and "no messages" in out  # nothing queued
    assert cli.smtp.mailbox.data_commands == 0  # nothing tried
    code, _, err = cli("alerts", "send", "--dry-run", str(tmp_path / "out"))  # sends nothing: no login
    assert code == 0, err


def test_serve_refuses_an_unreadable_smtp_password_before_scheduling_anything(cli, tmp_path, store_url):
    # found by a new user: `alerts send` queued digests, then tried them against a login that could not
    # succeed; `serve` would do the same on every schedule.alerts
    cli.facts.deviation("118", "major")
    change_config(tmp_path, alerts={"smtp": {"username": "budgetwatch", "password_env": "BW_TEST_UNSET_PW"}})
    config = yaml.safe_load((tmp_path / "config.yaml").read_text(encoding="utf-8"))
    config["sources"] = {"nezarat4": {"enabled": False}, "saba": {"enabled": False}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "BW_TEST_UNSET_PW"}
    done = subprocess.run([sys.executable, "-m", "budgetwatch.cli", "--config", str(tmp_path / "config.yaml"),
                           "serve"], capture_output=True, text=True, timeout=30, cwd=ROOT,
                          env={**env, "BUDGETWATCH_DATABASE_URL": store_url})
    assert done.returncode == 2, done.stderr
    # besides the config's WARNING that no expert covers infrastructure (305 is routed there)
    (line,) = [said for said in done.stderr.strip().splitlines() if " WARNING " not in said]
    assert "alerts.smtp.password_env: the variable BW_TEST_UNSET_PW is not set" in line
    code, out, _ = cli("alerts", "list")
    assert "no messages" in out  # nothing queued


def defer_one_digest(cli, tmp_path) -> None:
    """Social's digest (two majors of 118) refused once with a 4xx: it waits ten minutes for its next try."""
    cli.facts.deviation("118", "major")
    cli.facts.deviation("118", "major")
    change_config(tmp_path, alerts={"retry": {"attempts_per_run": 1, "first_wait_seconds": 600}})
    cli.smtp.mailbox.answers.append("451 4.3.0 try later")
    code, out, _ = cli("alerts", "send")
    assert code == 3 and "deferred" in out and "451 4.3.0 try later" in out


def test_retry_makes_a_waiting_message_due_now(cli, tmp_path):
    defer_one_digest(cli, tmp_path)
    code, out, _ = cli("alerts", "send")
    assert "0 sent" in out and cli.smtp.mailbox.received == []  # not due for ten minutes
    code, out, err = cli("alerts", "retry", "1")
    assert code == 0, err
    assert "message 1 is due now" in out
    code, out, _ = cli("alerts", "send")
    assert code == 0 and "1 sent" in out and len(cli.smtp.mailbox.received) == 1
    code, _, err = cli("alerts", "retry", "99")
    assert code == 2 and "no message 99 in the outbox" in err


def test_preview_says_a_digest_already_waits_in_the_outbox(cli, tmp_path):
    defer_one_digest(cli, tmp_path)
    code, out, _ = cli("alerts", "preview", "--expert", "social@mpo-kz.ir")
    said = " ".join(out.split())
    assert code == 0 and "nothing new for social@mpo-kz.ir" in said
    assert "message 1 (2 deviations, 0 resolved) waits in the outbox" in said
    assert "`budgetwatch alerts retry 1`" in said


def test_dry_run_writes_eml_files_and_changes_nothing(cli, tmp_path):
    cli.facts.deviation("118", "major")
    code, out, err = cli("alerts", "send", "--dry-run", str(tmp_path / "out"))
    assert code == 0, err
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert [f.name for f in files] == ["01-social.eml"]
    message = email.message_from_bytes(files[0].read_bytes(), policy=default)
    assert message["To"].addresses[0].addr_spec == "social@mpo-kz.ir"
    assert "عمده" in plain_part(message) and 'dir="rtl"' in html_part(message)
    assert cli.smtp.mailbox.received == []
    code, out, _ = cli("alerts", "list")
    assert "no messages" in out  # nothing queued by a dry run
    code, _, _ = cli("alerts", "send")
    assert code == 0 and len(cli.smtp.mailbox.received) == 1


def test_dry_run_makes_no_folder_tree_and_mixes_no_earlier_run(cli, tmp_path):
    # an operator's trial: `--dry-run /nonexist/dir` made the tree at /, and a second dry run into the
    # same folder put its messages beside the first's; "1 messages … 1 digests" too
    cli.facts.deviation("118", "major")
    code, _, err = cli("alerts", "send", "--dry-run", str(tmp_path / "no" / "such" / "dir"))
    assert code == 2 and f"folder {tmp_path / 'no' / 'such'} does not exist" in " ".join(err.split())
    assert not (tmp_path / "no").exists()
    code, out, err = cli("alerts", "send", "--dry-run", str(tmp_path / "out"))
    assert code == 0, err
    assert "dry run: 1 message written to" in " ".join(out.split()) and "1 digest due" in " ".join(out.split())
    code, _, err = cli("alerts", "send", "--dry-run", str(tmp_path / "out"))
    assert code == 2 and "holds .eml files already" in " ".join(err.split())
    assert [f.name for f in (tmp_path / "out").iterdir()] == ["01-social.eml"]


def test_an_empty_smtp_host_with_a_login_is_said_as_an_empty_host(cli, tmp_path):
    # an operator's trial: "… would send the password in clear to " named nothing
    change_config(tmp_path, alerts={"smtp": {"host": "", "security": "none", "username": "bw"}})
    code, _, err = cli("alerts", "send")
    assert code == 2 and "alerts.smtp.host: empty: name the mail server" in err and "in clear" not in err


def test_preview_shows_the_next_digest_without_queuing(cli, tmp_path):
    cli.facts.deviation("305", "critical", title="احداث پل شهید بهشتی")
    code, out, err = cli("alerts", "preview", "--expert", "TALFIQ@mpo-kz.ir", "--html", str(tmp_path / "p.html"))
    assert code == 0, err
    assert "Subject: هشدار انحراف‌های بودجه: ۱ بحرانی" in out and "احداث پل شهید بهشتی" in out
    assert 'dir="rtl"' in (tmp_path / "p.html").read_text(encoding="utf-8")
    code, out, _ = cli("alerts", "preview", "--expert", "social@mpo-kz.ir")
    assert code == 0 and "nothing new for social@mpo-kz.ir" in out
    code, _, err = cli("alerts", "preview", "--expert", "nobody@mpo-kz.ir")
    assert code == 2 and "no such expert" in err
    # an operator's trial: the line named --output, which preview has not
    code, _, err = cli("alerts", "preview", "--expert", "TALFIQ@mpo-kz.ir", "--html", str(tmp_path / "no" / "p.html"))
    assert code == 2 and f"--html {tmp_path / 'no' / 'p.html'}: folder" in " ".join(err.split())
    code, out, _ = cli("alerts", "list")
    assert "no messages" in out


def test_send_with_alerts_off_is_a_usage_error(cli, tmp_path):
    text = (tmp_path / "config.yaml").read_text(encoding="utf-8").replace("enabled: true", "enabled: false")
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    code, _, err = cli("alerts", "send")
    assert code == 2 and "alerts are off" in err


def test_demo_digests_are_eml_files_for_the_sample_experts_with_news(engine, facts, tmp_path):
    import alerts
    from alerts.settings import AlertsConfig
    from reconcile.settings import RoutingConfig

    facts.deviation("118", "major")  # social
    facts.deviation("220", "critical")  # production; critical: consolidation too
    routing = RoutingConfig(agencies={"118": "social", "220": "production", "305": "infrastructure"})
    paths = alerts.write_demo_digests(engine, AlertsConfig(), list(alerts.DEMO_EXPERTS), routing, tmp_path / "mail")
    assert [p.name for p in paths] == ["01-social.expert.eml", "02-infra.expert.eml", "03-talfiq.expert.eml"]
    for path in paths:
        message = email.message_from_bytes(path.read_bytes(), policy=default)
        assert message["Subject"].startswith("هشدار انحراف‌های بودجه") and 'dir="rtl"' in html_part(message)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alert_told").scalar() == 0  # nothing told


def problem(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    (line,) = caught.value.problems
    return line


EXPERT = {"name": "کارشناس", "email": "a@mpo-kz.ir", "groups": ["social"]}


def test_an_unknown_group_names_the_entry_and_the_position():
    experts = [EXPERT, {**EXPERT, "email": "b@mpo-kz.ir"}, {**EXPERT, "email": "c@mpo-kz.ir",
                                                             "groups": ["social", "sociall"]}]
    assert problem({"experts": experts}).startswith("experts.2.groups.1 = 'sociall': ")


def test_a_bad_address_names_the_entry():
    assert problem({"experts": [EXPERT, {**EXPERT, "email": "not-an-address"}]}).startswith(
        "experts.1.email = 'not-an-address': ")


def test_an_expert_needs_at_least_one_group_and_the_old_single_group_still_reads():
    assert problem({"experts": [{**EXPERT, "groups": []}]}).startswith("experts.0.groups = []")
    old = {"name": "کارشناس", "email": "a@mpo-kz.ir", "group": "production"}
    assert parse_config({"experts": [old]}).experts[0].groups == ["production"]


def test_give_up_after_reads_days_hours_minutes_and_refuses_nonsense():
    assert parse_config({"alerts": {"give_up_after": "36h"}}).alerts.give_up_after.total_seconds() == 36 * 3600
    assert parse_config({}).alerts.give_up_after.days == 2
    assert problem({"alerts": {"give_up_after": "soon"}}).startswith("alerts.give_up_after = 'soon'")
    assert problem({"alerts": {"give_up_after": "0m"}}).startswith("alerts.give_up_after = '0m'")


def test_a_login_without_tls_is_refused_except_on_this_host():
    line = problem({"alerts": {"smtp": {"host": "mail.mpo-kz.ir", "security": "none", "username": "bw"}}})
    assert line.startswith("alerts.smtp = ") and "needs security starttls or ssl" in line
    assert parse_config({"alerts": {"smtp": {"host": "127.0.0.1", "security": "none", "username": "bw"}}})


def test_a_missing_password_variable_is_named_without_a_value(monkeypatch):
    from alerts.settings import SmtpConfig

    monkeypatch.delenv("BW_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as caught:
        SmtpConfig(username="bw", password_env="BW_NOT_SET").password()
    assert caught.value.problems == [("alerts.smtp.password_env: the variable BW_NOT_SET is not set "
                                      "(alerts.smtp.username 'bw' logs in with it)")]


def test_smtp_problems_found_without_connecting_name_their_key(tmp_path, monkeypatch):
    from alerts.settings import SmtpConfig

    empty, latin1, not_a_cert = tmp_path / "empty", tmp_path / "latin1", tmp_path / "not-a-cert.pem"
    empty.write_text("\n", encoding="utf-8")
    latin1.write_bytes("pässword".encode("latin-1"))
    not_a_cert.write_text("not a certificate", encoding="utf-8")
    monkeypatch.delenv("BW_NOT_SET", raising=False)
    login = {"username": "bw", "password_env": None}
    assert SmtpConfig().setup_problems() == []  # no login: no password to read
    assert SmtpConfig(username="bw", password_env="BW_NOT_SET").setup_problems()[0].startswith(
        "alerts.smtp.password_env: the variable BW_NOT_SET is not set")
    assert SmtpConfig(**login, password_file=empty).setup_problems() == [
        f"alerts.smtp.password_file: {empty} is empty"]
    assert SmtpConfig(**login, password_file=latin1).setup_problems() == [
        f"alerts.smtp.password_file: {latin1} is not UTF-8 text"]
    assert SmtpConfig(**login).setup_problems() == [
        "alerts.smtp.username 'bw' logs in: set alerts.smtp.password_env or alerts.smtp.password_file"]
    assert SmtpConfig(ca_file=not_a_cert).setup_problems() == [
        f"alerts.smtp.ca_file: {not_a_cert} holds no certificate (PEM)"]
    assert SmtpConfig(ca_file=tmp_path).setup_problems() == [
        f"alerts.smtp.ca_file: cannot read {tmp_path} (Is a directory)"]
    assert SmtpConfig(host=" ").setup_problems() == ["alerts.smtp.host: empty: name the mail server"]
