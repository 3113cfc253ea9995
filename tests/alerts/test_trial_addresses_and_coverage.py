"""A trial's findings about whom the digests reach.

An address or a name that check-config accepted broke `alerts send` for every expert (a Persian
address, a line break in a name: the mail headers refused them mid-send, and the experts after the
bad one were not even queued); a group no expert covers had its deviations e-mailed to no one without
a word, as did a mistyped code of routing.agencies; and `Content-Language: fa` was never sent.
"""

from __future__ import annotations

import email
import subprocess
import sys
from email.header import decode_header, make_header
from email.policy import default
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

import alerts
from alerts.settings import Expert
from budgetwatch.config import parse_config
from store.alerts import AlertOutbox, AlertTold
from tests.alerts.builders import INFRA, ROUTING, SOCIAL, TALFIQ, T0, alerts_config, plain_part
from tests.cli import command_line, one_line

ROOT = Path(__file__).resolve().parents[2]
outbox = AlertOutbox.__table__


@pytest.fixture
def store_url(tmp_path) -> str:
    """What is refused, warned and sent does not depend on the database: SQLite only."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def run(tmp_path, capsys, monkeypatch):
    """budgetwatch in this process on a config.yaml of the test's (tests/cli.py)."""
    return command_line(tmp_path, capsys, monkeypatch)


def config_text(store_url: str, port: int, *, experts: list[dict], routing: dict | None = None,
                enabled: bool = True) -> str:
    """alerts on (SMTP: the test server on `port`), these experts, routing as ROUTING's by default."""
    return yaml.safe_dump({
        "database": {"url": store_url},
        "alerts": {"enabled": enabled, "sender": "budgetwatch@mpo-kz.ir", "min_severity": "major",
                   "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "password_env": None,
                            "timeout_seconds": 5},
                   "retry": {"attempts_per_run": 1, "first_wait_seconds": 0}},
        "experts": experts,
        "routing": routing or {"default": ROUTING.default, "agencies": dict(ROUTING.agencies)},
    }, allow_unicode=True)


def expert(name: str, email_address: str, *groups: str) -> dict:
    return {"name": name, "email": email_address, "groups": list(groups)}


EVERY_GROUP = [expert("کارشناس امور اجتماعی", "social@mpo-kz.ir", "social"),
               expert("کارشناس زیربنایی و تولیدی", "infra@mpo-kz.ir", "infrastructure", "production"),
               expert("کارشناس تلفیق", "talfiq@mpo-kz.ir", "consolidation")]


def warnings(caplog) -> list[str]:
    """The WARNING lines a command logged (on stderr outside pytest, which captures the log)."""
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


# --- 1. what the mail headers cannot carry is refused at load ------------------------------------

REFUSED = {
    "a Persian expert address": (
        "experts:\n"
        "  - {name: a, email: a@mpo-kz.ir, groups: [social]}\n"
        "  - {name: b, email: b@mpo-kz.ir, groups: [infrastructure]}\n"
        "  - {name: c, email: کارشناس@mpo-kz.ir, groups: [consolidation]}\n",
        "experts.2.email = 'کارشناس@mpo-kz.ir': must be an ASCII address", "SMTPUTF8"),
    "a Persian sender": (
        "alerts: {enabled: true, sender: پایش@mpo-kz.ir}\n",
        "alerts.sender = 'پایش@mpo-kz.ir': must be an ASCII address", "SMTPUTF8"),
    "a Persian domain of the sender": (
        "alerts: {enabled: true, sender: budgetwatch@سازمان.ir}\n",
        "alerts.sender = 'budgetwatch@سازمان.ir': must be an ASCII address", "xn--"),
    "a line break in an expert's name": (
        'experts:\n  - {name: "کارشناس\\r\\nBcc: x@evil.example", email: a@mpo-kz.ir, groups: [social]}\n',
        "experts.0.name = 'کارشناس\\r\\nBcc: x@evil.example': must be a name on one line", "line breaks"),
    "a line break in the sender's display name": (
        'alerts: {enabled: true, sender: "Budget\\nWatch <budgetwatch@mpo-kz.ir>"}\n',
        "alerts.sender = 'Budget\\nWatch <budgetwatch@mpo-kz.ir>': must be one address", "line break"),
}


@pytest.mark.parametrize("config, line, expected", REFUSED.values(), ids=REFUSED)
def test_an_address_or_name_the_headers_cannot_carry_is_refused_in_one_line_naming_its_key(run, config, line,
                                                                                          expected):
    code, out, err = run("check-config", config="data_dir: data\n" + config)
    said = one_line(err)
    assert code == 2 and out == "" and said.startswith("configuration error in ")
    assert line in said and expected in said


def test_alerts_send_with_a_persian_address_refuses_before_queuing_anything(run, engine, facts, store_url, smtp):
    facts.deviation("118", "major")
    config = config_text(store_url, smtp.port, experts=[*EVERY_GROUP, expert("کارشناس", "کارشناس@mpo-kz.ir",
                                                                               "social")])
    code, out, err = run("alerts", "send", config=config)
    assert code == 2 and out == "" and "experts.3.email = 'کارشناس@mpo-kz.ir'" in one_line(err)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(outbox)).scalar() == 0
    assert smtp.mailbox.data_commands == 0


def test_an_ascii_written_international_domain_is_kept_as_written():
    # email-validator gives xn--mgbh0fb back as مثال: that form would fail in the headers, this one goes
    config = parse_config({"experts": [expert("a", "A@xn--mgbh0fb.ir", "social")],
                           "alerts": {"sender": "bw@xn--mgbh0fb.ir"}})
    assert config.experts[0].address == "a@xn--mgbh0fb.ir" and config.alerts.sender == "bw@xn--mgbh0fb.ir"
    # a Persian display name before an ASCII sender is read as before: the address is kept
    assert parse_config({"alerts": {"sender": "پایش بودجه <bw@mpo-kz.ir>"}}).alerts.sender == "bw@mpo-kz.ir"


# --- 1. a Persian display name still travels, RFC 2047-encoded ------------------------------------

def rfc2047(content: bytes, header: str) -> str:
    """A header of the message as it arrived, decoded as RFC 2047 says a mail client does: the space
    between two encoded words is dropped (Python's address parser keeps one: 'تولید ی')."""
    return str(make_header(decode_header(email.message_from_bytes(content)[header])))


def test_a_persian_display_name_arrives_decoded_and_names_no_other_address(engine, facts, smtp):
    # a name with a zero-width non-joiner, long enough to take two encoded words, holding an address:
    # headerregistry encodes it whole (formataddr's encoded name was parsed again, and the address in
    # it became the To: header's address)
    name = "کارشناس امور اجتماعی‌ها <talfiq@mpo-kz.ir>"
    (social,) = parse_config({"experts": [expert(name, "social@mpo-kz.ir", "social")]}).experts
    facts.deviation("118", "major")
    cfg = alerts_config(smtp.port)
    assert alerts.queue_digests(engine, cfg, [social], ROUTING, now=T0).messages == 1
    assert alerts.dispatch(engine, cfg, now=T0).sent == 1
    (mail,) = smtp.mailbox.received
    assert mail.rcpt_tos == ["social@mpo-kz.ir"] and mail.content.isascii()
    assert [a.addr_spec for a in mail.message["To"].addresses] == ["social@mpo-kz.ir"]
    assert rfc2047(mail.content, "To") == f"{name} <social@mpo-kz.ir>"
    assert rfc2047(mail.content, "From") == "پایش بودجه <budgetwatch@mpo-kz.ir>"
    assert b"=?utf-8?" in mail.content.split(b"\r\n\r\n")[0]  # encoded, as RFC 2047 writes it


def test_a_display_name_written_before_the_sender_is_the_from_name_sent(engine, facts, smtp):
    # `sender: Name <address>` kept the address and dropped the name without a word (a trial)
    cfg = alerts_config(smtp.port, sender="پایش بودجه استان خوزستان <budgetwatch@mpo-kz.ir>")
    assert cfg.sender == "budgetwatch@mpo-kz.ir" and cfg.sender_name == "پایش بودجه استان خوزستان"
    facts.deviation("118", "major")
    alerts.queue_digests(engine, cfg, [SOCIAL], ROUTING, now=T0)
    assert alerts.dispatch(engine, cfg, now=T0).sent == 1
    (mail,) = smtp.mailbox.received
    assert mail.mail_from == "budgetwatch@mpo-kz.ir"
    assert rfc2047(mail.content, "From") == "پایش بودجه استان خوزستان <budgetwatch@mpo-kz.ir>"
    # a bare address keeps the default name
    assert parse_config({"alerts": {"sender": "bw@mpo-kz.ir"}}).alerts.sender_name == "پایش بودجه"


# --- 1. one message that cannot be built or sent never stops the others ---------------------------

def told(engine, recipient: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(AlertTold.__table__)
                            .where(AlertTold.__table__.c.recipient == recipient)).scalar()


def test_a_digest_that_cannot_be_built_is_said_and_the_others_are_queued_and_sent(engine, facts, smtp):
    # what the configuration now refuses, as an expert made without it (model_construct: no checks)
    broken = Expert.model_construct(name="کارشناس\r\nBcc: x@evil.example", email="broken@mpo-kz.ir",
                                    groups=["infrastructure"])
    facts.deviation("305", "critical")
    facts.deviation("118", "major")
    cfg = alerts_config(smtp.port)
    queued = alerts.queue_digests(engine, cfg, [broken, SOCIAL, INFRA, TALFIQ], ROUTING, now=T0)
    assert queued.messages == 3 and queued.failed == 1
    ((recipient, why),) = queued.not_built
    assert recipient == "broken@mpo-kz.ir" and "CR or LF" in why
    assert told(engine, "broken@mpo-kz.ir") == 0  # its deviations stay news for it
    assert alerts.dispatch(engine, cfg, now=T0).sent == 3
    assert sorted(r.rcpt_tos[0] for r in smtp.mailbox.received) == ["infra@mpo-kz.ir", "social@mpo-kz.ir",
                                                                   "talfiq@mpo-kz.ir"]


def test_a_stored_message_that_cannot_be_sent_is_failed_with_why_and_the_others_go(engine, facts, smtp):
    facts.deviation("305", "critical")
    facts.deviation("118", "major")
    cfg = alerts_config(smtp.port)
    assert alerts.queue_digests(engine, cfg, [SOCIAL, INFRA, TALFIQ], ROUTING, now=T0).messages == 3
    with engine.begin() as conn:  # the first of the outbox, as an earlier release could have stored it
        first = conn.execute(sa.select(sa.func.min(outbox.c.id))).scalar()
        conn.execute(sa.update(outbox).where(outbox.c.id == first).values(recipient="کارشناس@mpo-kz.ir"))
    report = alerts.dispatch(engine, cfg, now=T0)
    assert (report.sent, report.failed, report.stopped) == (2, 1, None)
    with engine.connect() as conn:
        row = conn.execute(sa.select(outbox).where(outbox.c.id == first)).one()
    assert row.status == "failed" and row.claimed_by is None
    assert "'کارشناس@mpo-kz.ir' is not one ASCII address" in row.last_error and "SMTPUTF8" in row.last_error
    assert len(smtp.mailbox.received) == 2


def test_alerts_send_says_a_digest_it_could_not_build_exits_1_and_sends_the_others(run, engine, facts, store_url,
                                                                                  smtp, monkeypatch):
    import alerts.outbox

    real = alerts.outbox.render_message

    def render(digest, sender, now, *name):
        if digest.expert.address == "social@mpo-kz.ir":
            raise UnicodeEncodeError("ascii", "ی", 0, 1, "ordinal not in range(128)")
        return real(digest, sender, now, *name)

    monkeypatch.setattr(alerts.outbox, "render_message", render)
    facts.deviation("118", "major")
    facts.deviation("305", "critical")
    code, out, err = run("alerts", "send", config=config_text(store_url, smtp.port, experts=EVERY_GROUP))
    flat = " ".join(out.split())
    assert code == 1 and "Traceback" not in err and "error:" not in err
    assert "not queued for social@mpo-kz.ir: the message could not be built (UnicodeEncodeError:" in flat
    assert "2 queued (0 experts without news, 1 not built); 2 sent, 0 deferred, 0 failed" in flat
    assert sorted(r.rcpt_tos[0] for r in smtp.mailbox.received) == ["infra@mpo-kz.ir", "talfiq@mpo-kz.ir"]


# --- 2. a group no expert covers, a code no agency has -------------------------------------------

UNCOVERED = ("routing: group {!r} has no expert in experts: its agencies' deviations are e-mailed to no one "
             "(they stay in the console and reports)")


def test_check_config_warns_of_each_group_no_expert_covers_and_passes(run, store_url, caplog):
    only_social = [expert("کارشناس امور اجتماعی", "social@mpo-kz.ir", "social")]
    code, out, err = run("check-config", config=config_text(store_url, 1, experts=only_social))
    assert code == 0 and "configuration OK" in out, err
    # ROUTING gives agencies to infrastructure and production, and the rest to consolidation
    assert warnings(caplog) == [UNCOVERED.format(g) for g in ("infrastructure", "production", "consolidation")]
    caplog.clear()
    assert run("check-config", config=config_text(store_url, 1, experts=EVERY_GROUP))[0] == 0
    assert warnings(caplog) == []
    caplog.clear()
    assert run("check-config", config=config_text(store_url, 1, experts=only_social, enabled=False))[0] == 0
    assert warnings(caplog) == []  # alerts off: no one is e-mailed anyway


def test_the_uncovered_group_is_one_warning_line_on_stderr(tmp_path, store_url):
    config = tmp_path / "config.yaml"
    config.write_text(config_text(store_url, 1, experts=EVERY_GROUP[:2]), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "budgetwatch.cli", "--config", str(config), "check-config"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert " WARNING " in line and line.endswith(UNCOVERED.format("consolidation"))


def test_alerts_send_and_preview_count_the_open_deviations_that_reached_no_one(run, facts, store_url, smtp, caplog,
                                                                                tmp_path):
    facts.deviation("305", "major")  # infrastructure: no expert
    facts.deviation("305", "critical")  # infrastructure, critical: reaches the consolidation expert
    facts.deviation("220", "major")  # production: no expert
    facts.deviation("305", "minor")  # below min_severity: e-mailed to no one whatever the experts
    facts.deviation("305", "major", status="resolved")  # not open
    facts.deviation("118", "major")  # social: sent
    config = config_text(store_url, smtp.port, experts=[EVERY_GROUP[0], EVERY_GROUP[2]])
    code, out, err = run("alerts", "send", config=config)
    assert code == 0, err
    said = ("2 open deviations reached no one: no expert in experts covers groups 'infrastructure', "
            "'production' (they stay in the console and reports)")
    assert said in " ".join(out.split())
    assert warnings(caplog) == [UNCOVERED.format("infrastructure"), UNCOVERED.format("production")]
    code, out, _ = run("alerts", "preview", "--expert", "social@mpo-kz.ir", config=config)
    assert code == 0 and said in " ".join(out.split())
    # a dry run, which checks a setup before it goes live, says it too (a trial: it said nothing)
    code, out, _ = run("alerts", "send", "--dry-run", str(tmp_path / "dry"), config=config)
    assert code == 0 and said in " ".join(out.split())
    code, out, _ = run("alerts", "send", config=config_text(store_url, smtp.port, experts=EVERY_GROUP))
    assert code == 0 and "reached no one" not in out


@pytest.mark.parametrize("dry_run", [False, True])
def test_alerts_send_warns_once_of_a_routed_code_no_agency_has(run, facts, store_url, smtp, caplog, tmp_path,
                                                               dry_run):
    facts.deviation("118", "major")
    routing = {"default": "consolidation", "agencies": {"0305": "infrastructure", "118": "social",
                                                        "2200": "production"}}
    code, _, err = run("alerts", "send", *(("--dry-run", str(tmp_path / "dry")) if dry_run else ()),
                       config=config_text(store_url, smtp.port, experts=EVERY_GROUP, routing=routing))
    assert code == 0, err
    mistyped = [line for line in warnings(caplog) if line.startswith("routing.agencies")]
    assert mistyped == ["routing.agencies: no agency in the store has the codes 0305, 2200 (mistyped? codes are "
                        "as the portals write them, e.g. 305, 032): it routes nothing, and the agency meant "
                        "stays in routing.default's group"]


# --- 3. Content-Language ------------------------------------------------------------------------

def test_content_language_fa_is_in_the_message_as_sent(engine, facts, smtp):
    facts.deviation("118", "major")
    cfg = alerts_config(smtp.port)
    alerts.queue_digests(engine, cfg, [SOCIAL], ROUTING, now=T0)
    assert alerts.dispatch(engine, cfg, now=T0).sent == 1
    (mail,) = smtp.mailbox.received
    headers = mail.content.split(b"\r\n\r\n")[0].split(b"\r\n")  # the top-level headers, as they arrived
    assert b"Content-Language: fa" in headers
    message = email.message_from_bytes(mail.content, policy=default)
    assert message["Content-Language"] == "fa" and "عمده" in plain_part(message)


def test_no_line_of_deviations_that_reached_no_one_when_none_did(run, facts, store_url, smtp, caplog):
    # an alerts trial: «0 open deviations reached no one: …» beside the WARNING naming the group
    facts.deviation("118", "major")  # social, covered; no open deviation of the uncovered groups
    code, out, err = run("alerts", "send", config=config_text(store_url, smtp.port, experts=[EVERY_GROUP[0]]))
    assert code == 0, err
    assert "reached no one" not in out
    assert UNCOVERED.format("infrastructure") in warnings(caplog)  # the group without an expert is still said


def test_check_config_shows_the_senders_name_as_the_from_header_carries_it(run):
    # an alerts trial: `sender: Name <address>` was shown as the address alone
    code, out, err = run("check-config", config='data_dir: data\nalerts: {sender: "پایش بودجه استان خوزستان '
                                                 '<budgetwatch@mpo-kz.ir>"}\n')
    assert code == 0, err
    assert "from پایش بودجه استان خوزستان <budgetwatch@mpo-kz.ir>;" in " ".join(out.split())
