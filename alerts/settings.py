"""The alerts' section of config.yaml (``alerts``) and the experts who receive them (``experts``).

Defaults live here; config.yaml documents every key. The SMTP password never lives in the file:
``smtp.password_env`` names an environment variable, ``smtp.password_file`` a file outside the
repository, and :meth:`SmtpConfig.password` reads it only when a dispatcher logs in (and when
:meth:`SmtpConfig.setup_problems` checks, before any work, that it can be read). Durations
(``give_up_after``) are written as ``2d``, ``36h``, ``90m`` or a number of seconds.

What goes in a message's From and To headers is checked here, at load, so that no address or name
the configuration accepts can stop a send: an address is ASCII (one with other letters needs
SMTPUTF8, which the relay need not offer, and Python's headers refused it mid-send: a trial) and a
name holds no line break. A Persian display name is fine: it travels RFC 2047-encoded.
:func:`uncovered_groups` tells which groups' deviations no expert receives.
"""

from __future__ import annotations

import re
import ssl
import unicodedata
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (AfterValidator, BeforeValidator, EmailStr, Field, PrivateAttr, SecretStr, field_validator,
                      model_validator)

from foundation.settings import ConfigError, Strict, WithPassword, read_password
from foundation.vocabulary import GROUPS, Group, Severity

if TYPE_CHECKING:
    from reconcile.settings import RoutingConfig

# 2d, 36h, 90m, 45s, or the words (2 days, 36 hours, 1 hour: pydantic took "2 days" and refused "36 hours")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:(d|h|m|s)|(day|hour|minute|second)s?)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1, None: 1}
# what a duration accepts, said instead of pydantic's "invalid character in hour" (budgetwatch/config.py)
DURATION_EXPECTED = "must be a duration such as 2d, 36h or 90m, or a number of seconds"
LOOPBACK = ("localhost", "127.0.0.1", "::1")


def parse_duration(value: Any) -> Any:
    """'2d' / '36h' / '90m' / '45s' / 3600 -> timedelta; anything else is left for pydantic to reject,
    but for yes/no (pydantic would read `true` as one second)."""
    if isinstance(value, bool):
        raise ValueError(DURATION_EXPECTED)
    seconds: float | None = None
    if isinstance(value, (int, float)):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        unit = (match.group(2) or match.group(3) or "")[:1].lower() or None
        seconds = float(match.group(1)) * _UNIT_SECONDS[unit]
    if seconds is None:
        return value
    try:  # .inf, .nan, 1e20: no timedelta holds them
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValueError(DURATION_EXPECTED) from None


NOT_ASCII_ADDRESS = ("must be an ASCII address: letters beyond ASCII need SMTPUTF8, which the mail relay need not "
                     "support (write an internationalised domain in its xn-- form)")
LINE_BREAK_IN_ADDRESS = "must be one address, without a line break"
LINE_BREAK_IN_NAME = "must be a name on one line, without line breaks or control characters (it goes in the To: header)"
# 'Name <address>', as pydantic reads an address with a display name (it keeps the address)
_NAMED = re.compile(r"\s*(.*?)\s*<(.+?)>\s*", re.DOTALL)


def _written_in_ascii(value: Any) -> Any:
    """An address as written: ASCII and on one line (email-validator accepts کارشناس@mpo-kz.ir, which
    no header without SMTPUTF8 carries: `alerts send` failed at that expert, and every digest after it
    waited — a trial). A display name before it (`Name <address>`) may be Persian."""
    if isinstance(value, str):
        if "\r" in value or "\n" in value:
            raise ValueError(LINE_BREAK_IN_ADDRESS)
        named = _NAMED.fullmatch(value)
        if not (named.group(2) if named else value).isascii():
            raise ValueError(NOT_ASCII_ADDRESS)
    return value


def _as_sent(value: str) -> str:
    """The address as it goes on the wire: email-validator gives a domain written xn--… back in its
    Unicode form (a@xn--mgbh0fb.ir as a@مثال.ir), which a header without SMTPUTF8 cannot carry."""
    if value.isascii():
        return value
    from email_validator import validate_email

    return validate_email(value, check_deliverability=False).ascii_email or value


# an e-mail address budgetwatch can put in a header and an SMTP envelope without SMTPUTF8
MailAddress = Annotated[EmailStr, BeforeValidator(_written_in_ascii), AfterValidator(_as_sent)]


def _on_one_line(value: str) -> str:
    """A display name without line breaks or control characters: CR or LF in a header name stopped
    `alerts send` ("address parts cannot contain CR or LF"). Format characters stay: Persian names
    hold the zero-width non-joiner (U+200C)."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value):
        raise ValueError(LINE_BREAK_IN_NAME)
    return value


class SmtpConfig(WithPassword):
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    # starttls: plain connection upgraded by STARTTLS (port 587); ssl: TLS from the first byte (465);
    # none: no encryption at all (a relay on the same host or a closed network only)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None  # no username: no login
    password_env: str | None = "BUDGETWATCH_SMTP_PASSWORD"
    password_file: Path | None = None  # a file outside the repository holding the password
    ca_file: Path | None = None  # a private CA's certificate, when the server's is not publicly signed
    timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> SmtpConfig:
        # a login without TLS sends the password readable by anyone on the path: only to this host
        # (an empty host is setup_problems' to say: "… in clear to " named nothing, a trial)
        if self.username and self.security == "none" and self.host.strip() and self.host not in LOOPBACK:
            raise ValueError(f"a login (username {self.username!r}) needs security starttls or ssl: "
                             f"security none would send the password in clear to {self.host}")
        return self

    def password(self) -> SecretStr:
        """The login password, read now from the environment variable or the file."""
        return read_password("alerts.smtp", self.password_env, self.password_file,
                             unset_hint=f" (alerts.smtp.username {self.username!r} logs in with it)",
                             missing=f"alerts.smtp.username {self.username!r} logs in: "
                                     "set alerts.smtp.password_env or alerts.smtp.password_file")

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context of a session: the system's CAs, or ``ca_file``'s. Raises OSError when the
        file cannot be read, ssl.SSLError when it holds no certificate."""
        return ssl.create_default_context(cafile=str(self.ca_file.expanduser()) if self.ca_file else None)

    def setup_problems(self) -> list[str]:
        """What stops every session before it starts, found without connecting: a login's password
        that cannot be read, a ``ca_file`` that is no certificate, no host. One line per problem,
        naming its key; empty: ready. ``alerts send`` and every dispatch check this first, so a
        mistake of the configuration is said once and costs no message a try."""
        problems = []
        if not self.host.strip():
            problems.append("alerts.smtp.host: empty: name the mail server")
        if self.username:
            try:
                self.password()
            except ConfigError as exc:
                problems.extend(exc.problems)
        if self.ca_file and self.security != "none":
            try:
                self.tls_context()
            except ssl.SSLError:
                problems.append(f"alerts.smtp.ca_file: {self.ca_file} holds no certificate (PEM)")
            except OSError as exc:
                problems.append(f"alerts.smtp.ca_file: cannot read {self.ca_file} ({exc.strerror})")
        return problems


class RetryConfig(Strict):
    """Transient failures (4xx, refused, timeouts): tries within one dispatch, then later dispatches."""

    attempts_per_run: int = Field(default=3, ge=1, le=20)  # tries of one message within one dispatch
    first_wait_seconds: float = Field(default=5.0, ge=0)  # backoff doubles from here ...
    max_wait_seconds: float = Field(default=900.0, ge=0)  # ... up to this (also between dispatches)


# the From: header's display name when config.yaml gives none
SENDER_NAME = "پایش بودجه"


class AlertsConfig(Strict):
    enabled: bool = False
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    sender: MailAddress | None = None
    _sender_name: str = PrivateAttr(default=SENDER_NAME)  # `sender: Name <address>` gives another
    min_severity: Severity = "major"
    # a message the SMTP server keeps refusing for transient reasons is marked failed after this long
    give_up_after: timedelta = timedelta(days=2)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    # the worst N deviations go in one digest; the rest follow in the next ones (a first run can
    # find thousands, and no one reads a mail that long)
    max_per_digest: int = Field(default=300, ge=1, le=5000)

    @model_validator(mode="wrap")
    @classmethod
    def _name_of_sender(cls, data: Any, handler: Any) -> AlertsConfig:
        """`sender: پایش بودجه استان <bw@…>` names the From header as written (it was dropped silently);
        a bare address is sent as «پایش بودجه»."""
        name = None
        if isinstance(data, dict) and isinstance(data.get("sender"), str):
            named = _NAMED.fullmatch(data["sender"])
            name = named and named.group(1).strip('"').strip()
        config = handler(data)
        if name:
            _on_one_line(name)  # the address's own check refused a line break already: a net
            config._sender_name = name
        return config

    @property
    def sender_name(self) -> str:
        """The From: header's display name."""
        return self._sender_name

    @field_validator("give_up_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)

    @field_validator("give_up_after")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be a positive duration such as 2d, 36h or 90m")
        return value

    @model_validator(mode="after")
    def _sender_when_enabled(self) -> AlertsConfig:
        if self.enabled and not self.sender:
            raise ValueError("missing key sender: alerts are enabled")  # budgetwatch.config names it
        return self


class Expert(Strict):
    """A budget expert who receives digests: the agencies of their groups (one or more)."""

    name: Annotated[str, AfterValidator(_on_one_line)] = Field(min_length=1)
    email: MailAddress
    groups: list[Group] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _single_group(cls, data: Any) -> Any:
        # earlier config files gave one `group:`; it still reads as a list of one
        if isinstance(data, dict) and "group" in data and "groups" not in data:
            data = {**data, "groups": [data["group"]]}
            del data["group"]
        return data

    @field_validator("groups")
    @classmethod
    def _distinct(cls, value: list[Group]) -> list[Group]:
        return list(dict.fromkeys(value))

    @property
    def address(self) -> str:
        """The address as the store keys it (one expert, one spelling)."""
        return str(self.email).lower()


def _one_entry_per_address(experts: list[Expert]) -> list[Expert]:
    seen: dict[str, int] = {}
    for index, expert in enumerate(experts):
        if expert.address in seen:
            raise ValueError(f"{expert.email} is listed twice (entries {seen[expert.address]} and {index}): "
                             "give one entry several groups instead")
        seen[expert.address] = index
    return experts


# what budgetwatch.config.Config.experts should be: every address once
Experts = Annotated[list[Expert], AfterValidator(_one_entry_per_address)]


def uncovered_groups(experts: Sequence[Expert], routing: RoutingConfig) -> list[str]:
    """The groups routing gives agencies to (``routing.default`` and each of ``routing.agencies``)
    that no expert belongs to: their agencies' deviations are e-mailed to no one (those critical
    still reach the consolidation group's experts, if any). In the vocabulary's order."""
    yielded = {routing.default, *routing.agencies.values()}
    covered = {group for expert in experts for group in expert.groups}
    return [group for group in GROUPS if group in yielded and group not in covered]


def uncovered_line(group: str) -> str:
    """What check-config and every command say of a group no expert covers (a WARNING: a group may
    be read in the console only)."""
    return (f"routing: group {group!r} has no expert in experts: its agencies' deviations are e-mailed to "
            "no one (they stay in the console and reports)")
