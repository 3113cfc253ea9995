"""A digest as an e-mail: subject, plain text, right-to-left HTML, and the MIME message around them.

Templates live in alerts/templates and run in Jinja2 with autoescape on for HTML: titles, agency and
county names come from the portals and are untrusted, so they reach the HTML only escaped (a
``<script>`` arrives as text) and the plain part carries them as they are (a ``=HYPERLINK(…)`` is
just characters in a mail). The HTML uses inline styles and tables only, so that Outlook's Word
engine and phone mail apps draw it alike. Every figure, date and name goes through
foundation.present. The message is built once, when it is queued; its bytes are stored and sent as
they are, so a resend is byte-identical and keeps its ``Message-ID``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from alerts.digest import ESCALATED, NEW, REOPENED, Digest, Item
from alerts.settings import SENDER_NAME
from foundation import present

TEMPLATES = Path(__file__).with_name("templates")
FONTS = "Tahoma, sans-serif"  # presentation.md: e-mails use the fallback fonts only (Outlook has no web fonts)

CHANGE_WORDS = {NEW: "جدید", ESCALATED: "تشدیدشده", REOPENED: "بازگشایی‌شده"}


def figure(item: Item, value: Decimal | None, other: Decimal | None = None) -> str:
    """A planned or actual figure in the unit its rule compares, shown apart from the `other`."""
    return present.figure(item.kind, item.rule, value, measure=item.unit, other=other, bounds=item.bounds)


def subject_line(digest: Digest) -> str:
    """'هشدار انحراف‌های بودجه: ۲ بحرانی، ۳ عمده — ۱۲ آذر ۱۴۰۵'."""
    counts = "، ".join(f"{present.number(n)} {present.severity(s)}" for s, n in digest.counts().items())
    return f"هشدار انحراف‌های بودجه: {counts} — {present.day_long(digest.made_at)}"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(number=present.number, quarter=present.quarter, severity=present.severity,
                       rule=present.rule, kind=present.kind, group=present.group, day=present.day,
                       code_text=present.code_text)
    env.globals.update(figure=figure, figure_names=present.figure_names, colours=present.SEVERITY_COLOURS,
                       change_words=CHANGE_WORDS, fonts=FONTS, unit=present.AMOUNT_UNIT)
    return env


_ENV = _environment()


def _context(digest: Digest) -> dict:
    return {"digest": digest, "expert": digest.expert, "subject": subject_line(digest),
            "made_on": present.day_long(digest.made_at), "made_at": present.moment(digest.made_at),
            "groups": "، ".join(present.group(g) for g in digest.expert.groups)}


def render_text(digest: Digest) -> str:
    return _ENV.get_template("digest.txt").render(_context(digest))


def render_html(digest: Digest) -> str:
    return _ENV.get_template("digest.html").render(_context(digest))


@dataclass(frozen=True)
class Rendered:
    """A digest ready to queue: what the outbox keeps of it."""

    recipient: str
    expert_name: str
    sender: str
    subject: str
    body_text: str
    body_html: str
    message_id: str
    raw: str  # the RFC 5322 message, ASCII (MIME-encoded), as it will be sent


def render_message(digest: Digest, sender: str, now: datetime, sender_name: str = SENDER_NAME) -> Rendered:
    """The whole e-mail of `digest` from `sender_name <sender>`, with a new Message-ID and the Date `now`."""
    subject, text, html = subject_line(digest), render_text(digest), render_html(digest)
    message = EmailMessage(policy=SMTP)
    message["Subject"] = subject
    # headerregistry's Address, not formataddr: a Persian name is RFC 2047-encoded whole (formataddr's
    # encoded name was parsed again, and a name holding "<x@y>" put that address in the To: header)
    message["From"] = Address(display_name=sender_name, addr_spec=sender)
    message["To"] = Address(display_name=digest.expert.name, addr_spec=str(digest.expert.email))
    message["Date"] = format_datetime(now)
    message_id = make_msgid(idstring="digest", domain=sender.rpartition("@")[2] or "budgetwatch.local")
    message["Message-ID"] = message_id
    # automatic mail: no out-of-office replies, no read receipts asked of Outlook
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    # after the bodies: set_content() clears every Content-* header set before it (a trial found none sent)
    message["Content-Language"] = "fa"
    raw = message.as_bytes(policy=SMTP).decode("ascii")
    return Rendered(digest.expert.address, digest.expert.name, sender, subject, text, html, message_id, raw)
